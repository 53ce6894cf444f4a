//! The stages around the rollout, as data: which a run has, in order, and how each
//! went. A run's pipeline is planned when it starts (from its config and what the
//! person asked for), kept in its state, and so resumed stage by stage after a
//! daemon restart; the executor runs the stages (`stages.rs`).
//!
//! Before the rollout (no version starts here, no traffic moves here): `gates`
//! runs the quality gates, `schedule` waits for a scheduled deploy's time,
//! `window` checks the deployment windows and freezes, `staging` deploys the
//! version to the environment before this one (which runs its own pipeline, but
//! not its gates, windows and approvals: this run has them) and `smoke` runs the
//! smoke tests there, `approval` waits for the quorum, `migrate` runs the
//! database migration's `up`, `before_deploy` the hook. A hotfix skips the
//! environments marked `skip_on_hotfix`. Then `deploy`, the
//! strategy's rollout. After it: `after_promotion` when the new version is live;
//! `migrate_down` and `on_rollback` when the run went back.

use cutover_api::{DeployType, RunKind, Stage, StageRecord, StageStatus};
use cutover_spec::Config;
use serde::{Deserialize, Serialize};

/// What the person who started the run asked for, beyond the version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeployOptions {
    pub deploy_type: DeployType,
    /// When a scheduled deploy begins, in ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
    /// Deploy outside the windows or in a freeze, for this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_window: Option<String>,
    /// The run of a later environment this one is the staging of
    /// (`ENVIRONMENT/RUN-ID`): that run has the gates, the windows and the
    /// approvals, so this one has none of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_for: Option<String>,
}

/// A run's stages, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Pipeline {
    pub options: DeployOptions,
    /// Empty for a run recorded before pipelines: only its rollout, under way.
    pub stages: Vec<StageRecord>,
    /// Approval decisions already announced as events (they are in the store).
    #[serde(default)]
    pub announced: u32,
    /// The GitHub deployment made for the run, so a resumed run makes no second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_deployment: Option<u64>,
    /// The run the `staging` stage began in the environment before this one, so a
    /// resumed run watches it rather than begin a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_run: Option<String>,
}

impl Pipeline {
    /// The stages a run of `kind` goes through with `config`. A rollback is fast
    /// by design: it goes straight to its rollout.
    pub fn plan(config: &Config, kind: RunKind, options: DeployOptions) -> Pipeline {
        let mut stages = Vec::new();
        let migrations = config.migrations.as_ref();
        let full = kind != RunKind::Rollback;
        // A later environment's run guards the way in for this one.
        let guarded = full && options.staged_for.is_none();
        let hotfix = options.deploy_type == DeployType::Hotfix;
        let earlier = config
            .earlier_environment()
            .filter(|env| full && !(hotfix && env.skip_on_hotfix));
        let staging = earlier.is_some();
        let hooks = &config.hooks;
        let mut stage = |on: bool, stage: Stage| {
            if on {
                stages.push(stage);
            }
        };
        let validates = migrations.is_some_and(|m| m.validate.is_some());
        stage(
            guarded && (!config.gates.is_empty() || validates),
            Stage::Gates,
        );
        stage(guarded && options.at_ms.is_some(), Stage::Schedule);
        stage(guarded && config.windows.is_some(), Stage::Window);
        stage(staging, Stage::Staging);
        stage(
            earlier.is_some_and(|env| !env.smoke.is_empty()),
            Stage::Smoke,
        );
        stage(guarded && config.approvals.is_some(), Stage::Approval);
        stage(full && migrations.is_some(), Stage::Migrate);
        stage(full && !hooks.before_deploy.is_empty(), Stage::BeforeDeploy);
        stage(true, Stage::Deploy);
        stage(
            full && !hooks.after_promotion.is_empty(),
            Stage::AfterPromotion,
        );
        stage(
            full && migrations.is_some_and(|m| m.reversible),
            Stage::MigrateDown,
        );
        stage(full && !hooks.on_rollback.is_empty(), Stage::OnRollback);
        Pipeline {
            options,
            stages: stages.into_iter().map(StageRecord::pending).collect(),
            announced: 0,
            github_deployment: None,
            staged_run: None,
        }
    }

    /// The first stage not done yet, with its position (0-based).
    pub fn current(&self) -> Option<(usize, &StageRecord)> {
        self.stages
            .iter()
            .enumerate()
            .find(|(_, s)| !s.status.is_done())
    }

