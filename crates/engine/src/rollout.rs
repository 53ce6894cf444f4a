//! Driving one run: start the new version, shift traffic step by step while judging
//! it, then promote or roll back. Every transition is written to the store before
//! it is acted on; the decisions themselves are pure functions in [`crate::canary`].

use std::sync::Arc;

use cutover_analysis::{WindowReport, judge};
use cutover_spec::Pause;
use cutover_store::{MeasurementRecord, NewRun, Outcome, RunKind};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::canary::{self, Next, Tally};
use crate::engine::{Control, EngineError, Inner, STOP_GRACE, lock};
use crate::events::{RunEvent, error_chain, now_ms};
use crate::platform::{Release, ReleaseHealth};
use crate::receipts;

/// How starting a version ended.
enum Started {
    Ready {
        release: Box<dyn Release>,
        promote_requested: bool,
    },
    /// It never became healthy, or the run was aborted meanwhile.
    NotReady(Decision),
}

/// How a run's strategy ended, before the engine records it.
pub(crate) enum Decision {
    Promote(String),
    RollBack { outcome: Outcome, reason: String },
}

impl Inner {
    /// Drives the run and makes sure it ends with a recorded outcome and a final
    /// event, whatever happens to the driver: a store failure or even a panic sends
    /// the traffic back to stable and ends the run as failed.
    pub(crate) async fn supervise(
        self: Arc<Self>,
        run: NewRun,
        control: mpsc::UnboundedReceiver<Control>,
    ) {
        let driver = tokio::spawn(self.clone().drive(run.clone(), control));
        let failure = match driver.await {
            Ok(Ok(Decision::Promote(reason))) => {
                return self.finish(&run, Outcome::Promoted, &reason);
            }
            Ok(Ok(Decision::RollBack { outcome, reason })) => {
                return self.finish(&run, outcome, &reason);
            }
            Ok(Err(e)) => error_chain(&e),
            Err(e) if e.is_panic() => "the run's task panicked".to_owned(),
            Err(_) => "the run's task was cancelled".to_owned(),
        };
        // Once the new version is the stable one it has all traffic and the old one
        // is going or gone: the run has promoted, whatever failed after that.
        let committed = lock(&self.routing).stable_version().as_deref() == Some(&run.version);
        let (outcome, reason) = if committed {
            (
                Outcome::Promoted,
                format!("live, but finishing the run failed: {failure}"),
            )
        } else {
            self.evacuate().await;
            (
                Outcome::Failed,
                format!("internal error, traffic returned to stable: {failure}"),
            )
        };
        self.finish(&run, outcome, &reason);
    }

    async fn drive(
        self: Arc<Self>,
        run: NewRun,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) -> Result<Decision, EngineError> {
        // Dropping `control` on return makes late requests fail with `TooLate`.
        match run.kind {
            RunKind::Initial | RunKind::Rollback => self.switch(&run, &mut control).await,
            RunKind::Canary => self.canary(&run, &mut control).await,
        }
    }

    /// Records the outcome with its final event, writes the receipts, frees the
    /// app for the next run, then announces the end.
    fn finish(&self, run: &NewRun, outcome: Outcome, reason: &str) {
        let message = match outcome {
            Outcome::Promoted => format!("{} is live: {reason}", run.version),
            Outcome::RolledBack => format!("{} rolled back: {reason}", run.version),
            Outcome::Aborted => format!("{} aborted: {reason}", run.version),
            Outcome::Failed => format!("{} failed: {reason}", run.version),
        };
        let at = now_ms();
        let recorded = self
            .store
            .finish_run(&run.id, at, outcome, reason, &message);
        self.write_receipts(&run.id);
        // Free the app before announcing the end, so a client reacting to the final
        // event can start the next run at once.
        lock(&self.active).run.take();
        self.idle.send_replace(true);
        info!(run = %run.id, version = %run.version, outcome = outcome.as_str(), reason = %reason, "run finished");
        let event = match recorded {
            Ok(record) => RunEvent::from_record(&run.id, record, Some(outcome)),
            Err(e) => {
                warn!(run = %run.id, error = %e, "could not record the outcome");
                // Not in the store: past every stored event, so streams deliver it
                // last; kept for clients that ask after the broadcast.
                let event = RunEvent {
                    run_id: run.id.clone(),
                    seq: i64::MAX,
                    at_ms: at,
                    kind: cutover_store::OUTCOME_EVENT.into(),
                    message,
                    weight_bp: None,
                    outcome: Some(outcome),
                };
                lock(&self.unrecorded).insert(run.id.clone(), event.clone());
                event
            }
        };
        let _ = self.events.send(event);
    }

