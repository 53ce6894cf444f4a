//! Datadog's metrics query API, v1: `GET /api/v1/query?from=&to=&query=` with
//! the `DD-API-KEY` and `DD-APPLICATION-KEY` headers, over the window. The
//! query must give one series; its last point with a value is the metric's.

use std::collections::BTreeMap;

use async_trait::async_trait;
use cutover_analysis::SourceFault;
use cutover_spec::{DatadogSource, Queries, Secret};
use reqwest::Client;
use serde_json::Value;

use crate::http;
use crate::template::At;
use crate::window::{Measure, Reader};

pub(crate) struct Datadog {
    spec: DatadogSource,
    headers: BTreeMap<String, Secret>,
    client: Client,
}

impl Datadog {
    pub(crate) fn new(spec: &DatadogSource) -> Datadog {
        let headers = BTreeMap::from([
            ("DD-API-KEY".to_owned(), spec.api_key.clone()),
            ("DD-APPLICATION-KEY".to_owned(), spec.app_key.clone()),
        ]);
        Datadog {
            spec: spec.clone(),
            headers,
            client: http::client(),
        }
    }
}

#[async_trait]
impl Reader for Datadog {
    type Query = String;
    const NAME: &'static str = "datadog";
    const QUERIES_AT: &'static str = "queries.";

    fn queries(&self) -> &Queries<String> {
        &self.spec.queries
    }

    async fn read(&self, query: &String, _: Measure, at: &At) -> Result<f64, SourceFault> {
        let to = at.end_unix.floor() as i64;
        let from = (at.end_unix - at.interval.as_secs_f64()).floor() as i64;
        let (from, to) = (from.to_string(), to.to_string());
        let rendered = at.render(query);
        let params = [
            ("from", from.as_str()),
            ("to", to.as_str()),
            ("query", rendered.as_str()),
        ];
        let url = http::url(self.spec.api_url.expose(), "/api/v1/query", &params)?;
        let answer = http::get(&self.client, url, &self.headers, self.spec.timeout).await?;
        if !answer.is_success() {
            return Err(answer.http_fault());
        }
        last_point(&answer.json()?)
    }
}

/// The last point with a value of the answer's one series.
fn last_point(body: &Value) -> Result<f64, SourceFault> {
    if body["status"].as_str() == Some("error") {
        return Err(SourceFault::Query {
            message: body["error"]
                .as_str()
                .unwrap_or("refused without a message")
                .to_owned(),
        });
    }
    let series = body["series"]
        .as_array()
        .ok_or_else(|| SourceFault::Invalid {
            message: format!(
                "not a Datadog query answer: {}",
                http::excerpt(body.to_string().as_bytes())
            ),
        })?;
    let one = match series.as_slice() {
        [] => return Err(SourceFault::MissingSeries),
        [one] => one,
        many => {
            return Err(SourceFault::Invalid {
                message: format!(
                    "the query gave {} series; aggregate them into one (no `by {{...}}`)",
                    many.len()
                ),
            });
        }
    };
    let points = one["pointlist"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let last = points.iter().rev().map(|p| &p[1]).find(|v| !v.is_null());
    match last {
        Some(v) => http::number(v),
        None => Err(SourceFault::Empty {
            detail: "the series has no point with a value in the window".into(),
        }),
    }
}

#[cfg(test)]
mod tests;
