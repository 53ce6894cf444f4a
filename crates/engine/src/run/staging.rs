//! The stages that go through the environment before this one (STAGING and
//! VALIDATE): `staging` asks that environment's daemon to deploy the version and
//! watches its run until it ends, `smoke` runs the smoke tests against it and
//! writes `smoke-test-results.md` (and `.json`). Either one failing stops this run
//! before anything here starts: this environment's traffic never moves.
//!
//! The run begun there is recorded as soon as it is known, so a restarted daemon
//! watches it again rather than begin a second one. An abort here leaves that run
//! to go on there: it is that environment's to finish.

use std::sync::Arc;
use std::time::Duration;

use cutover_api::{Outcome, Stage, StageStatus};
use cutover_pipeline::smoke::{self, SmokeContext};
use cutover_spec::EnvironmentSpec;
use tokio::time::Instant;
use tracing::warn;

use super::Runner;
use super::commands::write;
use super::stages::StageEnd;
use crate::engine::EngineError;
use crate::environments::{EnvironmentError, Staged};

/// How often the run in the environment before this one is asked how it stands.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// How long that environment's daemon may go unanswered (a restart of it) before
/// the stage gives up on it.
const UNANSWERED_LIMIT: Duration = Duration::from_secs(60);

impl Runner {
    /// `summary` as a pass, unless the deployment window closed while the run
    /// waited for the environment before this one: then the run stops blocked.
    fn passed_if_still_open(&self, summary: String) -> StageEnd {
        match self.window_closed_meanwhile() {
            Some(closed) => StageEnd::stop(Outcome::Blocked, format!("{summary}, but {closed}")),
            None => StageEnd::Passed(summary),
        }
    }

    /// This environment's name, for the receipts.
    fn here(&self) -> String {
        self.config
            .config
            .environment
            .clone()
            .unwrap_or_else(|| "this environment".to_owned())
    }

    fn earlier(&self) -> Option<EnvironmentSpec> {
        self.config.config.earlier_environment().cloned()
    }

    /// Deploys the version to the environment before this one and waits until its
    /// run there ends: promoted passes; anything else stops this run, blocked.
    pub(super) async fn deploy_earlier(&mut self) -> Result<StageEnd, EngineError> {
        let Some(env) = self.earlier() else {
            return Ok(StageEnd::Passed("no environment before this one".into()));
        };
        let version = self.run.version.clone();
        let here = self.here();
        let run_id = match self.state.pipeline.staged_run.clone() {
            Some(run_id) => run_id,
            None => {
                let staged_for = format!("{here}/{}", self.run.id);
                let environments = Arc::clone(&self.inner.environments);
                let deploy_type = self.state.pipeline.options.deploy_type;
                let asked = environments.deploy(&env, &version, deploy_type, &staged_for);
                let doing = format!("asking `{}` to deploy {version}", env.name);
                match self.until_aborted(asked, &doing).await {
                    Err(halt) => return StageEnd::halted(halt),
                    Ok(Err(why)) => {
                        return Ok(StageEnd::stop(
                            Outcome::Blocked,
                            format!(
                                "could not deploy {version} to `{}`: {why}; nothing was started in `{here}`",
                                env.name
                            ),
                        ));
                    }
                    Ok(Ok(Staged::AlreadyServing)) => {
                        return Ok(self.passed_if_still_open(format!(
                            "`{}` serves {version} already",
                            env.name
                        )));
                    }
                    Ok(Ok(Staged::Started { run_id })) => {
                        self.state.pipeline.staged_run = Some(run_id.clone());
                        self.persist()?;
                        run_id
                    }
                }
            }
        };
        self.stage_event(
            Stage::Staging,
            StageStatus::Running,
            format!("deploying {version} to `{}`: its run {run_id}", env.name),
        )?;
        self.watch_earlier(&env, &run_id).await
    }

