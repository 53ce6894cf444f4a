//! The stages around the rollout, carried out: the order, the records, the events,
//! and the stages that wait (for a scheduled time, for the deployment windows, for
//! the approvals quorum); the stages that run commands are in `commands.rs`, the
//! ones that go through the environment before this one in `staging.rs`. Each
//! stage's start and end are written to the run's state before anything follows
//! from them, so a restarted daemon resumes the stage it was in (a wait for
//! approval that lasts a day goes on where it was, its timeout counted from when it
//! began).
//!
//! No version starts and no traffic moves before the `deploy` stage: a stage that
//! stops the run leaves the app as it was (a migration already applied is taken
//! back by `migrate_down`, when it is reversible).

use std::time::Duration;

use cutover_api::{ApprovalRecord, DeployType, Event, Outcome, Phase, Stage, StageStatus, Verdict};
use cutover_spec::NotificationKind;
use tokio::time::Instant;

use super::Runner;
use crate::engine::{Control, EngineError};
use crate::events::now_ms;
use crate::state::Decision;
use crate::strategy::Observation;
use crate::windows::{self, WindowCheck};

/// How the stages before the rollout went.
pub(super) enum Prepared {
    /// On to the rollout, starting with this observation.
    Go(Observation),
    /// The run ended before the rollout: nothing was started.
    Ended(Decision),
}

/// How one stage ended, with its summary.
pub(super) enum StageEnd {
    Passed(String),
    /// It failed, and that is reported; the run goes on (a hook after the rollout).
    Failed(String),
    /// The run ends here, with this decision; the summary is the stage's.
    Stopped {
        summary: String,
        decision: Decision,
    },
}

impl StageEnd {
    pub(super) fn stop(outcome: Outcome, summary: String) -> StageEnd {
        StageEnd::Stopped {
            decision: Decision {
                outcome,
                reason: summary.clone(),
            },
            summary,
        }
    }

    /// The run was aborted (or the engine went away) during the stage; or the
    /// daemon is stopping, which suspends the run rather than ends it.
    pub(super) fn halted(halt: Halt) -> Result<StageEnd, EngineError> {
        match halt {
            Halt::End(decision) => Ok(StageEnd::Stopped {
                summary: decision.reason.clone(),
                decision,
            }),
            Halt::Suspend => Err(EngineError::Suspended),
        }
    }
}

/// Why a stage before the rollout stopped waiting, other than its own end.
pub(super) enum Halt {
    /// The run ends: aborted, or the engine went away.
    End(Decision),
    /// The daemon is stopping: the run stays as recorded, to be resumed.
    Suspend,
}

impl Runner {
    /// Runs the stages before the rollout that are not done yet, in order, then
    /// marks the rollout begun. `first` is what the strategy hears first if the
    /// rollout had begun already (a resumed run); otherwise it begins afresh.
    pub(super) async fn prepare(&mut self, first: Observation) -> Result<Prepared, EngineError> {
        if let Some(decision) = &self.state.decision
            && !self.state.pipeline.deploying()
        {
            // Ended before its rollout, and the daemon stopped before the end was
            // recorded: only the stages after it are left.
            return Ok(Prepared::Ended(decision.clone()));
        }
        if self.state.pipeline.deploying() {
            let begun = !matches!(
                self.state.phase,
                Phase::Pending | Phase::Scheduled { .. } | Phase::AwaitingApproval { .. }
            );
            // The rollout was marked begun, but the strategy never heard of it.
            return Ok(Prepared::Go(if begun { first } else { Observation::Begin }));
        }
        while let Some((_, record)) = self.state.pipeline.current() {
            let stage = record.stage;
            if stage == Stage::Deploy {
                break;
            }
            if stage.is_after() {
                // The run ended before its rollout; these follow its decision.
                break;
            }
            let resumed = record.status == StageStatus::Running;
            self.begin_stage(stage)?;
            let end = match stage {
                Stage::Gates => self.run_gates().await?,
                Stage::Schedule => self.wait_for_schedule().await?,
                Stage::Window => self.check_window(),
                Stage::Staging => self.deploy_earlier().await?,
                Stage::Smoke => self.smoke_test().await?,
                Stage::Approval => self.wait_for_approval().await?,
                Stage::Migrate => self.migrate_up(resumed).await?,
                Stage::BeforeDeploy => self.before_deploy().await?,
                Stage::Deploy | Stage::AfterPromotion | Stage::MigrateDown | Stage::OnRollback => {
                    unreachable!("the loop stops before the rollout")
                }
            };
            if let Some(decision) = self.end_stage(stage, end)? {
                return Ok(Prepared::Ended(decision));
            }
        }
        self.begin_stage(Stage::Deploy)?;
        Ok(Prepared::Go(Observation::Begin))
    }

