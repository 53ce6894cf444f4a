//! Releases as child processes of the daemon, each instance in a process group of
//! its own, on a port picked for it and health-checked over HTTP: [`LocalPlatform`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use cutover_engine::platform::{Platform, PlatformError, Release, ReleaseSpec};
use cutover_spec::{HealthCheck, LocalSpec};

use crate::instance::RestartPolicy;
use crate::leftovers::Leftovers;
use crate::process::{self, Launcher, Runs};
use crate::release::SupervisedRelease;

/// Runs releases as local processes, each instance on a free port of 127.0.0.1,
/// health-checked with `health`; takes over those an earlier daemon left running
/// when given its [`Leftovers`]. Clones share the leftovers.
#[derive(Debug, Clone)]
pub struct LocalPlatform {
    pub(crate) spec: LocalSpec,
    pub(crate) health: HealthCheck,
    log_dir: PathBuf,
    pub(crate) restart: RestartPolicy,
    /// What an earlier daemon left running and was neither adopted nor stopped yet.
    leftovers: Arc<Mutex<Leftovers>>,
}

impl LocalPlatform {
    /// `log_dir`: each instance's stdout+stderr go to `<log_dir>/<release>-<index>.log`
    /// (created, and appended to).
    pub fn new(spec: LocalSpec, health: HealthCheck, log_dir: PathBuf) -> LocalPlatform {
        LocalPlatform {
            spec,
            health,
            log_dir,
            restart: RestartPolicy::default(),
            leftovers: Arc::default(),
        }
    }

    /// What an earlier daemon left running, for [`Platform::adopt`] to take over and
    /// [`Platform::stop_unadopted`] to stop.
    pub fn with_leftovers(self, leftovers: Leftovers) -> LocalPlatform {
        *self.leftovers() = leftovers;
        self
    }

    /// The waits between restarts of an instance, shorter for tests.
    #[cfg(test)]
    pub(crate) fn with_restart_policy(mut self, restart: RestartPolicy) -> LocalPlatform {
        self.restart = restart;
        self
    }

    /// Where instance `index` of the release `name` writes its output.
    pub fn log_path(&self, name: &str, index: u32) -> PathBuf {
        process::log_path(&self.log_dir, name, index)
    }

    pub(crate) fn leftovers(&self) -> MutexGuard<'_, Leftovers> {
        self.leftovers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A release of `spec`, with no instance yet.
    pub(crate) fn release(&self, spec: &ReleaseSpec) -> SupervisedRelease {
        let runs = Runs::Processes(self.spec.clone());
        let launcher = Launcher::new(runs, self.log_dir.clone(), spec);
        SupervisedRelease::new(Arc::new(launcher), self.health.clone(), self.restart)
    }
}

#[async_trait]
impl Platform for LocalPlatform {
    fn instances(&self) -> u32 {
        self.spec.instances
    }

    fn drain_timeout(&self) -> Duration {
        self.spec.drain_timeout
    }

    async fn start(&self, spec: &ReleaseSpec) -> Result<Box<dyn Release>, PlatformError> {
        let mut release = self.release(spec);
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
        let leftovers = std::mem::take(&mut *self.leftovers());
        leftovers.stop().await
    }
}
