//! The other environments of the config (`environments:`), as a run's `staging`
//! and `smoke` stages see them: each is served by a daemon of its own, which is
//! asked to deploy the version and then watched until its run ends. The daemon
//! implements this over the other daemon's HTTP API; the engine's tests with a
//! fake environment of their own.

use async_trait::async_trait;
use cutover_api::Outcome;
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

/// The daemons of the other environments.
///
/// # Errors
/// Each method's `Err` says, in words for the receipt, why the environment could
/// not be asked (no daemon serves it, it refused, it did not answer).
#[async_trait]
pub trait Environments: Send + Sync + 'static {
    /// Asks `env`'s daemon to deploy `version` as the staging of the run
    /// `staged_for` (`ENVIRONMENT/RUN-ID`).
    async fn deploy(
        &self,
        env: &EnvironmentSpec,
        version: &str,
        staged_for: &str,
    ) -> Result<Staged, String>;

    /// How the run `run_id` of `env` stands.
    async fn run(&self, env: &EnvironmentSpec, run_id: &str) -> Result<StagedRun, String>;

    /// The base URL `env`'s clients reach it at, like `http://127.0.0.1:9080`.
    async fn url(&self, env: &EnvironmentSpec) -> Result<String, String>;
}
