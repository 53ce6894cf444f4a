//! Releases as containers of a Docker daemon, through its Engine API:
//! [`DockerPlatform`].
//!
//! A container is to this crate what a process is (see `process`): each instance
//! runs one, created from the release's image with the configured command,
//! environment, network and limits, and labelled with this state directory's
//! identity, the daemon process, the app, the release, version and instance (see
//! `labels`). Health checks, supervision (restarts with a backoff while serving),
//! startup timeouts, growing, shrinking and stopping are the same code as for
//! processes ([`SupervisedRelease`]); stopping sends SIGTERM, then SIGKILL after
//! `platform.docker.stop_grace`, then removes the container. Its output goes to the
//! same per-instance log file a process writes to, through a
//! [`LogWriter`](crate::LogWriter) that keeps it within `logs:`.
//!
//! After a restart of cutover's daemon, the containers an earlier one left running
//! are found by their labels: those of a release the engine still wants are
//! adopted ([`Platform::adopt`]), the rest removed ([`Platform::stop_unadopted`]).
//! A container without this state directory's labels is never touched.

mod adopt;
mod container;
mod daemon;
mod labels;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use cutover_engine::platform::{Platform, PlatformError, Release, ReleaseSpec};
use cutover_spec::{DockerSpec, HealthCheck, LogsSpec};

pub(crate) use container::{Container, ContainerLauncher, Output};

use crate::instance::RestartPolicy;
use crate::process::{self, Launcher, Runs, substitute};
use crate::release::SupervisedRelease;

/// Runs releases as containers of the Docker daemon `platform.docker.host` names,
/// each instance reachable on a free port of 127.0.0.1, health-checked with
/// `health` (or by its image's `HEALTHCHECK`). Clones share the connection and
/// what was adopted.
#[derive(Debug, Clone)]
pub struct DockerPlatform {
    spec: DockerSpec,
    health: HealthCheck,
    log_dir: PathBuf,
    /// How the containers' log files are kept (`logs:`).
    logs: LogsSpec,
    /// The run whose containers these are (`None`: started outside any run).
    run: Option<String>,
    state_dir: PathBuf,
    app: String,
    /// Known once the state directory's identity has been read (or made).
    labels: Arc<OnceLock<labels::Labels>>,
    restart: RestartPolicy,
    /// Connected on first use: a daemon that is down when cutover starts is an
    /// error of the first release, not of the daemon's own start.
    docker: Arc<tokio::sync::Mutex<Option<Docker>>>,
    /// Names of the containers an earlier daemon left and this one adopted.
    adopted: Arc<Mutex<Vec<String>>>,
}

impl DockerPlatform {
    /// A platform for `app`, whose containers are told apart from other installs'
    /// by an identity kept in `state_dir` (made on first use); each container's
    /// output goes to `<state_dir>/logs/<release>-<index>.log`, as a local
    /// process's does. Nothing is asked of the Docker daemon until a release is
    /// started or adopted.
    pub fn new(
        spec: DockerSpec,
        health: HealthCheck,
        app: &str,
        state_dir: &Path,
    ) -> DockerPlatform {
        DockerPlatform {
            spec,
            health,
            log_dir: state_dir.join("logs"),
            logs: LogsSpec::default(),
            run: None,
            state_dir: state_dir.to_owned(),
            app: app.to_owned(),
            labels: Arc::default(),
            restart: RestartPolicy::default(),
            docker: Arc::default(),
            adopted: Arc::default(),
        }
    }

    /// Each container's output goes to `dir/<release>-<index>.log` instead (the
    /// folder of the run that starts it), kept within `logs` as it is written.
    pub fn with_logs(mut self, dir: std::path::PathBuf, logs: LogsSpec) -> DockerPlatform {
        self.log_dir = dir;
        self.logs = logs;
        self
    }

    /// Its containers are started for the run `run` (their `cutover.run` label).
    pub fn with_run(mut self, run: &str) -> DockerPlatform {
        self.run = Some(run.to_owned());
        self
    }

