//! `analysis.source`: where the engine reads what each version did in a window.
//! The built-in proxy by default; Prometheus, a JSON web endpoint, a command or
//! Datadog when the config says so.
//!
//! Query templates keep their placeholders (`{{version}}`, `{{role}}`, `{{app}}`,
//! `{{interval}}`): they are filled in per window by the source. Values that may
//! hold secrets (URLs, headers, API keys) are [`Secret`]s, resolved from
//! `${env:NAME}` when the config is read and shown only as written.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Where the analysis reads its windows from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum MetricSource {
    /// The built-in proxy's own counters and latency histograms: exact windows.
    #[default]
    Builtin,
    Prometheus(Box<PrometheusSource>),
    Web(Box<WebSource>),
    Command(Box<CommandSource>),
    Datadog(Box<DatadogSource>),
}

impl MetricSource {
    /// The source's key in the config: `builtin`, `prometheus`, `web`, `command`, `datadog`.
    pub fn name(&self) -> &'static str {
        match self {
            MetricSource::Builtin => "builtin",
            MetricSource::Prometheus(_) => "prometheus",
            MetricSource::Web(_) => "web",
            MetricSource::Command(_) => "command",
            MetricSource::Datadog(_) => "datadog",
        }
    }
}

/// One query per metric a window is judged on. `requests` is always there: a
/// window needs the canary's request count to be judged at all (`min_requests`).
#[derive(Debug, Clone, PartialEq)]
pub struct Queries<Q> {
    /// Requests the version served in the window.
    pub requests: Q,
    /// The share of those that failed, 0..=1.
    pub error_rate: Option<Q>,
    /// Latency quantiles, in seconds.
    pub latency_p50: Option<Q>,
    pub latency_p95: Option<Q>,
    pub latency_p99: Option<Q>,
    /// Custom metrics by name; their limits are in [`crate::MetricRules::custom`].
    pub custom: Vec<(String, Q)>,
}

impl<Q> Queries<Q> {
    /// Every query with the name of its metric, `requests` first.
    pub fn all(&self) -> Vec<(&str, &Q)> {
        let mut out = vec![("requests", &self.requests)];
        let named = [
            ("error_rate", &self.error_rate),
            ("latency_p50", &self.latency_p50),
            ("latency_p95", &self.latency_p95),
            ("latency_p99", &self.latency_p99),
        ];
        out.extend(
            named
                .into_iter()
                .filter_map(|(n, q)| q.as_ref().map(|q| (n, q))),
        );
        out.extend(self.custom.iter().map(|(n, q)| (n.as_str(), q)));
        out
    }
}

/// `analysis.source.prometheus`: PromQL over Prometheus' HTTP API.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusSource {
    /// The server, e.g. `http://127.0.0.1:9090`.
    pub url: Secret,
    pub headers: BTreeMap<String, Secret>,
    /// How long one query may take.
    pub timeout: Duration,
    /// `None` (the default): each query is an instant query at the window's end,
    /// `{{interval}}` the window's length. `Some(step)`: a range query
    /// (`/api/v1/query_range`) over the window, one point every `step` back from
    /// its end, `{{interval}}` the step, so each point covers its own step; the
    /// points are reduced to the window's value: `requests` is their sum (the
    /// window's count, step by step), every other metric their mean (NaN points,
    /// steps with nothing to divide, left out). A window shorter than the step
    /// is one point covering the window.
    pub range_step: Option<Duration>,
    /// The PromQL templates; the defaults read the built-in proxy's own
    /// `cutover_proxy_*` series as scraped from the daemon's `/metrics`.
    pub queries: Queries<String>,
}

/// One metric of `analysis.source.web`: a GET whose JSON answer holds the number.
#[derive(Debug, Clone, PartialEq)]
pub struct WebQuery {
    /// A template: `{{version}}`, `{{role}}`, `{{app}}`, `{{interval}}` are filled in.
    pub url: Secret,
    pub headers: BTreeMap<String, Secret>,
    /// Where the number is in the answer: `$.data.value`, `$.series[0]['p95']`.
    pub json_path: String,
    pub timeout: Duration,
}

/// `analysis.source.web`: a JSON endpoint per metric.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSource {
    pub metrics: Queries<WebQuery>,
}

/// One metric of `analysis.source.command`: a program whose standard output is
/// the number.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandQuery {
    /// The argv; `CUTOVER_VERSION`, `CUTOVER_ROLE`, `CUTOVER_APP` and
    /// `CUTOVER_WINDOW_SECONDS` are in its environment.
    pub run: Vec<String>,
    pub timeout: Duration,
}

/// `analysis.source.command`: a command per metric.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSource {
    pub metrics: Queries<CommandQuery>,
}

/// `analysis.source.datadog`: Datadog's metrics query API (v1 `GET /api/v1/query`).
#[derive(Debug, Clone, PartialEq)]
pub struct DatadogSource {
    /// `https://api.<site>` or `api_url` as given.
    pub api_url: Secret,
    pub api_key: Secret,
    pub app_key: Secret,
    pub timeout: Duration,
    /// Metric queries; the last point of the series over the window is the value.
    pub queries: Queries<String>,
}

/// Which way a custom metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    LowerIsBetter,
    HigherIsBetter,
}

