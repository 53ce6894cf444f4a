//! A real Prometheus for tests (feature `testing`): Debian's `prometheus`,
//! started on 127.0.0.1 with a port the OS chose, a temp config and storage,
//! and killed when dropped. Shared by this crate's tests and the end-to-end ones.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's package puts the server.
pub const BINARY: &str = "/usr/bin/prometheus";

/// How long the server gets to start, and a series to appear.
const DEADLINE: Duration = Duration::from_secs(60);

/// A Prometheus server of the test's own, killed when dropped.
pub struct RealPrometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl RealPrometheus {
    /// Starts one scraping `target`'s `/metrics` every second (none: it scrapes
    /// nothing), and waits until it is ready; `None`, said loudly, when the
    /// binary is not installed (the test is then skipped).
    ///
    /// # Panics
    /// When it cannot be started, or is not ready within a minute.
    pub async fn start(target: Option<SocketAddr>) -> Option<RealPrometheus> {
        if !Path::new(BINARY).exists() {
            eprintln!(
                "SKIPPED: {BINARY} is not installed (Debian package `prometheus`; .ci/run installs it)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml(target)).expect("the config written");
        // A port the OS chose, free a moment ago.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
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
            .expect("prometheus started");
        let server = RealPrometheus {
            child,
            addr,
            _dir: dir,
        };
        server.until_ready().await;
        Some(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn until_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let ready = client.get(format!("{}/-/ready", self.url())).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not get ready on {} within {DEADLINE:?}",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the instant query `promql` gives at least one series.
    ///
    /// # Panics
    /// When it gives none within a minute.
    pub async fn until_series(&self, promql: &str) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut url = reqwest::Url::parse(&format!("{}/api/v1/query", self.url()))
                .expect("a URL of 127.0.0.1");
            url.query_pairs_mut().append_pair("query", promql);
            let answer = client.get(url).send().await;
            let body: serde_json::Value = match answer {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            if body["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never had `{promql}`: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for RealPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Scrapes and rule evaluations every second; `target`'s `/metrics` if any.
fn config_yaml(target: Option<SocketAddr>) -> String {
    let mut yaml =
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:".to_owned();
    match target {
        Some(target) => yaml.push_str(&format!(
            "\n  - job_name: cutover\n    metrics_path: /metrics\n    static_configs:\n      \
             - targets: [\"{target}\"]\n"
        )),
        None => yaml.push_str(" []\n"),
    }
    yaml
}
