//! The executor of one run: it turns what happens into [`Observation`]s for the
//! run's strategy, writes the state the strategy returns to the store, and only
//! then carries out the [`Action`]s. Starting, health, draining, stopping,
//! analysis windows, smoke checks and recording are here, shared by every
//! strategy; the decisions are in the strategies' files.

mod commands;
mod stages;
mod staging;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use cutover_analysis::{Against, Sample, Test, WindowReport, absolute_limits, judge, policy};
use cutover_api::{Event, Outcome, SmokeResult};
use cutover_store::{MeasurementRecord, NewRun};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, Interval};
use tracing::warn;

use crate::engine::{Control, EngineError, Inner, RunConfig};
use crate::events::{error_chain, now_ms};
use crate::judging;
use crate::logs::LogWatch;
use crate::platform::{Platform, ReleaseHealth, ReleaseSpec};
use crate::state::{Decision, RunState, Target};
use crate::strategy::{self, Action, Ctx, Observation, Window};
use crate::traffic::{MetricsCursor, MetricsSource};

/// How people reach a run: requests for the rollout, and word of approval decisions.
pub(crate) struct Steering {
    pub(crate) control: mpsc::UnboundedReceiver<Control>,
    pub(crate) decided: Arc<Notify>,
}

/// One run being carried out.
pub(crate) struct Runner {
    pub(crate) inner: Arc<Inner>,
    pub(crate) run: NewRun,
    pub(crate) config: Arc<RunConfig>,
    platform: Arc<dyn Platform>,
    /// Where this run's windows come from (its config's `analysis.source`).
    metrics: Arc<dyn MetricsSource>,
    control: mpsc::UnboundedReceiver<Control>,
    /// Told when someone approves or rejects the run.
    decided: Arc<Notify>,
    pub(crate) state: RunState,
    /// What the store holds, to write only what changed.
    saved: Option<RunState>,
    /// The routes and stickiness last applied.
    applied: Option<(Vec<crate::state::Route>, bool)>,
    live: Option<LiveAnalysis>,
    /// The stable version's numbers since the run began, for a baseline seeded
    /// from them.
    since_start: Option<Box<dyn MetricsCursor>>,
    /// Releases whose problem the strategy was told of.
    reported: HashSet<String>,
    /// Delivers the run's notifications, from the start of `drive` on.
    notifier: Option<cutover_pipeline::Notifier>,
}

/// The cursors and clock of the analysis in progress.
struct LiveAnalysis {
    key: (Target, Option<Target>, u32),
    canary: Box<dyn MetricsCursor>,
    baseline: Option<Box<dyn MetricsCursor>>,
    /// The log check, when it is on and there is a baseline to compare with.
    logs: Option<LogWatch>,
    ticker: Interval,
    last: Instant,
    /// The baseline is still to be seeded from the stable's numbers since the
    /// run began (read with the first window).
    seed: bool,
}

impl Runner {
    pub(crate) fn new(
        inner: Arc<Inner>,
        run: NewRun,
        config: Arc<RunConfig>,
        platform: Arc<dyn Platform>,
        steering: Steering,
        state: RunState,
        saved: bool,
    ) -> Runner {
        let metrics = inner.metrics.source(&config.config);
        let since_start = state
            .stable
            .as_ref()
            .map(|s| metrics.cursor(&s.version, cutover_api::Role::Stable));
        Runner {
            metrics,
            // A new run starts from the routing in force; a resumed one applies
            // its routes to a daemon that has none yet.
            applied: (!saved).then(|| (state.routes.clone(), state.sticky)),
            saved: saved.then(|| state.clone()),
            inner,
            run,
            config,
            platform,
            control: steering.control,
            decided: steering.decided,
            state,
            live: None,
            since_start,
            reported: HashSet::new(),
            notifier: None,
        }
    }

    /// Carries the run out, from `first` on, to its decision: the stages before
    /// the rollout, then the rollout. When that fails (the store, say) or panics,
    /// the run's notifications still say how it ends, before the failure goes on to
    /// [`Inner::supervise`], which sends the traffic back to stable: nobody may be
    /// watching but the receivers.
    pub(crate) async fn drive(mut self, first: Observation) -> Result<Decision, EngineError> {
        use futures_util::FutureExt;
        let driven = std::panic::AssertUnwindSafe(self.carry_out(first))
            .catch_unwind()
            .await;
        match driven {
            Ok(Err(e)) if !matches!(e, EngineError::Suspended) => {
                self.notify_failure(&error_chain(&e));
                Err(e)
            }
            Ok(driven) => driven,
            Err(panic) => {
                self.notify_failure(crate::supervise::PANICKED);
                std::panic::resume_unwind(panic)
            }
        }
    }

