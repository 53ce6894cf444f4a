//! One container of an instance, as the rest of the crate sees a process: started
//! by [`ContainerLauncher::spawn`] (synchronously, so that it is in the release
//! before anything can go wrong), its exit noticed by a task of its own that
//! creates, starts and waits for it, its output copied into the instance's log
//! file, signalled and removed through the daemon.
//!
//! Creating and starting take requests, which `spawn` cannot wait for: the task
//! does them, and a signal sent before the container runs is remembered and
//! delivered once it does (or keeps it from being started at all).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HealthStatusEnum, HostConfig, HostConfigLogConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, KillContainerOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptions,
};
use cutover_engine::platform::PlatformError;
use cutover_spec::{DockerNetwork, DockerSpec, LogsSpec};
use futures_util::StreamExt;
use nix::sys::signal::Signal;
use tokio::sync::watch;

use super::labels::{self, Labels};
use crate::log_files::LogWriter;
use crate::process::{Launcher, Process, Unit, file_safe, log_path, substitute};

/// How long a container's exit waits for the last of its output to be written.
const LOG_FLUSH_WAIT: Duration = Duration::from_secs(2);

/// The daemon's own copy of a container's output, which it is read from: a
/// driver it can be read back from whatever the daemon's default, and bounded.
const DAEMON_LOG_DRIVER: &str = "json-file";
const DAEMON_LOG_MAX_SIZE: &str = "10m";

/// Starts the containers of one release: its image (resolved for its version), with
/// the configured command, environment, network and limits.
#[derive(Debug)]
pub(crate) struct ContainerLauncher {
    pub(crate) spec: DockerSpec,
    pub(crate) docker: Docker,
    /// The image reference, `${VERSION}` filled in.
    pub(crate) image: String,
    /// The labels every container of this cutover state directory and app gets.
    pub(crate) labels: Labels,
    /// How the containers' log files are kept.
    pub(crate) logs: LogsSpec,
    /// The run that starts them, for their `cutover.run` label.
    pub(crate) run: String,
}

/// Where a container's output goes: the instance's log file, the same one a
/// local process writes to (so `cutover logs` and the log check read both alike),
/// kept within `spec` by a [`LogWriter`] as it is written.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub(crate) path: PathBuf,
    pub(crate) spec: LogsSpec,
}

impl ContainerLauncher {
    /// Starts instance `index` of `launcher`'s release, reachable on `port` of
    /// 127.0.0.1. Returns at once: the container is created and started by a task
    /// of its own, whose failure is the instance's exit status.
    pub(crate) fn spawn(
        &self,
        launcher: &Launcher,
        index: u32,
        port: u16,
    ) -> Result<Process, PlatformError> {
        let name = container_name(&self.labels.app, &launcher.name, index);
        let log_path = log_path(&launcher.log_dir, &launcher.name, index);
        let body = self.create_body(launcher, index, port);
        let (exit_tx, exit_rx) = watch::channel(None);
        let container = Container::new(
            self.docker.clone(),
            name,
            self.image_health(),
            exit_rx.clone(),
        );
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        tracing::info!(release = %launcher.name, version = %launcher.version, instance = index,
            container = %container.name(), image = %self.image, port, log = %log_path.display(),
            "starting container");
        let output = Output {
            path: log_path.clone(),
            spec: self.logs,
        };
        tokio::spawn(container.clone().run(Some(body), output, exit_tx));
        Ok(Process::new(
            index,
            Unit::Container(container),
            addr,
            log_path,
            false,
            exit_rx,
        ))
    }

    /// Whether health comes from the image's `HEALTHCHECK` rather than over HTTP.
    pub(crate) fn image_health(&self) -> bool {
        self.spec.healthcheck == cutover_spec::HealthSource::Image
    }

