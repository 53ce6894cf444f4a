//! What the engine needs from wherever versions run: start a release, grow and
//! shrink it an instance at a time, know which instances are ready, stop it, and
//! take over what an earlier daemon started. `cutover-platform` implements it for
//! local processes; tests implement it in memory. The engine never learns which
//! platform it talks to.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Why a release could not be started, grown or adopted.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// An instance could not be spawned at all (bad command, missing binary, ...).
    #[error("could not start instance {instance} of version {version}: {message}")]
    Spawn {
        version: String,
        instance: u32,
        message: String,
    },
    /// An instance did not pass its health check within the startup timeout.
    #[error("version {version} did not become healthy within {timeout:?}: {last}")]
    StartupTimeout {
        version: String,
        timeout: Duration,
        last: String,
    },
    /// An instance exited while starting.
    #[error("version {version}: instance {instance} exited while starting: {status}")]
    ExitedDuringStartup {
        version: String,
        instance: u32,
        status: String,
    },
    /// What an earlier daemon left could not be taken over.
    #[error("could not adopt release {release}: {message}")]
    Adopt { release: String, message: String },
}

/// What to start: `instances` instances of `version`, under `name`, unique among
/// the releases the engine runs (the version itself, or `v1+baseline` for a fresh
/// baseline of the stable version beside it; `+` cannot be part of a version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSpec {
    pub name: String,
    pub version: String,
    pub instances: u32,
}

/// The live state of a started release, as the platform sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReleaseHealth {
    /// Addresses of the instances that currently pass their health check.
    pub ready: Vec<SocketAddr>,
    /// Set once an instance has exited or turned unhealthy after the release was
    /// ready: the first such problem, in words (`instance 0 (pid 4242) exited: exit status: 1`).
    pub problem: Option<String>,
}

/// Starts releases.
#[async_trait]
pub trait Platform: Send + Sync + 'static {
    /// How many instances a version runs with (the config's `instances`).
    fn instances(&self) -> u32;

    /// How long in-flight requests get before an instance is stopped.
    fn drain_timeout(&self) -> Duration;

    /// Starts every instance of `spec` and returns once all are healthy.
    ///
    /// # Errors
    /// When an instance cannot be spawned, exits, or is not healthy within the
    /// startup timeout. Whatever was started is stopped again before returning.
    async fn start(&self, spec: &ReleaseSpec) -> Result<Box<dyn Release>, PlatformError>;

    /// Takes over the release `spec.name` that an earlier daemon started, if any of
    /// its instances still run: they are health-checked and supervised from now
    /// on, as if started here, and missing instances are started. `Ok(None)` when
    /// nothing of it is left.
    ///
    /// # Errors
    /// When what is left cannot be made whole; what was adopted or started for it
    /// is stopped again before returning.
    async fn adopt(&self, spec: &ReleaseSpec) -> Result<Option<Box<dyn Release>>, PlatformError>;

    /// Stops everything an earlier daemon started that was not adopted. Called
    /// once, after every adoption. Returns a line per thing stopped, for the log.
    async fn stop_unadopted(&self) -> Vec<String>;
}

/// A started release.
#[async_trait]
pub trait Release: Send + Sync {
    fn name(&self) -> &str;
    fn version(&self) -> &str;
    /// Follows the release's health for as long as it runs.
    fn health(&self) -> watch::Receiver<ReleaseHealth>;
    /// Process ids or other platform handles, for people reading a status.
    fn describe(&self) -> Vec<String>;
    /// The instances it runs now (detached ones not counted).
    fn instance_count(&self) -> u32;

    /// Starts `n` more instances and returns once they are healthy (they then
    /// join `ready`).
    ///
    /// # Errors
    /// As [`Platform::start`]; the new instances are stopped again and the others
    /// are untouched.
    async fn add_instances(&mut self, n: u32) -> Result<(), PlatformError>;

    /// Takes `n` instances out of the release (unready ones first, then the
    /// newest): they leave `ready` at once and are no longer restarted, but keep
    /// running until [`Release::stop_detached`], so the caller can drain them
    /// first. Returns their addresses.
    fn detach(&mut self, n: u32) -> Vec<SocketAddr>;

    /// Stops every detached instance: a polite signal first, then force after `grace`.
    async fn stop_detached(&mut self, grace: Duration);

    /// Stops every instance: a polite signal first, then force after `grace`.
    ///
    /// # Guarantees
    /// Idempotent; when it returns, no instance of this release is left running.
    async fn stop(&mut self, grace: Duration);
}