    /// Starts the version and gives it all traffic at once, without analysis: the
    /// first version of an app, and `cutover rollback`.
    async fn switch(
        self: &Arc<Self>,
        run: &NewRun,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Result<Decision, EngineError> {
        let mut release = match self.start_version(run, control).await? {
            Started::Ready { release, .. } => release,
            Started::NotReady(decision) => return Ok(decision),
        };
        let problem = release.health().borrow().problem.clone();
        if let Some(decision) = veto(run, control, problem) {
            // It never had a route: stopping it is all there is to undo.
            release.stop(STOP_GRACE).await;
            self.emit(run, "stop", &format!("{} stopped", run.version), None)?;
            return Ok(decision);
        }
        match &run.stable {
            None => {
                self.set_phase(run, "promoting")?;
                self.install_stable(release, true).await;
                self.emit(
                    run,
                    "weight",
                    &format!("100% of traffic to {}", run.version),
                    None,
                )?;
                Ok(Decision::Promote(
                    "first version of the app: started, healthy and serving".into(),
                ))
            }
            Some(from) => {
                self.install_canary(release).await;
                self.promote_canary(run).await?;
                Ok(Decision::Promote(format!(
                    "switched from {from} at once, without analysis"
                )))
            }
        }
    }

    async fn canary(
        self: &Arc<Self>,
        run: &NewRun,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Result<Decision, EngineError> {
        let (release, promote_requested) = match self.start_version(run, control).await? {
            Started::Ready {
                release,
                promote_requested,
            } => (release, promote_requested),
            Started::NotReady(decision) => return Ok(decision),
        };
        let mut health = release.health();
        health.borrow_and_update();
        self.install_canary(release).await;
        let decision = if promote_requested {
            Decision::Promote(
                "promoted by request while it was starting, skipping every step".into(),
            )
        } else {
            self.canary_steps(run, &mut health, control).await?
        };
        let decision = match decision {
            Decision::Promote(_) => {
                let problem = health.borrow().problem.clone();
                veto(run, control, problem).unwrap_or(decision)
            }
            rollback => {
                close_control(control);
                rollback
            }
        };
        match &decision {
            Decision::Promote(_) => self.promote_canary(run).await?,
            Decision::RollBack { reason, .. } => self.roll_back_canary(run, reason).await?,
        }
        Ok(decision)
    }

    async fn canary_steps(
        &self,
        run: &NewRun,
        health: &mut watch::Receiver<ReleaseHealth>,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Result<Decision, EngineError> {
        let analysis = &self.config.analysis;
        let steps = &self.config.strategy.canary().steps;
        let version = &run.version;
        let stable = run.stable.as_deref().unwrap_or_default();
        let interval = analysis.interval;
        let mut tally = Tally::default();
        let mut carried = None;
        let mut bp = 0;
        for (i, step) in steps.iter().enumerate() {
            if let Some(problem) = health.borrow().problem.clone() {
                return Ok(unhealthy(version, &problem));
            }
            // A request accepted while the last step finished comes before the next weight.
            if let Ok(command) = control.try_recv() {
                return self.obey(run, Some(command), i, bp);
            }
            bp = step.weight.basis_points();
            let pause = match step.pause {
                Pause::For(d) => format!("for at least {}", humantime::format_duration(d)),
                Pause::UntilPromoted => "until `cutover promote`".into(),
            };
            self.set_phase(
                run,
                &format!("step {}/{} at {}", i + 1, steps.len(), step.weight),
            )?;
            self.route(|r| r.weight_bp = bp);
            self.emit(
                run,
                "weight",
                &format!(
                    "step {}/{}: {} of traffic to {version}, analysing {pause}",
                    i + 1,
                    steps.len(),
                    step.weight
                ),
                Some(bp),
            )?;
            let step_start = Instant::now();
            // Fresh cursors per step: a window never mixes two weights.
            let mut stable_metrics = self.metrics.cursor(stable);
            let mut canary_metrics = self.metrics.cursor(version);
            let mut ticker = tokio::time::interval_at(step_start + interval, interval);
            // After a stall, go on from now rather than judge a burst of near-empty
            // catch-up windows.
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        let (base, carried_over) =
                            canary::baseline(stable_metrics.next_window(), &mut carried, analysis.min_requests);
                        let report = judge(&analysis.metrics, analysis.min_requests, &base, &canary_metrics.next_window());
                        self.store.add_measurement(
                            &run.id,
                            &MeasurementRecord { at_ms: now_ms(), step: i, weight_bp: bp, report: report.clone() },
                        )?;
                        self.emit(run, "analysis", &summarize(&report, carried_over), Some(bp))?;
                        match canary::after_window(&mut tally, analysis, step, step_start.elapsed(), &report) {
                            Next::Stay => {}
                            Next::StepDone => break,
                            Next::RollBack(reason) => return Ok(Decision::RollBack { outcome: Outcome::RolledBack, reason }),
                        }
                    }
                    changed = health.changed() => {
                        if changed.is_err() {
                            return Ok(unhealthy(version, "the platform stopped reporting its health"));
                        }
                        if let Some(problem) = health.borrow_and_update().problem.clone() {
                            return Ok(unhealthy(version, &problem));
                        }
                    }
                    command = control.recv() => {
                        return self.obey(run, command, i, bp);
                    }
                }
            }
        }
        Ok(Decision::Promote(format!(
            "all {} steps passed analysis",
            steps.len()
        )))
    }