    /// What the daemon is asked to create for instance `index` on `port`.
    fn create_body(&self, launcher: &Launcher, index: u32, port: u16) -> ContainerCreateBody {
        let spec = &self.spec;
        // Inside the container the service listens on `${PORT}` (host networking)
        // or on the configured port, published on `port` of 127.0.0.1.
        let (inner_port, network_mode, port_bindings, exposed) = match spec.network {
            DockerNetwork::Host => (port, "host", None, None),
            DockerNetwork::Published { port: inner } => {
                let key = format!("{inner}/tcp");
                let binding = PortBinding {
                    host_ip: Some(Ipv4Addr::LOCALHOST.to_string()),
                    host_port: Some(port.to_string()),
                };
                let bindings = HashMap::from([(key.clone(), Some(vec![binding]))]);
                (
                    inner,
                    super::daemon::BRIDGE,
                    Some(bindings),
                    Some(vec![key]),
                )
            }
        };
        let inner_port = inner_port.to_string();
        let env: Vec<String> = launcher
            .env(&spec.env, &inner_port)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let cmd = spec.command.as_ref().map(|command| {
            command
                .iter()
                .map(|a| substitute(a, &inner_port, &launcher.version))
                .collect()
        });
        let instance = labels::Instance {
            release: launcher.name.clone(),
            version: launcher.version.clone(),
            index,
            port,
            runs: self.runs(),
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd,
            env: Some(env),
            labels: Some(self.labels.of(&instance, &self.run)),
            exposed_ports: exposed,
            host_config: Some(HostConfig {
                network_mode: Some(network_mode.to_owned()),
                port_bindings,
                memory: spec.memory.map(|m| m as i64),
                nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
                log_config: Some(HostConfigLogConfig {
                    typ: Some(DAEMON_LOG_DRIVER.to_owned()),
                    config: Some(HashMap::from([(
                        "max-size".to_owned(),
                        DAEMON_LOG_MAX_SIZE.to_owned(),
                    )])),
                }),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        }
    }

    /// What its containers run, as recorded in their labels: a container recorded
    /// with something else is not adopted.
    pub(crate) fn runs(&self) -> String {
        let spec = &self.spec;
        let network = match spec.network {
            DockerNetwork::Host => "host".to_owned(),
            DockerNetwork::Published { port } => format!("published:{port}"),
        };
        serde_json::json!({
            "image": self.image,
            "command": spec.command,
            "env": spec.env,
            "network": network,
            "memory": spec.memory,
            "cpus": spec.cpus,
        })
        .to_string()
    }
}

/// A unique container name: `cutover-<app>-<release>-<index>-<session><n>`.
fn container_name(app: &str, release: &str, index: u32) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("cutover-{app}-{release}-{index}-{}{n}", labels::session());
    // Docker allows `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
    file_safe(&name).replace('+', "_")
}

/// A container, shared by the instance's [`Process`] clones and its task.
#[derive(Debug, Clone)]
pub(crate) struct Container {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    docker: Docker,
    name: String,
    /// Health from the image's `HEALTHCHECK`.
    image_health: bool,
    /// Set once the daemon has created it: signals go to the daemon from then on.
    created: AtomicBool,
    /// A signal asked for before it was started, delivered once it is (SIGKILL
    /// wins over SIGTERM).
    signalled: Mutex<Option<Signal>>,
    removed: AtomicBool,
    exit: watch::Receiver<Option<String>>,
}

impl PartialEq for Container {
    fn eq(&self, other: &Container) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Container {
    fn new(
        docker: Docker,
        name: String,
        image_health: bool,
        exit: watch::Receiver<Option<String>>,
    ) -> Container {
        Container {
            inner: Arc::new(Inner {
                docker,
                name,
                image_health,
                created: AtomicBool::new(false),
                signalled: Mutex::new(None),
                removed: AtomicBool::new(false),
                exit,
            }),
        }
    }

    /// A container an earlier daemon started, found running: from now on followed
    /// as if started here. Its output from now on is appended to `output`.
    pub(crate) fn adopt(
        docker: Docker,
        name: String,
        image_health: bool,
        output: Output,
    ) -> (Container, watch::Receiver<Option<String>>) {
        let (exit_tx, exit_rx) = watch::channel(None);
        let container = Container::new(docker, name, image_health, exit_rx.clone());
        container.inner.created.store(true, Ordering::SeqCst);
        tokio::spawn(container.clone().run(None, output, exit_tx));
        (container, exit_rx)
    }

    pub(crate) fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn image_health(&self) -> bool {
        self.inner.image_health
    }

    /// Until its exit is known.
    pub(crate) fn alive(&self) -> bool {
        self.inner.exit.borrow().is_none()
    }

    /// Sends `signal` (through the daemon, without waiting for it), or, before the
    /// container runs, keeps it for when it does.
    pub(crate) fn signal(&self, signal: Signal) -> bool {
        {
            let mut signalled = self
                .inner
                .signalled
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *signalled != Some(Signal::SIGKILL) {
                *signalled = Some(signal);
            }
        }
        if self.inner.created.load(Ordering::SeqCst) && self.alive() {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return false;
            };
            let container = self.clone();
            runtime.spawn(async move { container.kill(signal).await });
        }
        true
    }