    /// The waits between restarts of an instance.
    pub fn with_restart_backoff(mut self, first: Duration, max: Duration) -> DockerPlatform {
        self.restart.first = first;
        self.restart.max = max;
        self
    }

    /// Where instance `index` of the release `name` writes its output.
    pub fn log_path(&self, name: &str, index: u32) -> PathBuf {
        process::log_path(&self.log_dir, name, index)
    }

    /// Where instance `index` of the release `name` writes its output, and how.
    fn output(&self, name: &str, index: u32) -> Output {
        Output {
            path: self.log_path(name, index),
            spec: self.logs,
        }
    }

    /// The labels that mark containers as this state directory's and app's.
    fn labels(&self) -> Result<labels::Labels, String> {
        if let Some(labels) = self.labels.get() {
            return Ok(labels.clone());
        }
        let state = labels::state_identity(&self.state_dir).map_err(|e| {
            format!(
                "cannot keep the identity that marks this install's containers in {}: {e}",
                self.state_dir.display()
            )
        })?;
        let labels = labels::Labels {
            state,
            app: self.app.clone(),
        };
        Ok(self.labels.get_or_init(|| labels).clone())
    }

    fn adopted(&self) -> MutexGuard<'_, Vec<String>> {
        self.adopted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection to the daemon, made now if not yet.
    async fn docker(&self) -> Result<Docker, String> {
        let mut docker = self.docker.lock().await;
        if let Some(docker) = &*docker {
            return Ok(docker.clone());
        }
        let connected = daemon::connect(&self.spec).await?;
        *docker = Some(connected.clone());
        Ok(connected)
    }

    /// A release of `spec`, with no instance yet, once the daemon answers and has
    /// its image.
    ///
    /// # Errors
    /// [`PlatformError::Spawn`], saying which setting to fix.
    async fn release(&self, spec: &ReleaseSpec) -> Result<SupervisedRelease, PlatformError> {
        let fail = |message: String| PlatformError::Spawn {
            version: spec.name.clone(),
            instance: 0,
            message,
        };
        let labels = self.labels().map_err(fail)?;
        let docker = self.docker().await.map_err(fail)?;
        let image = substitute(&self.spec.image, "", &spec.version);
        daemon::ensure_image(&docker, &self.spec, &image)
            .await
            .map_err(fail)?;
        daemon::ensure_network(&docker, &self.spec)
            .await
            .map_err(fail)?;
        let containers = ContainerLauncher {
            spec: self.spec.clone(),
            docker,
            image,
            labels,
            logs: self.logs,
            run: self
                .run
                .clone()
                .unwrap_or_else(|| crate::log_files::OUTSIDE_RUNS.to_owned()),
        };
        let runs = Runs::Containers(Arc::new(containers));
        let launcher = Launcher::new(runs, self.log_dir.clone(), spec);
        Ok(
            SupervisedRelease::new(Arc::new(launcher), self.health.clone(), self.restart)
                .with_stop_grace(self.spec.stop_grace),
        )
    }
}

#[async_trait]
impl Platform for DockerPlatform {
    fn instances(&self) -> u32 {
        self.spec.instances
    }

    fn drain_timeout(&self) -> Duration {
        self.spec.drain_timeout
    }

    async fn start(&self, spec: &ReleaseSpec) -> Result<Box<dyn Release>, PlatformError> {
        let mut release = self.release(spec).await?;
        // On error the release is empty again, and dropping it is all there is to do.
        release.bring_up(&[], spec.instances).await?;
        tracing::info!(release = %spec.name, version = %spec.version, instances = spec.instances, "release ready");
        Ok(Box::new(release))
    }

    async fn adopt(&self, spec: &ReleaseSpec) -> Result<Option<Box<dyn Release>>, PlatformError> {
        let release = self.adopt_release(spec).await?;
        Ok(release.map(|r| Box::new(r) as Box<dyn Release>))
    }

    async fn stop_unadopted(&self) -> Vec<String> {
        self.remove_leftovers().await
    }
}