    /// What a person's request means at step `step` (0-based) of the canary.
    fn obey(
        &self,
        run: &NewRun,
        command: Option<Control>,
        step: usize,
        bp: u16,
    ) -> Result<Decision, EngineError> {
        let steps = self.config.strategy.canary().steps.len();
        match command {
            Some(Control::Promote) => {
                self.emit(
                    run,
                    "command",
                    "promote requested: skipping the remaining steps",
                    Some(bp),
                )?;
                Ok(Decision::Promote(format!(
                    "promoted by request at step {}/{steps}, skipping the remaining steps",
                    step + 1
                )))
            }
            Some(Control::Abort { by }) => {
                self.emit(
                    run,
                    "command",
                    &format!("abort requested by {by}"),
                    Some(bp),
                )?;
                Ok(Decision::RollBack {
                    outcome: Outcome::Aborted,
                    reason: format!("aborted by {by}"),
                })
            }
            None => Ok(Decision::RollBack {
                outcome: Outcome::Aborted,
                reason: "the engine went away".into(),
            }),
        }
    }

    /// Starts the run's version and waits for it to be healthy, while honouring an
    /// abort (dropping the platform's start stops whatever it had started).
    async fn start_version(
        &self,
        run: &NewRun,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Result<Started, EngineError> {
        let local = self.config.platform.local();
        self.set_phase(run, "starting")?;
        self.emit(
            run,
            "phase",
            &format!(
                "starting {} ({} instance(s)), waiting for health",
                run.version, local.instances
            ),
            Some(0),
        )?;
        let started = Instant::now();
        let mut promote_requested = false;
        let start = self.platform.start(&run.version);
        tokio::pin!(start);
        let result = loop {
            tokio::select! {
                result = &mut start => break result,
                command = control.recv() => match command {
                    Some(Control::Promote) => {
                        promote_requested = true;
                        self.emit(run, "command", "promote requested: will promote as soon as it is healthy", Some(0))?;
                    }
                    Some(Control::Abort { by }) => {
                        self.emit(run, "command", &format!("abort requested by {by} while starting"), Some(0))?;
                        let reason = format!("aborted by {by} while {} was starting; no traffic was sent to it", run.version);
                        return Ok(Started::NotReady(Decision::RollBack { outcome: Outcome::Aborted, reason }));
                    }
                    // The engine is going away; let the start finish so it is stopped in order.
                    None => break start.await,
                },
            }
        };
        match result {
            Ok(release) => {
                self.emit(
                    run,
                    "health",
                    &format!(
                        "{} healthy after {:.1}s: {}",
                        run.version,
                        started.elapsed().as_secs_f64(),
                        release.describe().join(", ")
                    ),
                    Some(0),
                )?;
                Ok(Started::Ready {
                    release,
                    promote_requested,
                })
            }
            Err(e) => {
                let reason = format!("{} never became healthy: {e}", run.version);
                self.emit(run, "health", &reason, Some(0))?;
                let reason = match run.kind {
                    RunKind::Initial => reason,
                    RunKind::Canary => format!("{reason}; no traffic was ever sent to it"),
                    RunKind::Rollback => {
                        format!(
                            "{reason}; {} keeps serving",
                            run.stable.as_deref().unwrap_or("nothing")
                        )
                    }
                };
                Ok(Started::NotReady(Decision::RollBack {
                    outcome: Outcome::RolledBack,
                    reason,
                }))
            }
        }
    }

    /// Gives the canary all traffic and makes it the stable version; drains and
    /// stops the one it replaces.
    async fn promote_canary(self: &Arc<Self>, run: &NewRun) -> Result<(), EngineError> {
        self.set_phase(run, "promoting")?;
        self.route(|r| r.weight_bp = 10_000);
        self.emit(
            run,
            "weight",
            &format!("100% of traffic to {}", run.version),
            Some(10_000),
        )?;
        let Some(release) = self.releases.lock().await.canary.take() else {
            return Ok(());
        };
        if let Some(mut old) = self.install_stable(release, false).await {
            self.retire(run, &mut *old).await?;
        }
        Ok(())
    }

    /// Sends all traffic back to stable, then drains and stops the canary.
    async fn roll_back_canary(&self, run: &NewRun, reason: &str) -> Result<(), EngineError> {
        self.set_phase(run, "rolling back")?;
        self.emit(
            run,
            "rollback",
            &format!("rolling back {}: {reason}", run.version),
            None,
        )?;
        let stable = run.stable.as_deref().unwrap_or("nothing");
        let stable_ready = lock(&self.routing)
            .stable
            .as_ref()
            .is_some_and(|s| !s.health.borrow().ready.is_empty());
        if !stable_ready {
            // Keeping a failing canary would hide the failure; say plainly that the
            // way back leads nowhere right now.
            self.emit(
                run,
                "health",
                &format!(
                    "warning: {stable} has no ready instance; requests fail until it recovers"
                ),
                None,
            )?;
        }
        self.route(|r| {
            r.canary = None;
            r.weight_bp = 0;
        });
        self.emit(
            run,
            "weight",
            &format!("100% of traffic back on {stable}"),
            Some(0),
        )?;
        let canary = self.releases.lock().await.canary.take();
        if let Some(mut canary) = canary {
            self.retire(run, &mut *canary).await?;
        }
        Ok(())
    }

    /// Drains a version that no longer gets traffic and stops it.
    async fn retire(&self, run: &NewRun, release: &mut dyn Release) -> Result<(), EngineError> {
        let version = release.version().to_owned();
        let timeout = self.config.platform.local().drain_timeout;
        let drained = self.traffic.drain(&version, timeout).await;
        let message = if drained {
            format!("{version} drained: no request in flight")
        } else {
            format!(
                "{version} still had requests in flight after the drain timeout of {}; stopping it anyway",
                humantime::format_duration(timeout)
            )
        };
        self.emit(run, "drain", &message, None)?;
        release.stop(STOP_GRACE).await;
        self.emit(run, "stop", &format!("{version} stopped"), None)?;
        Ok(())
    }

    /// The emergency exit, when the run cannot record what it does: traffic back to
    /// stable, then the canary drained and stopped, without touching the store.
    async fn evacuate(&self) {
        self.route(|r| {
            r.canary = None;
            r.weight_bp = 0;
        });
        let canary = self.releases.lock().await.canary.take();
        if let Some(mut canary) = canary {
            let timeout = self.config.platform.local().drain_timeout;
            self.traffic.drain(canary.version(), timeout).await;
            canary.stop(STOP_GRACE).await;
        }
    }

    /// Takes all traffic away, then drains and stops every release.
    pub(crate) async fn stop_serving(&self) {
        self.route(|r| *r = Default::default());
        let mut releases = self.releases.lock().await;
        let timeout = self.config.platform.local().drain_timeout;
        for mut release in [releases.canary.take(), releases.stable.take()]
            .into_iter()
            .flatten()
        {
            self.traffic.drain(release.version(), timeout).await;
            release.stop(STOP_GRACE).await;
        }
    }

    fn set_phase(&self, run: &NewRun, phase: &str) -> Result<(), EngineError> {
        self.store.set_phase(&run.id, phase)?;
        Ok(())
    }

    fn emit(
        &self,
        run: &NewRun,
        kind: &str,
        message: &str,
        weight_bp: Option<u16>,
    ) -> Result<(), EngineError> {
        let record = self
            .store
            .append_event(&run.id, now_ms(), kind, message, weight_bp)?;
        info!(run = %run.id, version = %run.version, kind, weight_bp, "{message}");
        let _ = self
            .events
            .send(RunEvent::from_record(&run.id, record, None));
        Ok(())
    }

    pub(crate) fn write_receipts(&self, run_id: &str) {
        match receipts::write(&self.store, &self.runs_dir, run_id, &self.config) {
            Ok(dir) => info!(run = %run_id, dir = %dir.display(), "receipts written"),
            Err(e) => warn!(run = %run_id, error = %e, "could not write receipts"),
        }
    }

    pub(crate) fn new_run_id(&self, version: &str) -> Result<String, EngineError> {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let stamp: String = stamp
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let base = format!("{stamp}-{version}");
        let mut id = base.clone();
        let mut n = 1;
        while self.store.run(&id).is_ok() {
            n += 1;
            id = format!("{base}-{n}");
        }
        Ok(id)
    }
}

/// Closes the run's control channel, so requests from now on are refused as too
/// late, and returns the abort among those already accepted, which is still owed.
fn close_control(control: &mut mpsc::UnboundedReceiver<Control>) -> Option<String> {
    control.close();
    let mut abort = None;
    while let Ok(command) = control.try_recv() {
        if let Control::Abort { by } = command {
            abort.get_or_insert(by);
        }
    }
    abort
}

/// The last word before a version gets all traffic: an abort already accepted, or
/// a problem it had since it became healthy, turns the promotion into a rollback.
fn veto(
    run: &NewRun,
    control: &mut mpsc::UnboundedReceiver<Control>,
    problem: Option<String>,
) -> Option<Decision> {
    if let Some(by) = close_control(control) {
        return Some(Decision::RollBack {
            outcome: Outcome::Aborted,
            reason: format!("aborted by {by} before {} got all traffic", run.version),
        });
    }
    problem.map(|p| unhealthy(&run.version, &p))
}

fn unhealthy(version: &str, problem: &str) -> Decision {
    Decision::RollBack {
        outcome: Outcome::RolledBack,
        reason: format!("{version} became unhealthy: {problem}"),
    }
}

fn summarize(report: &WindowReport, carried_over: bool) -> String {
    let metrics: Vec<String> = report
        .metrics
        .iter()
        .map(|m| {
            format!(
                "{} {} vs {} ({}, {})",
                m.metric, m.canary, m.stable, m.limit, m.verdict
            )
        })
        .collect();
    format!(
        "{}: canary {} req, stable {} req{}; {}",
        report.verdict,
        report.canary.requests,
        report.stable.requests,
        if carried_over {
            " (stable baseline from an earlier window)"
        } else {
            ""
        },
        metrics.join("; ")
    )
}