    /// Records how the rollout ended with `decision` (its stage's verdict), then
    /// runs the stages after it that apply: `after_promotion` when the new version
    /// is live; `migrate_down` (when the migration ran) and `on_rollback` when the
    /// run went back. Their failures are reported, never change the outcome.
    pub(super) async fn conclude(
        &mut self,
        decision: &Decision,
        moved: bool,
    ) -> Result<(), EngineError> {
        if let Some(record) = self.state.pipeline.get_mut(Stage::Deploy)
            && !record.status.is_done()
        {
            record.status = if decision.outcome == Outcome::Promoted {
                StageStatus::Passed
            } else {
                StageStatus::Failed
            };
            record.finished_at_ms = Some(now_ms());
            record.summary = format!("{}: {}", decision.outcome.as_str(), decision.reason);
            let (status, summary) = (record.status, record.summary.clone());
            self.persist()?;
            self.notify_stage(
                NotificationKind::StageFinished,
                Stage::Deploy,
                Some(status.as_str()),
                Some(&summary),
            );
            self.stage_event(Stage::Deploy, status, summary)?;
        }
        let promoted = decision.outcome == Outcome::Promoted;
        let migrated = self.state.pipeline.passed(Stage::Migrate);
        let after: Vec<Stage> = self
            .state
            .pipeline
            .stages
            .iter()
            .filter(|s| s.stage.is_after() && !s.status.is_done())
            .map(|s| s.stage)
            .collect();
        for stage in after {
            let applies = match stage {
                Stage::AfterPromotion => promoted,
                Stage::MigrateDown => !promoted && migrated,
                _ => !promoted && (moved || migrated),
            };
            if !applies {
                let why = match stage {
                    Stage::AfterPromotion => "the new version did not go live",
                    Stage::MigrateDown if promoted => "the new version is live",
                    Stage::MigrateDown => "the migration did not run",
                    _ if promoted => "the new version is live",
                    _ => "nothing had moved or migrated",
                };
                if let Some(record) = self.state.pipeline.get_mut(stage) {
                    record.status = StageStatus::Skipped;
                    record.summary = format!("not needed: {why}");
                }
                self.persist()?;
                self.stage_event(stage, StageStatus::Skipped, format!("not needed: {why}"))?;
                continue;
            }
            self.begin_stage(stage)?;
            let end = match stage {
                Stage::AfterPromotion => self.after_promotion(decision).await,
                Stage::MigrateDown => self.migrate_down(decision).await,
                _ => self.on_rollback(decision).await,
            };
            self.end_stage(stage, end)?;
        }
        if moved {
            self.notify_outcome(decision);
        }
        Ok(())
    }

    fn begin_stage(&mut self, stage: Stage) -> Result<(), EngineError> {
        let Some(record) = self.state.pipeline.get_mut(stage) else {
            return Ok(());
        };
        if record.status == StageStatus::Running {
            // Resumed after a restart: the stage goes on from when it began.
            return Ok(());
        }
        record.status = StageStatus::Running;
        record.started_at_ms = Some(now_ms());
        self.persist()?;
        if stage == Stage::Approval {
            self.notify_stage(NotificationKind::WaitingForApproval, stage, None, None);
        }
        self.stage_event(stage, StageStatus::Running, String::new())
    }

    /// Records how `stage` ended; when it stopped the run, ends the run (nothing
    /// started, the app as it was) and returns the decision.
    fn end_stage(&mut self, stage: Stage, end: StageEnd) -> Result<Option<Decision>, EngineError> {
        let (status, summary, decision) = match end {
            StageEnd::Passed(summary) => (StageStatus::Passed, summary, None),
            StageEnd::Failed(summary) => (StageStatus::Failed, summary, None),
            StageEnd::Stopped { summary, decision } => {
                (StageStatus::Failed, summary, Some(decision))
            }
        };
        if let Some(record) = self.state.pipeline.get_mut(stage) {
            record.status = status;
            record.finished_at_ms = Some(now_ms());
            record.summary = summary.clone();
        }
        if let Some(decision) = &decision {
            self.state.pipeline.skip_to_the_end();
            self.state.decision = Some(decision.clone());
            self.state.phase = Phase::Finished;
        }
        self.persist()?;
        self.notify_stage(
            NotificationKind::StageFinished,
            stage,
            Some(status.as_str()),
            Some(&summary),
        );
        self.stage_event(stage, status, summary)?;
        Ok(decision)
    }

