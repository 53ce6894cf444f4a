//! `analysis.source`: the built-in proxy, Prometheus, a JSON web endpoint, a
//! command or Datadog; their query templates, custom metrics with their limits,
//! and the `${env:NAME}` placeholders of URLs, headers and keys.

use std::collections::BTreeMap;

use super::Checker;
use super::fields::did_you_mean;
use crate::parse::node::{Entry, Node, Value};
use crate::source::{
    CommandQuery, CommandSource, CustomRule, DatadogSource, Direction, MetricSource,
    PrometheusSource, Queries, Secret, WebQuery, WebSource, promql,
};
use crate::types::{AnalysisSpec, defaults};

const SOURCES: &[&str] = &["builtin", "prometheus", "web", "command", "datadog"];
const PROMETHEUS: &[&str] = &["url", "headers", "timeout", "range_step", "queries"];
const DATADOG: &[&str] = &[
    "site", "api_url", "api_key", "app_key", "timeout", "queries",
];
const QUERIES: &[&str] = &[
    "requests",
    "error_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "custom",
];
const WEB_QUERY: &[&str] = &["url", "headers", "json_path", "timeout"];
const COMMAND_QUERY: &[&str] = &["run", "timeout"];
const CUSTOM_RULE: &[&str] = &["name", "direction", "limit"];
/// A PromQL or Datadog custom metric's own field.
const QUERY: &[&str] = &["query"];
const LIMIT: &[&str] = &["max", "max_ratio", "min", "min_ratio"];
/// The placeholders of a query template.
const TEMPLATE: &[&str] = &["version", "role", "app", "interval"];

/// Custom metrics' queries by name, and their rules.
type Customs<Q> = (Vec<(String, Q)>, Vec<CustomRule>);

/// How one kind of source reads one metric's query from its entry.
type QueryOf<'b, Q> = fn(&mut Checker<'b>, &Entry, &str) -> Option<Q>;

impl<'b> Checker<'b> {
    /// `analysis.source`, and the custom metrics' rules it brings.
    pub(super) fn source(&mut self, e: &Entry) -> Option<(MetricSource, Vec<CustomRule>)> {
        if e.value.scalar_text().as_deref() == Some("builtin") {
            return Some((MetricSource::Builtin, Vec::new()));
        }
        let kind = self.one_of(e, "analysis.source", "metric source", SOURCES, &[])?;
        let path = format!("analysis.source.{}", kind.key);
        match kind.key.as_str() {
            "builtin" => {
                self.fields(&kind.value, &path, &[])?;
                Some((MetricSource::Builtin, Vec::new()))
            }
            "prometheus" => self.prometheus(kind, &path),
            "web" => {
                let (metrics, custom) =
                    self.queries(&kind.value, &path, None, (Self::web_query, WEB_QUERY))?;
                Some((MetricSource::Web(Box::new(WebSource { metrics })), custom))
            }
            "command" => {
                let (metrics, custom) = self.queries(
                    &kind.value,
                    &path,
                    None,
                    (Self::command_query, COMMAND_QUERY),
                )?;
                Some((
                    MetricSource::Command(Box::new(CommandSource { metrics })),
                    custom,
                ))
            }
            _ => self.datadog(kind, &path),
        }
    }

    fn prometheus(&mut self, e: &Entry, path: &str) -> Option<(MetricSource, Vec<CustomRule>)> {
        let f = self.fields(&e.value, path, PROMETHEUS)?;
        let url = self.require(
            &f,
            path,
            e.key_pos,
            "url",
            "the server, e.g. `http://127.0.0.1:9090`",
        );
        let url = url.and_then(|e| self.url(e));
        let headers = self.secret_headers(f.get("headers"));
        let timeout = self.optional(
            &f,
            "timeout",
            defaults::SOURCE_TIMEOUT,
            Self::positive_duration,
        );
        let range_step = match f.get("range_step") {
            Some(e) => self.positive_duration(e).map(Some),
            None => Some(None),
        };
        let defaults = Queries {
            requests: promql::requests(),
            error_rate: Some(promql::error_rate()),
            latency_p50: Some(promql::latency(0.5)),
            latency_p95: Some(promql::latency(0.95)),
            latency_p99: Some(promql::latency(0.99)),
            custom: Vec::new(),
        };
        let path = format!("{path}.queries");
        let queries = match f.get("queries") {
            Some(q) => self.queries(&q.value, &path, Some(defaults), (Self::promql, QUERY)),
            None => Some((defaults, Vec::new())),
        };
        let (queries, custom) = queries?;
        let source = PrometheusSource {
            url: url?,
            headers: headers?,
            timeout: timeout?,
            range_step: range_step?,
            queries,
        };
        Some((MetricSource::Prometheus(Box::new(source)), custom))
    }

