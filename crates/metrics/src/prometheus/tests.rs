//! Against a real Prometheus (Debian's `prometheus`, started here on 127.0.0.1
//! with an empty scrape config): its answers to good and bad PromQL.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cutover_spec::MetricSource;

use super::*;
use crate::check::{QueryCheck, check_queries};
use crate::testing::{config, window};

const BINARY: &str = "/usr/bin/prometheus";

/// A Prometheus server of the test's own, stopped when dropped.
pub(crate) struct RealPrometheus {
    child: Child,
    pub(crate) addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl RealPrometheus {
    /// Starts one, or says loudly why not (`None`: the test is skipped).
    pub(crate) async fn start() -> Option<RealPrometheus> {
        if !Path::new(BINARY).exists() {
            eprintln!("SKIPPED: {BINARY} is not installed (Debian package `prometheus`)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1s\nscrape_configs: []\n",
        )
        .unwrap();
        // A port the OS chose, free a moment ago.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = std::process::Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = RealPrometheus {
            child,
            addr,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = client.get(format!("http://{addr}/-/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Prometheus did not get ready on {addr} within 30 s");
    }
}

impl Drop for RealPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus(addr: SocketAddr, queries: &str) -> (cutover_spec::Config, Prometheus) {
    let yaml = format!(
        "    prometheus:\n      url: http://${{env:PROM_HOST}}\n      timeout: 2s\n{queries}"
    );
    let host = addr.to_string();
    let config = config(&yaml, &[("PROM_HOST", host.as_str())]);
    let MetricSource::Prometheus(spec) = &config.analysis.source else {
        panic!("a Prometheus source")
    };
    let reader = Prometheus::new(spec);
    (config, reader)
}

#[tokio::test]
async fn the_server_s_answers_are_numbers_missing_series_nan_or_its_refusal() {
    let Some(server) = RealPrometheus::start().await else {
        return;
    };
    let (_, p) = prometheus(server.addr, "");
    assert_eq!(p.instant("scalar(vector(2.5))", None).await, Ok(2.5));
    assert_eq!(p.instant("sum(vector(1) * 4)", None).await, Ok(4.0));
    assert_eq!(
        p.instant(r#"cutover_proxy_requests_total{app="nobody"}"#, None)
            .await,
        Err(SourceFault::MissingSeries)
    );
    assert_eq!(
        p.instant("vector(0) / 0", None).await,
        Err(SourceFault::NaN)
    );
    let Err(SourceFault::Query { message }) = p.instant("sum(rate(x[5m]", None).await else {
        panic!("a syntax error is the server's refusal")
    };
    assert!(message.contains("parse error"), "{message}");
    let Err(SourceFault::Invalid { message }) = p
        .instant(
            "vector(1) or label_replace(vector(2), \"a\", \"b\", \"\", \"\")",
            None,
        )
        .await
    else {
        panic!("two series are not one number")
    };
    assert!(message.contains("2 series"), "{message}");
}

#[tokio::test]
async fn validate_names_the_field_of_a_refused_query_with_the_server_s_message() {
    let Some(server) = RealPrometheus::start().await else {
        return;
    };
    let queries = "      queries:\n        latency_p99: \"histogram_quantile(0.99, sum by (le) (rate(x_bucket{version=\\\"{{version}}\\\"}[{{interval}}])\"\n";
    let (config, _) = prometheus(server.addr, queries);
    let QueryCheck::Refused { refused, url } = check_queries(&config).await else {
        panic!("the server refuses the unbalanced query")
    };
    assert_eq!(
        url, "http://${env:PROM_HOST}",
        "the URL as written, never as resolved"
    );
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        refused[0].0,
        "analysis.source.prometheus.queries.latency_p99"
    );
    assert!(refused[0].1.contains("parse error"), "{:?}", refused[0]);
    let (config, _) = prometheus(server.addr, "");
    assert_eq!(
        check_queries(&config).await,
        QueryCheck::Accepted {
            url: "http://${env:PROM_HOST}".into(),
            queries: 5
        }
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_fault_and_validate_says_it_could_not_check() {
    // A port nothing listens on: bound, then let go.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (config, p) = prometheus(addr, "");
    let fault = crate::window::sample(&p, &window()).await.unwrap_err();
    assert_eq!(fault.field, "analysis.source.prometheus.queries.requests");
    assert!(
        matches!(fault.fault, SourceFault::Unreachable { .. }),
        "{fault}"
    );
    assert!(matches!(
        check_queries(&config).await,
        QueryCheck::Unreachable { .. }
    ));
}