    pub(super) fn stage_event(
        &self,
        stage: Stage,
        status: StageStatus,
        summary: String,
    ) -> Result<(), EngineError> {
        let stages = &self.state.pipeline.stages;
        let index = stages.iter().position(|s| s.stage == stage).unwrap_or(0) as u32 + 1;
        let of = stages.len() as u32;
        let message = match (status, summary.is_empty()) {
            (_, true) => format!("[{index}/{of}] {stage}: {}", status.as_str()),
            (_, false) => format!("[{index}/{of}] {stage} {}: {summary}", status.as_str()),
        };
        self.emit(
            Event::Stage {
                stage,
                status,
                index,
                of,
                summary,
            },
            &message,
        )
    }

    fn enter_phase(&mut self, phase: Phase, message: &str) -> Result<(), EngineError> {
        if self.state.phase == phase {
            return Ok(());
        }
        self.state.phase = phase.clone();
        self.persist()?;
        self.emit(Event::Phase { phase }, message)
    }

    /// Waits for a person's word while the run waits for something else, up to
    /// `deadline`: `Ok(true)` at the deadline, `Ok(false)` when someone decided on
    /// an approval, `Err` when the run was aborted or the daemon is stopping.
    pub(super) async fn wait(&mut self, deadline: Instant, waiting: &str) -> Result<bool, Halt> {
        loop {
            tokio::select! {
                // A decision that arrives with the deadline is counted first.
                biased;
                () = self.decided.notified() => return Ok(false),
                () = tokio::time::sleep_until(deadline) => return Ok(true),
                command = self.control.recv() => self.heard(command, waiting)?,
            }
        }
    }

