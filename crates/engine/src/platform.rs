//! What the engine needs from wherever versions run: start a release of a version,
//! know which of its instances are ready, grow and shrink it a few instances at a
//! time, take over what an earlier daemon left running, and stop it.
//! `cutover-platform` implements it for local processes; tests implement it in
//! memory.
//!
//! A *release* is a set of instances of one version, under a name unique among the
//! releases the engine runs: usually the version itself, `v1.baseline` for a fresh
//! baseline of the stable version running beside it. Platforms key everything they
//! keep per release (logs, records of what runs) by that name, never by the version.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What to start: `instances` instances of `version`, under `name`, unique among
/// the releases the engine runs (usually the version itself; `v1.baseline` for a
/// fresh baseline of the stable version beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSpec {
    /// Names the release on the platform: its logs, its records, its messages.
    pub name: String,
    /// What runs: `${VERSION}` in the platform's command, `VERSION` in its environment.
    pub version: String,
    /// How many instances to start.
    pub instances: u32,
}

/// Why a release could not be started, grown, or taken over.
///
/// `version` in the variants is the release's name: its version, unless it runs
/// beside it under another name (`v1.baseline`).
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
    /// Instances of the release were still running and were taken over, but the
    /// release could not be brought to its full count of healthy instances; every
    /// instance of it, taken over or started, has been stopped.
    #[error(
        "could not take over release {release} ({adopted} instance(s) still running): {source}"
    )]
    Adoption {
        release: String,
        /// How many instances were found running and taken over.
        adopted: u32,
        #[source]
        source: Box<PlatformError>,
    },
    /// The release has been stopped: nothing more can be started in it.
    #[error("release {release} has been stopped; start a new one")]
    Stopped { release: String },
}

/// The live state of a release, as the platform sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReleaseHealth {
    /// Addresses of the instances that currently pass their health check, sorted.
    pub ready: Vec<SocketAddr>,
    /// Set once an instance has exited or turned unhealthy after the release was
    /// ready: the first such problem, in words (`instance 0 (pid 4242) exited: exit status: 1`).
    pub problem: Option<String>,
}

/// Starts releases, and takes over those an earlier daemon left running.
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
    /// startup timeout.
    ///
    /// # Guarantees
    /// Whatever was started is stopped again before an error is returned, and when
    /// the returned future is dropped before it completes.
    async fn start(&self, spec: &ReleaseSpec) -> Result<Box<dyn Release>, PlatformError>;

    /// Takes over the release `spec.name` that an earlier daemon started, if any of
    /// its instances still run: they are health-checked and supervised from now on,
    /// as if started here. `Ok(None)` when nothing of it is left.
    ///
    /// An instance that is still running but not healthy within the startup timeout
    /// is stopped and restarted (it is part of the release). When fewer instances
    /// than `spec.instances` are left, the missing ones are started; instances
    /// beyond `spec.instances`, and any that run something else than `spec` would
    /// (another version, another command), are not taken over.
    ///
    /// # Errors
    /// [`PlatformError::Adoption`] when the release cannot be brought to
    /// `spec.instances` healthy instances.
    ///
    /// # Guarantees
    /// On `Ok(Some(_))` the release runs `spec.instances` healthy instances. On an
    /// error nothing of the release runs any more, taken over or started. What was
    /// not taken over is left for [`Platform::stop_unadopted`].
    async fn adopt(&self, spec: &ReleaseSpec) -> Result<Option<Box<dyn Release>>, PlatformError>;

    /// Stops everything an earlier daemon started that was not adopted. Called
    /// once, after every [`Platform::adopt`]; returns a line per stopped thing, for
    /// the log.
    ///
    /// # Guarantees
    /// Never stops anything that merely reuses an identifier of what the earlier
    /// daemon started (a pid, a container name). Once it has run, `adopt` finds
    /// nothing more.
    async fn stop_unadopted(&self) -> Vec<String>;
}

/// A started (or adopted) release: some instances of one version.
#[async_trait]
pub trait Release: Send + Sync {
    /// The name it was started under ([`ReleaseSpec::name`]).
    fn name(&self) -> &str;

    /// The version it runs.
    fn version(&self) -> &str;

    /// Follows the release's health for as long as it runs.
    fn health(&self) -> watch::Receiver<ReleaseHealth>;

    /// Process ids or other platform handles, for people reading a status.
    fn describe(&self) -> Vec<String>;

    /// Starts `n` more instances and returns once they are healthy; they then join
    /// `ready`, and are supervised like the others.
    ///
    /// # Errors
    /// When a new instance cannot be spawned, exits, or is not healthy within the
    /// startup timeout; [`PlatformError::Stopped`] once the release was stopped.
    ///
    /// # Guarantees
    /// On error, and when the future is dropped before it completes, the new
    /// instances are stopped again and the others are untouched.
    async fn add_instances(&mut self, n: u32) -> Result<(), PlatformError>;

    /// Takes `n` instances out of the release (unready ones first, then the
    /// newest), or all of them when it has fewer: they leave `ready` at once, are
    /// no longer restarted, and keep running until [`Release::stop_detached`], so
    /// the caller can drain them first. Returns their addresses.
    fn detach(&mut self, n: u32) -> Vec<SocketAddr>;

    /// Stops every detached instance: a polite signal first, then force after `grace`.
    ///
    /// # Guarantees
    /// When it returns, no detached instance runs; the others are untouched.
    async fn stop_detached(&mut self, grace: Duration);

    /// The instances it runs now (detached ones not counted).
    fn instance_count(&self) -> u32;

    /// Stops every instance, detached ones included: a polite signal first, then
    /// force after `grace`.
    ///
    /// # Guarantees
    /// Idempotent; when it returns, nothing of this release runs.
    async fn stop(&mut self, grace: Duration);
}
