//! One process of an instance: spawned in a process group of its own, on a given
//! port, with its output appended to the instance's log file, and waited for by a
//! task of its own so that its exit is noticed (and the process reaped) whatever
//! else is going on; or adopted from an earlier daemon, and then, not being a child
//! of this one, watched through `/proc` instead. Both look the same to the rest of
//! the crate: [`Process::exited`], [`Process::signal`], [`stop_processes`].

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use cutover_engine::platform::{PlatformError, ReleaseSpec};
use cutover_spec::{HealthCheck, LocalSpec};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::docker::{Container, ContainerLauncher};
use crate::health;
use crate::reaper::{self, InstanceRecord};

/// How often [`wait_gone`] looks whether a process group is gone.
const POLL: Duration = Duration::from_millis(20);

/// How often an adopted process is looked for in `/proc`: its exit cannot be
/// waited for.
const ADOPTED_POLL: Duration = Duration::from_millis(200);

/// What an adopted process's exit is reported as: only its parent learns the status.
const ADOPTED_EXIT: &str = "exit status unknown (adopted from an earlier daemon)";

/// How long to wait for a process group to vanish after SIGKILL before giving up.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Where instance `index` of the release `name` writes its output, in `log_dir`.
pub(crate) fn log_path(log_dir: &Path, name: &str, index: u32) -> PathBuf {
    log_dir.join(format!("{}-{index}.log", file_safe(name)))
}

/// Starts the processes of one release: its command, environment and working
/// directory (or its container), with `${PORT}` and `${VERSION}` filled in, and
/// `PORT` and `VERSION` in the environment.
#[derive(Debug)]
pub(crate) struct Launcher {
    pub(crate) runs: Runs,
    pub(crate) log_dir: PathBuf,
    /// The release's name: its log files and records are named after it.
    pub(crate) name: String,
    pub(crate) version: String,
}

/// What a release's instances run as.
#[derive(Debug)]
pub(crate) enum Runs {
    /// Local processes, in process groups of their own.
    Processes(LocalSpec),
    /// Containers of a Docker daemon.
    Containers(Arc<ContainerLauncher>),
}

impl Launcher {
    /// Starts the instances of `spec` as `runs`, their output in `log_dir`.
    pub(crate) fn new(runs: Runs, log_dir: PathBuf, spec: &ReleaseSpec) -> Launcher {
        Launcher {
            runs,
            log_dir,
            name: spec.name.clone(),
            version: spec.version.clone(),
        }
    }

    /// How long an instance may take to become healthy.
    pub(crate) fn startup_timeout(&self) -> Duration {
        match &self.runs {
            Runs::Processes(spec) => spec.startup_timeout,
            Runs::Containers(containers) => containers.spec.startup_timeout,
        }
    }

