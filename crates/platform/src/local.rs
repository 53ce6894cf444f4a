//! Versions as child processes of the daemon, each instance in a process group of
//! its own, on a port picked for it and health-checked over HTTP.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cutover_engine::platform::{Platform, PlatformError, Release, ReleaseHealth};
use cutover_spec::{HealthCheck, LocalSpec};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::{health, reaper};

/// How long instances of a version that failed to start get to exit after SIGTERM.
const STARTUP_CLEANUP_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for a process group to vanish after SIGKILL before giving up.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often `stop` looks whether a process group is gone.
const POLL: Duration = Duration::from_millis(20);
/// Log lines quoted in startup errors.
const LOG_TAIL_LINES: usize = 8;

/// Runs versions as local processes: `spec.instances` per version, each on a free
/// port of 127.0.0.1, health-checked with `health`.
#[derive(Debug, Clone)]
pub struct LocalPlatform {
    spec: LocalSpec,
    health: HealthCheck,
    log_dir: PathBuf,
}

impl LocalPlatform {
    /// `log_dir`: each instance's stdout+stderr go to `<log_dir>/<version>-<index>.log`
    /// (created, and appended to).
    pub fn new(spec: LocalSpec, health: HealthCheck, log_dir: PathBuf) -> LocalPlatform {
        LocalPlatform {
            spec,
            health,
            log_dir,
        }
    }

    /// Where instance `index` of `version` writes its output.
    pub fn log_path(&self, version: &str, index: u32) -> PathBuf {
        self.log_dir
            .join(format!("{}-{index}.log", file_safe(version)))
    }

    fn spawn_error(version: &str, instance: u32, message: String) -> PlatformError {
        PlatformError::Spawn {
            version: version.to_owned(),
            instance,
            message,
        }
    }

    /// Spawns every instance; the release owns them from the first on, so an error
    /// (or the caller giving up) never leaves one behind.
    fn spawn_all(&self, release: &mut LocalRelease) -> Result<(), PlatformError> {
        let version = release.version.clone();
        std::fs::create_dir_all(&self.log_dir).map_err(|e| {
            Self::spawn_error(
                &version,
                0,
                format!(
                    "cannot create log directory {}: {e}",
                    self.log_dir.display()
                ),
            )
        })?;
        if !self.spec.workdir.is_dir() {
            return Err(Self::spawn_error(
                &version,
                0,
                format!(
                    "working directory {} does not exist",
                    self.spec.workdir.display()
                ),
            ));
        }
        // The ports are free when picked, but not reserved: see `free_port_except`.
        let ports = free_ports(self.spec.instances as usize)
            .map_err(|e| Self::spawn_error(&version, 0, format!("cannot find a free port: {e}")))?;
        for (index, port) in (0..self.spec.instances).zip(ports) {
            let instance = self.spawn_one(&version, index, port)?;
            release.instances.push(instance);
        }
        Ok(())
    }

