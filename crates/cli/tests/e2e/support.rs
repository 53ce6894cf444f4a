//! One small fluent helper for the end-to-end tests: a temp dir with a
//! `cutover.yaml` for the built-in sample app, the real daemon, the real CLI.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::docker_image;

const EXE: &str = env!("CARGO_BIN_EXE_cutover");
const DEADLINE: Duration = Duration::from_secs(60);

/// The `analysis` settings of every test's config unless it says otherwise.
const ANALYSIS: &str =
    "  interval: 500ms\n  min_requests: 5\n  failure_limit: 1\n  inconclusive_limit: 20";

/// `CUTOVER_SAMPLE_FAULTS` for the sample app: which version misbehaves, and how.
#[derive(Clone)]
pub struct Faults(String);

impl Faults {
    pub fn none() -> Faults {
        Faults(String::new())
    }
    pub fn new(spec: &str) -> Faults {
        Faults(spec.to_owned())
    }
}

/// Where the versions run: the `platform:` section of the config.
#[derive(Debug, Clone)]
pub enum Platform {
    /// Local processes of the sample app.
    Local,
    /// Docker containers of an image holding this `cutover` binary, on the daemon
    /// at `host`.
    Docker { host: String },
}

/// The image the Docker tests run: this `cutover` binary and its libraries, tagged
/// with each version the tests deploy.
const SAMPLE_IMAGE: &str = "cutover-e2e-sample";

/// The versions the tests deploy, each a tag of [`SAMPLE_IMAGE`].
const SAMPLE_VERSIONS: [&str; 3] = ["v1", "v2", "v3"];

impl Platform {
    /// Docker, once the sample image is built; `None`, having said SKIPPED, when
    /// no Docker daemon is reachable.
    pub async fn docker(test: &str) -> Option<Platform> {
        // Built once per test binary: every Docker test runs the same image.
        static BUILT: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);
        let daemon = docker_image::daemon(test).await?;
        let mut built = BUILT.lock().await;
        if !*built {
            let files = docker_image::ImageFiles::dynamic_binary(std::path::Path::new(EXE));
            let built_as = format!("{SAMPLE_IMAGE}:{}", SAMPLE_VERSIONS[0]);
            docker_image::build_image(&daemon.docker, &built_as, &files).await;
            for version in &SAMPLE_VERSIONS[1..] {
                let options = bollard::query_parameters::TagImageOptionsBuilder::new()
                    .repo(SAMPLE_IMAGE)
                    .tag(version)
                    .build();
                daemon
                    .docker
                    .tag_image(&built_as, Some(options))
                    .await
                    .unwrap();
            }
            *built = true;
        }
        Some(Platform::Docker { host: daemon.host })
    }

    /// The body of `platform:`: the sample app, told its faults and directory.
    fn section(&self, env: &str, instances: u32) -> String {
        let sample = "\"sample-app\", \"--port\", \"${PORT}\", \"--version\", \"${VERSION}\"";
        match self {
            Platform::Local => format!(
                "  local:
    command: [{exe}, {sample}]
    env: {env}
    instances: {instances}
    startup_timeout: 3s
    drain_timeout: 2s",
                exe = serde_json::to_string(EXE).unwrap(),
            ),
            Platform::Docker { host } => format!(
                "  docker:
    image: {SAMPLE_IMAGE}:${{VERSION}}
    command: [\"/bin/cutover\", {sample}]
    env: {env}
    instances: {instances}
    startup_timeout: 20s
    drain_timeout: 2s
    stop_grace: 2s
    pull: never
    host: {host}",
                host = serde_json::to_string(host).unwrap(),
            ),
        }
    }
}