    fn datadog(&mut self, e: &Entry, path: &str) -> Option<(MetricSource, Vec<CustomRule>)> {
        let f = self.fields(&e.value, path, DATADOG)?;
        let api_url = match (f.get("site"), f.get("api_url")) {
            (Some(_), Some(both)) => {
                self.error(both.key_pos, "give `site` or `api_url`, not both");
                None
            }
            (_, Some(url)) => self.url(url),
            (Some(site), None) => self
                .text(site, "Datadog's site, like `datadoghq.eu`")
                .map(|s| {
                    let url = format!("https://api.{}", s.trim());
                    Secret::plain(url)
                }),
            (None, None) => Some(Secret::plain(format!(
                "https://api.{}",
                defaults::DATADOG_SITE
            ))),
        };
        let api_url = api_url.and_then(|url| self.reachable_without_tls(e, &url).then_some(url));
        let keys = ["api_key", "app_key"].map(|key| {
            let hint = format!("like `{key}: ${{env:DD_{}}}`", key.to_ascii_uppercase());
            self.require(&f, path, e.key_pos, key, &hint)
                .and_then(|e| self.secret(e))
        });
        let [api_key, app_key] = keys;
        let timeout = self.optional(
            &f,
            "timeout",
            defaults::SOURCE_TIMEOUT,
            Self::positive_duration,
        );
        let queries = self.require(
            &f,
            path,
            e.key_pos,
            "queries",
            "a metric query per metric, at least `requests`",
        );
        let path = format!("{path}.queries");
        let queries =
            queries.and_then(|q| self.queries(&q.value, &path, None, (Self::metric_query, QUERY)));
        let (queries, custom) = queries?;
        let source = DatadogSource {
            api_url: api_url?,
            api_key: api_key?,
            app_key: app_key?,
            timeout: timeout?,
            queries,
        };
        Some((MetricSource::Datadog(Box::new(source)), custom))
    }