    pub fn get_mut(&mut self, stage: Stage) -> Option<&mut StageRecord> {
        self.stages.iter_mut().find(|s| s.stage == stage)
    }

    /// Whether the rollout has begun (or the run predates pipelines, so it has); a
    /// rollout skipped because an earlier stage ended the run has not.
    pub fn deploying(&self) -> bool {
        self.stages
            .iter()
            .find(|s| s.stage == Stage::Deploy)
            .is_none_or(|s| !matches!(s.status, StageStatus::Pending | StageStatus::Skipped))
    }

    /// Marks the stages up to the rollout not begun as skipped: the run ended
    /// before them. The stages after the rollout are left to decide for themselves.
    pub fn skip_to_the_end(&mut self) {
        for s in self.stages.iter_mut().filter(|s| !s.stage.is_after()) {
            if s.status == StageStatus::Pending {
                s.status = StageStatus::Skipped;
            }
        }
    }

    /// Whether `stage` is in the pipeline and passed.
    pub fn passed(&self, stage: Stage) -> bool {
        self.stages
            .iter()
            .any(|s| s.stage == stage && s.status == StageStatus::Passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let yaml =
            format!("app: shop\nplatform:\n  local:\n    command: [x, \"${{PORT}}\"]\n{extra}");
        cutover_spec::parse(&yaml, "cutover.yaml").unwrap()
    }

    fn stages(p: &Pipeline) -> Vec<Stage> {
        p.stages.iter().map(|s| s.stage).collect()
    }

    #[test]
    fn stages_follow_the_config_and_the_request() {
        let plain = Pipeline::plan(&config(""), RunKind::Canary, DeployOptions::default());
        assert_eq!(stages(&plain), [Stage::Deploy]);
        assert!(!plain.deploying());

        let full = config(
            "approvals: { from: [alice] }\nwindows: { timezone: UTC, allow: [{ hours: \"09:00-17:00\" }] }\n",
        );
        let scheduled = DeployOptions {
            deploy_type: DeployType::Scheduled,
            at_ms: Some(1),
            override_window: None,
            staged_for: None,
        };
        let p = Pipeline::plan(&full, RunKind::Canary, scheduled.clone());
        assert_eq!(
            stages(&p),
            [
                Stage::Schedule,
                Stage::Window,
                Stage::Approval,
                Stage::Deploy
            ]
        );
        assert_eq!(p.current().map(|(i, _)| i), Some(0));
        // A rollback goes back at once, whatever is configured.
        let back = Pipeline::plan(&full, RunKind::Rollback, scheduled);
        assert_eq!(stages(&back), [Stage::Deploy]);
    }

    #[test]
    fn a_deploy_goes_through_the_environment_before_it() {
        let yaml = "approvals: { from: [alice] }\ngates: [{ name: unit, run: [\"true\"] }]\n\
                    smoke: [{ path: /ready }]\nenvironments:\n  \
                    staging: { listen: \"127.0.0.1:9080\", skip_on_hotfix: true }\n  production:\n";
        let production = config(yaml);
        let standard = Pipeline::plan(&production, RunKind::Canary, DeployOptions::default());
        use Stage::*;
        assert_eq!(stages(&standard), [Gates, Staging, Smoke, Approval, Deploy]);
        let hotfix = DeployOptions {
            deploy_type: DeployType::Hotfix,
            ..DeployOptions::default()
        };
        let skipped = Pipeline::plan(&production, RunKind::Canary, hotfix);
        assert_eq!(stages(&skipped), [Gates, Approval, Deploy]);

        // Staging itself: the first environment has none before it. Asked for by
        // production's run, it leaves the gates and approvals to that run.
        let staging = cutover_spec::parse_environment(
            &format!("app: shop\nplatform:\n  local:\n    command: [x, \"${{PORT}}\"]\n{yaml}"),
            "cutover.yaml",
            Some("staging"),
        )
        .unwrap();
        let direct = Pipeline::plan(&staging, RunKind::Canary, DeployOptions::default());
        assert_eq!(stages(&direct), [Gates, Approval, Deploy]);
        let staged = DeployOptions {
            staged_for: Some("production/r-1".into()),
            ..DeployOptions::default()
        };
        let for_production = Pipeline::plan(&staging, RunKind::Canary, staged);
        assert_eq!(stages(&for_production), [Deploy]);
    }

    #[test]
    fn a_run_recorded_before_pipelines_is_already_deploying() {
        assert!(Pipeline::default().deploying());
        assert!(Pipeline::default().current().is_none());
    }
}
