//! A canary judged from PromQL end to end: a real Prometheus (Debian's
//! `prometheus`), started here on 127.0.0.1 with a port the OS chose, a temp
//! config and storage, scraping the daemon's `/metrics` every second; the
//! default queries read the proxy's own per-version series from it. Skipped,
//! loudly, without the binary.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use cutover_metrics::real_prometheus::RealPrometheus;

use crate::support::{Env, Faults};

/// A token the Prometheus source sends as a header, from the daemon's
/// environment: it must never be seen again.
const TOKEN: &str = "tok-7f3a9c1e5b";

/// Analysis settings reading from `prometheus`: 3 s windows (three scrapes),
/// the default queries, a header with the token from the daemon's environment.
fn from_prometheus(url: &str, inconclusive_limit: u32, queries: &str) -> String {
    format!(
        "  interval: 3s\n  min_requests: 5\n  failure_limit: 1\n  inconclusive_limit: {inconclusive_limit}\n  \
         source:\n    prometheus:\n      url: {url}\n      timeout: 2s\n      headers: {{ X-Scope-Token: \"${{env:PROM_TOKEN}}\" }}\n{queries}"
    )
}

/// A daemon with v1 live under load, and a Prometheus that has scraped v1's series.
async fn serving_v1(faults: Faults) -> Option<(Env, RealPrometheus, crate::support::Load)> {
    let mut env = Env::new(faults);
    env.serve_with(&[("PROM_TOKEN", TOKEN)]).await;
    let api: SocketAddr = env
        .api_url("")
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let prometheus = RealPrometheus::start(Some(api)).await?;
    env.deploy("v1").await.code(0);
    let load = env.load();
    prometheus
        .until_series(r#"cutover_proxy_requests_total{app="e2e",version="v1",role="stable"} > 0"#)
        .await;
    Some((env, prometheus, load))
}

/// `cutover deploy v2` of a v2 failing half its requests, rolled back on the
/// error rate Prometheus gave; the run's record, and the failed window's canary.
async fn rolled_back_on_half_failing(
    env: &Env,
    load: crate::support::Load,
) -> (serde_json::Value, serde_json::Value) {
    let out = env.deploy("v2").await;
    out.code(3);
    assert!(out.stdout.contains("error_rate"), "{}", out.stdout);
    load.stop().await;
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
    let run = env.last_run_json().await;
    let failed = run["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["report"]["verdict"] == "fail")
        .unwrap_or_else(|| panic!("no failed window: {run}"));
    let canary = failed["report"]["canary"].clone();
    let (requests, errors) = (
        canary["requests"].as_u64().unwrap(),
        canary["errors"].as_u64().unwrap(),
    );
    // What PromQL's increase() said of the window: half of v2's requests failed.
    assert!(requests >= 5, "{canary}");
    let rate = errors as f64 / requests as f64;
    assert!(
        (0.2..=0.8).contains(&rate),
        "error rate {rate} from Prometheus: {canary}"
    );
    (run, canary)
}

/// Every file under `dir`, read.
fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            out.push((path, text));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_canary_judged_from_promql_is_rolled_back_with_the_prometheus_numbers_in_its_receipts()
 {
    let Some((env, prometheus, load)) = serving_v1(Faults::new("v2:error-rate=0.5")).await else {
        return;
    };
    let env = env.with_analysis(&from_prometheus(&prometheus.url(), 20, ""));
    let (run, canary) = rolled_back_on_half_failing(&env, load).await;
    assert!(
        canary["latency"].is_null(),
        "no histogram comes from Prometheus: {canary}"
    );
    let receipts = env.last_receipts().await;
    let analysis = std::fs::read_to_string(receipts.join("canary-analysis.md")).unwrap();
    assert!(
        analysis.contains(&format!("Metrics from: Prometheus at {}", prometheus.url())),
        "{analysis}"
    );
    assert!(
        analysis.contains("Step-end comparison: off."),
        "no histograms, no comparison: {analysis}"
    );
    assert!(
        std::fs::read_to_string(receipts.join("rollback-log.md"))
            .unwrap()
            .contains("error_rate")
    );

    // The header's token came from the daemon's environment, and went nowhere else.
    let run_id = run["run"]["id"].as_str().unwrap();
    let mut seen = files_under(&env.state_dir());
    seen.push(("daemon.log".into(), env.daemon_log()));
    for path in [
        format!("/api/v1/runs/{run_id}"),
        "/api/v1/config".to_owned(),
        "/metrics".to_owned(),
    ] {
        let text = env
            .api(reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        seen.push((path.into(), text));
    }
    for (path, text) in &seen {
        assert!(!text.contains(TOKEN), "the token is in {}", path.display());
    }
    let config = std::fs::read_to_string(receipts.join("config.yaml")).unwrap();
    assert!(config.contains("${env:PROM_TOKEN}"), "{config}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_canary_judged_from_promql_range_queries_is_rolled_back() {
    let Some((env, prometheus, load)) = serving_v1(Faults::new("v2:error-rate=0.5")).await else {
        return;
    };
    // Points every 2 s back from each 3 s window's end: one, covering 2 s of it.
    let range = "      range_step: 2s\n";
    let env = env.with_analysis(&from_prometheus(&prometheus.url(), 20, range));
    rolled_back_on_half_failing(&env, load).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_series_makes_windows_inconclusive_and_the_canary_never_promoted() {
    let Some((env, prometheus, load)) = serving_v1(Faults::none()).await else {
        return;
    };
    let queries = "      queries:\n        requests: 'sum(increase(nobody_exports_this_total{version=\"{{version}}\"}[{{interval}}]))'\n";
    let env = env.with_analysis(&from_prometheus(&prometheus.url(), 2, queries));
    let out = env.deploy("v2").await;
    out.code(3);
    assert!(
        out.stdout.contains("inconclusive 2 windows in a row"),
        "{}",
        out.stdout
    );
    load.stop().await;
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
    let run = env.last_run_json().await;
    let measured = run["measurements"].as_array().unwrap();
    assert_eq!(measured.len(), 2, "{run}");
    for m in measured {
        let report = &m["report"];
        assert_eq!(report["verdict"], "inconclusive", "{report}");
        assert_eq!(
            report["source_error"]["fault"]["kind"], "missing_series",
            "{report}"
        );
        assert_eq!(
            report["source_error"]["field"],
            "analysis.source.prometheus.queries.requests"
        );
    }
    let analysis =
        std::fs::read_to_string(env.last_receipts().await.join("canary-analysis.md")).unwrap();
    assert!(
        analysis.contains("not measured: analysis.source.prometheus.queries.requests for v2 (canary): no series matched the query"),
        "{analysis}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_quotes_prometheus_on_a_syntax_error_and_says_when_it_could_not_check() {
    let env = Env::new(Faults::none());
    // Scraping nothing: only the queries are asked.
    let Some(prometheus) = RealPrometheus::start(None).await else {
        return;
    };
    let bad = "      queries:\n        latency_p95: 'histogram_quantile(0.95, sum by (le) (rate(x_bucket[{{interval}}]))'\n";
    let env = env.with_analysis(&from_prometheus("${env:PROM_URL}", 2, bad));
    let url = prometheus.url();
    let vars = [("PROM_URL", url.as_str()), ("PROM_TOKEN", TOKEN)];
    let out = env.cutover_with(&["validate"], &vars).await;
    out.code(2);
    assert!(
        out.stderr.contains("`analysis.source.prometheus.queries.latency_p95`: Prometheus at ${env:PROM_URL} refused the query")
            && out.stderr.contains("parse error"),
        "{}",
        out.stderr
    );
    let env = env.with_analysis(&from_prometheus("${env:PROM_URL}", 2, ""));
    let out = env.cutover_with(&["validate"], &vars).await;
    out.code(0);
    assert!(
        out.stdout.contains("accepted all 5 PromQL queries"),
        "{}",
        out.stdout
    );
    drop(prometheus);
    let out = env.cutover_with(&["validate"], &vars).await;
    out.code(0);
    assert!(
        out.stdout.contains("could not check the PromQL queries"),
        "{}",
        out.stdout
    );
    let out = env
        .cutover_with(&["validate"], &[("PROM_TOKEN", TOKEN)])
        .await;
    out.code(2);
    assert!(
        out.stderr
            .contains("environment variable `PROM_URL`, which is not set"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_whose_prometheus_cannot_be_asked_is_refused_before_anything_starts() {
    // Needs no Prometheus: none listens where the config says.
    let mut env = Env::new(Faults::none());
    env.serve_with(&[("PROM_TOKEN", TOKEN)]).await;
    env.deploy("v1").await.code(0);
    let nobody = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let env = env.with_analysis(&from_prometheus(&format!("http://{nobody}"), 2, ""));
    let out = env.deploy("v2").await;
    out.code(4);
    assert!(
        out.stderr
            .contains("`analysis.source.prometheus.url`: Prometheus at http://")
            && out.stderr.contains("nothing was started"),
        "{}",
        out.stderr
    );
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
    let runs = env.api_get("/api/v1/runs").await;
    let versions: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v1"], "no run of v2 was started: {runs}");
}