    /// Carries out `work` (a stage's commands) while listening for an abort, which
    /// drops it (killing what it runs): `Err` then, as [`Runner::wait`] says.
    pub(super) async fn until_aborted<T>(
        &mut self,
        work: impl std::future::Future<Output = T>,
        doing: &str,
    ) -> Result<T, Halt> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return Ok(out),
                command = self.control.recv() => self.heard(command, doing)?,
            }
        }
    }

    /// What a person's request means before the rollout has begun: an abort ends
    /// the run; a promote has nothing to skip to, and is said to do nothing.
    fn heard(&self, command: Option<Control>, doing: &str) -> Result<(), Halt> {
        match command {
            Some(Control::Promote) => {
                let message = format!(
                    "`cutover promote` does nothing while the run is {doing}; the rollout has not begun"
                );
                let _ = self.emit(Event::Warning, &message);
                Ok(())
            }
            Some(Control::Abort { .. }) if self.inner.shutting_down() => Err(Halt::Suspend),
            Some(Control::Abort { by }) => Err(Halt::End(Decision {
                outcome: Outcome::Aborted,
                reason: format!("aborted by {by} while {doing}; nothing was started"),
            })),
            None => Err(Halt::End(Decision {
                outcome: Outcome::Aborted,
                reason: format!("the engine went away while {doing}"),
            })),
        }
    }

    async fn wait_for_schedule(&mut self) -> Result<StageEnd, EngineError> {
        let at_ms = self.state.pipeline.options.at_ms.unwrap_or_else(now_ms);
        let left = Duration::from_millis(at_ms.saturating_sub(now_ms()).max(0) as u64);
        let deadline = Instant::now() + left;
        let at = cutover_api::format_ms(at_ms);
        self.enter_phase(
            Phase::Scheduled { at_ms },
            &format!("scheduled: the rollout begins at {at}"),
        )?;
        loop {
            match self.wait(deadline, &format!("scheduled for {at}")).await {
                Ok(true) => return Ok(StageEnd::Passed(format!("began at its time, {at}"))),
                Ok(false) => continue,
                Err(halt) => return StageEnd::halted(halt),
            }
        }
    }

    fn check_window(&mut self) -> StageEnd {
        let Some(spec) = &self.config.config.windows else {
            return StageEnd::Passed("no deployment windows configured".into());
        };
        let override_reason = self.state.pipeline.options.override_window.clone();
        match (
            windows::check(spec, jiff::Timestamp::now()),
            override_reason,
        ) {
            (WindowCheck::Open(why), _) => StageEnd::Passed(why),
            (WindowCheck::Closed { why, .. }, Some(reason)) => {
                StageEnd::Passed(format!("{why}; overridden: {reason}"))
            }
            (WindowCheck::Closed { why, opens }, None) => {
                let next = opens.map_or_else(String::new, |at| format!("; it next opens {at}"));
                StageEnd::stop(
                    Outcome::Blocked,
                    format!(
                        "{why}{next}; to deploy anyway, `cutover deploy --override-window --reason \"...\"`"
                    ),
                )
            }
        }
    }

    /// The window checked again after a wait (for the quorum, for staging), when it
    /// passed without an override before: why it is closed now, if it is.
    pub(super) fn window_closed_meanwhile(&self) -> Option<String> {
        let spec = self.config.config.windows.as_ref()?;
        if self.state.pipeline.options.override_window.is_some() {
            return None;
        }
        match windows::check(spec, jiff::Timestamp::now()) {
            WindowCheck::Open(_) => None,
            WindowCheck::Closed { why, opens } => {
                let next = opens.map_or_else(String::new, |at| format!("; it next opens {at}"));
                Some(format!(
                    "the deployment window closed while the run waited: {why}{next}; nothing was \
                     started"
                ))
            }
        }
    }

    async fn wait_for_approval(&mut self) -> Result<StageEnd, EngineError> {
        let Some(spec) = self.config.config.approvals.clone() else {
            return Ok(StageEnd::Passed("no approvals configured".into()));
        };
        let hotfix = self.state.pipeline.options.deploy_type == DeployType::Hotfix;
        let quorum = spec.quorum(hotfix).clone();
        let began = self
            .state
            .pipeline
            .get_mut(Stage::Approval)
            .and_then(|s| s.started_at_ms)
            .unwrap_or_else(now_ms);
        let deadline_ms = began.saturating_add(spec.timeout.as_millis() as i64);
        let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms()).max(0) as u64);
        let deadline = Instant::now() + left;
        let required = quorum.required;
        let kind = if hotfix { "hotfix " } else { "" };
        loop {
            let decisions: Vec<ApprovalRecord> = self
                .inner
                .store
                .approvals(&self.run.id)?
                .into_iter()
                .filter(|d| quorum.from.contains(&d.by))
                .collect();
            self.announce(&decisions, required)?;
            if let Some(no) = decisions.iter().find(|d| d.verdict == Verdict::Reject) {
                let why = no.comment.as_deref().unwrap_or("no reason given");
                return Ok(StageEnd::stop(
                    Outcome::Blocked,
                    format!("rejected by {}: {why}; nothing was started", no.by),
                ));
            }
            let approved: Vec<&str> = decisions.iter().map(|d| d.by.as_str()).collect();
            if approved.len() as u32 >= required {
                let approval = format!(
                    "approved by {} ({} of {required} required, {kind}quorum from {})",
                    approved.join(", "),
                    approved.len(),
                    quorum.from.join(", ")
                );
                // Before anything the approval lets happen (a migration, a hook).
                if let Some(closed) = self.window_closed_meanwhile() {
                    return Ok(StageEnd::stop(
                        Outcome::Blocked,
                        format!("{approval}, but {closed}"),
                    ));
                }
                return Ok(StageEnd::Passed(approval));
            }
            let phase = Phase::AwaitingApproval {
                approved: approved.len() as u32,
                required,
            };
            self.enter_phase(
                phase,
                &format!(
                    "waiting for {} more {kind}approval(s) from {} (`cutover approve --as NAME`); \
                     times out at {}",
                    required - approved.len() as u32,
                    quorum.from.join(", "),
                    cutover_api::format_ms(deadline_ms)
                ),
            )?;
            match self.wait(deadline, "waiting for approval").await {
                Ok(true) => {
                    let so_far = if approved.is_empty() {
                        "none".to_owned()
                    } else {
                        approved.join(", ")
                    };
                    return Ok(StageEnd::stop(
                        Outcome::Aborted,
                        format!(
                            "timed out after {} waiting for approval: {} of {required} approvals ({so_far}); \
                             nothing was started",
                            humantime::format_duration(spec.timeout),
                            approved.len()
                        ),
                    ));
                }
                Ok(false) => continue,
                Err(halt) => return StageEnd::halted(halt),
            }
        }
    }

    /// Emits an event for each decision not announced yet.
    fn announce(&mut self, decisions: &[ApprovalRecord], required: u32) -> Result<(), EngineError> {
        let from = self.state.pipeline.announced as usize;
        for (i, d) in decisions.iter().enumerate().skip(from) {
            let approved = decisions[..=i]
                .iter()
                .filter(|d| d.verdict == Verdict::Approve)
                .count() as u32;
            let comment = d
                .comment
                .as_deref()
                .map_or_else(String::new, |c| format!(": {c}"));
            let message = match d.verdict {
                Verdict::Approve => {
                    format!("approved by {} ({approved}/{required}){comment}", d.by)
                }
                Verdict::Reject => format!("rejected by {}{comment}", d.by),
            };
            self.emit(
                Event::Approval {
                    by: d.by.clone(),
                    verdict: d.verdict,
                    comment: d.comment.clone(),
                    approved,
                    required,
                },
                &message,
            )?;
            self.state.pipeline.announced = i as u32 + 1;
        }
        self.persist()
    }
}
