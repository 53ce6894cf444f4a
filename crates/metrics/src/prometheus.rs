//! Prometheus: each metric an instant PromQL query over the HTTP API
//! (`GET /api/v1/query?query=...&time=<the window's end>`), its template's
//! `{{interval}}` the window's length, so `increase(x[{{interval}}])` reads
//! exactly the window. The query must give one number: a scalar, or a vector of
//! one series.

use async_trait::async_trait;
use cutover_analysis::SourceFault;
use cutover_spec::{PrometheusSource, Queries};
use reqwest::Client;
use serde_json::Value;

use crate::http;
use crate::template::At;
use crate::window::Reader;

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
        let url = http::url(self.spec.url.expose(), "/api/v1/query", &query)?;
        let answer = http::get(&self.client, url, &self.spec.headers, self.spec.timeout).await?;
        if !answer.is_success() {
            return Err(refusal(&answer).unwrap_or_else(|| answer.http_fault()));
        }
        value(&answer.json()?)
    }
}

#[async_trait]
impl Reader for Prometheus {
    type Query = String;
    const NAME: &'static str = "prometheus";
    const QUERIES_AT: &'static str = "queries.";

    fn queries(&self) -> &Queries<String> {
        &self.spec.queries
    }

    async fn read(&self, query: &String, at: &At) -> Result<f64, SourceFault> {
        self.instant(&at.render(query), Some(at.end_unix)).await
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
            Some(many) => Err(SourceFault::Invalid {
                message: format!(
                    "the query gave {} series, like {}; aggregate them into one, e.g. with sum()",
                    many.len(),
                    many[0]["metric"]
                ),
            }),
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
