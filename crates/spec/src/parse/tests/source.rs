//! `analysis.source`: each kind, its defaults, custom metrics, `${env:NAME}`
//! values, and what the lack of histograms turns off or refuses.

use super::*;
use crate::source::*;

fn with_source(source: &str) -> String {
    format!("{MINIMAL}analysis:\n  source:\n{source}")
}

fn parse_env(src: &str, env: &[(&str, &str)]) -> Result<Config, Vec<String>> {
    let lookup = |name: &str| {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    };
    parse_with_env(src, "cutover.yaml", &lookup)
        .map_err(|e| e.diagnostics.iter().map(ToString::to_string).collect())
}

#[test]
fn the_default_source_is_the_builtin_proxy_and_can_be_named() {
    assert_eq!(ok(MINIMAL).analysis.source, MetricSource::Builtin);
    let named = format!("{MINIMAL}analysis:\n  source: builtin\n");
    assert_eq!(ok(&named).analysis.source, MetricSource::Builtin);
    assert!(ok(&named).analysis.comparison.is_some());
}

#[test]
fn prometheus_with_zero_queries_reads_the_proxy_s_series_and_turns_off_what_needs_histograms() {
    let c = ok(&with_source(
        "    prometheus:\n      url: http://127.0.0.1:9090\n",
    ));
    let MetricSource::Prometheus(p) = &c.analysis.source else {
        panic!("{:?}", c.analysis.source)
    };
    assert_eq!(p.url.expose(), "http://127.0.0.1:9090");
    assert_eq!(p.timeout, defaults::SOURCE_TIMEOUT);
    assert_eq!(p.queries.requests, promql::requests());
    assert_eq!(p.queries.latency_p95, Some(promql::latency(0.95)));
    assert_eq!(p.queries.all().len(), 5);
    assert_eq!(c.analysis.comparison, None);
    let seq = c
        .analysis
        .sequential
        .expect("the error test needs no histogram");
    assert!(seq.errors && seq.latency_quantile.is_none());
}

#[test]
fn prometheus_range_queries_take_a_positive_step_and_instant_ones_are_the_default() {
    let instant = ok(&with_source(
        "    prometheus:\n      url: http://127.0.0.1:9090\n",
    ));
    let MetricSource::Prometheus(p) = &instant.analysis.source else {
        panic!("{:?}", instant.analysis.source)
    };
    assert_eq!(p.range_step, None);
    let range = ok(&with_source(
        "    prometheus:\n      url: http://127.0.0.1:9090\n      range_step: 2s\n",
    ));
    let MetricSource::Prometheus(p) = &range.analysis.source else {
        panic!("{:?}", range.analysis.source)
    };
    assert_eq!(p.range_step, Some(std::time::Duration::from_secs(2)));
    let e = error(&with_source(
        "    prometheus:\n      url: http://127.0.0.1:9090\n      range_step: 0s\n",
    ));
    assert!(e.contains("`range_step` must be longer than 0s"), "{e}");
}

#[test]
fn env_placeholders_are_resolved_and_shown_only_as_written() {
    let src = with_source(
        "    prometheus:\n      url: http://${env:PROM_HOST}:9090\n      headers: { Authorization: \"Bearer ${env:TOKEN}\" }\n",
    );
    let c = parse_env(&src, &[("PROM_HOST", "127.0.0.1"), ("TOKEN", "hunter2")]).unwrap();
    let MetricSource::Prometheus(p) = &c.analysis.source else {
        panic!()
    };
    assert_eq!(p.url.expose(), "http://127.0.0.1:9090");
    assert_eq!(p.headers["Authorization"].expose(), "Bearer hunter2");
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("${env:TOKEN}"),
        "{shown}"
    );
    assert_eq!(
        parse_env(&src, &[("PROM_HOST", "127.0.0.1")]).unwrap_err(),
        vec![
            "cutover.yaml:9:41: `headers.Authorization` reads the environment variable `TOKEN`, which is not set; set it, or write the value"
        ]
    );
}

#[test]
fn https_is_refused_because_this_build_has_no_tls() {
    let e = error(&with_source(
        "    prometheus:\n      url: https://prom.example:9090\n",
    ));
    assert!(
        e.starts_with(
            "cutover.yaml:8:12: `url` is an https:// URL, but this build of cutover has no TLS"
        ),
        "{e}"
    );
    let e = error(&with_source(
        "    datadog:\n      api_key: a\n      app_key: b\n      queries: { requests: \"sum:r{*}\" }\n",
    ));
    assert!(
        e.contains("Datadog's API at https://api.datadoghq.com is https://"),
        "{e}"
    );
}