    /// The queries of a source: `requests` (required unless there are defaults),
    /// the built-in metrics, and `custom` with their limits.
    fn queries<Q: Clone>(
        &mut self,
        node: &Node,
        path: &str,
        defaults: Option<Queries<Q>>,
        (query, own): (QueryOf<'b, Q>, &[&str]),
    ) -> Option<(Queries<Q>, Vec<CustomRule>)> {
        let f = self.fields(node, path, QUERIES)?;
        let read = |c: &mut Self, name: &str| -> Option<Option<Q>> {
            match f.get(name) {
                Some(e) => query(c, e, &format!("{path}.{name}")).map(Some),
                None => Some(None),
            }
        };
        let requests = read(self, "requests");
        let error_rate = read(self, "error_rate");
        let p50 = read(self, "latency_p50");
        let p95 = read(self, "latency_p95");
        let p99 = read(self, "latency_p99");
        let custom = match f.get("custom") {
            Some(e) => self.custom(e, &format!("{path}.custom"), (query, own)),
            None => Some((Vec::new(), Vec::new())),
        };
        let (requests, error_rate, p50, p95, p99) = (requests?, error_rate?, p50?, p95?, p99?);
        let (custom, rules) = custom?;
        let requests = match (requests, defaults.as_ref()) {
            (Some(q), _) => q,
            (None, Some(d)) => d.requests.clone(),
            (None, None) => {
                self.error(
                    node.pos,
                    format!(
                        "`{path}` is missing the required field `requests`: a window needs the \
                         number of requests each version served to be judged at all (`min_requests`)"
                    ),
                );
                return None;
            }
        };
        let d = defaults;
        let or_default = |q: Option<Q>, pick: fn(&Queries<Q>) -> &Option<Q>| match q {
            Some(q) => Some(q),
            None => d.as_ref().and_then(|d| pick(d).clone()),
        };
        let queries = Queries {
            requests,
            error_rate: or_default(error_rate, |d| &d.error_rate),
            latency_p50: or_default(p50, |d| &d.latency_p50),
            latency_p95: or_default(p95, |d| &d.latency_p95),
            latency_p99: or_default(p99, |d| &d.latency_p99),
            custom,
        };
        Some((queries, rules))
    }

    fn custom<Q>(
        &mut self,
        e: &Entry,
        path: &str,
        (query, own): (QueryOf<'b, Q>, &[&str]),
    ) -> Option<Customs<Q>> {
        let Value::Seq(items) = &e.value.value else {
            self.error(
                Self::at(e),
                format!(
                    "`{path}` must be a list of metrics, like `- {{ name: queue_depth, query: \"...\", \
                     direction: lower_is_better, limit: {{ max: 100 }} }}`, got {}",
                    e.value.describe()
                ),
            );
            return None;
        };
        let mut queries = Vec::new();
        let mut rules = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let at = format!("{path}[{i}]");
            match self.custom_metric(item, &at, (query, own)) {
                Some((name, q, rule)) => {
                    if queries.iter().any(|(n, _)| *n == name) {
                        self.error(
                            item.pos,
                            format!("`{at}`: another custom metric is already named `{name}`"),
                        );
                        ok = false;
                    }
                    queries.push((name, q));
                    rules.push(rule);
                }
                None => ok = false,
            }
        }
        ok.then_some((queries, rules))
    }

    /// One custom metric: its rule's fields beside its query's own (`query` for
    /// PromQL and Datadog; a web or command query's fields in the same mapping).
    fn custom_metric<Q>(
        &mut self,
        item: &Node,
        path: &str,
        (query, own): (QueryOf<'b, Q>, &[&str]),
    ) -> Option<(String, Q, CustomRule)> {
        let mut valid = CUSTOM_RULE.to_vec();
        valid.extend_from_slice(own);
        let f = self.fields(item, path, &valid)?;
        let name = self.require(
            &f,
            path,
            item.pos,
            "name",
            "a metric name, like `queue_depth`",
        );
        let name = name.and_then(|e| self.metric_name(e));
        let direction = self.require(
            &f,
            path,
            item.pos,
            "direction",
            "`lower_is_better` or `higher_is_better`",
        );
        let direction = direction.and_then(|e| {
            self.keyword(
                e,
                &[
                    ("lower_is_better", Direction::LowerIsBetter),
                    ("higher_is_better", Direction::HigherIsBetter),
                ],
            )
        });
        let limit = self.require(
            &f,
            path,
            item.pos,
            "limit",
            "like `{ max: 100 }` or `{ max_ratio: 1.5 }`",
        );
        let limit = match (limit, direction) {
            (Some(l), Some(d)) => self.custom_limit(l, &format!("{path}.limit"), d),
            _ => None,
        };
        let q = if own == ["query"] {
            let e = self.require(
                &f,
                path,
                item.pos,
                "query",
                "the query giving the metric's value",
            );
            e.and_then(|e| query(self, e, &format!("{path}.query")))
        } else {
            // The metric's mapping is its query's mapping too.
            let whole = Entry {
                key: "custom".to_owned(),
                key_pos: item.pos,
                value: strip(item, CUSTOM_RULE),
            };
            query(self, &whole, path)
        };
        let (name, (bound, ratio), q) = (name?, limit?, q?);
        let rule = CustomRule {
            name: name.clone(),
            direction: direction?,
            bound,
            ratio,
        };
        Some((name, q, rule))
    }

    fn metric_name(&mut self, e: &Entry) -> Option<String> {
        let name = self.text(e, "a metric name")?;
        let valid = !name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            self.error(
                Self::at(e),
                format!("`name` must be a-z, 0-9 and `_`, starting with a letter, like `queue_depth`; got `{name}`"),
            );
            return None;
        }
        if QUERIES.contains(&name.as_str()) || name == "apdex" || name == "slow_requests" {
            self.error(
                Self::at(e),
                format!("`{name}` is a built-in metric; give the custom one another name"),
            );
            return None;
        }
        Some(name)
    }

    /// `max`/`max_ratio` for lower-is-better, `min`/`min_ratio` for higher-is-better.
    fn custom_limit(
        &mut self,
        e: &Entry,
        path: &str,
        direction: Direction,
    ) -> Option<(Option<f64>, Option<f64>)> {
        let f = self.fields(&e.value, path, LIMIT)?;
        let (bound, ratio, wrong) = match direction {
            Direction::LowerIsBetter => ("max", "max_ratio", ["min", "min_ratio"]),
            Direction::HigherIsBetter => ("min", "min_ratio", ["max", "max_ratio"]),
        };
        let mut ok = true;
        for key in wrong {
            if let Some(w) = f.get(key) {
                self.error(
                    w.key_pos,
                    format!(
                        "`{key}` does not fit `direction: {}`; use `{bound}` or `{ratio}`",
                        match direction {
                            Direction::LowerIsBetter => "lower_is_better",
                            Direction::HigherIsBetter => "higher_is_better",
                        }
                    ),
                );
                ok = false;
            }
        }
        let b = f.get(bound).map(|e| self.number(e));
        let r = f.get(ratio).map(|e| self.ratio(e));
        if b.is_none() && r.is_none() {
            if ok && f.unknown.is_empty() {
                self.error(
                    e.key_pos,
                    format!("`{path}` needs at least one of `{bound}` or `{ratio}`"),
                );
            }
            return None;
        }
        let b = match b {
            Some(v) => Some(v?),
            None => None,
        };
        let r = match r {
            Some(v) => Some(v?),
            None => None,
        };
        ok.then_some((b, r))
    }

    fn number(&mut self, e: &Entry) -> Option<f64> {
        let n = match &e.value.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        };
        match n {
            Some(n) if n.is_finite() => Some(n),
            _ => {
                self.error(
                    Self::at(e),
                    format!("`{}` must be a number, got {}", e.key, e.value.describe()),
                );
                None
            }
        }
    }

