//! The engine: one rollout at a time per app, every transition written to the store
//! before it is acted on.
//!
//! A run is driven by one task. It persists the phase it is entering, then acts:
//! start the new version, set weights, judge windows, promote or roll back. The
//! decisions themselves are pure functions in [`crate::canary`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cutover_analysis::{WindowReport, judge};
use cutover_spec::{Config, Pause};
use cutover_store::{MeasurementRecord, NewRun, Outcome, RunKind, Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::canary::{self, Next, Tally};
use crate::events::{RunEvent, format_bp, now_ms};
use crate::platform::{Platform, Release, ReleaseHealth};
use crate::receipts;
use crate::traffic::{MetricsSource, Split, Target, Traffic};

/// How long a stopped version gets between the polite signal and the forced one.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why the engine refused a request. Nothing was changed when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Another run of the app is in progress.
    #[error(
        "a rollout of {version} is already in progress (run {run_id}); wait for it, or `cutover abort` it"
    )]
    Busy { run_id: String, version: String },
    /// The version asked for already serves all traffic.
    #[error("version {0} is already the stable version; nothing to deploy")]
    AlreadyServing(String),
    /// The version name cannot be used.
    #[error("invalid version `{0}`: use 1 to 64 characters of letters, digits, `.`, `_` and `-`")]
    InvalidVersion(String),
    /// `promote` or `abort` with no rollout running.
    #[error("no rollout is in progress")]
    NoActiveRun,
    /// `rollback` with no earlier promoted version to go back to.
    #[error("there is no earlier promoted version to roll back to")]
    NothingToRollBack,
    /// The store could not record the transition, so it was not made.
    #[error("could not record the run in the store")]
    Store(#[from] StoreError),
}

/// A request to a running rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Skip the remaining steps and promote now.
    Promote,
    /// Go back to stable; `by` says who or what asked.
    Abort { by: String },
}

/// What a client needs to follow a run it started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunStarted {
    pub run_id: String,
    pub version: String,
    pub kind: RunKind,
    /// Where the run's receipts will be once it ends.
    pub receipts: PathBuf,
}

/// The app as it is now.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub app: String,
    pub stable: Option<VersionStatus>,
    pub canary: Option<VersionStatus>,
    /// Share of traffic on the canary, e.g. `10%`.
    pub canary_weight: String,
    pub active_run: Option<ActiveStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionStatus {
    pub version: String,
    pub ready_instances: usize,
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveStatus {
    pub run_id: String,
    pub version: String,
    pub kind: RunKind,
    pub phase: String,
}

/// The rollout engine of one app. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<Store>,
    platform: Arc<dyn Platform>,
    traffic: Arc<dyn Traffic>,
    metrics: Arc<dyn MetricsSource>,
    runs_dir: PathBuf,
    routing: Mutex<Routing>,
    stable: tokio::sync::Mutex<Option<Box<dyn Release>>>,
    active: Mutex<Option<ActiveRun>>,
    events: broadcast::Sender<RunEvent>,
}

#[derive(Default)]
struct Routing {
    stable: Option<Routed>,
    canary: Option<Routed>,
    weight_bp: u16,
}

struct Routed {
    version: String,
    health: watch::Receiver<ReleaseHealth>,
}

impl Routed {
    fn target(&self) -> Target {
        Target {
            version: self.version.clone(),
            instances: self.health.borrow().ready.clone(),
        }
    }

    fn status(&self) -> VersionStatus {
        let h = self.health.borrow();
        VersionStatus {
            version: self.version.clone(),
            ready_instances: h.ready.len(),
            problem: h.problem.clone(),
        }
    }
}