    /// What to check when an instance's port was in use twice: the setting that
    /// says where it listens.
    pub(crate) fn port_hint(&self) -> &'static str {
        match &self.runs {
            Runs::Processes(_) => {
                "does `platform.local.command` listen on the `${PORT}` it is given?"
            }
            Runs::Containers(containers) => match containers.spec.network {
                cutover_spec::DockerNetwork::Host => {
                    "does the container (`platform.docker.command`) listen on the `${PORT}` it is given?"
                }
                cutover_spec::DockerNetwork::Published { .. } => {
                    "is something else publishing ports of 127.0.0.1 (`platform.docker.network`)?"
                }
            },
        }
    }

    /// Makes sure instances can be started: their log directory exists, and so does
    /// the working directory of processes.
    pub(crate) fn prepare(&self) -> Result<(), PlatformError> {
        let log_dir = &self.log_dir;
        std::fs::create_dir_all(log_dir).map_err(|e| {
            self.error(
                0,
                format!("cannot create log directory {}: {e}", log_dir.display()),
            )
        })?;
        if let Runs::Processes(spec) = &self.runs
            && !spec.workdir.is_dir()
        {
            return Err(self.error(
                0,
                format!(
                    "working directory {} does not exist",
                    spec.workdir.display()
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn error(&self, instance: u32, message: String) -> PlatformError {
        PlatformError::Spawn {
            version: self.name.clone(),
            instance,
            message,
        }
    }

    /// argv with `${PORT}` and `${VERSION}` filled in (of a container: its command
    /// override, if any).
    fn argv(&self, port: &str) -> Vec<String> {
        let command = match &self.runs {
            Runs::Processes(spec) => spec.command.as_slice(),
            Runs::Containers(containers) => containers.spec.command.as_deref().unwrap_or_default(),
        };
        command
            .iter()
            .map(|a| substitute(a, port, &self.version))
            .collect()
    }

    /// The command instance processes on `port` run, as recorded for them: a
    /// process recorded with another one runs something this launcher would not.
    pub(crate) fn command_line(&self, port: u16) -> String {
        shell_words(&self.argv(&port.to_string()))
    }

    /// Starts instance `index` on `port`: a process (see [`Launcher::spawn_process`])
    /// or a container (see [`ContainerLauncher::spawn`]).
    pub(crate) fn spawn(&self, index: u32, port: u16) -> Result<Process, PlatformError> {
        match &self.runs {
            Runs::Processes(spec) => self.spawn_process(spec, index, port),
            Runs::Containers(containers) => containers.spawn(self, index, port),
        }
    }

    /// The environment of instance processes on `port`: `PORT` and `VERSION`, then
    /// the configured `env` with `${PORT}` and `${VERSION}` filled in.
    pub(crate) fn env(
        &self,
        env: &BTreeMap<String, String>,
        port: &str,
    ) -> BTreeMap<String, String> {
        let version = self.version.as_str();
        // The configured environment last: a `PORT` set there is what the user asked for.
        [
            ("PORT".to_owned(), port.to_owned()),
            ("VERSION".to_owned(), version.to_owned()),
        ]
        .into_iter()
        .chain(
            env.iter()
                .map(|(k, v)| (k.clone(), substitute(v, port, version))),
        )
        .collect()
    }

    /// Spawns instance `index` on `port` and registers its process group with the
    /// reaper. Synchronous: once it returns, the process exists.
    fn spawn_process(
        &self,
        spec: &LocalSpec,
        index: u32,
        port: u16,
    ) -> Result<Process, PlatformError> {
        let (name, version) = (self.name.as_str(), self.version.as_str());
        let fail = |message: String| self.error(index, message);
        let port_str = port.to_string();
        let argv = self.argv(&port_str);
        let env = self.env(&spec.env, &port_str);
        let Some((program, args)) = argv.split_first() else {
            return Err(fail("the command is empty".to_owned()));
        };
        let log_path = log_path(&self.log_dir, name, index);
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
            .current_dir(&spec.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .kill_on_drop(false);
        let mut child = command
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", shell_words(&argv))))?;
        let started_at = Instant::now();
        let Some(pid) = child.id() else {
            // Only possible once the child has been reaped, which nothing did yet.
            return Err(fail(format!(
                "{} vanished right after starting",
                shell_words(&argv)
            )));
        };
        let pid = Pid::from_raw(pid as i32);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let record = InstanceRecord {
            release: name.to_owned(),
            version: version.to_owned(),
            index,
            addr,
            // For a next daemon that may run from another directory.
            log: std::path::absolute(&log_path).unwrap_or_else(|_| log_path.clone()),
        };
        let group = reaper::register(pid, &shell_words(&argv), Some(record));
        tracing::info!(release = name, version, instance = index, pid = pid.as_raw(), port, log = %log_path.display(), "started instance");

        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("could not be waited for: {e}"),
            };
            let _ = exit_tx.send(Some(status));
        });
        Ok(Process {
            index,
            unit: Unit::Group(group),
            addr,
            log_path,
            log_start,
            started_at,
            adopted: false,
            exit: exit_rx,
        })
    }
}

/// What runs an instance: a process group here, or a container.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Unit {
    /// The process group as recorded when it was spawned: the only way to signal it,
    /// so that a pid reused once this process has exited is left alone.
    Group(reaper::Group),
    Container(Container),
}

impl Unit {
    /// Whether something of it still runs (or, for a container, may still).
    pub(crate) fn alive(&self) -> bool {
        match self {
            Unit::Group(group) => group.alive(),
            Unit::Container(container) => container.alive(),
        }
    }

    /// Forgets it: unregisters the group, removes the container (in the
    /// background). Only once it is gone.
    pub(crate) fn unregister(&self) {
        match self {
            Unit::Group(group) => group.unregister(),
            Unit::Container(container) => container.remove_later(),
        }
    }

    /// As [`Unit::unregister`], but waits until a container is removed.
    pub(crate) async fn finish(&self) {
        match self {
            Unit::Group(group) => group.unregister(),
            Unit::Container(container) => container.remove().await,
        }
    }
}

impl std::fmt::Display for Unit {
    /// `pid 4242`, `container cutover-shop-v2-0-1a2b`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unit::Group(group) => write!(f, "pid {}", group.pgid()),
            Unit::Container(container) => write!(f, "container {}", container.name()),
        }
    }
}