    /// A PromQL template: its `{{...}}` placeholders are checked; the server
    /// checks the rest (`cutover validate`, or the first window).
    fn promql(&mut self, e: &Entry, path: &str) -> Option<String> {
        let text = self.text(e, "a PromQL query")?;
        self.template(&e.value, &text, path).then_some(text)
    }

    /// A Datadog metric query template.
    fn metric_query(&mut self, e: &Entry, path: &str) -> Option<String> {
        let text = self.text(e, "a Datadog metric query")?;
        self.template(&e.value, &text, path).then_some(text)
    }

    fn web_query(&mut self, e: &Entry, path: &str) -> Option<WebQuery> {
        let f = self.fields(&e.value, path, WEB_QUERY)?;
        let url = self.require(
            &f,
            path,
            e.key_pos,
            "url",
            "the endpoint, like `http://127.0.0.1:9000/m?v={{version}}`",
        );
        let url = url.and_then(|u| {
            let url = self.url(u)?;
            self.template(&u.value, url.written(), path).then_some(url)
        });
        let headers = self.secret_headers(f.get("headers"));
        let json_path = self.require(
            &f,
            path,
            e.key_pos,
            "json_path",
            "where the number is, like `$.data.value`",
        );
        let json_path = json_path.and_then(|j| self.json_path(j));
        let timeout = self.optional(
            &f,
            "timeout",
            defaults::SOURCE_TIMEOUT,
            Self::positive_duration,
        );
        Some(WebQuery {
            url: url?,
            headers: headers?,
            json_path: json_path?,
            timeout: timeout?,
        })
    }

    fn command_query(&mut self, e: &Entry, path: &str) -> Option<CommandQuery> {
        let f = self.fields(&e.value, path, COMMAND_QUERY)?;
        let run = self.require(
            &f,
            path,
            e.key_pos,
            "run",
            r#"the argv, like ["./metric", "error_rate"]"#,
        );
        let run = run.and_then(|r| {
            let argv = self.source_argv(r)?;
            // Each argument checked, so every bad placeholder is reported.
            let checked: Vec<bool> = argv
                .iter()
                .map(|arg| self.template(&r.value, arg, path))
                .collect();
            checked.iter().all(|ok| *ok).then_some(argv)
        });
        let timeout = self.optional(
            &f,
            "timeout",
            defaults::SOURCE_TIMEOUT,
            Self::positive_duration,
        );
        Some(CommandQuery {
            run: run?,
            timeout: timeout?,
        })
    }

