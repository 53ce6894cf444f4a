//! `cutover demo`: the whole story on this machine, in a folder of its own. It writes
//! a `cutover.yaml` for the built-in sample app, starts a real daemon (`cutover
//! serve`), puts steady load on the proxy, deploys v1, canaries a healthy v2 to 100%,
//! then canaries v3, which fails 5% of its requests, and shows it rolled back.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use cutover_api::{DeployRequest, Outcome, RunStarted};
use cutover_server::DaemonInfo;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::args::DemoArgs;
use crate::client::Client;
use crate::follow::{self, Style};
use crate::load::Load;

const REQUESTS_PER_SECOND: u32 = 100;

fn config(exe: &Path) -> String {
    // JSON strings are valid YAML scalars, which quotes any path safely.
    let exe = serde_json::to_string(&exe.display().to_string()).unwrap_or_default();
    format!(
        r#"# Written by `cutover demo`. The sample app answers `/` with its version;
# CUTOVER_SAMPLE_FAULTS makes v3 fail 5% of its requests.
app: demo
listen: 127.0.0.1:0
platform:
  local:
    command: [{exe}, "sample-app", "--port", "${{PORT}}", "--version", "${{VERSION}}", "--latency-ms", "5"]
    env:
      CUTOVER_SAMPLE_FAULTS: "v3:error-rate=0.05"
    instances: 2
    startup_timeout: 15s
    drain_timeout: 5s
health:
  path: /healthz
  interval: 200ms
  timeout: 1s
strategy:
  canary:
    steps:
      - weight: 20%
        pause: 4s
      - weight: 50%
        pause: 4s
      - weight: 100%
        pause: 4s
analysis:
  interval: 2s
  min_requests: 20
  failure_limit: 1
  inconclusive_limit: 5
  metrics:
    error_rate: {{ max: 1% }}
    latency_p99: {{ max: 500ms }}
"#
    )
}

/// The daemon child; stopped with SIGTERM (so it stops its own children) on every path.
struct DaemonProcess {
    child: Child,
}

impl DaemonProcess {
    async fn stop(mut self) -> anyhow::Result<()> {
        self.terminate();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("the daemon did not stop within 30s of SIGTERM")??;
        if !status.success() {
            bail!("the daemon exited with {status}");
        }
        Ok(())
    }

    fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the daemon must get to stop the versions it started.
        self.terminate();
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("could not create {}", dir.display()))?;
            dir
        }
        None => tempfile::Builder::new()
            .prefix("cutover-demo-")
            .tempdir()?
            .keep(),
    };
    let exe = std::env::current_exe().context("could not find the cutover executable")?;
    let config_path = dir.join("cutover.yaml");
    std::fs::write(&config_path, config(&exe))?;
    let say = |line: &str| {
        if !args.json {
            println!("{line}");
        }
    };
    say(&format!("== cutover demo in {}", dir.display()));

    let daemon = start_daemon(&exe, &config_path, &dir).await?;
    let info = wait_for_daemon(&dir.join(".cutover"), &daemon).await?;
    say(&format!(
        "== daemon up: proxy http://{}  dashboard and API http://{}/",
        info.proxy, info.api
    ));
    let client = Client::new(&info.api.to_string(), &dir.join(".cutover"))?;
    let style = Style::pick(args.json);

    say("\n== 1. first deploy: v1 (start, health-check, serve)");
    let v1 = deploy(&client, "v1", style).await?;
    let load = Load::start(info.proxy, REQUESTS_PER_SECOND)?;
    say(&format!(
        "== steady load on the proxy: about {REQUESTS_PER_SECOND} requests/s"
    ));
    say("\n== 2. canary v2 (healthy): 20% → 50% → 100%, judged every 2s");
    let v2 = deploy(&client, "v2", style).await?;
    say("\n== 3. canary v3 (fails 5% of requests): expect an automatic rollback");
    let v3 = deploy(&client, "v3", style).await?;
    let tally = load.stop().await;
    daemon.stop().await?;

    let runs = [
        ("v1", &v1, Outcome::Promoted),
        ("v2", &v2, Outcome::Promoted),
        ("v3", &v3, Outcome::RolledBack),
    ];
    let as_expected = runs.iter().all(|(_, (_, outcome), want)| outcome == want);
    if args.json {
        let summary = json!({
            "kind": "summary",
            "dir": dir,
            "as_expected": as_expected,
            "runs": runs.iter().map(|(v, (started, outcome), _)| json!({
                "version": v, "run_id": started.run_id, "outcome": outcome, "receipts": started.receipts,
            })).collect::<Vec<_>>(),
            "traffic": tally.by_version.iter().map(|(v, (n, e))| json!({"version": v, "requests": n, "errors_5xx": e})).collect::<Vec<_>>(),
            "transport_errors": tally.transport_errors,
        });
        println!("{summary}");
    } else {
        println!("\n== summary");
        for (version, (started, outcome), want) in &runs {
            let mark = if outcome == want { "ok" } else { "UNEXPECTED" };
            println!(
                "  {version}: {:<12} ({mark})  receipts: {}",
                outcome.as_str(),
                started.receipts.display()
            );
        }
        println!("  traffic seen by the load generator:");
        for (version, (requests, errors)) in &tally.by_version {
            println!("    {version:<4} {requests:>6} requests, {errors:>4} 5xx");
        }
        if tally.transport_errors > 0 {
            println!("    {} requests got no answer", tally.transport_errors);
        }
        println!("  config: {}", config_path.display());
        println!("  history: cutover history -f {}", config_path.display());
    }
    if !as_expected {
        bail!("the demo did not end as expected; see the receipts above");
    }
    Ok(ExitCode::SUCCESS)
}

async fn start_daemon(exe: &Path, config: &Path, dir: &Path) -> anyhow::Result<DaemonProcess> {
    let log = std::fs::File::create(dir.join("daemon.log"))?;
    let child = Command::new(exe)
        .arg("serve")
        .arg("-f")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("could not start `cutover serve`")?;
    Ok(DaemonProcess { child })
}

async fn wait_for_daemon(state_dir: &Path, daemon: &DaemonProcess) -> anyhow::Result<DaemonInfo> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let pid = daemon.child.id();
    loop {
        tick.tick().await;
        if let Some(info) = DaemonInfo::read(state_dir)
            && Some(info.pid) == pid
        {
            return Ok(info);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the daemon did not come up within 30s; see {}",
                state_dir.with_file_name("daemon.log").display()
            );
        }
    }
}

async fn deploy(
    client: &Client,
    version: &str,
    style: Style,
) -> anyhow::Result<(RunStarted, Outcome)> {
    let started: RunStarted = client
        .post("/api/v1/deploy", &DeployRequest::standard(version))
        .await?;
    let end = follow::follow(client, &started.run_id, style).await?;
    if style != Style::Json {
        println!("{}", end.message);
    }
    let outcome = end.outcome.context("the final event carries no outcome")?;
    Ok((started, outcome))
}
