//! What the engine needs from wherever versions run: start one, know which of its
//! instances are ready, and stop it. `cutover-platform` implements it for local
//! processes; tests implement it in memory.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

/// Why a version could not be started or stopped serving.
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
}

/// The live state of a started version, as the platform sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReleaseHealth {
    /// Addresses of the instances that currently pass their health check.
    pub ready: Vec<SocketAddr>,
    /// Set once an instance has exited or turned unhealthy after the version was
    /// ready: the first such problem, in words (`instance 0 (pid 4242) exited: exit status: 1`).
    pub problem: Option<String>,
}

/// Starts versions.
#[async_trait]
pub trait Platform: Send + Sync + 'static {
    /// Starts every instance of `version` and returns once all are healthy.
    ///
    /// # Errors
    /// When an instance cannot be spawned, exits, or is not healthy within the
    /// startup timeout. Whatever was started is stopped again before returning.
    async fn start(&self, version: &str) -> Result<Box<dyn Release>, PlatformError>;
}

/// A started version.
#[async_trait]
pub trait Release: Send + Sync {
    fn version(&self) -> &str;
    /// Follows the version's health for as long as it runs.
    fn health(&self) -> watch::Receiver<ReleaseHealth>;
    /// Process ids or other platform handles, for people reading a status.
    fn describe(&self) -> Vec<String>;
    /// Stops every instance: a polite signal first, then force after `grace`.
    ///
    /// # Guarantees
    /// Idempotent; when it returns, no process of this version is left running.
    async fn stop(&mut self, grace: Duration);
}