    /// A command's argv, its program resolved against the config file's folder when
    /// it is a path (`./metric.sh` is beside the config, wherever the daemon runs).
    fn source_argv(&mut self, e: &Entry) -> Option<Vec<String>> {
        let mut argv = self.argv(e)?;
        if argv[0].contains('/') {
            argv[0] = self
                .resolve(std::path::Path::new(&argv[0]))
                .to_string_lossy()
                .into_owned();
        }
        Some(argv)
    }

    /// A JSONPath of the subset the web source reads: `$`, then `.name`,
    /// `['name']` or `[index]` steps.
    fn json_path(&mut self, e: &Entry) -> Option<String> {
        let text = self.text(e, "a JSONPath")?;
        match crate::source::json_path_steps(&text) {
            Ok(_) => Some(text),
            Err(problem) => {
                self.error(
                    Self::at(e),
                    format!(
                        "`json_path` {problem}: write `$` then `.name`, `['name']` or `[0]` steps, \
                         like `$.data.result[0].value` (filters and wildcards are not supported)"
                    ),
                );
                None
            }
        }
    }

    /// Checks the `{{...}}` placeholders of a query template.
    fn template(&mut self, node: &Node, text: &str, path: &str) -> bool {
        let mut ok = true;
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                self.error(
                    node.pos,
                    format!("unterminated placeholder `{}` in `{path}`", &rest[start..]),
                );
                return false;
            };
            let name = after[..end].trim();
            if !TEMPLATE.contains(&name) {
                let hint = did_you_mean(name, TEMPLATE)
                    .map(|p| format!("; did you mean `{{{{{p}}}}}`?"))
                    .unwrap_or_default();
                self.error(
                    node.pos_of(&format!("{{{{{name}")),
                    format!(
                        "unknown placeholder `{{{{{name}}}}}` in `{path}`{hint} (valid: {{{{version}}}}, \
                         {{{{role}}}}, {{{{app}}}}, {{{{interval}}}})"
                    ),
                );
                ok = false;
            }
            rest = &after[end + 2..];
        }
        ok
    }

    /// An `http://` URL, after `${env:NAME}` placeholders are resolved.
    fn url(&mut self, e: &Entry) -> Option<Secret> {
        let url = self.secret(e)?;
        let value = url.expose();
        if self.env.is_none() && value.contains("${env:") {
            return Some(url);
        }
        if value.starts_with("https://") {
            self.error(
                Self::at(e),
                format!(
                    "`{}` is an https:// URL, but this build of cutover has no TLS: use an http:// \
                     address (a local Prometheus, or a TLS-terminating proxy on 127.0.0.1)",
                    e.key
                ),
            );
            return None;
        }
        let host = value.strip_prefix("http://").unwrap_or_default();
        if !value.starts_with("http://") || host.is_empty() || host.starts_with('/') {
            self.error(
                Self::at(e),
                format!(
                    "`{}` must be an http:// URL, like `http://127.0.0.1:9090`, got `{url}`",
                    e.key
                ),
            );
            return None;
        }
        Some(url)
    }

    /// Datadog's API is https: without an `api_url` of plain http, this build cannot reach it.
    fn reachable_without_tls(&mut self, e: &Entry, url: &Secret) -> bool {
        if url.expose().starts_with("https://") {
            self.error(
                e.key_pos,
                format!(
                    "Datadog's API at {url} is https://, but this build of cutover has no TLS; give \
                     `api_url: http://...` (a TLS-terminating proxy on 127.0.0.1)"
                ),
            );
            return false;
        }
        true
    }

    /// Header values, each a [`Secret`].
    fn secret_headers(&mut self, e: Option<&Entry>) -> Option<BTreeMap<String, Secret>> {
        let Some(e) = e else {
            return Some(BTreeMap::new());
        };
        let plain = self.headers(e)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (name, written) in plain {
            let node = e.value.get(&name).map_or(&e.value, |entry| &entry.value);
            match self.resolve_env(node, &written, &format!("headers.{name}")) {
                Some(value) => {
                    out.insert(name, Secret::new(written, value));
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A string whose `${env:NAME}` placeholders are replaced from the environment.
    fn secret(&mut self, e: &Entry) -> Option<Secret> {
        let written = self.text(
            e,
            "a value, or `${env:NAME}` to read it from the environment",
        )?;
        let value = self.resolve_env(&e.value, &written, &e.key)?;
        Some(Secret::new(written, value))
    }

    fn resolve_env(&mut self, node: &Node, written: &str, what: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = written;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.error(
                    node.pos,
                    format!("unterminated placeholder `{}` in `{what}`", &rest[start..]),
                );
                return None;
            };
            let inner = &after[..end];
            let Some(name) = inner.strip_prefix("env:") else {
                self.error(
                    node.pos_of(&format!("${{{inner}}}")),
                    format!("unknown placeholder `${{{inner}}}` in `{what}` (valid: `${{env:NAME}}`, a variable of the environment)"),
                );
                return None;
            };
            let Some(env) = self.env else {
                // Not resolved (a client finding the daemon): keep it as written.
                out.push_str(&rest[start..start + 2 + end + 1]);
                rest = &after[end + 1..];
                continue;
            };
            match env(name) {
                Some(value) => out.push_str(&value),
                None => {
                    self.error(
                        node.pos_of(&format!("${{{inner}}}")),
                        format!("`{what}` reads the environment variable `{name}`, which is not set; set it, or write the value"),
                    );
                    return None;
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// Without the built-in proxy's latency histograms, the checks that need them
    /// are refused where they are set explicitly, and off by default; the
    /// metrics judged must each have a query.
    pub(super) fn fit_source(&mut self, e: &Entry, analysis: &mut AnalysisSpec) {
        let queries: Option<Vec<&str>> = match &analysis.source {
            MetricSource::Builtin => return,
            MetricSource::Prometheus(p) => {
                Some(p.queries.all().into_iter().map(|(n, _)| n).collect())
            }
            MetricSource::Web(w) => Some(w.metrics.all().into_iter().map(|(n, _)| n).collect()),
            MetricSource::Command(c) => Some(c.metrics.all().into_iter().map(|(n, _)| n).collect()),
            MetricSource::Datadog(d) => Some(d.queries.all().into_iter().map(|(n, _)| n).collect()),
        };
        let queried = queries.unwrap_or_default();
        let source = analysis.source.name();
        let node = &e.value;
        let histograms = |what: &str| {
            format!(
                "{what} needs the built-in proxy's latency histograms, which `analysis.source.{source}` \
                 does not have; leave it out (or use the built-in source)"
            )
        };
        if let Some(apdex) = node.get("metrics").and_then(|m| m.value.get("apdex")) {
            self.error(apdex.key_pos, histograms("`apdex`"));
        }
        if let Some(cmp) = node.get("comparison")
            && !matches!(cmp.value.value, Value::Bool(false))
        {
            self.error(cmp.key_pos, histograms("the Mann-Whitney `comparison`"));
        }
        if let Some(q) = node
            .get("sequential")
            .and_then(|s| s.value.get("latency_quantile"))
            && !matches!(q.value.value, Value::Bool(false))
        {
            self.error(q.key_pos, histograms("`latency_quantile`"));
        }
        let m = &analysis.metrics;
        let judged = [
            ("error_rate", m.error_rate.is_some()),
            ("latency_p50", m.latency_p50.is_some()),
            ("latency_p95", m.latency_p95.is_some()),
            ("latency_p99", m.latency_p99.is_some()),
        ];
        for (metric, set) in judged {
            if set && !queried.contains(&metric) {
                let blame = node
                    .get("metrics")
                    .and_then(|m| m.value.get(metric))
                    .map_or(e.key_pos, |m| m.key_pos);
                self.error(
                    blame,
                    format!(
                        "`analysis.metrics.{metric}` has a limit, but `analysis.source.{source}` has no \
                         `{metric}` query to measure it; add one, or leave the limit out"
                    ),
                );
            }
        }
        analysis.comparison = None;
        analysis.metrics.apdex = None;
        if let Some(seq) = analysis.sequential.as_mut() {
            seq.latency_quantile = None;
            seq.errors &= queried.contains(&"error_rate");
        }
        if analysis.sequential.is_some_and(|s| !s.errors) {
            analysis.sequential = None;
        }
    }
}

/// `node`, a mapping, without the entries named in `keys`.
fn strip(node: &Node, keys: &[&str]) -> Node {
    let value = match &node.value {
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .filter(|e| !keys.contains(&e.key.as_str()))
                .cloned()
                .collect(),
        ),
        other => other.clone(),
    };
    Node {
        value,
        pos: node.pos,
        raw: node.raw.clone(),
    }
}