struct ActiveRun {
    run: NewRun,
    control: mpsc::UnboundedSender<Control>,
    handle: Option<JoinHandle<()>>,
}

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
enum Decision {
    Promote(String),
    RollBack { outcome: Outcome, reason: String },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here only swaps plain values, so a panic elsewhere
    // cannot leave them half-updated.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// `runs_dir` is where receipts go, one folder per run.
    pub fn new(
        config: Config,
        store: Arc<Store>,
        platform: Arc<dyn Platform>,
        traffic: Arc<dyn Traffic>,
        metrics: Arc<dyn MetricsSource>,
        runs_dir: PathBuf,
    ) -> Engine {
        let (events, _) = broadcast::channel(1024);
        Engine {
            inner: Arc::new(Inner {
                config,
                store,
                platform,
                traffic,
                metrics,
                runs_dir,
                routing: Mutex::new(Routing::default()),
                stable: tokio::sync::Mutex::new(None),
                active: Mutex::new(None),
                events,
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Live events of every run; a client filters by run id.
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.inner.events.subscribe()
    }

    /// Settles what a previous daemon left: runs that never recorded an outcome are
    /// ended as aborted (their processes died with that daemon), and the last
    /// promoted version is started again and given all traffic.
    ///
    /// # Errors
    /// Only when the store cannot be read or written; a stable version that fails to
    /// start again is logged and leaves the app without a stable version.
    pub async fn recover(&self) -> Result<(), EngineError> {
        let inner = &self.inner;
        let app = &inner.config.app;
        let promoted = inner.store.promoted_versions(app, 1)?;
        for run in inner.store.unfinished_runs(app)? {
            let reason = format!(
                "the daemon stopped while this run was in phase `{}`; on restart {} was given all traffic",
                run.phase,
                promoted.first().map_or("no version", String::as_str)
            );
            warn!(run = %run.id, phase = %run.phase, "settling a run interrupted by a daemon stop");
            inner
                .store
                .append_event(&run.id, now_ms(), "outcome", &reason, Some(0))?;
            inner
                .store
                .finish_run(&run.id, now_ms(), Outcome::Aborted, &reason)?;
            inner.write_receipts(&run.id);
        }
        if let Some(version) = promoted.first() {
            info!(app = %app, version = %version, "starting the stable version again");
            match inner.platform.start(version).await {
                Ok(release) => {
                    inner.install_stable(release, true).await;
                }
                Err(e) => {
                    warn!(app = %app, version = %version, error = %e, "could not start the stable version again")
                }
            }
        }
        Ok(())
    }

    /// Starts rolling out `version`: a plain start if the app serves nothing yet, a
    /// canary otherwise. Returns once the run is recorded; the run goes on in the
    /// background.
    ///
    /// # Errors
    /// [`EngineError::Busy`] while another run is active, and the other variants for
    /// requests that cannot be honoured. Nothing is started when it fails.
    pub fn deploy(&self, version: &str) -> Result<RunStarted, EngineError> {
        validate_version(version)?;
        let stable = lock(&self.inner.routing)
            .stable
            .as_ref()
            .map(|r| r.version.clone());
        if stable.as_deref() == Some(version) {
            return Err(EngineError::AlreadyServing(version.to_owned()));
        }
        let kind = if stable.is_some() {
            RunKind::Canary
        } else {
            RunKind::Initial
        };
        self.start_run(version, stable, kind)
    }

    /// Goes back to the previous promoted version, fast and without analysis.
    ///
    /// # Errors
    /// When a run is active or there is nothing to go back to.
    pub fn rollback(&self) -> Result<RunStarted, EngineError> {
        let stable = lock(&self.inner.routing)
            .stable
            .as_ref()
            .map(|r| r.version.clone());
        let promoted = self
            .inner
            .store
            .promoted_versions(&self.inner.config.app, 2)?;
        let target = match (stable.as_deref(), promoted.as_slice()) {
            (Some(s), [first, second, ..]) if s == first => second.clone(),
            // The stable version is not the last promoted one only after a failed
            // restart; then the last promoted one is where "back" is.
            (Some(s), [first, ..]) if s != first => first.clone(),
            (None, [first, ..]) => first.clone(),
            _ => return Err(EngineError::NothingToRollBack),
        };
        self.start_run(&target, stable, RunKind::Rollback)
    }

    /// Asks the running rollout to skip its remaining steps and promote.
    pub fn promote(&self) -> Result<String, EngineError> {
        self.control(Control::Promote)
    }

    /// Asks the running rollout to go back to stable.
    pub fn abort(&self, by: &str) -> Result<String, EngineError> {
        self.control(Control::Abort { by: by.to_owned() })
    }

    fn control(&self, control: Control) -> Result<String, EngineError> {
        let active = lock(&self.inner.active);
        let active = active.as_ref().ok_or(EngineError::NoActiveRun)?;
        // The receiver lives as long as the run; a send error means the run is
        // finishing right now, which is the same as having no run.
        active
            .control
            .send(control)
            .map_err(|_| EngineError::NoActiveRun)?;
        Ok(active.run.id.clone())
    }

    fn start_run(
        &self,
        version: &str,
        stable: Option<String>,
        kind: RunKind,
    ) -> Result<RunStarted, EngineError> {
        let mut active = lock(&self.inner.active);
        if let Some(a) = active.as_ref() {
            return Err(EngineError::Busy {
                run_id: a.run.id.clone(),
                version: a.run.version.clone(),
            });
        }
        let run = NewRun {
            id: self.inner.new_run_id(version)?,
            app: self.inner.config.app.clone(),
            version: version.to_owned(),
            stable,
            kind,
            started_at_ms: now_ms(),
        };
        self.inner.store.insert_run(&run)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = self.inner.clone();
        let driven = run.clone();
        let handle = tokio::spawn(async move { inner.drive(driven, rx).await });
        *active = Some(ActiveRun {
            run: run.clone(),
            control: tx,
            handle: Some(handle),
        });
        info!(app = %run.app, run = %run.id, version = %run.version, kind = run.kind.as_str(), "run started");
        let receipts = self.inner.runs_dir.join(&run.id);
        Ok(RunStarted {
            run_id: run.id,
            version: run.version,
            kind: run.kind,
            receipts,
        })
    }

    /// The app as it is now.
    pub fn status(&self) -> Status {
        let routing = lock(&self.inner.routing);
        let active = lock(&self.inner.active).as_ref().map(|a| ActiveStatus {
            run_id: a.run.id.clone(),
            version: a.run.version.clone(),
            kind: a.run.kind,
            phase: self
                .inner
                .store
                .run(&a.run.id)
                .map(|r| r.phase)
                .unwrap_or_default(),
        });
        Status {
            app: self.inner.config.app.clone(),
            stable: routing.stable.as_ref().map(Routed::status),
            canary: routing.canary.as_ref().map(Routed::status),
            canary_weight: format_bp(if routing.canary.is_some() {
                routing.weight_bp
            } else {
                0
            }),
            active_run: active,
        }
    }

    /// Waits for the active run, if any, to finish.
    pub async fn wait_idle(&self) {
        let handle = lock(&self.inner.active)
            .as_mut()
            .and_then(|a| a.handle.take());
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }

    /// Aborts the active run (stable keeps serving), waits for it, then stops the
    /// stable version.
    ///
    /// # Guarantees
    /// When it returns, every release the engine started has been stopped.
    pub async fn shutdown(&self) {
        let _ = self.abort("the daemon shutting down");
        self.wait_idle().await;
        let mut routing = std::mem::take(&mut *lock(&self.inner.routing));
        routing.stable.take();
        self.inner.traffic.apply(&Split::default());
        if let Some(mut release) = self.inner.stable.lock().await.take() {
            release.stop(STOP_GRACE).await;
        }
    }
}

impl Inner {
    async fn drive(self: Arc<Self>, run: NewRun, mut control: mpsc::UnboundedReceiver<Control>) {
        let result = match run.kind {
            RunKind::Initial => self.initial(&run, &mut control).await,
            RunKind::Canary => self.canary(&run, &mut control).await,
            RunKind::Rollback => self.fast_switch(&run, &mut control).await,
        };
        let (outcome, reason) = match result {
            Ok(Decision::Promote(reason)) => (Outcome::Promoted, reason),
            Ok(Decision::RollBack { outcome, reason }) => (outcome, reason),
            Err(e) => {
                // The store failed mid-run: put traffic back on stable so nothing is
                // left half-shifted, and say so as best we can.
                let mut routing = lock(&self.routing);
                routing.canary = None;
                routing.weight_bp = 0;
                drop(routing);
                self.reroute();
                (
                    Outcome::RolledBack,
                    format!("internal error, traffic returned to stable: {e}"),
                )
            }
        };
        let message = match outcome {
            Outcome::Promoted => format!("{} is live: {reason}", run.version),
            Outcome::RolledBack => format!("{} rolled back: {reason}", run.version),
            Outcome::Aborted => format!("{} aborted: {reason}", run.version),
        };
        let at = now_ms();
        if let Err(e) = self.store.finish_run(&run.id, at, outcome, &reason) {
            warn!(run = %run.id, error = %e, "could not record the outcome");
        }
        let record = self
            .store
            .append_event(&run.id, at, "outcome", &message, None);
        self.write_receipts(&run.id);
        // Clear the slot before announcing the end, so a client reacting to the
        // final event can start the next run at once.
        lock(&self.active).take();
        info!(run = %run.id, version = %run.version, outcome = outcome.as_str(), reason = %reason, "run finished");
        let event = match record {
            Ok(r) => RunEvent::from_record(&run.id, r, Some(outcome)),
            Err(_) => RunEvent {
                run_id: run.id.clone(),
                seq: i64::MAX,
                at_ms: at,
                kind: "outcome".into(),
                message,
                weight_bp: None,
                outcome: Some(outcome),
            },
        };
        let _ = self.events.send(event);
    }

    async fn initial(
        self: &Arc<Self>,
        run: &NewRun,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Result<Decision, EngineError> {
        let release = match self.start_version(run, control).await? {
            Started::Ready { release, .. } => release,
            Started::NotReady(decision) => return Ok(decision),
        };
        self.install_stable(release, true).await;
        self.emit(
            run,
            "weight",
            &format!("100% of traffic to {}", run.version),
            Some(0),
        )?;
        Ok(Decision::Promote(
            "first version of the app: started, healthy and serving".into(),
        ))
    }

    async fn fast_switch(
        self: &Arc<Self>,
        run: &NewRun,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Result<Decision, EngineError> {
        let release = match self.start_version(run, control).await? {
            Started::Ready { release, .. } => release,
            Started::NotReady(decision) => return Ok(decision),
        };
        self.promote_release(run, release).await?;
        Ok(Decision::Promote(format!(
            "rolled back from {} without analysis",
            run.stable.as_deref().unwrap_or("nothing")
        )))
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
        {
            let mut routing = lock(&self.routing);
            routing.canary = Some(Routed {
                version: run.version.clone(),
                health: health.clone(),
            });
            routing.weight_bp = 0;
        }
        self.follow_health(health.clone());
        let decision = if promote_requested {
            Decision::Promote(
                "promoted by request while it was starting, skipping every step".into(),
            )
        } else {
            self.canary_steps(run, &mut health, control).await?
        };
        match &decision {
            Decision::Promote(_) => self.promote_release(run, release).await?,
            Decision::RollBack { reason, .. } => self.roll_back(run, release, reason).await?,
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
        for (i, step) in steps.iter().enumerate() {
            if let Some(problem) = health.borrow().problem.clone() {
                return Ok(unhealthy(version, &problem));
            }
            let bp = step.weight.basis_points();
            let pause = match step.pause {
                Pause::For(d) => format!("for at least {}", humantime::format_duration(d)),
                Pause::UntilPromoted => "until `cutover promote`".into(),
            };
            self.set_phase(
                run,
                &format!("step {}/{} at {}", i + 1, steps.len(), step.weight),
            )?;
            lock(&self.routing).weight_bp = bp;
            self.reroute();
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
                    command = control.recv() => match command {
                        Some(Control::Promote) => {
                            self.emit(run, "command", "promote requested: skipping the remaining steps", Some(bp))?;
                            return Ok(Decision::Promote(format!(
                                "promoted by request at step {}/{}, skipping the remaining steps", i + 1, steps.len()
                            )));
                        }
                        Some(Control::Abort { by }) => {
                            self.emit(run, "command", &format!("abort requested by {by}"), Some(bp))?;
                            return Ok(Decision::RollBack { outcome: Outcome::Aborted, reason: format!("aborted by {by}") });
                        }
                        None => return Ok(Decision::RollBack { outcome: Outcome::Aborted, reason: "the engine went away".into() }),
                    },
                }
            }
        }
        Ok(Decision::Promote(format!(
            "all {} steps passed analysis",
            steps.len()
        )))
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

    /// Gives `release` all traffic and makes it the stable version; drains and stops
    /// the one it replaces.
    async fn promote_release(
        self: &Arc<Self>,
        run: &NewRun,
        release: Box<dyn Release>,
    ) -> Result<(), EngineError> {
        self.set_phase(run, "promoting")?;
        let followed = {
            let mut routing = lock(&self.routing);
            // A fast switch has no canary slot yet; its health is followed once it
            // is installed as stable just below.
            let followed = routing.canary.is_some();
            if !followed {
                routing.canary = Some(Routed {
                    version: run.version.clone(),
                    health: release.health(),
                });
            }
            routing.weight_bp = 10_000;
            followed
        };
        self.reroute();
        self.emit(
            run,
            "weight",
            &format!("100% of traffic to {}", run.version),
            Some(10_000),
        )?;
        let old = self.install_stable(release, !followed).await;
        if let Some(mut old) = old {
            self.retire(run, &mut *old).await?;
        }
        Ok(())
    }

    /// Sends all traffic back to stable, then drains and stops the new version.
    async fn roll_back(
        &self,
        run: &NewRun,
        mut release: Box<dyn Release>,
        reason: &str,
    ) -> Result<(), EngineError> {
        self.set_phase(run, "rolling back")?;
        self.emit(
            run,
            "rollback",
            &format!("rolling back {}: {reason}", run.version),
            None,
        )?;
        {
            let mut routing = lock(&self.routing);
            routing.canary = None;
            routing.weight_bp = 0;
        }
        self.reroute();
        let stable = run.stable.as_deref().unwrap_or("nothing");
        self.emit(
            run,
            "weight",
            &format!("100% of traffic back on {stable}"),
            Some(0),
        )?;
        self.retire(run, &mut *release).await
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
                "{version} still had requests in flight after the drain timeout of {timeout:?}; stopping it anyway"
            )
        };
        self.emit(run, "drain", &message, None)?;
        release.stop(STOP_GRACE).await;
        self.emit(run, "stop", &format!("{version} stopped"), None)?;
        Ok(())
    }

    /// Makes `release` the stable version; returns the one it replaced.
    async fn install_stable(
        self: &Arc<Self>,
        release: Box<dyn Release>,
        follow: bool,
    ) -> Option<Box<dyn Release>> {
        let health = release.health();
        {
            let mut routing = lock(&self.routing);
            routing.stable = Some(Routed {
                version: release.version().to_owned(),
                health: health.clone(),
            });
            routing.canary = None;
            routing.weight_bp = 0;
        }
        self.reroute();
        if follow {
            self.follow_health(health);
        }
        self.stable.lock().await.replace(release)
    }

    /// Re-applies the split whenever the version's ready instances change, until the
    /// release stops reporting.
    fn follow_health(self: &Arc<Self>, mut health: watch::Receiver<ReleaseHealth>) {
        let inner = Arc::downgrade(self);
        tokio::spawn(async move {
            while health.changed().await.is_ok() {
                match inner.upgrade() {
                    Some(inner) => inner.reroute(),
                    None => break,
                }
            }
        });
    }

    fn reroute(&self) {
        let routing = lock(&self.routing);
        let split = Split {
            stable: routing.stable.as_ref().map(Routed::target),
            canary: routing.canary.as_ref().map(Routed::target),
            canary_weight_bp: if routing.canary.is_some() {
                routing.weight_bp
            } else {
                0
            },
        };
        // Applied under the lock so two reroutes cannot overtake each other.
        self.traffic.apply(&split);
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

    fn write_receipts(&self, run_id: &str) {
        match receipts::write(&self.store, &self.runs_dir, run_id, &self.config) {
            Ok(dir) => info!(run = %run_id, dir = %dir.display(), "receipts written"),
            Err(e) => warn!(run = %run_id, error = %e, "could not write receipts"),
        }
    }

    fn new_run_id(&self, version: &str) -> Result<String, EngineError> {
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

fn validate_version(version: &str) -> Result<(), EngineError> {
    let ok = !version.is_empty()
        && version.len() <= 64
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidVersion(version.to_owned()))
    }
}
