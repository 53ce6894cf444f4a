//! The stages that run the user's commands (the gates, the migration, the hooks)
//! and the notifications a run sends. Each stage writes its receipt into the run's
//! folder when it ends (`gates.md` and `gates.json`, `migration-up.md`,
//! `hook-before_deploy.md`, ...), beside the commands' logs, and says what it found
//! in its summary; the decision record lists them all.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cutover_api::{Outcome, Stage};
use cutover_pipeline::gates::{self, GateContext};
use cutover_pipeline::{
    DeliveryPolicy, HookPoint, Notification, Notifier, RunFacts, migrate_down, migrate_up,
    run_hook, validate_migrations,
};
use cutover_spec::NotificationKind;
use tracing::warn;

use super::Runner;
use super::stages::StageEnd;
use crate::engine::EngineError;
use crate::state::Decision;

/// How long a finished run's notifications may still be retried in the
/// background before the undelivered ones are recorded as not sent.
const NOTIFY_GRACE: Duration = Duration::from_secs(150);

impl Runner {
    /// The run's receipts folder, made if need be.
    pub(super) fn receipts_dir(&self) -> PathBuf {
        let dir = self.inner.runs_dir.join(&self.run.id);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            warn!(dir = %dir.display(), error = %e, "could not make the run's folder");
        }
        dir
    }

    /// The facts the commands and notifications get; `decision` once there is one.
    fn facts(&self, decision: Option<&Decision>) -> RunFacts {
        RunFacts {
            app: self.run.app.clone(),
            version: self.run.version.clone(),
            previous_version: self.run.stable.clone(),
            run_id: self.run.id.clone(),
            outcome: decision.map(|d| d.outcome.as_str().to_owned()),
            reason: decision.map(|d| d.reason.clone()),
            receipts_dir: self.receipts_dir(),
        }
    }

    /// The quality gates, and the migration's up, down, up check, all at once.
    pub(super) async fn run_gates(&mut self) -> Result<StageEnd, EngineError> {
        let config = Arc::clone(&self.config);
        let facts = self.facts(None);
        let dir = facts.receipts_dir.clone();
        let validation = async {
            match &config.config.migrations {
                Some(m) => validate_migrations(m, &facts).await,
                None => None,
            }
        };
        let context = GateContext { dir: &dir };
        let work = async { tokio::join!(gates::run(&config.config.gates, &context), validation) };
        let (report, validation) = match self.until_aborted(work, "running the gates").await {
            Ok(done) => done,
            Err(halt) => return StageEnd::halted(halt),
        };
        if !report.gates.is_empty() {
            write(&dir, "gates.md", &report.to_markdown());
            match serde_json::to_string_pretty(&report) {
                Ok(json) => write(&dir, "gates.json", &json),
                Err(e) => warn!(error = %e, "could not encode gates.json"),
            }
        }
        if let Some(v) = &validation {
            write(&dir, "migration-validation-report.md", &v.to_markdown());
        }
        let mut failed: Vec<String> = report
            .failed()
            .map(|g| format!("gate `{}` failed: {}", g.name, g.problems.join("; ")))
            .collect();
        if validation.as_ref().is_some_and(|v| !v.passed()) {
            failed.push(
                "the migration's up, down, up check failed (migration-validation-report.md)".into(),
            );
        }
        let passed: Vec<&str> = report.gates.iter().map(|g| g.name.as_str()).collect();
        if failed.is_empty() {
            let mut summary = format!("{} gate(s) passed", passed.len());
            if !passed.is_empty() {
                summary.push_str(&format!(": {}", passed.join(", ")));
            }
            if validation.is_some() {
                summary.push_str("; the migration's up, down, up check passed");
            }
            return Ok(StageEnd::Passed(summary));
        }
        Ok(StageEnd::stop(
            Outcome::Blocked,
            format!("{}; nothing was started (gates.md)", failed.join("; ")),
        ))
    }

    /// The migration's `up`, run to its end: a migration stopped halfway leaves
    /// the schema in a state nobody knows, so an abort (or the daemon stopping)
    /// waits for it. One that was under way when an earlier daemon died is not run
    /// again: its state is unknown, and the run stops for a person to look.
    pub(super) async fn migrate_up(&mut self, resumed: bool) -> Result<StageEnd, EngineError> {
        let config = Arc::clone(&self.config);
        let Some(spec) = &config.config.migrations else {
            return Ok(StageEnd::Passed("no migration configured".into()));
        };
        if resumed {
            return Ok(StageEnd::stop(
                Outcome::Blocked,
                "the migration's up was under way when the daemon stopped, so whether it \
                 completed is unknown; it was not run again and no version was started \
                 (see migrations/up.log)"
                    .into(),
            ));
        }
        let facts = self.facts(None);
        let report = migrate_up(spec, &facts).await;
        write(
            &facts.receipts_dir,
            "migration-up.md",
            &report.to_markdown(),
        );
        if report.passed() {
            Ok(StageEnd::Passed(format!(
                "migration up: {}",
                report.result.summary()
            )))
        } else {
            Ok(StageEnd::stop(
                Outcome::Blocked,
                format!(
                    "the migration's up failed ({}); no version was started and no traffic moved \
                     (migration-up.md)",
                    report.result.summary()
                ),
            ))
        }
    }

    pub(super) async fn before_deploy(&mut self) -> Result<StageEnd, EngineError> {
        let config = Arc::clone(&self.config);
        let facts = self.facts(None);
        let point = HookPoint::BeforeDeploy;
        let hook = run_hook(point, point.commands(&config.config.hooks), &facts);
        let report = match self
            .until_aborted(hook, "running the before_deploy hook")
            .await
        {
            Ok(report) => report,
            Err(halt) => return StageEnd::halted(halt),
        };
        let file = format!("hook-{}.md", point.as_str());
        write(&facts.receipts_dir, &file, &report.to_markdown());
        if report.passed() {
            Ok(StageEnd::Passed(hook_summary(&report)))
        } else {
            Ok(StageEnd::stop(
                Outcome::Blocked,
                format!(
                    "the before_deploy hook failed: {}; nothing was started ({file})",
                    hook_summary(&report)
                ),
            ))
        }
    }

    /// A hook after the rollout: its failure is reported, the outcome stands.
    async fn hook_after(&self, point: HookPoint, decision: &Decision) -> StageEnd {
        let facts = self.facts(Some(decision));
        let report = run_hook(point, point.commands(&self.config.config.hooks), &facts).await;
        let file = format!("hook-{}.md", point.as_str());
        write(&facts.receipts_dir, &file, &report.to_markdown());
        if report.passed() {
            StageEnd::Passed(hook_summary(&report))
        } else {
            StageEnd::Failed(format!(
                "{} ({file}); the outcome stands",
                hook_summary(&report)
            ))
        }
    }

    pub(super) async fn after_promotion(&self, decision: &Decision) -> StageEnd {
        self.hook_after(HookPoint::AfterPromotion, decision).await
    }

    pub(super) async fn on_rollback(&self, decision: &Decision) -> StageEnd {
        self.hook_after(HookPoint::OnRollback, decision).await
    }

    pub(super) async fn migrate_down(&self, decision: &Decision) -> StageEnd {
        let Some(spec) = &self.config.config.migrations else {
            return StageEnd::Passed("no migration configured".into());
        };
        let facts = self.facts(Some(decision));
        match migrate_down(spec, &facts).await {
            None => StageEnd::Passed("the migration is not reversible: left as up made it".into()),
            Some(report) => {
                write(
                    &facts.receipts_dir,
                    "migration-down.md",
                    &report.to_markdown(),
                );
                let summary = format!("migration down: {}", report.result.summary());
                if report.passed() {
                    StageEnd::Passed(summary)
                } else {
                    StageEnd::Failed(format!(
                        "{summary}; the schema may still be as up left it (migration-down.md)"
                    ))
                }
            }
        }
    }

    /// Starts the run's notifier; a run that begins (not one resumed) says so.
    pub(super) fn start_notifier(&mut self, begins: bool) {
        let env = |name: &str| std::env::var(name).ok();
        let notifier = Notifier::start(
            &self.config.config.notifications,
            DeliveryPolicy::default(),
            &env,
            self.state.pipeline.github_deployment,
        );
        if begins {
            notifier.notify(Notification::new(
                NotificationKind::RunStarted,
                &self.facts(None),
            ));
        }
        self.notifier = Some(notifier);
    }

    /// Tells the notifier a stage began waiting or ended; remembers the GitHub
    /// deployment it made, for a resumed run.
    pub(super) fn notify_stage(
        &mut self,
        kind: NotificationKind,
        stage: Stage,
        verdict: Option<&str>,
        reason: Option<&str>,
    ) {
        let facts = self.facts(self.state.decision.as_ref());
        let Some(notifier) = &self.notifier else {
            return;
        };
        let mut n = Notification::new(kind, &facts);
        n.stage = Some(stage.as_str().to_owned());
        n.verdict = verdict.map(str::to_owned);
        if let Some(reason) = reason.filter(|r| !r.is_empty()) {
            n.reason = Some(reason.to_owned());
        }
        notifier.notify(n);
        if let Some(id) = notifier.report().github_deployment {
            self.state.pipeline.github_deployment = Some(id);
        }
    }

    /// Tells the notifier how the run ended.
    pub(super) fn notify_outcome(&self, decision: &Decision) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        let kind = match decision.outcome {
            Outcome::Promoted => NotificationKind::Promoted,
            _ => NotificationKind::RolledBack,
        };
        notifier.notify(Notification::new(kind, &self.facts(Some(decision))));
    }

    /// Tells the notifier that the run failed with `failure`, and how it ends
    /// for that (see [`crate::supervise::failed`]); then lets it finish.
    pub(super) fn notify_failure(&mut self, failure: &str) {
        let committed = self.inner.stable_version().as_deref() == Some(self.run.version.as_str());
        let (outcome, reason) = crate::supervise::failed(committed, failure);
        let decision = Decision { outcome, reason };
        // Before its rollout the last word carries the outcome (`finish_notifier`).
        if self.state.pipeline.deploying() {
            self.notify_outcome(&decision);
        }
        self.finish_notifier(&decision);
    }

    /// Lets the notifications still in flight finish in the background (retried
    /// for a while), then writes `notifications.md`: a slow or dead receiver never
    /// holds the run's end.
    pub(super) fn finish_notifier(&mut self, decision: &Decision) {
        let Some(notifier) = self.notifier.take() else {
            return;
        };
        if self.config.config.notifications.webhooks.is_empty()
            && self.config.config.notifications.github.is_none()
        {
            return;
        }
        if !self.state.pipeline.deploying() {
            // Ended before its rollout: the last word carries the outcome (GitHub
            // marks the deployment failed from it).
            let mut n =
                Notification::new(NotificationKind::StageFinished, &self.facts(Some(decision)));
            n.stage = self
                .state
                .pipeline
                .current()
                .map(|(_, s)| s.stage.as_str().to_owned());
            notifier.notify(n);
        }
        let dir = self.receipts_dir();
        let inner = Arc::clone(&self.inner);
        let run_id = self.run.id.clone();
        tokio::spawn(async move {
            let report = notifier.finish(NOTIFY_GRACE).await;
            write(&dir, "notifications.md", &report.to_markdown());
            // The decision record lists it from now on.
            inner.write_receipts(&run_id);
        });
    }
}

/// `2 command(s) ran: exit 0, exit 0`.
fn hook_summary(report: &cutover_pipeline::HookReport) -> String {
    let ran: Vec<String> = report.ran.iter().map(|r| r.summary()).collect();
    let mut out = format!("{} command(s) ran: {}", ran.len(), ran.join(", "));
    if !report.skipped.is_empty() {
        out.push_str(&format!(
            "; {} skipped after a failure",
            report.skipped.len()
        ));
    }
    out
}

/// Writes a receipt a stage made; a failure is logged, never the run's.
pub(super) fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Err(e) = std::fs::write(&path, text) {
        warn!(path = %path.display(), error = %e, "could not write a receipt");
    }
}