    async fn carry_out(&mut self, first: Observation) -> Result<Decision, EngineError> {
        self.start_notifier(first == Observation::Begin);
        let decision = match self.prepare(first).await? {
            stages::Prepared::Go(first) => {
                let decision = self.roll_out(first).await?;
                self.conclude(&decision, true).await?;
                decision
            }
            stages::Prepared::Ended(decision) => {
                // Decided: a request now would be answered "too late".
                self.control.close();
                // A migration already applied is taken back (when reversible).
                self.conclude(&decision, false).await?;
                decision
            }
        };
        self.finish_notifier(&decision);
        Ok(decision)
    }

    /// The rollout: the strategy, from `first` on, to its decision.
    async fn roll_out(&mut self, first: Observation) -> Result<Decision, EngineError> {
        let mut queue = VecDeque::new();
        self.feed(first, &mut queue)?;
        loop {
            while let Some(action) = queue.pop_front() {
                if let Some(decision) = self.act(action, &mut queue).await? {
                    return Ok(decision);
                }
            }
            let obs = self.observe().await?;
            self.feed(obs, &mut queue)?;
        }
    }

    /// One strategy step: the new state is written, the routing and analysis
    /// follow it, and its actions are queued.
    fn feed(&mut self, obs: Observation, queue: &mut VecDeque<Action>) -> Result<(), EngineError> {
        let ctx = Ctx {
            config: &self.config.config,
            version: &self.run.version,
            instances: self.platform.instances(),
        };
        let decided = self.state.decision.is_some();
        let actions = strategy::step(&ctx, &mut self.state, obs);
        if !decided && self.state.decision.is_some() {
            // A decision lists everything still to do; what was queued before it
            // (another release to start, say) is moot.
            queue.clear();
        }
        self.persist()?;
        // The step's leading notes say what was decided and why: recorded before
        // the routing they lead to changes, so the timeline reads in order.
        let mut actions = VecDeque::from(actions);
        while let Some(Action::Note(..)) = actions.front() {
            if let Some(Action::Note(event, message)) = actions.pop_front() {
                self.emit(event, &message)?;
            }
        }
        self.sync()?;
        // The analysis may have seeded its baseline: that is state too.
        self.persist()?;
        queue.extend(actions);
        Ok(())
    }

    fn persist(&mut self) -> Result<(), EngineError> {
        // The GitHub deployment is made in the background: remembered as soon as
        // it is known, so a resumed run updates it rather than making another.
        if let Some(id) = self
            .notifier
            .as_ref()
            .and_then(|n| n.report().github_deployment)
        {
            self.state.pipeline.github_deployment = Some(id);
        }
        if self.saved.as_ref() != Some(&self.state) {
            self.inner
                .store
                .save_state(&self.run.id, &self.state.phase, &self.state)?;
            self.saved = Some(self.state.clone());
        }
        Ok(())
    }

    /// Makes the routing and the analysis what the state says, and closes the run
    /// to requests once it has decided.
    fn sync(&mut self) -> Result<(), EngineError> {
        let routes = (self.state.routes.clone(), self.state.sticky);
        if self.applied.as_ref() != Some(&routes) {
            let cookie = routes
                .1
                .then(|| crate::routing::sticky_cookie(&self.config.config.app));
            let split = self.inner.set_routes(routes.0.clone(), cookie);
            self.applied = Some(routes);
            let shares = crate::routing::shares(&split);
            let message = crate::routing::describe(&shares);
            self.emit(Event::Traffic { shares }, &message)?;
        }
        match &self.state.analysis {
            None => self.live = None,
            Some(a) => {
                let key = (a.canary.clone(), a.baseline.clone(), a.epoch);
                if self.live.as_ref().map(|l| &l.key) != Some(&key) {
                    self.start_analysis(key);
                }
            }
        }
        if self.state.decision.is_some() {
            self.control.close();
        }
        Ok(())
    }