/// A custom metric's limit: absolute and/or relative to the baseline's value in
/// the same window (the tightest applies). At least one is set.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomRule {
    pub name: String,
    pub direction: Direction,
    /// `max` (lower is better) or `min` (higher is better).
    pub bound: Option<f64>,
    /// `max_ratio` or `min_ratio`: times the baseline's value.
    pub ratio: Option<f64>,
}

/// A config value that may hold secrets from the environment: `${env:NAME}` was
/// replaced by the variable's value when the config was read.
///
/// Its `Debug`, `Display` and `Serialize` give the text as written in the file,
/// with every `${env:NAME}` left as is, so a value from the environment never
/// reaches a receipt, a log line or an API answer; [`Secret::expose`] gives the
/// value to use.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    written: String,
}

impl Secret {
    /// A value as written and as resolved.
    pub fn new(written: impl Into<String>, value: impl Into<String>) -> Secret {
        Secret {
            value: value.into(),
            written: written.into(),
        }
    }

    /// A value written without placeholders.
    pub fn plain(text: impl Into<String>) -> Secret {
        let text = text.into();
        Secret::new(text.clone(), text)
    }

    /// The value to use: with the environment's values in it. Never print it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The text as written in the config file.
    pub fn written(&self) -> &str {
        &self.written
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.written)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.written)
    }
}

/// The default PromQL queries: the built-in proxy's own series, as a Prometheus
/// scraping the daemon's `/metrics` has them.
pub mod promql {
    const SELECTOR: &str = r#"app="{{app}}",version="{{version}}",role="{{role}}""#;

    /// Responses in the window.
    pub fn requests() -> String {
        format!("sum(increase(cutover_proxy_requests_total{{{SELECTOR}}}[{{{{interval}}}}]))")
    }

    /// The share of 5xx responses in the window.
    pub fn error_rate() -> String {
        format!(
            "sum(increase(cutover_proxy_requests_total{{{SELECTOR},class=\"5xx\"}}[{{{{interval}}}}])) / {}",
            requests()
        )
    }

    /// A latency quantile in seconds, from the proxy's histogram buckets.
    pub fn latency(quantile: f64) -> String {
        format!(
            "histogram_quantile({quantile}, sum by (le) (rate(cutover_proxy_latency_seconds_bucket{{{SELECTOR}}}[{{{{interval}}}}])))"
        )
    }
}

/// One step of a JSONPath, in the subset the web source reads: `$` followed by
/// `.name`, `['name']` (or `["name"]`) and `[index]` steps. Filters, wildcards
/// and recursive descent are not supported: one path names one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonStep {
    Key(String),
    Index(usize),
}

/// The steps of `path`, or what is wrong with it.
pub fn json_path_steps(path: &str) -> Result<Vec<JsonStep>, String> {
    let mut rest = path
        .trim()
        .strip_prefix('$')
        .ok_or_else(|| "must start with `$`".to_owned())?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() || name == "*" || name.starts_with('.') {
                return Err(format!("has an empty or wildcard name at `{rest}`"));
            }
            steps.push(JsonStep::Key(name.to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| format!("has an unclosed `[` at `{rest}`"))?;
            let inner = after[..end].trim();
            let quoted = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
            match (quoted, inner.parse::<usize>()) {
                (Some(name), _) => steps.push(JsonStep::Key(name.to_owned())),
                (None, Ok(i)) => steps.push(JsonStep::Index(i)),
                (None, Err(_)) => {
                    return Err(format!(
                        "has `[{inner}]`, neither a quoted name nor an index"
                    ));
                }
            }
            rest = &after[end + 1..];
        } else {
            return Err(format!(
                "has `{rest}` where a `.name` or `[...]` step should be"
            ));
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_shows_as_written_never_as_resolved() {
        let s = Secret::new("Bearer ${env:TOKEN}", "Bearer hunter2");
        assert_eq!(s.expose(), "Bearer hunter2");
        assert_eq!(format!("{s}"), "Bearer ${env:TOKEN}");
        assert_eq!(format!("{s:?}"), "\"Bearer ${env:TOKEN}\"");
        let shown = format!("{:?}", BTreeMap::from([("authorization", s.clone())]));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#""Bearer ${env:TOKEN}""#
        );
    }

    #[test]
    fn json_paths_of_the_subset() {
        use JsonStep::*;
        assert_eq!(
            json_path_steps("$.data.result[0]['p95 ms']"),
            Ok(vec![
                Key("data".into()),
                Key("result".into()),
                Index(0),
                Key("p95 ms".into())
            ])
        );
        assert_eq!(json_path_steps("$"), Ok(vec![]));
        for bad in ["data.value", "$..value", "$.a[*]", "$.a[", "$x"] {
            assert!(json_path_steps(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_queries_read_the_proxy_s_series() {
        assert_eq!(
            promql::requests(),
            r#"sum(increase(cutover_proxy_requests_total{app="{{app}}",version="{{version}}",role="{{role}}"}[{{interval}}]))"#
        );
        assert!(promql::error_rate().contains(r#"class="5xx"}[{{interval}}]"#));
        assert!(promql::latency(0.95).starts_with(
            r#"histogram_quantile(0.95, sum by (le) (rate(cutover_proxy_latency_seconds_bucket{app="{{app}}""#
        ));
    }
}