    fn spawn_one(&self, version: &str, index: u32, port: u16) -> Result<Instance, PlatformError> {
        let fail = |message: String| Self::spawn_error(version, index, message);
        let port_str = port.to_string();
        let argv: Vec<String> = self
            .spec
            .command
            .iter()
            .map(|a| substitute(a, &port_str, version))
            .collect();
        let env: BTreeMap<&str, String> = self
            .spec
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), substitute(v, &port_str, version)))
            .collect();
        let Some((program, args)) = argv.split_first() else {
            return Err(fail("the command is empty".to_owned()));
        };
        let log_path = self.log_path(version, index);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| fail(format!("cannot open log file {}: {e}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| fail(format!("cannot open log file {}: {e}", log_path.display())))?;
        // Where this run's output starts, the log being appended to.
        let log_start = log.metadata().map_or(0, |m| m.len());

        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .envs(&env)
            .current_dir(&self.spec.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .kill_on_drop(false);
        let mut child = command
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", shell_words(&argv))))?;
        let Some(pid) = child.id() else {
            // Only possible once the child has been reaped, which nothing did yet.
            return Err(fail(format!(
                "{} vanished right after starting",
                shell_words(&argv)
            )));
        };
        let pid = Pid::from_raw(pid as i32);
        reaper::register(pid, &shell_words(&argv));
        tracing::info!(version, instance = index, pid = pid.as_raw(), port, log = %log_path.display(), "started instance");

        // The child is owned by a task that only waits for it, so that its exit is
        // noticed (and the process reaped) whatever else is going on.
        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("could not be waited for: {e}"),
            };
            let _ = exit_tx.send(Some(status));
        });
        Ok(Instance {
            index,
            pid,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            log_path,
            log_start,
            exit: exit_rx,
        })
    }

    /// Starts instance `index` of the release again, on a fresh port, in place of
    /// the one that exited; the old one is kept in `retired` for `stop` to finish off.
    fn respawn(&self, release: &mut LocalRelease, index: u32) -> Result<Instance, PlatformError> {
        let version = release.version.clone();
        let taken: Vec<u16> = release
            .instances
            .iter()
            .chain(&release.retired)
            .map(|i| i.addr.port())
            .collect();
        let port = free_port_except(&taken).map_err(|e| {
            Self::spawn_error(&version, index, format!("cannot find a free port: {e}"))
        })?;
        let fresh = self.spawn_one(&version, index, port)?;
        if let Some(slot) = release.instances.iter_mut().find(|i| i.index == index) {
            let old = std::mem::replace(slot, fresh.clone());
            // Whatever the exited instance left in its group.
            reaper::signal_group(old.pid, Signal::SIGKILL);
            release.retired.push(old);
        }
        Ok(fresh)
    }

    /// Waits until every instance passes `healthy_threshold` checks in a row.
    ///
    /// An instance that exits saying its address is in use (its port, picked free,
    /// was taken before it could bind it) is started once more on another port,
    /// within the same startup timeout.
    async fn wait_all_ready(&self, release: &mut LocalRelease) -> Result<(), PlatformError> {
        let deadline = Instant::now() + self.spec.startup_timeout;
        let mut waits = JoinSet::new();
        let wait = |instance: Instance| {
            let health = self.health.clone();
            async move {
                let outcome = wait_ready(&instance, &health, deadline).await;
                (instance, outcome)
            }
        };
        for instance in &release.instances {
            waits.spawn(wait(instance.clone()));
        }
        let mut retried: Vec<u32> = Vec::new();
        while let Some(joined) = waits.join_next().await {
            let (instance, outcome) = match joined {
                Ok(r) => r,
                Err(e) => {
                    // A panic in a waiter: a bug, but still a failed start, not a crash.
                    return Err(PlatformError::StartupTimeout {
                        version: release.version.clone(),
                        timeout: self.spec.startup_timeout,
                        last: format!("health check task failed: {e}"),
                    });
                }
            };
            match outcome {
                Ready::Yes => {}
                Ready::Exited(status) => {
                    let retry = address_in_use(&instance);
                    if retry && !retried.contains(&instance.index) {
                        retried.push(instance.index);
                        tracing::warn!(version = %release.version, instance = instance.index,
                            addr = %instance.addr, "exited during startup ({status}): address in use, \
                            starting it again on another port");
                        let fresh = self.respawn(release, instance.index)?;
                        waits.spawn(wait(fresh));
                        continue;
                    }
                    let note = if retry {
                        " (the second time, after a retry on another port)"
                    } else {
                        ""
                    };
                    return Err(PlatformError::ExitedDuringStartup {
                        version: release.version.clone(),
                        instance: instance.index,
                        status: format!("{status}{note}{}", log_tail_note(&instance.log_path)),
                    });
                }
                Ready::TimedOut(last) => {
                    return Err(PlatformError::StartupTimeout {
                        version: release.version.clone(),
                        timeout: self.spec.startup_timeout,
                        last: format!(
                            "instance {} (pid {}, {}): {last}{}",
                            instance.index,
                            instance.pid,
                            instance.addr,
                            log_tail_note(&instance.log_path)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Platform for LocalPlatform {
    async fn start(&self, version: &str) -> Result<Box<dyn Release>, PlatformError> {
        let mut release = LocalRelease::new(version);
        let started = match self.spawn_all(&mut release) {
            Ok(()) => self.wait_all_ready(&mut release).await,
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            tracing::warn!(version, "start failed, stopping its instances: {e}");
            release.stop(STARTUP_CLEANUP_GRACE).await;
            return Err(e);
        }
        release.go_live(&self.health);
        tracing::info!(
            version,
            instances = release.instances.len(),
            "version ready"
        );
        Ok(Box::new(release))
    }
}

/// One running process (and its process group).
#[derive(Debug, Clone)]
struct Instance {
    index: u32,
    /// Also the process group id.
    pid: Pid,
    addr: SocketAddr,
    log_path: PathBuf,
    /// Where this run's output starts in `log_path`.
    log_start: u64,
    /// `Some(exit status)` once the process has exited and been reaped.
    exit: watch::Receiver<Option<String>>,
}

impl Instance {
    fn exit_status(&self) -> Option<String> {
        self.exit.borrow().clone()
    }
}

/// Resolves once the instance has exited, to its exit status in words.
async fn exited(exit: &mut watch::Receiver<Option<String>>) -> String {
    match exit.wait_for(Option::is_some).await {
        Ok(status) => status.clone().unwrap_or_default(),
        // The waiting task is gone without a word: only when the runtime shuts down.
        Err(_) => "exit status unknown".to_owned(),
    }
}

enum Ready {
    Yes,
    Exited(String),
    TimedOut(String),
}

async fn wait_ready(instance: &Instance, health: &HealthCheck, deadline: Instant) -> Ready {
    let mut exit = instance.exit.clone();
    let mut last = "no health check has completed".to_owned();
    let mut successes = 0;
    loop {
        let result = tokio::select! {
            biased;
            status = exited(&mut exit) => return Ready::Exited(status),
            () = tokio::time::sleep_until(deadline) => return Ready::TimedOut(last),
            r = health::check(instance.addr, &health.path, health.timeout) => r,
        };
        match result {
            Ok(()) => {
                successes += 1;
                if successes >= health.healthy_threshold {
                    return Ready::Yes;
                }
            }
            Err(e) => {
                successes = 0;
                last = e;
            }
        }
        tokio::select! {
            biased;
            status = exited(&mut exit) => return Ready::Exited(status),
            () = tokio::time::sleep_until(deadline) => return Ready::TimedOut(last),
            () = tokio::time::sleep(health.interval) => {}
        }
    }
}

/// A version started by [`LocalPlatform`].
///
/// Dropping it without [`Release::stop`] kills its processes (SIGKILL), so that a
/// version is never left running unowned.
#[derive(Debug)]
pub struct LocalRelease {
    version: String,
    instances: Vec<Instance>,
    /// Instances that exited during startup and were replaced: only for `stop`.
    retired: Vec<Instance>,
    health_tx: Arc<watch::Sender<ReleaseHealth>>,
    monitors: Vec<JoinHandle<()>>,
    stopped: bool,
}

impl LocalRelease {
    fn new(version: &str) -> LocalRelease {
        LocalRelease {
            version: version.to_owned(),
            instances: Vec::new(),
            retired: Vec::new(),
            health_tx: Arc::new(watch::channel(ReleaseHealth::default()).0),
            monitors: Vec::new(),
            stopped: false,
        }
    }

    /// Publishes every instance as ready and starts following their health.
    fn go_live(&mut self, health: &HealthCheck) {
        let mut ready: Vec<SocketAddr> = self.instances.iter().map(|i| i.addr).collect();
        ready.sort();
        self.health_tx.send_modify(|h| h.ready = ready);
        for instance in &self.instances {
            self.monitors.push(tokio::spawn(monitor(
                instance.clone(),
                health.clone(),
                self.health_tx.clone(),
            )));
        }
    }

    fn abort_monitors(&mut self) -> Vec<JoinHandle<()>> {
        let monitors = std::mem::take(&mut self.monitors);
        for m in &monitors {
            m.abort();
        }
        monitors
    }
}

#[async_trait]
impl Release for LocalRelease {
    fn version(&self) -> &str {
        &self.version
    }

    fn health(&self) -> watch::Receiver<ReleaseHealth> {
        self.health_tx.subscribe()
    }

    fn describe(&self) -> Vec<String> {
        let health = self.health_tx.borrow();
        self.instances
            .iter()
            .map(|i| {
                let state = if self.stopped {
                    "stopped".to_owned()
                } else if let Some(status) = i.exit_status() {
                    format!("exited: {status}")
                } else if health.ready.contains(&i.addr) {
                    "ready".to_owned()
                } else if self.monitors.is_empty() {
                    "starting".to_owned()
                } else {
                    "unhealthy".to_owned()
                };
                format!("pid {} on {} ({state})", i.pid, i.addr)
            })
            .collect()
    }

    async fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        // Health tasks first, so that the exits caused here are not reported as problems.
        for monitor in self.abort_monitors() {
            let _ = monitor.await;
        }
        self.health_tx
            .send_if_modified(|h| !std::mem::take(&mut h.ready).is_empty());

        let all: Vec<Instance> = self
            .instances
            .iter()
            .chain(&self.retired)
            .cloned()
            .collect();
        for i in &all {
            reaper::signal_group(i.pid, Signal::SIGTERM);
        }
        let polite = Instant::now() + grace;
        for i in &all {
            if !wait_gone(i, polite).await {
                tracing::info!(version = %self.version, instance = i.index, pid = i.pid.as_raw(),
                    "still running {grace:?} after SIGTERM, killing");
            }
        }
        // Unconditionally: the group may hold processes that outlived their leader.
        for i in &all {
            reaper::signal_group(i.pid, Signal::SIGKILL);
        }
        let forced = Instant::now() + KILL_WAIT;
        for i in &all {
            if wait_gone(i, forced).await {
                reaper::unregister(i.pid);
            } else {
                // Left registered, for `kill_all_children` (or the next daemon) to retry.
                tracing::error!(version = %self.version, instance = i.index, pid = i.pid.as_raw(),
                    "process group still present {KILL_WAIT:?} after SIGKILL");
            }
        }
        self.stopped = true;
        tracing::info!(version = %self.version, "stopped");
    }
}

impl Drop for LocalRelease {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.abort_monitors();
        let runtime = tokio::runtime::Handle::try_current().ok();
        for i in self.instances.iter().chain(&self.retired) {
            reaper::signal_group(i.pid, Signal::SIGKILL);
            // Unregistered once gone, as in `stop`; without a runtime to wait in, now.
            match &runtime {
                Some(runtime) => {
                    let i = i.clone();
                    runtime.spawn(async move {
                        if wait_gone(&i, Instant::now() + KILL_WAIT).await {
                            reaper::unregister(i.pid);
                        }
                    });
                }
                None => reaper::unregister(i.pid),
            }
        }
        // Reaping is left to each instance's waiting task (or tokio's orphan queue).
    }
}

/// Waits until the instance's process has exited and its whole group is gone.
async fn wait_gone(instance: &Instance, deadline: Instant) -> bool {
    let mut exit = instance.exit.clone();
    if tokio::time::timeout_at(deadline, exited(&mut exit))
        .await
        .is_err()
    {
        return false;
    }
    loop {
        if !reaper::group_alive(instance.pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Follows one ready instance until it exits (or the task is aborted by `stop`).
async fn monitor(instance: Instance, health: HealthCheck, tx: Arc<watch::Sender<ReleaseHealth>>) {
    let Instance {
        index,
        pid,
        addr,
        mut exit,
        ..
    } = instance;
    let mut serving = true;
    let mut failures = 0u32;
    let mut successes = 0u32;
    loop {
        let result = tokio::select! {
            biased;
            status = exited(&mut exit) => {
                let problem = format!("instance {index} (pid {pid}) exited: {status}");
                tracing::warn!("{problem}");
                tx.send_if_modified(|h| {
                    let was_ready = remove(&mut h.ready, addr);
                    set_problem(h, problem) || was_ready
                });
                return;
            }
            r = async {
                tokio::time::sleep(health.interval).await;
                health::check(addr, &health.path, health.timeout).await
            } => r,
        };
        match result {
            Ok(()) => {
                failures = 0;
                successes = successes.saturating_add(1);
                if !serving && successes >= health.healthy_threshold {
                    serving = true;
                    tracing::info!(index, pid = pid.as_raw(), %addr, "instance healthy again");
                    tx.send_if_modified(|h| insert(&mut h.ready, addr));
                }
            }
            Err(e) => {
                successes = 0;
                failures = failures.saturating_add(1);
                if serving && failures >= health.unhealthy_threshold {
                    serving = false;
                    let problem = format!(
                        "instance {index} (pid {pid}, {addr}) failed {failures} health checks: {e}"
                    );
                    tracing::warn!("{problem}");
                    tx.send_if_modified(|h| {
                        let was_ready = remove(&mut h.ready, addr);
                        set_problem(h, problem) || was_ready
                    });
                }
            }
        }
    }
}

fn remove(ready: &mut Vec<SocketAddr>, addr: SocketAddr) -> bool {
    let before = ready.len();
    ready.retain(|a| *a != addr);
    ready.len() != before
}

fn insert(ready: &mut Vec<SocketAddr>, addr: SocketAddr) -> bool {
    match ready.binary_search(&addr) {
        Ok(_) => false,
        Err(at) => {
            ready.insert(at, addr);
            true
        }
    }
}

/// The first problem wins.
fn set_problem(health: &mut ReleaseHealth, problem: String) -> bool {
    if health.problem.is_some() {
        return false;
    }
    health.problem = Some(problem);
    true
}

/// Distinct free ports: all listeners are held until every port is picked (but
/// not afterwards: see [`free_port_except`] for the race that remains).
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// A free port, other than `taken`.
///
/// Like [`free_ports`], this only makes a collision unlikely, not impossible: the
/// listener is closed before the instance binds the port, and in between another
/// process may bind it too, or take it as the local port of an outgoing connection
/// (the proxy's included: they come from the same ephemeral range). An instance
/// that then fails to bind and exits saying so is retried once on another port (see
/// `wait_all_ready`). What remains: a process that binds the port and serves the
/// health path before the instance starts would make the instance look ready while
/// it is failing; it would then exit and be reported by its monitor. Reserving the
/// port for real needs the instance to take an inherited socket (systemd-style
/// socket activation), which commands cannot be assumed to support.
fn free_port_except(taken: &[u16]) -> std::io::Result<u16> {
    for _ in 0..16 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if !taken.contains(&port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("every port offered was taken"))
}

/// Whether the instance's output since it started says its address was in use.
fn address_in_use(instance: &Instance) -> bool {
    let Some(text) = log_since(&instance.log_path, instance.log_start) else {
        return false;
    };
    let text = text.to_ascii_lowercase();
    text.contains("address already in use") || text.contains("address in use")
}

/// The file from byte `start` on, at most its last 64 KiB of that.
fn log_since(path: &Path, start: u64) -> Option<String> {
    const MAX: u64 = 64 * 1024;
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(start.max(len.saturating_sub(MAX))))
        .ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn substitute(s: &str, port: &str, version: &str) -> String {
    s.replace("${PORT}", port).replace("${VERSION}", version)
}

/// A version as a file name: path separators and other oddities become `_`.
fn file_safe(version: &str) -> String {
    let s: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

/// argv as one would type it, for messages.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `; last lines of <log>:\n  | ...`, or nothing when the log is empty or unreadable.
fn log_tail_note(path: &Path) -> String {
    match log_tail(path, LOG_TAIL_LINES) {
        Some(lines) if !lines.is_empty() => {
            let mut note = format!("; last lines of {}:", path.display());
            for line in lines {
                note.push_str("\n  | ");
                note.push_str(&line);
            }
            note
        }
        Some(_) => format!("; its log {} is empty", path.display()),
        None => String::new(),
    }
}

/// The last `n` lines of a file, reading at most its last 8 KiB.
fn log_tail(path: &Path, n: usize) -> Option<Vec<String>> {
    const MAX: u64 = 8 * 1024;
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(MAX);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // probably cut in the middle
    }
    let lines: Vec<String> = lines
        .iter()
        .rev()
        .map(|l| l.trim_end())
        .filter(|l| !l.is_empty())
        .take(n)
        .map(str::to_owned)
        .collect();
    Some(lines.into_iter().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_port_and_version() {
        assert_eq!(substitute("--port=${PORT}", "8081", "v2"), "--port=8081");
        assert_eq!(
            substitute("${VERSION}-${PORT}-${VERSION}", "1", "v2"),
            "v2-1-v2"
        );
        assert_eq!(substitute("$PORT ${port}", "1", "v2"), "$PORT ${port}");
    }

    #[test]
    fn file_safe_versions() {
        assert_eq!(file_safe("v1.2.3"), "v1.2.3");
        assert_eq!(file_safe("feature/x y"), "feature_x_y");
        assert_eq!(file_safe(".."), "_..");
        assert_eq!(file_safe(""), "_");
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(5).unwrap();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 5);
    }

    #[test]
    fn shell_words_quotes_when_needed() {
        let argv = ["python3", "-c", "print('hi')", ""].map(String::from);
        assert_eq!(shell_words(&argv), r"python3 -c 'print('\''hi'\'')' ''");
    }

    #[test]
    fn ready_list_stays_sorted_and_unique() {
        let a: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let mut ready = vec![];
        assert!(insert(&mut ready, a));
        assert!(insert(&mut ready, b));
        assert!(!insert(&mut ready, a));
        assert_eq!(ready, vec![b, a]);
        assert!(remove(&mut ready, b));
        assert!(!remove(&mut ready, b));
        assert_eq!(ready, vec![a]);
    }

    #[test]
    fn first_problem_wins() {
        let mut h = ReleaseHealth::default();
        assert!(set_problem(&mut h, "first".into()));
        assert!(!set_problem(&mut h, "second".into()));
        assert_eq!(h.problem.as_deref(), Some("first"));
    }

    #[test]
    fn log_tail_takes_the_last_non_empty_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        assert_eq!(log_tail(&path, 3), None);
        std::fs::write(&path, "a\nb\n\nc\nd\n\n").unwrap();
        assert_eq!(log_tail(&path, 3).unwrap(), vec!["b", "c", "d"]);
        std::fs::write(&path, "").unwrap();
        assert!(log_tail_note(&path).contains("is empty"));
        let long = format!("{}\nlast\n", "x".repeat(20_000));
        std::fs::write(&path, long).unwrap();
        assert_eq!(log_tail(&path, 3).unwrap(), vec!["last"]);
    }
}