    fn start_analysis(&mut self, key: (Target, Option<Target>, u32)) {
        let metrics = &self.metrics;
        let interval = self.config.config.analysis.interval;
        let canary = metrics.cursor(&key.0.version, key.0.role);
        let baseline = key.1.as_ref().map(|b| metrics.cursor(&b.version, b.role));
        let seed = self
            .state
            .analysis
            .as_ref()
            .is_some_and(|a| a.seed_from_run_start && a.carried.is_none());
        let now = Instant::now();
        let mut ticker = tokio::time::interval_at(now + interval, interval);
        // After a stall, go on from now rather than judge a burst of near-empty
        // catch-up windows.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let logs = self.log_watch(&key);
        self.live = Some(LiveAnalysis {
            key,
            canary,
            baseline,
            logs,
            ticker,
            last: now,
            seed,
        });
    }

    /// Waits for the next thing the strategy must hear of.
    async fn observe(&mut self) -> Result<Observation, EngineError> {
        loop {
            // Seen before the check, so a change during it still wakes the wait.
            let mut health = self.run_health();
            if let Some(obs) = self.new_problem() {
                return Ok(obs);
            }
            let listening = !self.control.is_closed() || !self.control.is_empty();
            if self.live.is_none() && !listening && health.is_empty() {
                // A strategy that decided must act until it finishes; waiting here
                // would wait forever.
                return Err(EngineError::Stuck {
                    phase: self.state.phase.to_string(),
                });
            }
            let changed = wait_any(&mut health);
            tokio::select! {
                _ = async { self.live.as_mut().expect("guarded").ticker.tick().await }, if self.live.is_some() => {
                    return self.window().await;
                }
                command = self.control.recv(), if listening => {
                    return Ok(Observation::Control(command.unwrap_or(Control::Abort {
                        by: "the engine going away".into(),
                    })));
                }
                () = changed => {}
            }
        }
    }

    /// The first problem of one of the run's releases not yet told.
    fn new_problem(&mut self) -> Option<Observation> {
        for spec in &self.state.releases {
            if self.reported.contains(&spec.name) {
                continue;
            }
            let problem = self
                .inner
                .health_of(&spec.name)
                .and_then(|h| h.borrow().problem.clone());
            if let Some(problem) = problem {
                self.reported.insert(spec.name.clone());
                return Some(Observation::Unhealthy {
                    release: spec.name.clone(),
                    problem,
                });
            }
        }
        None
    }

    fn run_health(&self) -> Vec<watch::Receiver<ReleaseHealth>> {
        self.state
            .releases
            .iter()
            .filter(|r| !self.reported.contains(&r.name))
            .filter_map(|r| self.inner.health_of(&r.name))
            .map(|mut health| {
                // A clone starts where the original last looked, which may be long
                // ago: without this, an old change wakes the wait at once, forever.
                health.mark_unchanged();
                health
            })
            .collect()
    }

