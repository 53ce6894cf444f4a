//! Prometheus: PromQL over the HTTP API, each metric one query per window.
//!
//! **Instant** (the default): `GET /api/v1/query?query=...&time=<the window's
//! end>`, its template's `{{interval}}` the window's length, so
//! `increase(x[{{interval}}])` reads exactly the window. The query must give
//! one number: a scalar, or a vector of one series.
//!
//! **Range** (`range_step`): `GET /api/v1/query_range` with points every step
//! back from the window's end, as many as fit in it, `{{interval}}` the step,
//! so each point covers its own step and together they cover the window. The
//! query must give one series; its points are reduced to the window's number
//! ([`reduce`]): a count (`requests`) is their sum, anything else their mean.

use std::time::Duration;

use async_trait::async_trait;
use cutover_analysis::SourceFault;
use cutover_spec::{PrometheusSource, Queries};
use reqwest::Client;
use serde_json::Value;

use crate::http;
use crate::template::At;
use crate::window::{Measure, Reader};

pub(crate) struct Prometheus {
    spec: PrometheusSource,
    client: Client,
}

impl Prometheus {
    pub(crate) fn new(spec: &PrometheusSource) -> Prometheus {
        Prometheus {
            spec: spec.clone(),
            client: http::client(),
        }
    }

    /// Evaluates `promql` at `time` (seconds since the epoch; the server's now
    /// when `None`): its one number, or why there is none.
    pub(crate) async fn instant(
        &self,
        promql: &str,
        time: Option<f64>,
    ) -> Result<f64, SourceFault> {
        let time = time.map(|t| format!("{t:.3}"));
        let mut query = vec![("query", promql)];
        if let Some(t) = &time {
            query.push(("time", t));
        }
        value(&self.ask("/api/v1/query", &query).await?)
    }

    /// Evaluates `promql` at each of `points`: the one series' values, in order.
    pub(crate) async fn range(
        &self,
        promql: &str,
        points: &Points,
    ) -> Result<Vec<f64>, SourceFault> {
        let (start, end, step) = (
            format!("{:.3}", points.start_unix),
            format!("{:.3}", points.end_unix),
            format!("{:.3}", points.step.as_secs_f64()),
        );
        let query = [
            ("query", promql),
            ("start", start.as_str()),
            ("end", end.as_str()),
            ("step", step.as_str()),
        ];
        series(&self.ask("/api/v1/query_range", &query).await?)
    }

    /// The body of a successful answer to `path?query`, or why there is none.
    async fn ask(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, SourceFault> {
        let url = http::url(self.spec.url.expose(), path, query)?;
        let answer = http::get(&self.client, url, &self.spec.headers, self.spec.timeout).await?;
        if !answer.is_success() {
            return Err(refusal(&answer).unwrap_or_else(|| answer.http_fault()));
        }
        answer.json()
    }
}

/// Where a range query evaluates a window: every `step` back from its end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Points {
    pub(crate) start_unix: f64,
    pub(crate) end_unix: f64,
    pub(crate) step: Duration,
    /// What each point covers, `{{interval}}`: the step, or the whole window
    /// when that is shorter.
    pub(crate) covers: Duration,
}

impl Points {
    /// As many points, `step` apart, as fit in the window `at`, the last at its
    /// end; one covering the window when it is shorter than a step.
    pub(crate) fn over(at: &At, step: Duration) -> Points {
        let fit = (at.interval.as_secs_f64() / step.as_secs_f64()).floor();
        let (first_back, covers) = if fit >= 1.0 {
            (step.as_secs_f64() * (fit - 1.0), step)
        } else {
            (0.0, at.interval)
        };
        Points {
            start_unix: at.end_unix - first_back,
            end_unix: at.end_unix,
            step,
            covers,
        }
    }
}

/// The window's number from its points: the sum of a count's, the mean of
/// anything else's. NaN points (a ratio in a step with nothing to divide) are
/// left out; a series of only those is NaN.
pub(crate) fn reduce(measure: Measure, points: &[f64]) -> Result<f64, SourceFault> {
    let numbers: Vec<f64> = points.iter().copied().filter(|v| !v.is_nan()).collect();
    if numbers.is_empty() {
        return Err(SourceFault::NaN);
    }
    let sum: f64 = numbers.iter().sum();
    Ok(match measure {
        Measure::Count => sum,
        Measure::Level => sum / numbers.len() as f64,
    })
}

#[async_trait]
impl Reader for Prometheus {
    type Query = String;
    const NAME: &'static str = "prometheus";
    const QUERIES_AT: &'static str = "queries.";

    fn queries(&self) -> &Queries<String> {
        &self.spec.queries
    }

    async fn read(&self, query: &String, measure: Measure, at: &At) -> Result<f64, SourceFault> {
        let Some(step) = self.spec.range_step else {
            return self.instant(&at.render(query), Some(at.end_unix)).await;
        };
        let points = Points::over(at, step);
        let each = At {
            interval: points.covers,
            ..at.clone()
        };
        reduce(measure, &self.range(&each.render(query), &points).await?)
    }
}

/// The server's refusal of the query itself (`bad_data`: a syntax error; or an
/// execution error), with its own message.
fn refusal(answer: &http::Answer) -> Option<SourceFault> {
    let body: Value = serde_json::from_slice(&answer.body).ok()?;
    let refused = matches!(answer.status, 400 | 422)
        && body.get("status").and_then(Value::as_str) == Some("error");
    refused.then(|| SourceFault::Query {
        message: body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("refused without a message")
            .to_owned(),
    })
}

/// The one number of a successful answer.
fn value(body: &Value) -> Result<f64, SourceFault> {
    let data = &body["data"];
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("scalar") => http::number(&result[1]),
        Some("vector") => match result.as_array().map(Vec::as_slice) {
            Some([]) => Err(SourceFault::MissingSeries),
            Some([one]) => http::number(&one["value"][1]),
            Some(many) => Err(too_many(many)),
            None => Err(malformed(body)),
        },
        Some(other) => Err(SourceFault::Invalid {
            message: format!(
                "the query gave a {other}; it must give one number (an instant vector of one series, or a scalar)"
            ),
        }),
        None => Err(malformed(body)),
    }
}

/// The values of the one series of a range query's answer.
fn series(body: &Value) -> Result<Vec<f64>, SourceFault> {
    let data = &body["data"];
    if data["resultType"].as_str() != Some("matrix") {
        return Err(malformed(body));
    }
    let one = match data["result"].as_array().map(Vec::as_slice) {
        Some([]) => return Err(SourceFault::MissingSeries),
        Some([one]) => one,
        Some(many) => return Err(too_many(many)),
        None => return Err(malformed(body)),
    };
    let values = one["values"].as_array().ok_or_else(|| malformed(body))?;
    values
        .iter()
        .map(|point| match http::number(&point[1]) {
            Err(SourceFault::NaN) => Ok(f64::NAN),
            other => other,
        })
        .collect()
}

fn too_many(series: &[Value]) -> SourceFault {
    SourceFault::Invalid {
        message: format!(
            "the query gave {} series, like {}; aggregate them into one, e.g. with sum()",
            series.len(),
            series[0]["metric"]
        ),
    }
}

fn malformed(body: &Value) -> SourceFault {
    SourceFault::Invalid {
        message: format!(
            "not a Prometheus query answer: {}",
            http::excerpt(body.to_string().as_bytes())
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests;