    async fn kill(&self, signal: Signal) {
        let options = KillContainerOptionsBuilder::new()
            .signal(signal.as_str())
            .build();
        if let Err(e) = self
            .inner
            .docker
            .kill_container(&self.inner.name, Some(options))
            .await
            && self.alive()
        {
            tracing::debug!(container = %self.inner.name, "could not send {signal}: {e}");
        }
    }

    /// Removes it in the background (see [`Container::remove`]).
    pub(crate) fn remove_later(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let container = self.clone();
            runtime.spawn(async move { container.remove().await });
        } else {
            tracing::warn!(container = %self.inner.name,
                "cannot remove the container without a runtime; the next daemon removes it");
        }
    }

    /// Removes it (forced: it has exited, or this is the last word), once.
    pub(crate) async fn remove(&self) {
        if self.inner.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match self
            .inner
            .docker
            .remove_container(&self.inner.name, Some(options))
            .await
        {
            Ok(()) => tracing::debug!(container = %self.inner.name, "removed container"),
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                tracing::warn!(container = %self.inner.name, "could not remove the container: {e}")
            }
        }
    }

    /// Its health as its image's `HEALTHCHECK` reports it.
    pub(crate) async fn health(&self) -> Result<(), String> {
        let inspect = self
            .inner
            .docker
            .inspect_container(&self.inner.name, None::<InspectContainerOptions>)
            .await
            .map_err(|e| format!("cannot inspect the container: {e}"))?;
        let health = inspect.state.and_then(|s| s.health);
        let status = health.as_ref().and_then(|h| h.status);
        match status {
            Some(HealthStatusEnum::HEALTHY) => Ok(()),
            Some(status @ (HealthStatusEnum::STARTING | HealthStatusEnum::UNHEALTHY)) => {
                let last = health
                    .and_then(|h| h.log)
                    .and_then(|log| log.last().cloned())
                    .and_then(|r| r.output)
                    .map(|o| format!(": {}", o.trim()))
                    .unwrap_or_default();
                Err(format!("its image's HEALTHCHECK says {status}{last}"))
            }
            _ => {
                Err("its image has no HEALTHCHECK (platform.docker.healthcheck: image)".to_owned())
            }
        }
    }

    /// Creates and starts it from `body` (`None`: it runs already), copies its
    /// output to `output`, waits for it to exit and reports how it did.
    async fn run(
        self,
        body: Option<ContainerCreateBody>,
        output: Output,
        exit: watch::Sender<Option<String>>,
    ) {
        let status = match self.start(body).await {
            Ok(tail) => {
                let logs = tokio::spawn(capture_output(
                    self.inner.docker.clone(),
                    self.inner.name.clone(),
                    output,
                    tail,
                ));
                // Reported as soon as it is known and the output is in the log
                // (which the daemon ends when the container stops), so that the
                // exit, rather than the failed health checks it causes, is what
                // the release's problem says.
                let (status, _) =
                    tokio::join!(self.wait(), tokio::time::timeout(LOG_FLUSH_WAIT, logs));
                status
            }
            Err(status) => status,
        };
        tracing::debug!(container = %self.inner.name, "container exited: {status}");
        let _ = exit.send(Some(status));
    }

    /// Creates and starts it, unless signalled before; returns which of its output
    /// to capture (`all`, or only what comes next for one that ran already).
    async fn start(&self, body: Option<ContainerCreateBody>) -> Result<&'static str, String> {
        let docker = &self.inner.docker;
        let name = self.inner.name.as_str();
        let Some(body) = body else {
            return Ok("0");
        };
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| format!("could not be created: {}", daemon_message(&e)))?;
        self.inner.created.store(true, Ordering::SeqCst);
        if self.pending_signal().is_some() {
            return Err("stopped before it was started".to_owned());
        }
        docker
            .start_container(name, None)
            .await
            .map_err(|e| format!("could not be started: {}", daemon_message(&e)))?;
        if let Some(signal) = self.pending_signal() {
            self.kill(signal).await;
        }
        Ok("all")
    }

    fn pending_signal(&self) -> Option<Signal> {
        *self
            .inner
            .signalled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for it to exit; its exit code, whether it was OOM-killed, and the
    /// daemon's error, in words.
    async fn wait(&self) -> String {
        let docker = &self.inner.docker;
        let name = self.inner.name.as_str();
        // A non-zero exit comes as an error, and is inspected below like any other.
        let waited = docker
            .wait_container(name, None::<WaitContainerOptions>)
            .next()
            .await;
        if let Some(Err(e)) = &waited
            && !matches!(e, bollard::errors::Error::DockerContainerWaitError { .. })
        {
            return format!(
                "exit status unknown: lost sight of it: {}",
                daemon_message(e)
            );
        }
        match docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(inspect) => {
                let state = inspect.state.unwrap_or_default();
                exit_status(state.exit_code, state.oom_killed, state.error.as_deref())
            }
            Err(e) => format!("exit status unknown: {}", daemon_message(&e)),
        }
    }
}