    /// Judges the window that just ended; one the metrics source could not
    /// measure is inconclusive, with the source's error in its report.
    async fn window(&mut self) -> Result<Observation, EngineError> {
        let config = Arc::clone(&self.config);
        let analysis_spec = &config.config.analysis;
        let live = self
            .live
            .as_mut()
            .expect("a tick comes from a live analysis");
        let now = Instant::now();
        let length = now - live.last;
        live.last = now;
        if std::mem::take(&mut live.seed)
            && let Some(since) = self.since_start.as_mut()
        {
            seed_baseline(since.as_mut(), &mut self.state, analysis_spec.min_requests).await;
        }
        let LiveAnalysis {
            canary,
            baseline,
            logs,
            ..
        } = live;
        let baseline_window = async {
            match baseline {
                Some(b) => b.next_window().await.map(Some),
                None => Ok(None),
            }
        };
        let (canary, current) =
            futures_util::future::join(canary.next_window(), baseline_window).await;
        let baseline_requests = match &current {
            Ok(Some(sample)) => sample.requests,
            _ => 0,
        };
        let analysis = self
            .state
            .analysis
            .as_mut()
            .expect("a live analysis has its state");
        let relative = analysis.baseline.is_some();
        let measured = canary.and_then(|c| current.map(|b| (c, b)));
        let (mut report, carried_over) = match measured {
            Err(error) => {
                warn!(run = %self.run.id, %error, "a window could not be measured");
                let against = if relative {
                    Against::Baseline
                } else {
                    Against::Limits
                };
                (WindowReport::unmeasured(error, against), false)
            }
            Ok((canary, current)) => {
                let (base, carried_over) = match current {
                    Some(sample) => {
                        judging::baseline(sample, &mut analysis.carried, analysis_spec.min_requests)
                    }
                    None => (Sample::default(), false),
                };
                let report = if relative {
                    policy::judge_window(
                        analysis_spec,
                        &mut analysis.judge,
                        &base,
                        !carried_over,
                        &canary,
                    )
                } else {
                    WindowReport {
                        against: Against::Limits,
                        ..judge(
                            &absolute_limits(&analysis_spec.metrics),
                            analysis_spec.min_requests,
                            &base,
                            &canary,
                        )
                    }
                };
                (report, carried_over)
            }
        };
        if let Some(logs) = logs.as_mut() {
            logs.judge(analysis_spec, &mut report, baseline_requests);
        }
        let step = self.step_index();
        let weight_bp = self.share_bp();
        self.inner.store.add_measurement(
            &self.run.id,
            &MeasurementRecord {
                at_ms: now_ms(),
                step: step as usize,
                weight_bp,
                report: report.clone(),
            },
        )?;
        let message = summarize(&report, carried_over, relative);
        self.emit(
            Event::Analysis {
                step,
                carried_over,
                report: Box::new(report.clone()),
            },
            &message,
        )?;
        Ok(Observation::Window(Box::new(Window { report, length })))
    }

    fn step_index(&self) -> u32 {
        match &self.state.phase {
            cutover_api::Phase::Step { step, .. } => step.saturating_sub(1),
            cutover_api::Phase::Batch { batch, .. } => batch.saturating_sub(1),
            _ => 0,
        }
    }

    /// The new version's share of the traffic now, in basis points.
    fn share_bp(&self) -> u16 {
        self.inner.share_of(&self.run.version)
    }

