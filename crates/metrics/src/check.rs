//! `cutover validate`'s look at the metric source: each PromQL template, filled
//! in with a placeholder version, sent to the server, so a syntax error is
//! reported with the server's own message and the config field before any run.

use std::time::Duration;

use cutover_analysis::SourceFault;
use cutover_spec::{Config, MetricSource};

use crate::prometheus::Prometheus;
use crate::template::At;

/// What the server said of the config's queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryCheck {
    /// Nothing to check ahead: the built-in source, or one whose queries are
    /// only tried at the first window (web, command, Datadog).
    NotChecked { source: &'static str },
    /// The server took every query.
    Accepted { url: String, queries: usize },
    /// The server refused these: the config field and the server's message.
    Refused {
        url: String,
        refused: Vec<(String, String)>,
    },
    /// The server could not be asked; the queries will be tried at the first window.
    Unreachable { url: String, reason: String },
}

/// Asks the config's Prometheus about each of its queries.
pub async fn check_queries(config: &Config) -> QueryCheck {
    let MetricSource::Prometheus(spec) = &config.analysis.source else {
        return QueryCheck::NotChecked {
            source: config.analysis.source.name(),
        };
    };
    let url = spec.url.to_string();
    let prometheus = Prometheus::new(spec);
    let at = At {
        app: config.app.clone(),
        version: "cutover-validate".into(),
        role: "canary".into(),
        interval: config.analysis.interval.max(Duration::from_secs(1)),
        end_unix: 0.0,
    };
    let queries = spec.queries.all();
    let mut refused = Vec::new();
    for (metric, query) in &queries {
        let field = format!("analysis.source.prometheus.queries.{metric}");
        match prometheus.instant(&at.render(query), None).await {
            Ok(_)
            | Err(SourceFault::MissingSeries | SourceFault::NaN | SourceFault::Invalid { .. }) => {}
            Err(SourceFault::Query { message }) => refused.push((field, message)),
            Err(other) => {
                return QueryCheck::Unreachable {
                    url,
                    reason: other.to_string(),
                };
            }
        }
    }
    if refused.is_empty() {
        QueryCheck::Accepted {
            url,
            queries: queries.len(),
        }
    } else {
        QueryCheck::Refused { url, refused }
    }
}