#[test]
fn custom_metrics_bring_their_limits_by_direction() {
    let c = ok(&with_source(
        "    prometheus:\n      url: http://127.0.0.1:9090\n      queries:\n        custom:\n          \
         - { name: queue_depth, query: 'max(q{version=\"{{version}}\"})', direction: lower_is_better, limit: { max: 100, max_ratio: 1.5 } }\n          \
         - { name: hit_ratio, query: 'avg(h)', direction: higher_is_better, limit: { min: 0.8 } }\n",
    ));
    assert_eq!(
        c.analysis.metrics.custom,
        vec![
            CustomRule {
                name: "queue_depth".into(),
                direction: Direction::LowerIsBetter,
                bound: Some(100.0),
                ratio: Some(1.5)
            },
            CustomRule {
                name: "hit_ratio".into(),
                direction: Direction::HigherIsBetter,
                bound: Some(0.8),
                ratio: None
            },
        ]
    );
    let e = error(&with_source(
        "    prometheus:\n      url: http://127.0.0.1:9090\n      queries:\n        custom:\n          \
         - { name: hits, query: 'h', direction: higher_is_better, limit: { max: 3 } }\n",
    ));
    assert!(
        e.contains("`max` does not fit `direction: higher_is_better`; use `min` or `min_ratio`"),
        "{e}"
    );
}

#[test]
fn a_template_s_placeholders_are_checked_with_a_suggestion() {
    let e = error(&with_source(
        "    prometheus:\n      url: http://127.0.0.1:9090\n      queries:\n        requests: 'sum(x{v=\"{{verison}}\"})'\n",
    ));
    assert!(
        e.contains("unknown placeholder `{{verison}}`")
            && e.contains("did you mean `{{version}}`?"),
        "{e}"
    );
}

#[test]
fn web_and_command_sources_need_requests_and_a_query_for_each_limit() {
    let e = error(&with_source(
        "    web:\n      error_rate: { url: \"http://127.0.0.1:1/e\", json_path: \"$.v\" }\n",
    ));
    assert!(e.contains("missing the required field `requests`"), "{e}");
    let e = error(&with_source(
        "    command:\n      requests: { run: [\"./requests.sh\"] }\n",
    ));
    assert!(e.contains("`analysis.metrics.error_rate` has a limit, but `analysis.source.command` has no `error_rate` query"), "{e}");
    let e = error(&with_source(
        "    web:\n      requests: { url: \"http://127.0.0.1:1/r\", json_path: \"$..v\" }\n      error_rate: { url: \"http://127.0.0.1:1/e\", json_path: \"$.v\" }\n",
    ));
    assert!(
        e.contains("`json_path` has an empty or wildcard name"),
        "{e}"
    );
    let c = ok(&with_source(
        "    command:\n      requests: { run: [\"./requests.sh\", \"{{version}}\"], timeout: 2s }\n      error_rate: { run: [\"/bin/rate\"] }\n",
    ));
    let MetricSource::Command(cmd) = &c.analysis.source else {
        panic!()
    };
    assert_eq!(
        cmd.metrics.requests.run,
        vec!["requests.sh".to_owned(), "{{version}}".to_owned()],
        "beside the config file"
    );
    assert_eq!(cmd.metrics.requests.timeout, secs(2));
    let e = error(&with_source(
        "    command:\n      requests: { run: [\"./r.sh\", \"{{app_name}}\"] }\n      error_rate: { run: [\"/bin/rate\"] }\n",
    ));
    assert!(e.contains("unknown placeholder `{{app_name}}`"), "{e}");
}

#[test]
fn what_needs_histograms_is_refused_where_it_is_asked_for() {
    let src = format!(
        "{MINIMAL}analysis:\n  comparison: {{ confidence: 99% }}\n  metrics:\n    apdex: {{ threshold: 100ms, min: 0.9 }}\n  \
         source:\n    prometheus: {{ url: \"http://127.0.0.1:9090\" }}\n"
    );
    let all = errors(&src);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(
        all[0].contains(
            "the Mann-Whitney `comparison` needs the built-in proxy's latency histograms"
        ),
        "{all:#?}"
    );
    assert!(
        all[1].contains("`apdex` needs the built-in proxy's latency histograms"),
        "{all:#?}"
    );
}

#[test]
fn a_client_finding_the_daemon_needs_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cutover.yaml");
    std::fs::write(
        &file,
        with_source("    prometheus:\n      url: ${env:CUTOVER_TEST_UNSET_PROM_URL}\n"),
    )
    .unwrap();
    let c = crate::load_without_secrets(&file).unwrap();
    assert_eq!(c.state_dir, dir.path().join(".cutover"));
}