/// What a finished `cutover` command said.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts the exit code, showing everything the command said when it differs.
    #[track_caller]
    pub fn code(&self, expected: i32) {
        assert_eq!(
            self.status.code(),
            Some(expected),
            "exit status {:?}, expected {expected}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

pub struct Env {
    /// Shared by the environments of one config ([`Env::sibling`]).
    dir: Arc<tempfile::TempDir>,
    /// The environment of the config this daemon serves (`--env`), if any.
    environment: Option<String>,
    /// Its state directory under `.cutover`, for an environment before the last.
    state_subdir: Option<String>,
    pub config: PathBuf,
    platform: Platform,
    faults: Faults,
    /// The `strategy:` section's body.
    strategy: String,
    instances: u32,
    /// The `analysis` settings before `metrics`.
    analysis: String,
    /// The `analysis.metrics` section's body.
    metrics: String,
    /// More of the `analysis` section after `metrics`, e.g. `  logs: { new_errors: fail }`.
    more_analysis: String,
    /// More top-level sections, e.g. `api: { read_auth: true }`.
    extra: String,
    daemon: Option<Child>,
    proxy: Option<SocketAddr>,
    api: Option<SocketAddr>,
    http: reqwest::Client,
}

impl Env {
    pub fn new(faults: Faults) -> Env {
        Env::on(Platform::Local, faults)
    }

    /// Versions running on `platform`.
    pub fn on(platform: Platform, faults: Faults) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("cutover.yaml");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let env = Env {
            dir: Arc::new(dir),
            environment: None,
            state_subdir: None,
            config,
            platform,
            faults,
            strategy: canary("[{weight: 50%, pause: 1s}, {weight: 100%, pause: 1s}]"),
            instances: 2,
            analysis: ANALYSIS.into(),
            metrics: "    error_rate: { max: 5% }".into(),
            more_analysis: String::new(),
            extra: String::new(),
            daemon: None,
            proxy: None,
            api: None,
            http,
        };
        env.write_config();
        env
    }

    /// v1 serving under steady load, and `cutover deploy v2` waiting at a 50% step
    /// that only `cutover promote` ends.
    pub async fn canary_paused_at_half() -> (Env, Load, JoinHandle<Output>) {
        let mut env = Env::new(Faults::none()).with_steps("[{weight: 50%, pause: until-promoted}]");
        env.serve().await;
        env.deploy("v1").await.code(0);
        let load = env.load();
        let waiting = env.deploy_in_background("v2");
        env.wait_for_weight("50%").await;
        (env, load, waiting)
    }

    pub fn with_steps(self, steps: &str) -> Env {
        self.with_strategy(&canary(steps))
    }

    /// The `strategy:` section, e.g. `"  blue_green: { scale_down_delay: 2s }"`.
    pub fn with_strategy(mut self, strategy: &str) -> Env {
        self.strategy = strategy.to_owned();
        self.write_config();
        self
    }

    /// The `analysis.metrics` section, e.g. `"    latency_p99: { max: 100ms }"`.
    pub fn with_metrics(mut self, metrics: &str) -> Env {
        self.metrics = metrics.to_owned();
        self.write_config();
        self
    }

    /// More of the `analysis` section, e.g. `"  logs: { new_errors: fail }\n"`.
    pub fn with_more_analysis(mut self, yaml: &str) -> Env {
        self.more_analysis = yaml.to_owned();
        self.write_config();
        self
    }

    /// The `analysis` settings before `metrics`, e.g. `"  interval: 3s\n  source: ..."`.
    pub fn with_analysis(mut self, settings: &str) -> Env {
        self.analysis = settings.to_owned();
        self.write_config();
        self
    }

    /// More top-level sections, e.g. `"api: { read_auth: true }\n"`.
    pub fn with_sections(mut self, yaml: &str) -> Env {
        self.extra = yaml.to_owned();
        self.write_config();
        self
    }

    pub fn with_instances(mut self, instances: u32) -> Env {
        self.instances = instances;
        self.write_config();
        self
    }

    /// Rewrites the config with another strategy while the daemon runs: the next
    /// run uses it.
    pub fn change_strategy(&mut self, strategy: &str) {
        self.strategy = strategy.to_owned();
        self.write_config();
    }

    /// Rewrites the extra top-level sections while the daemon runs: the next run
    /// uses them.
    pub fn change_sections(&mut self, yaml: &str) {
        self.extra = yaml.to_owned();
        self.write_config();
    }

    fn write_config(&self) {
        let env = format!(
            "{{ CUTOVER_SAMPLE_FAULTS: \"{faults}\", CUTOVER_E2E_DIR: {dir} }}",
            faults = self.faults.0,
            dir = serde_json::to_string(&self.dir.path().display().to_string()).unwrap(),
        );
        let yaml = format!(
            r#"app: e2e
listen: 127.0.0.1:0
platform:
{platform}
health:
  path: /healthz
  interval: 100ms
  timeout: 500ms
  healthy_threshold: 1
  unhealthy_threshold: 2
strategy:
{strategy}
analysis:
{analysis}
  metrics:
{metrics}
{more_analysis}
{extra}"#,
            platform = self.platform.section(&env, self.instances),
            strategy = self.strategy,
            analysis = self.analysis,
            metrics = self.metrics,
            more_analysis = self.more_analysis,
            extra = self.extra,
        );
        std::fs::write(&self.config, yaml).unwrap();
    }

    pub fn state_dir(&self) -> PathBuf {
        let dir = self.dir.path().join(".cutover");
        match &self.state_subdir {
            Some(name) => dir.join(name),
            None => dir,
        }
    }

    /// This env as the last environment `name` of its config (which must define
    /// it): every `cutover` it runs says `--env name`; its state stays in
    /// `.cutover`.
    pub fn in_environment(mut self, name: &str) -> Env {
        self.environment = Some(name.to_owned());
        self
    }

    /// An earlier environment of the same config, folder and settings, with a
    /// daemon of its own (not started yet), its state in `.cutover/<name>`.
    pub fn sibling(&self, name: &str) -> Env {
        Env {
            dir: Arc::clone(&self.dir),
            environment: Some(name.to_owned()),
            state_subdir: Some(name.to_owned()),
            config: self.config.clone(),
            platform: self.platform.clone(),
            faults: self.faults.clone(),
            strategy: self.strategy.clone(),
            instances: self.instances,
            analysis: self.analysis.clone(),
            metrics: self.metrics.clone(),
            more_analysis: self.more_analysis.clone(),
            extra: self.extra.clone(),
            daemon: None,
            proxy: None,
            api: None,
            http: self.http.clone(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(EXE);
        cmd.args(args)
            .env("CUTOVER_CONFIG", &self.config)
            .env_remove("CUTOVER_API")
            .env_remove("CUTOVER_TOKEN")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match &self.environment {
            Some(name) => cmd.env("CUTOVER_ENV", name),
            None => cmd.env_remove("CUTOVER_ENV"),
        };
        cmd
    }

    /// Runs `cutover ARGS` to the end.
    pub async fn cutover(&self, args: &[&str]) -> Output {
        self.cutover_with(args, &[]).await
    }

    /// Runs `cutover ARGS` to the end with these environment variables set.
    pub async fn cutover_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        cmd.envs(vars.iter().copied());
        let out = tokio::time::timeout(DEADLINE, cmd.output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "`cutover {}` did not finish within {DEADLINE:?}",
                    args.join(" ")
                )
            })
            .unwrap();
        Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub async fn deploy(&self, version: &str) -> Output {
        self.cutover(&["deploy", version]).await
    }

    pub fn deploy_in_background(&self, version: &str) -> JoinHandle<Output> {
        self.cutover_in_background(&["deploy", version])
    }

    /// Starts `cutover ARGS`; the handle gives what it said once it ends.
    pub fn cutover_in_background(&self, args: &[&str]) -> JoinHandle<Output> {
        let cmd = self.command(args);
        let what = args.join(" ");
        tokio::spawn(async move {
            let mut cmd = cmd;
            let out = tokio::time::timeout(DEADLINE, cmd.output())
                .await
                .unwrap_or_else(|_| panic!("`cutover {what}` timed out"))
                .unwrap();
            Output {
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
    }

    /// Starts `cutover ARGS` with its stdout piped, for a test to read as it goes
    /// (the process is killed when the handle is dropped).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The URL of `path` on the daemon's API listener, where the dashboard is too.
    pub fn api_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api.expect("serve() first"))
    }

    /// Starts `cutover serve` and waits until it has written its address.
    pub async fn serve(&mut self) {
        self.serve_with(&[]).await;
    }

    /// [`Env::serve`] with these environment variables set for the daemon.
    pub async fn serve_with(&mut self, vars: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.daemon_log_path())
            .unwrap();
        let mut child = self
            .command(&["serve"])
            .envs(vars.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(false)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let deadline = Instant::now() + DEADLINE;
        let info = loop {
            if let Ok(text) = std::fs::read_to_string(self.state_dir().join("daemon.json")) {
                let info: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if info["pid"].as_u64() == Some(u64::from(pid)) {
                    break info;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the daemon exited with {status}: {}", self.daemon_log());
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not come up: {}",
                self.daemon_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.proxy = Some(info["proxy"].as_str().unwrap().parse().unwrap());
        self.api = Some(info["api"].as_str().unwrap().parse().unwrap());
        self.daemon = Some(child);
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.daemon_log_path()).unwrap_or_default()
    }

    /// Where the daemon's output goes: `daemon.log`, or `daemon-ENV.log`.
    fn daemon_log_path(&self) -> PathBuf {
        let name = match &self.environment {
            Some(env) => format!("daemon-{env}.log"),
            None => "daemon.log".to_owned(),
        };
        self.dir.path().join(name)
    }

    fn proxy(&self) -> SocketAddr {
        self.proxy.expect("serve() first")
    }

    /// `GET path` with the daemon's token, as JSON.
    pub async fn api_get(&self, path: &str) -> serde_json::Value {
        self.api(reqwest::Method::GET, path)
            .bearer_auth(self.token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A request to the API, without any token: the test adds what it sends.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("http://{}{path}", self.api.expect("serve() first"));
        self.http.request(method, url)
    }

    /// The daemon's API token, from its state directory.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.state_dir().join("token"))
            .expect("serve() first: the daemon writes its token")
            .trim()
            .to_owned()
    }

    /// Waits until a canary serves at `weight` (e.g. `50%`).
    pub async fn wait_for_weight(&self, weight: &str) {
        let bp = weight.trim_end_matches('%').parse::<u64>().unwrap() * 100;
        self.wait_for_status(&format!("a canary at {weight}"), |status| {
            role(status, "canary").is_some_and(|b| b["weight_bp"] == bp)
        })
        .await;
    }

    /// Waits until the active run is in `stage` (`post_promotion`, `awaiting_promotion`, ...).
    pub async fn wait_for_stage(&self, stage: &str) {
        self.wait_for_status(&format!("stage {stage}"), |status| {
            status["active_run"]["phase"]["stage"] == stage
        })
        .await;
    }

    /// Polls the daemon's status until `ok` says so.
    pub async fn wait_for_status(
        &self,
        what: &str,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let status = self.api_get("/api/v1/status").await;
            if ok(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "never reached {what}: {status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Which version answered each of `n` requests in a row.
    pub async fn served_by(&self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            let r = self
                .http
                .get(format!("http://{}/", self.proxy()))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{:?}", r.text().await);
            out.push(
                r.headers()["x-cutover-version"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        out
    }

    /// The run's event stream, read to its end (it must end by itself).
    pub async fn run_events(&self, run_id: &str) -> Vec<serde_json::Value> {
        let url = format!(
            "http://{}/api/v1/runs/{run_id}/events",
            self.api.expect("serve() first")
        );
        let body = tokio::time::timeout(DEADLINE, async {
            self.http
                .get(url)
                .bearer_auth(self.token())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
        .await
        .expect("the event stream of a finished run did not end");
        body.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub async fn last_run_json(&self) -> serde_json::Value {
        let runs = self.api_get("/api/v1/runs?limit=1").await;
        let id = runs[0]["id"].as_str().unwrap().to_owned();
        let path = self.state_dir().join("runs").join(id).join("run.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    pub async fn last_receipts(&self) -> PathBuf {
        let runs = self.api_get("/api/v1/runs?limit=1").await;
        self.state_dir()
            .join("runs")
            .join(runs[0]["id"].as_str().unwrap())
    }

    /// Steady load on the proxy until stopped.
    pub fn load(&self) -> Load {
        Load::start(self.proxy(), self.http.clone(), Duration::from_millis(10))
    }

    /// A client sending its next request as soon as the last one is answered.
    pub fn load_without_pause(&self) -> Load {
        Load::start(self.proxy(), self.http.clone(), Duration::ZERO)
    }

    /// Every process below the daemon.
    pub fn daemon_descendants(&self) -> Vec<i32> {
        let root = self
            .daemon
            .as_ref()
            .and_then(Child::id)
            .expect("serve() first") as i32;
        let mut parents: BTreeMap<i32, i32> = BTreeMap::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Some(ppid) = parent_of(pid) {
                parents.insert(pid, ppid);
            }
        }
        parents
            .keys()
            .copied()
            .filter(|&pid| {
                let mut p = pid;
                while let Some(&pp) = parents.get(&p) {
                    if pp == root {
                        return true;
                    }
                    p = pp;
                }
                false
            })
            .collect()
    }

    /// SIGKILL to the daemon, as the OOM killer would: nothing of it runs its
    /// shutdown, and its children stay up in their own process groups.
    pub async fn kill_daemon(&mut self) {
        let mut child = self.daemon.take().expect("serve() first");
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }

    /// SIGTERM to the daemon; waits for it to exit.
    pub async fn stop_daemon(&mut self) -> ExitStatus {
        let mut child = self.daemon.take().expect("serve() first");
        term(child.id().unwrap() as i32);
        tokio::time::timeout(DEADLINE, child.wait())
            .await
            .expect("the daemon ignored SIGTERM")
            .unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // SIGTERM, never SIGKILL: the daemon must stop its own children.
        if let Some(mut child) = self.daemon.take() {
            if let Some(pid) = child.id() {
                term(pid as i32);
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A canary strategy section with these steps.
pub fn canary(steps: &str) -> String {
    format!("  canary:\n    steps: {steps}")
}

/// The status entry of the backend in `role`, if any.
pub fn role<'s>(status: &'s serde_json::Value, role: &str) -> Option<&'s serde_json::Value> {
    status["backends"]
        .as_array()?
        .iter()
        .find(|b| b["role"] == role)
}

impl Env {
    /// Pids of this env's instances of `version` (found by the environment the
    /// config gives them, so tests running side by side do not see each other's).
    pub fn pids_of(&self, version: &str) -> Vec<i32> {
        let mark = format!("CUTOVER_E2E_DIR={}", self.dir.path().display());
        pids_running(&format!("--version {version}"))
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == mark.as_bytes()))
            })
            .collect()
    }
}

/// Pids of every process in `/proc` whose command line contains `needle`.
fn pids_running(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && stat(pid).is_some_and(|(_, s)| s != 'Z') {
            out.push(pid);
        }
    }
    out.sort();
    out
}

fn term(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
}

/// `(ppid, state)` from /proc/PID/stat, if the process exists.
fn stat(pid: i32) -> Option<(i32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

fn parent_of(pid: i32) -> Option<i32> {
    stat(pid).map(|(ppid, _)| ppid)
}

/// Waits until none of `pids` is running (gone, or a zombie waiting to be reaped).
pub async fn wait_until_gone(pids: &[i32]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let alive: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|&p| stat(p).is_some_and(|(_, s)| s != 'Z'))
            .collect();
        if alive.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes left running after the daemon stopped: {alive:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Requests per version seen by a load generator: (requests, 5xx). Answers the
/// proxy gave itself count under [`NO_VERSION`], requests with no answer at all
/// under [`NO_ANSWER`].
pub type Tally = BTreeMap<String, (u64, u64)>;

pub const NO_VERSION: &str = "(proxy)";
pub const NO_ANSWER: &str = "(no answer)";

/// Asserts that every request was answered by a version, and that `versions`
/// answered none with a 5xx: what users of a healthy version must see through any
/// promotion, rollback or abort.
#[track_caller]
pub fn assert_no_failures(tally: &Tally, versions: &[&str]) {
    for key in [NO_VERSION, NO_ANSWER] {
        assert!(
            !tally.contains_key(key),
            "requests failed outside any version: {tally:?}"
        );
    }
    for v in versions {
        assert_eq!(
            tally.get(*v).map_or(0, |t| t.1),
            0,
            "{v} answered with errors: {tally:?}"
        );
    }
}

pub struct Load {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    tally: Arc<Mutex<Tally>>,
}

impl Load {
    fn start(proxy: SocketAddr, http: reqwest::Client, pause: Duration) -> Load {
        let (stop, mut stopped) = watch::channel(false);
        let tally = Arc::new(Mutex::new(Tally::new()));
        let t = tally.clone();
        let task = tokio::spawn(async move {
            // One at a time, `pause` apart (10ms: about 100 a second).
            loop {
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(pause) => {}
                }
                let answer = http.get(format!("http://{proxy}/")).send().await;
                let (version, failed) = match &answer {
                    Ok(r) => (
                        r.headers()
                            .get("x-cutover-version")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or(NO_VERSION)
                            .to_owned(),
                        r.status().is_server_error(),
                    ),
                    Err(_) => (NO_ANSWER.to_owned(), true),
                };
                let mut t = t.lock().unwrap();
                let e = t.entry(version).or_default();
                e.0 += 1;
                e.1 += u64::from(failed);
            }
        });
        Load { stop, task, tally }
    }

    pub async fn stop(self) -> Tally {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.tally.lock().unwrap().clone()
    }
}