/// One running process (and its process group), or container.
#[derive(Debug, Clone)]
pub(crate) struct Process {
    /// The instance it runs.
    pub(crate) index: u32,
    /// Its process group or container.
    pub(crate) unit: Unit,
    pub(crate) addr: SocketAddr,
    pub(crate) log_path: PathBuf,
    /// Where this run's output starts in `log_path`.
    pub(crate) log_start: u64,
    /// When it was spawned, or adopted.
    pub(crate) started_at: Instant,
    /// Started by an earlier daemon: not a child of this one.
    pub(crate) adopted: bool,
    /// `Some(exit status)` once the process has exited (and, if a child, been reaped).
    exit: watch::Receiver<Option<String>>,
}

impl Process {
    /// A process run by `unit`, whose exit `exit` reports; started now.
    pub(crate) fn new(
        index: u32,
        unit: Unit,
        addr: SocketAddr,
        log_path: PathBuf,
        adopted: bool,
        exit: watch::Receiver<Option<String>>,
    ) -> Process {
        let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        Process {
            index,
            unit,
            addr,
            log_path,
            log_start,
            started_at: Instant::now(),
            adopted,
            exit,
        }
    }

    /// The process an earlier daemon recorded as `group`, running `record`'s
    /// instance, and found running (see [`reaper::Group::leader_running`]): from now
    /// on its exit is noticed by polling `/proc`, a few times a second.
    pub(crate) fn adopt(group: reaper::Group, record: &InstanceRecord) -> Process {
        let (exit_tx, exit_rx) = watch::channel(None);
        let watched = group.clone();
        tokio::spawn(async move {
            // Until it exits, or nothing follows it any more.
            while watched.leader_running() {
                tokio::select! {
                    () = exit_tx.closed() => return,
                    () = tokio::time::sleep(ADOPTED_POLL) => {}
                }
            }
            let _ = exit_tx.send(Some(ADOPTED_EXIT.to_owned()));
        });
        Process::new(
            record.index,
            Unit::Group(group),
            record.addr,
            record.log.clone(),
            true,
            exit_rx,
        )
    }

