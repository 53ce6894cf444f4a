//! Taking over what a previous daemon left: adopting the releases that still run,
//! resuming its unfinished run from the record, or reverting it when that cannot
//! be done.

use std::sync::Arc;

use cutover_store::{NewRun, Outcome, StoreError};
use tracing::{info, warn};

use crate::engine::{Engine, EngineError, RunConfig, Serving, lock};
use crate::events::now_ms;
use crate::platform::{Platform, ReleaseSpec};
use crate::state::{Route, RunState};
use crate::strategy::Observation;

impl Engine {
    /// Takes over what a previous daemon left. The releases it recorded are
    /// adopted where they still run (not restarted); a run it left unfinished
    /// resumes where it was, with its own recorded config. What cannot be
    /// adopted is started again (the stable version) or given up (the run then
    /// reverts to the stable version and says why); everything else the old
    /// daemon started is stopped.
    ///
    /// # Errors
    /// Only when the store cannot be read or written; a stable version that fails
    /// to start again is logged and leaves the app without a stable version.
    pub async fn recover(&self) -> Result<(), EngineError> {
        let inner = &self.inner;
        let app = inner.app();
        let platform = inner.platform();
        let serving: Serving = inner.store.serving(&app)?.unwrap_or_default();
        let mut unfinished = inner.store.unfinished_runs(&app)?;
        let last = unfinished.pop();
        for run in unfinished {
            self.settle(&run.id, &run.version, "a later run started after it")?;
        }
        let mut resumed = false;
        if let Some(run) = last {
            resumed = self.resume(&run).await?;
        }
        if !resumed {
            let stable = match serving.stable {
                Some(stable) => Some(stable),
                // A store from before releases were recorded: the last promoted version.
                None => inner
                    .store
                    .promoted_versions(&app, 1)?
                    .first()
                    .map(|v| ReleaseSpec {
                        name: v.clone(),
                        version: v.clone(),
                        instances: platform.instances(),
                    }),
            };
            if let Some(stable) = stable
                && !lock(&inner.releases).contains_key(&stable.name)
            {
                self.serve_stable(&platform, stable).await;
            }
            inner.record_serving();
        }
        for line in platform.stop_unadopted().await {
            info!("stopped what the previous daemon left: {line}");
        }
        Ok(())
    }

    /// Adopts (or else starts) `stable` and gives it all traffic.
    async fn serve_stable(&self, platform: &Arc<dyn Platform>, stable: ReleaseSpec) {
        let inner = &self.inner;
        let release = match platform.adopt(&stable).await {
            Ok(Some(release)) => {
                info!(release = %stable.name, "adopted the stable version, still running");
                Some(release)
            }
            Ok(None) | Err(_) => {
                info!(release = %stable.name, "starting the stable version again");
                match platform.start(&stable).await {
                    Ok(release) => Some(release),
                    Err(e) => {
                        warn!(release = %stable.name, error = %e, "could not start the stable version again");
                        None
                    }
                }
            }
        };
        if let Some(release) = release {
            inner.adopt_release(release);
            inner.set_routes(Route::stable_only(&stable), None);
        }
    }

    /// Ends a run a previous daemon left, as aborted, saying why.
    fn settle(&self, run_id: &str, version: &str, why: &str) -> Result<(), EngineError> {
        let reason = format!("the daemon stopped while this run was in progress; {why}");
        warn!(run = %run_id, "settling a run interrupted by a daemon stop");
        let message = format!("{version} aborted: {reason}");
        self.inner
            .store
            .finish_run(run_id, now_ms(), Outcome::Aborted, &reason, &message, None)?;
        self.inner.write_receipts(run_id);
        Ok(())
    }