/// `exit code 137 (OOM-killed)`, `exit code 1: <daemon error>`.
pub(crate) fn exit_status(
    code: Option<i64>,
    oom_killed: Option<bool>,
    error: Option<&str>,
) -> String {
    let mut status = match code {
        Some(code) => format!("exit code {code}"),
        None => "exit code unknown".to_owned(),
    };
    if oom_killed == Some(true) {
        status.push_str(" (OOM-killed: it ran out of platform.docker.memory)");
    }
    if let Some(error) = error.filter(|e| !e.is_empty()) {
        status.push_str(": ");
        status.push_str(error);
    }
    status
}

/// Copies the container's stdout and stderr, as the daemon keeps them, to
/// `output` through a [`LogWriter`] (which rotates before a write would take the
/// file past `logs.max_size`), until the container stops. `tail`: `all`, or `0`
/// for only what comes from now on.
async fn capture_output(docker: Docker, name: String, output: Output, tail: &'static str) {
    let path = output.path.display().to_string();
    let mut log = match LogWriter::open(output.path, output.spec) {
        Ok(log) => log,
        Err(e) => {
            tracing::warn!(container = %name, log = %path, "cannot open the log file: {e}");
            return;
        }
    };
    let options = LogsOptionsBuilder::new()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .tail(tail)
        .build();
    let mut chunks = docker.logs(&name, Some(options));
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(chunk) => {
                if let Err(e) = log.write_all(&chunk.into_bytes()) {
                    tracing::debug!(container = %name, log = %path, "could not write its output: {e}");
                }
            }
            Err(e) => {
                tracing::debug!(container = %name, "stopped following its output: {e}");
                return;
            }
        }
    }
}

/// Whether the daemon said there is no such thing (container, image).
pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The daemon's own message when it sent one, else the error.
pub(crate) fn daemon_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_names_the_code_the_oom_kill_and_the_error() {
        assert_eq!(exit_status(Some(0), Some(false), Some("")), "exit code 0");
        assert_eq!(
            exit_status(Some(137), Some(true), None),
            "exit code 137 (OOM-killed: it ran out of platform.docker.memory)"
        );
        assert_eq!(
            exit_status(Some(127), None, Some("exec: \"/nope\": not found")),
            "exit code 127: exec: \"/nope\": not found"
        );
    }

    #[test]
    fn container_names_are_unique_and_valid() {
        let a = container_name("shop", "v1.baseline", 0);
        let b = container_name("shop", "v1.baseline", 0);
        assert_ne!(a, b);
        assert!(a.starts_with("cutover-shop-v1.baseline-0-"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
            "{a}"
        );
    }
}