    pub(crate) fn exit_status(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// Sends `signal` to the process group, if it is still verifiably this
    /// process's (see [`reaper::Group::signal`]), or to the container (without
    /// waiting for the daemon's answer); returns whether it was sent.
    pub(crate) fn signal(&self, signal: Signal) -> bool {
        match &self.unit {
            Unit::Group(group) => {
                // Set only once a child has been waited for: until then its pid is
                // ours. An adopted process is reaped by someone else, at any time.
                let unreaped = !self.adopted && self.exit.borrow().is_none();
                group.signal(signal, unreaped)
            }
            Unit::Container(container) => container.signal(signal),
        }
    }

    /// Checks its health once: over HTTP at `addr`, or, for a container told to,
    /// by its image's `HEALTHCHECK`. `Err` says why not, in words.
    pub(crate) async fn check(&self, health: &HealthCheck) -> Result<(), String> {
        match &self.unit {
            Unit::Container(container) if container.image_health() => container.health().await,
            _ => health::check(self.addr, &health.path, health.timeout).await,
        }
    }

    /// Resolves once the process has exited, to its exit status in words.
    pub(crate) async fn exited(&self) -> String {
        let mut exit = self.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(status) => status.clone().unwrap_or_default(),
            // The waiting task is gone without a word: only when the runtime shuts down.
            Err(_) => "exit status unknown".to_owned(),
        }
    }
}

/// Waits until the process has exited and its whole group is gone.
pub(crate) async fn wait_gone(process: &Process, deadline: Instant) -> bool {
    if tokio::time::timeout_at(deadline, process.exited())
        .await
        .is_err()
    {
        return false;
    }
    loop {
        if !process.unit.alive() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Stops `processes` of the release `name`: SIGTERM to every group still verifiably
/// theirs, up to `grace` for them to go, then SIGKILL to whatever is left of them
/// (the leader gone or not: the group may hold processes that outlived it), and up
/// to 5 s more. Unregisters those gone.
pub(crate) async fn stop_processes(name: &str, processes: &[Process], grace: Duration) {
    // Every signal only to a group still verifiably ours: an instance waiting to be
    // restarted has exited, and its pid may belong to anyone by now.
    for p in processes {
        p.signal(Signal::SIGTERM);
    }
    let polite = Instant::now() + grace;
    for p in processes {
        if !wait_gone(p, polite).await {
            tracing::info!(
                release = name,
                instance = p.index,
                unit = %p.unit,
                "still running {grace:?} after SIGTERM, killing"
            );
        }
    }
    for p in processes {
        p.signal(Signal::SIGKILL);
    }
    let forced = Instant::now() + KILL_WAIT;
    for p in processes {
        if wait_gone(p, forced).await {
            p.unit.finish().await;
        } else {
            // Left registered, for `kill_all_children` (or the next daemon) to retry.
            tracing::error!(
                release = name,
                instance = p.index,
                unit = %p.unit,
                "still present {KILL_WAIT:?} after SIGKILL"
            );
        }
    }
}

/// Kills `processes` (SIGKILL) without waiting: for `Drop`, which cannot. Each is
/// unregistered once gone, by a task of its own; without a runtime to run one, now.
pub(crate) fn kill_now(processes: Vec<Process>) {
    let runtime = tokio::runtime::Handle::try_current().ok();
    for p in processes {
        p.signal(Signal::SIGKILL);
        match &runtime {
            Some(runtime) => {
                runtime.spawn(async move {
                    if wait_gone(&p, Instant::now() + KILL_WAIT).await {
                        p.unit.unregister();
                    }
                });
            }
            None => p.unit.unregister(),
        }
    }
    // Reaping is left to each process's waiting task (or tokio's orphan queue).
}

pub(crate) fn substitute(s: &str, port: &str, version: &str) -> String {
    s.replace("${PORT}", port).replace("${VERSION}", version)
}

/// A release name as a file name: path separators and other oddities become `_`.
pub(crate) fn file_safe(name: &str) -> String {
    let s: String = name
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
pub(crate) fn shell_words(argv: &[String]) -> String {
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
    fn shell_words_quotes_when_needed() {
        let argv = ["python3", "-c", "print('hi')", ""].map(String::from);
        assert_eq!(shell_words(&argv), r"python3 -c 'print('\''hi'\'')' ''");
    }
}