    /// Asks how the run `run_id` of `env` stands until it ends.
    async fn watch_earlier(
        &mut self,
        env: &EnvironmentSpec,
        run_id: &str,
    ) -> Result<StageEnd, EngineError> {
        let (version, here) = (self.run.version.clone(), self.here());
        let doing = format!(
            "waiting for the deploy to `{}` (its run {run_id} goes on there)",
            env.name
        );
        let mut answered = Instant::now();
        loop {
            let environments = Arc::clone(&self.inner.environments);
            match self
                .until_aborted(environments.run(env, run_id), &doing)
                .await
            {
                Err(halt) => return StageEnd::halted(halt),
                Ok(Ok(staged)) => {
                    answered = Instant::now();
                    match staged.outcome {
                        None => {}
                        Some(Outcome::Promoted) => {
                            return Ok(self.passed_if_still_open(format!(
                                "{version} promoted in `{}` (its run {run_id})",
                                env.name
                            )));
                        }
                        Some(outcome) => {
                            let reason = staged.reason.unwrap_or_default();
                            return Ok(StageEnd::stop(
                                Outcome::Blocked,
                                format!(
                                    "the deploy to `{}` ended {}: {reason} (its run {run_id}); \
                                     nothing was started in `{here}`",
                                    env.name,
                                    outcome.as_str()
                                ),
                            ));
                        }
                    }
                }
                Ok(Err(EnvironmentError::Refused(why))) => {
                    return Ok(StageEnd::stop(
                        Outcome::Blocked,
                        format!(
                            "`{}` would not say how its run {run_id} stands: {why}; nothing was \
                             started in `{here}`",
                            env.name
                        ),
                    ));
                }
                Ok(Err(EnvironmentError::Unreachable(why)))
                    if answered.elapsed() >= UNANSWERED_LIMIT =>
                {
                    return Ok(StageEnd::stop(
                        Outcome::Blocked,
                        format!(
                            "lost touch with `{}` for {}s while its run {run_id} deployed {version}: \
                             {why}; nothing was started in `{here}`",
                            env.name,
                            UNANSWERED_LIMIT.as_secs()
                        ),
                    ));
                }
                Ok(Err(EnvironmentError::Unreachable(why))) => {
                    warn!(env = %env.name, run = run_id, error = %why, "no answer from the environment's daemon; asking again");
                }
            }
            match self.wait(Instant::now() + WATCH_EVERY, &doing).await {
                Ok(_) => {}
                Err(halt) => return StageEnd::halted(halt),
            }
        }
    }

    /// The smoke tests against the environment before this one, all of them;
    /// any failure stops this run, blocked.
    pub(super) async fn smoke_test(&mut self) -> Result<StageEnd, EngineError> {
        let Some(env) = self.earlier() else {
            return Ok(StageEnd::Passed("no environment before this one".into()));
        };
        let here = self.here();
        let environments = Arc::clone(&self.inner.environments);
        let doing = format!("smoke testing `{}`", env.name);
        let url = match self.until_aborted(environments.url(&env), &doing).await {
            Err(halt) => return StageEnd::halted(halt),
            Ok(Err(why)) => {
                return Ok(StageEnd::stop(
                    Outcome::Blocked,
                    format!(
                        "could not find where `{}` serves, to smoke test it: {why}; nothing was \
                         started in `{here}`",
                        env.name
                    ),
                ));
            }
            Ok(Ok(url)) => url,
        };
        let dir = self.receipts_dir();
        let context = SmokeContext {
            url: &url,
            env: &env.name,
            dir: &dir,
        };
        let report = match self
            .until_aborted(smoke::run(&env.smoke, &context), &doing)
            .await
        {
            Ok(report) => report,
            Err(halt) => return StageEnd::halted(halt),
        };
        write(&dir, "smoke-test-results.md", &report.to_markdown());
        match serde_json::to_string_pretty(&report) {
            Ok(json) => write(&dir, "smoke-test-results.json", &json),
            Err(e) => warn!(error = %e, "could not encode smoke-test-results.json"),
        }
        let failed: Vec<&str> = report
            .tests
            .iter()
            .filter(|t| !t.passed)
            .map(|t| t.name.as_str())
            .collect();
        let total = report.tests.len();
        if failed.is_empty() {
            return Ok(self.passed_if_still_open(format!(
                "{total} smoke test(s) passed on `{}` ({url})",
                env.name
            )));
        }
        Ok(StageEnd::stop(
            Outcome::Blocked,
            format!(
                "{} of {total} smoke test(s) failed on `{}` ({url}): {}; nothing was started in \
                 `{here}` (smoke-test-results.md)",
                failed.len(),
                env.name,
                failed.join(", ")
            ),
        ))
    }
}