    /// Resumes a run a previous daemon left: true if it goes on, false if it was
    /// settled (and the stable version still needs serving).
    async fn resume(&self, run: &cutover_store::RunRecord) -> Result<bool, EngineError> {
        let inner = &self.inner;
        let state: Option<RunState> = match inner.store.state(&run.id) {
            Ok(state) => state,
            // Written by another version of cutover: not resumable, but settled.
            Err(StoreError::Decode(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let config = inner
            .store
            .run_config(&run.id)?
            .as_deref()
            .and_then(RunConfig::recorded);
        let (Some(state), Some(config)) = (state, config) else {
            self.settle(
                &run.id,
                &run.version,
                "its state could not be read back, so it was not resumed",
            )?;
            return Ok(false);
        };
        // Adopted through the daemon's own platform, which holds what the previous
        // daemon left; the run goes on with the platform of its recorded config.
        let adopting = inner.platform();
        let platform = inner.platforms.platform_for_run(&config.config, &run.id);
        let mut state = state;
        let mut missing = Vec::new();
        let wanted: Vec<ReleaseSpec> = state
            .stable
            .iter()
            .chain(&state.releases)
            .cloned()
            .collect();
        for spec in &wanted {
            let adopted = if spec.instances == 0 {
                // Nothing of it runs by design (a rolling update replaced it all):
                // an empty release, to be grown again if the run goes back.
                platform.start(spec).await.map(Some)
            } else {
                adopting.adopt(spec).await
            };
            match adopted {
                Ok(Some(release)) => inner.adopt_release(release),
                Ok(None) => missing.push((spec.name.clone(), "nothing of it was left".to_owned())),
                Err(e) => missing.push((spec.name.clone(), crate::events::error_chain(&e))),
            }
        }
        let promoting_lost = state
            .decision
            .as_ref()
            .is_some_and(|d| d.outcome == Outcome::Promoted)
            && missing.iter().any(|(name, _)| *name == run.version);
        if !missing.is_empty() && state.decision.is_some() && !promoting_lost {
            // The run had decided: what is gone was on its way out anyway.
            let gone: Vec<&str> = missing.iter().map(|(name, _)| name.as_str()).collect();
            warn!(run = %run.id, gone = ?gone, "releases the decided run was retiring are gone already");
            state.releases.retain(|r| !gone.contains(&r.name.as_str()));
            state.routes.retain(|r| !gone.contains(&r.release.as_str()));
            if state
                .stable
                .as_ref()
                .is_some_and(|s| gone.contains(&s.name.as_str()))
            {
                state.stable = None;
            }
        } else if !missing.is_empty() {
            let missing: Vec<String> = missing
                .iter()
                .map(|(name, why)| format!("{name} ({why})"))
                .collect();
            self.revert(run, &state, &adopting, &missing.join(", "))
                .await?;
            return Ok(false);
        }
        info!(run = %run.id, phase = %state.phase, "resuming the run the previous daemon left");
        // Routed before `recover` returns, so the daemon answers no client before
        // the run's traffic is as it was.
        let cookie = state
            .sticky
            .then(|| crate::routing::sticky_cookie(&config.config.app));
        inner.set_routes(state.routes.clone(), cookie);
        let new_run = NewRun {
            id: run.id.clone(),
            app: run.app.clone(),
            version: run.version.clone(),
            stable: run.stable.clone(),
            kind: run.kind,
            started_at_ms: run.started_at_ms,
            config: config.record(),
        };
        *lock(&inner.current) = (Arc::new(config.clone()), platform.clone());
        let mut active = lock(&inner.active);
        self.spawn(
            &mut active,
            new_run,
            Arc::new(config),
            platform,
            state,
            true,
            Observation::Resumed,
        );
        Ok(true)
    }

    /// A run that cannot go on after a restart: the stable version is served
    /// (adopted, or started again) before anything else is stopped, then the
    /// run's releases are retired and the run is settled, saying why.
    async fn revert(
        &self,
        run: &cutover_store::RunRecord,
        state: &RunState,
        adopting: &Arc<dyn Platform>,
        missing: &str,
    ) -> Result<(), EngineError> {
        let inner = &self.inner;
        let running = |name: &str| lock(&inner.releases).contains_key(name);
        let mut keep = None;
        if let Some(stable) = &state.stable {
            if running(&stable.name) && stable.instances > 0 {
                inner.set_routes(Route::stable_only(stable), None);
            } else {
                let mut stable = stable.clone();
                stable.instances = stable.instances.max(adopting.instances());
                self.serve_stable(adopting, stable).await;
            }
            keep = running(&stable.name).then(|| stable.name.clone());
        }
        if keep.is_none()
            && let Some(new) = state.releases.iter().find(|r| running(&r.name))
        {
            // Nothing else can serve: the run's own version, adopted, does.
            inner.set_routes(Route::stable_only(new), None);
            keep = Some(new.name.clone());
        }
        let serving = inner.stable_version();
        let timeout = adopting.drain_timeout();
        for release in &state.releases {
            if Some(&release.name) != keep.as_ref() {
                inner.retire(&release.name, timeout).await;
            }
        }
        self.settle(
            &run.id,
            &run.version,
            &format!(
                "on restart {missing} could not be adopted, so the run was reverted to {}",
                serving.as_deref().unwrap_or("nothing")
            ),
        )?;
        inner.record_serving();
        Ok(())
    }
}
