//! The other environments of the config (`environments:`), as a run's `staging`
//! and `smoke` stages see them: each is served by a daemon of its own, which is
//! asked to deploy the version and then watched until its run ends. The daemon
//! implements this over the other daemon's HTTP API; the engine's tests with a
//! fake environment of their own.

use async_trait::async_trait;
use cutover_api::{DeployType, Outcome};
use cutover_spec::EnvironmentSpec;

/// What became of a request to deploy in another environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staged {
    /// It began a run there, with this id.
    Started { run_id: String },
    /// That environment serves the version already: nothing to do there.
    AlreadyServing,
}

/// Where another environment's run is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRun {
    /// `None` while it goes on.
    pub outcome: Option<Outcome>,
    /// Why it ended the way it did.
    pub reason: Option<String>,
}

/// Why another environment's daemon could not be asked, in words for the receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvironmentError {
    /// No answer (no daemon serves it, it does not listen, it timed out): it may
    /// answer later, after a restart.
    #[error("{0}")]
    Unreachable(String),
    /// It answered no: asking again changes nothing.
    #[error("{0}")]
    Refused(String),
}

/// The daemons of the other environments.
#[async_trait]
pub trait Environments: Send + Sync + 'static {
    /// Asks `env`'s daemon to deploy `version` (a deploy of `deploy_type`) as the
    /// staging of the run `staged_for` (`ENVIRONMENT/RUN-ID`).
    async fn deploy(
        &self,
        env: &EnvironmentSpec,
        version: &str,
        deploy_type: DeployType,
        staged_for: &str,
    ) -> Result<Staged, EnvironmentError>;

    /// How the run `run_id` of `env` stands.
    async fn run(&self, env: &EnvironmentSpec, run_id: &str)
    -> Result<StagedRun, EnvironmentError>;

    /// The base URL `env`'s clients reach it at, like `http://127.0.0.1:9080`.
    async fn url(&self, env: &EnvironmentSpec) -> Result<String, EnvironmentError>;
}