    /// Carries out one action; returns the decision when it is the last.
    async fn act(
        &mut self,
        action: Action,
        queue: &mut VecDeque<Action>,
    ) -> Result<Option<Decision>, EngineError> {
        match action {
            Action::Note(event, message) => self.emit(event, &message)?,
            Action::Start(spec) => {
                let obs = self.start(spec, queue).await?;
                self.feed(obs, queue)?;
            }
            Action::Add { release, n } => {
                let obs = match self.inner.add_instances(&release, n).await {
                    Ok(count) => {
                        self.set_count(&release, count);
                        Observation::Scaled { release }
                    }
                    Err(e) => {
                        let error = error_chain(&e);
                        self.emit(
                            Event::StartFailed {
                                release: release.clone(),
                                version: self.version_of(&release),
                                error: error.clone(),
                            },
                            &format!("could not start {n} more instance(s) of {release}: {error}"),
                        )?;
                        Observation::ScaleFailed { release, error }
                    }
                };
                self.feed(obs, queue)?;
            }
            Action::Remove { release, n } => {
                let timeout = self.platform.drain_timeout();
                let (addrs, count) = self.inner.remove_instances(&release, n, timeout).await;
                self.set_count(&release, count);
                self.emit(
                    Event::Stopped {
                        release: release.clone(),
                        instances: addrs.len() as u32,
                    },
                    &format!(
                        "{} instance(s) of {release} drained and stopped ({})",
                        addrs.len(),
                        addrs
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )?;
                self.feed(Observation::Scaled { release }, queue)?;
            }
            Action::Smoke => {
                let results = self.smoke().await;
                let failed: Vec<String> = results
                    .iter()
                    .filter(|r| !r.passed)
                    .map(|r| format!("{}: {}", r.check, r.problem.as_deref().unwrap_or("failed")))
                    .collect();
                let passed = failed.is_empty();
                let summary = if passed {
                    format!("{} smoke check(s) passed", results.len())
                } else {
                    failed.join("; ")
                };
                self.emit(
                    Event::Smoke { results },
                    &format!("smoke checks: {summary}"),
                )?;
                self.feed(Observation::Smoke { passed, summary }, queue)?;
            }
            Action::Retire { release } => {
                self.retire(&release).await?;
                self.state.releases.retain(|r| r.name != release);
                if self
                    .state
                    .stable
                    .as_ref()
                    .is_some_and(|s| s.name == release)
                {
                    self.state.stable = None;
                }
                self.persist()?;
            }
            Action::Commit { check } => {
                let obs = self.commit(&check);
                self.feed(obs, queue)?;
            }
            Action::Finish(decision) => return Ok(Some(decision)),
        }
        Ok(None)
    }

    fn version_of(&self, release: &str) -> String {
        self.state
            .release(release)
            .map_or_else(|| release.to_owned(), |r| r.version.clone())
    }

    fn set_count(&mut self, release: &str, count: u32) {
        let spec = self
            .state
            .releases
            .iter_mut()
            .chain(self.state.stable.iter_mut())
            .find(|r| r.name == release);
        if let Some(spec) = spec {
            spec.instances = count;
        }
    }

    /// Starts a release, honouring an abort meanwhile (dropping the platform's
    /// start stops whatever it had started); a promote meanwhile is told to the
    /// strategy at once, its notes recorded at once and its other actions queued.
    async fn start(
        &mut self,
        spec: ReleaseSpec,
        queue: &mut VecDeque<Action>,
    ) -> Result<Observation, EngineError> {
        let began = Instant::now();
        let platform = Arc::clone(&self.platform);
        let start = platform.start(&spec);
        tokio::pin!(start);
        let result = loop {
            tokio::select! {
                result = &mut start => break result,
                command = self.control.recv(), if !self.control.is_closed() => match command {
                    Some(Control::Abort { by }) => {
                        return Ok(Observation::Control(Control::Abort {
                            by: format!("{by} while {} was starting", spec.name),
                        }));
                    }
                    Some(Control::Promote) => {
                        let mut told = VecDeque::new();
                        self.feed(Observation::Control(Control::Promote), &mut told)?;
                        for action in told {
                            match action {
                                Action::Note(event, message) => self.emit(event, &message)?,
                                other => queue.push_back(other),
                            }
                        }
                    }
                    // The engine is going away; let the start finish so it is stopped in order.
                    None => break start.await,
                },
            }
        };
        match result {
            Ok(release) => {
                let describe = release.describe();
                self.inner.adopt_release(release);
                self.state.releases.push(spec.clone());
                self.emit(
                    Event::Healthy {
                        release: spec.name.clone(),
                        version: spec.version.clone(),
                        instances: spec.instances,
                        after_ms: began.elapsed().as_millis() as u64,
                        describe: describe.clone(),
                    },
                    &format!(
                        "{} healthy after {:.1}s: {}",
                        spec.name,
                        began.elapsed().as_secs_f64(),
                        describe.join(", ")
                    ),
                )?;
                Ok(Observation::Started {
                    release: spec.name.clone(),
                })
            }
            Err(e) => {
                let error = error_chain(&e);
                self.emit(
                    Event::StartFailed {
                        release: spec.name.clone(),
                        version: spec.version.clone(),
                        error: error.clone(),
                    },
                    &format!("{} never became healthy: {error}", spec.name),
                )?;
                Ok(Observation::StartFailed {
                    release: spec.name.clone(),
                    error,
                })
            }
        }
    }

    /// The last word before a promotion: an abort already accepted, or a problem
    /// a checked release had since it became healthy, turns it into a rollback.
    fn commit(&mut self, check: &[String]) -> Observation {
        self.control.close();
        let mut abort = None;
        while let Ok(command) = self.control.try_recv() {
            if let Control::Abort { by } = command {
                abort.get_or_insert(by);
            }
        }
        if let Some(by) = abort {
            return Observation::Vetoed(Decision {
                outcome: Outcome::Aborted,
                reason: format!(
                    "aborted by {by} before {} got all traffic",
                    self.run.version
                ),
            });
        }
        for name in check {
            let problem = self
                .inner
                .health_of(name)
                .and_then(|h| h.borrow().problem.clone());
            if let Some(problem) = problem {
                return Observation::Vetoed(Decision {
                    outcome: Outcome::RolledBack,
                    reason: format!("{name} became unhealthy: {problem}"),
                });
            }
        }
        Observation::Committed
    }

    /// Drains a release that no longer has a route, and stops it.
    async fn retire(&mut self, release: &str) -> Result<(), EngineError> {
        let timeout = self.platform.drain_timeout();
        let Some(retired) = self.inner.retire(release, timeout).await else {
            return Ok(());
        };
        let message = if retired.drained {
            format!("{release} drained: no request in flight")
        } else {
            format!(
                "{release} still had requests in flight after the drain timeout of {}; stopping it anyway",
                humantime::format_duration(timeout)
            )
        };
        self.emit(
            Event::Drained {
                release: release.to_owned(),
                instances: retired.instances,
                clean: retired.drained,
            },
            &message,
        )?;
        self.emit(
            Event::Stopped {
                release: release.to_owned(),
                instances: retired.instances,
            },
            &format!("{release} stopped"),
        )
    }

    /// Runs the configured smoke checks against the preview, through the proxy.
    async fn smoke(&self) -> Vec<SmokeResult> {
        let checks = match &self.config.config.strategy {
            cutover_spec::StrategySpec::BlueGreen(bg) => bg.smoke_checks.clone(),
            _ => Vec::new(),
        };
        let mut results = Vec::with_capacity(checks.len());
        for check in &checks {
            results.push(
                self.inner
                    .prober
                    .probe(check, cutover_api::Role::Preview)
                    .await,
            );
        }
        results
    }

    fn emit(&self, event: Event, message: &str) -> Result<(), EngineError> {
        let weight = self.share_bp();
        self.inner.emit(&self.run, event, message, Some(weight))
    }
}

/// Resolves when any of `health` changes (or its release stops reporting); never
/// when there is none.
async fn wait_any(health: &mut [watch::Receiver<ReleaseHealth>]) {
    if health.is_empty() {
        return std::future::pending().await;
    }
    let changes = health.iter_mut().map(|h| Box::pin(h.changed()));
    let (result, _, _) = futures_util::future::select_all(changes).await;
    if result.is_err() {
        // A release that stops reporting is gone from the run's releases or
        // about to be; wait for something else rather than spin.
        std::future::pending::<()>().await;
    }
}

/// Seeds the analysis' baseline from the stable's numbers since the run began,
/// when they are enough to judge against; without them (or when the source
/// cannot say) relative limits wait for the baseline's own windows.
async fn seed_baseline(since: &mut dyn MetricsCursor, state: &mut RunState, min_requests: u64) {
    let sample = match since.next_window().await {
        Ok(sample) => sample,
        Err(error) => {
            warn!(%error, "no baseline from the stable's numbers since the run began");
            return;
        }
    };
    if let Some(a) = state.analysis.as_mut()
        && sample.requests >= min_requests.max(1)
    {
        a.carried = Some(sample);
    }
}

/// An analysis window in words: the verdict, the requests on each side and each
/// metric with its limit (the tests with their p-values).
fn summarize(report: &WindowReport, carried_over: bool, relative: bool) -> String {
    if let Some(error) = &report.source_error {
        return format!("{}: not measured: {error}", report.verdict);
    }
    let metrics: Vec<String> = report
        .metrics
        .iter()
        .map(|m| {
            let value = m.format(m.canary);
            match m.test {
                Test::Limit if relative => format!(
                    "{} {value} vs {} ({}, {})",
                    m.metric,
                    m.format(m.baseline),
                    m.format_limit(),
                    m.verdict
                ),
                Test::Limit => {
                    format!("{} {value} ({}, {})", m.metric, m.format_limit(), m.verdict)
                }
                Test::Sequential | Test::MannWhitney => format!(
                    "{} {} {value} vs {} (p {}, {})",
                    m.test,
                    m.metric,
                    m.format(m.baseline),
                    m.p_value
                        .map_or_else(|| "-".to_owned(), |p| format!("{p:.3}")),
                    m.verdict
                ),
            }
        })
        .collect();
    let against = if relative {
        format!(
            ", stable {} req{}",
            report.stable.requests,
            if carried_over {
                " (stable baseline from an earlier window)"
            } else {
                ""
            }
        )
    } else {
        String::new()
    };
    format!(
        "{}: canary {} req{against}; {}",
        report.verdict,
        report.canary.requests,
        metrics.join("; ")
    )
}
