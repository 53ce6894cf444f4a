//! `cutover serve` as a child of this driver, and its HTTP API.
//!
//! The daemon stays in this process's group: a signal from `bench/cutover.sh` to
//! the group (its cleanup) reaches the daemon too, which then drains and stops its
//! own instances. Dropping a [`Daemon`] sends it SIGTERM for the same reason.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long the daemon has to come up, and to exit after SIGTERM.
const START_DEADLINE: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// How often the status is polled while waiting for something.
pub const POLL: Duration = Duration::from_millis(20);

/// What a scenario needs to run the daemon: the binary and the config.
#[derive(Debug, Clone)]
pub struct Setup {
    pub cutover: PathBuf,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    /// The daemon's output (appended to, across restarts).
    pub log: PathBuf,
}

pub struct Daemon {
    child: Option<Child>,
    pub pid: u32,
    pub api: Api,
    pub proxy: String,
}

impl Daemon {
    /// Starts `cutover serve -f CONFIG` and waits until it has written its
    /// addresses to `<state_dir>/daemon.json`.
    pub async fn start(setup: &Setup) -> anyhow::Result<Daemon> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&setup.log)
            .with_context(|| format!("cannot open {}", setup.log.display()))?;
        let mut child = Command::new(&setup.cutover)
            .arg("serve")
            .arg("-f")
            .arg(&setup.config)
            .env_remove("CUTOVER_API")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}", setup.cutover.display()))?;
        let pid = child.id().context("the daemon exited at once")?;
        let file = setup.state_dir.join("daemon.json");
        let deadline = Instant::now() + START_DEADLINE;
        let info = loop {
            if let Some(info) =
                read_info(&file).filter(|i| i["pid"].as_u64() == Some(u64::from(pid)))
            {
                break info;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "cutover serve exited with {status}; see {}",
                    setup.log.display()
                );
            }
            if Instant::now() > deadline {
                // SIGTERM, not SIGKILL: it may have started or adopted instances.
                signal("TERM", pid);
                bail!("cutover serve wrote no daemon.json within {START_DEADLINE:?}");
            }
            tokio::time::sleep(POLL).await;
        };
        let field = |name: &str| {
            info[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("{}: no \"{name}\" in {info}", file.display()))
        };
        Ok(Daemon {
            api: Api::new(&field("api")?)?,
            proxy: field("proxy")?,
            child: Some(child),
            pid,
        })
    }

    /// SIGKILL, as the OOM killer would: the daemon runs none of its shutdown and
    /// its instances, in their own process groups, keep running.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("the daemon is gone")?;
        child.start_kill()?;
        child.wait().await?;
        Ok(())
    }

    /// SIGTERM, then waits: the daemon aborts its run, drains and stops every
    /// instance. A second SIGTERM after [`STOP_DEADLINE`] stops them at once.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        signal("TERM", self.pid);
        if tokio::time::timeout(STOP_DEADLINE, child.wait())
            .await
            .is_ok()
        {
            return Ok(());
        }
        signal("TERM", self.pid);
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            child.start_kill()?;
            child.wait().await?;
        }
        bail!("the daemon was still running {STOP_DEADLINE:?} after SIGTERM")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child
            && matches!(child.try_wait(), Ok(None))
        {
            signal("TERM", self.pid);
        }
    }
}

fn read_info(file: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(file).ok()?).ok()
}

/// std has no kill(2); the `kill` utility does it without another dependency.
fn signal(name: &str, pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `cutover deploy VERSION -f CONFIG`, the CLI way, to the end.
pub async fn deploy_with_cli(setup: &Setup, version: &str) -> anyhow::Result<()> {
    let run = Command::new(&setup.cutover)
        .args(["deploy", version, "-f"])
        .arg(&setup.config)
        .env_remove("CUTOVER_API")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .with_context(|| format!("cutover deploy {version} took over 60s"))??;
    if !out.status.success() {
        bail!(
            "cutover deploy {version}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The daemon's HTTP API, JSON in and out.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(addr: &str) -> anyhow::Result<Api> {
        Ok(Api {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        decode("GET", path, r).await
    }

    /// POST with a JSON body (`Value::Null`: none); the answer must be 2xx.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if !body.is_null() {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let r = request
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        decode("POST", path, r).await
    }

    pub async fn status(&self) -> anyhow::Result<Value> {
        self.get("/api/v1/status").await
    }

    /// Polls the status every [`POLL`] until `done` says so, for at most `limit`;
    /// `each` sees every status on the way.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        mut each: impl FnMut(&Value),
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status().await?;
            each(&status);
            if done(&status) {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("never saw {what} within {limit:?}; last status: {status}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The run's record and its events (`GET /api/v1/runs/{id}`).
    pub async fn run(&self, id: &str) -> anyhow::Result<Value> {
        self.get(&format!("/api/v1/runs/{id}")).await
    }
}

async fn decode(method: &str, path: &str, r: reqwest::Response) -> anyhow::Result<Value> {
    let status = r.status();
    let text = r
        .text()
        .await
        .with_context(|| format!("{method} {path}: reading the answer"))?;
    if !status.is_success() {
        bail!("{method} {path}: {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{method} {path}: not JSON: {text}"))
}

/// The active run's stage (`awaiting_promotion`, `step`, ...), if a run is active.
pub fn stage(status: &Value) -> Option<&str> {
    status["active_run"]["phase"]["stage"].as_str()
}

pub fn active_run_id(status: &Value) -> Option<&str> {
    status["active_run"]["run_id"].as_str()
}

/// The backends in `role` (`stable`, `canary`, `preview`, ...).
pub fn backends<'a>(status: &'a Value, role: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    status["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |b| b["role"] == role)
}

/// Ready instances over every backend.
pub fn ready(status: &Value) -> u64 {
    status["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["ready_instances"].as_u64())
        .sum()
}

/// The pids of `version`'s instances, sorted, from `backends[].describe`
/// (`pid 4242 on 127.0.0.1:40001 (ready)`).
pub fn pids(status: &Value, version: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = status["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["version"] == version)
        .flat_map(|b| b["describe"].as_array().into_iter().flatten())
        .filter_map(|line| line.as_str()?.split_whitespace().nth(1)?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}
