//! The engine's public face: start a run, steer it, read the app's state, take
//! over what a previous daemon left, shut down.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cutover_api::{
    ActiveStatus, ApprovalRecord, BackendStatus, Phase, RunKind, RunStarted, StageStatus, Verdict,
};
use cutover_spec::Config;
use cutover_store::{NewRun, Outcome, Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tracing::info;

use crate::environments::Environments;
use crate::events::now_ms;
use crate::logs::LogSource;
use crate::pipeline::{DeployOptions, Pipeline};
use crate::platform::{Platform, ReleaseSpec};
use crate::releases::Owned;
use crate::routing::Routing;
use crate::run::Runner;
use crate::state::RunState;
use crate::strategy::{self, Observation};
use crate::traffic::{MetricsFactory, Prober, Traffic};

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
    #[error("invalid version `{0}`: use {rule}", rule = cutover_api::VERSION_RULE)]
    InvalidVersion(String),
    /// `promote` or `abort` with no rollout running.
    #[error("no rollout is in progress")]
    NoActiveRun,
    /// `promote` or `abort` after the run already decided how it ends.
    #[error("run {run_id} has already decided how it ends and is finishing; see `cutover status`")]
    TooLate { run_id: String },
    /// `rollback` with no earlier promoted version to go back to.
    #[error("there is no earlier promoted version to roll back to")]
    NothingToRollBack,
    /// `rollback --to` a version that was never promoted.
    #[error(
        "{version} was never promoted, so there is nothing to roll back to; promoted versions, newest first: {promoted}"
    )]
    NeverPromoted { version: String, promoted: String },
    /// The daemon is shutting down and starts no new run.
    #[error("the daemon is shutting down and starts no new run")]
    ShuttingDown,
    /// A run was left with nothing to wait for and nothing to do: a bug in its
    /// strategy, ended like any internal failure (traffic back to stable).
    #[error("the run stopped making progress in phase `{phase}`")]
    Stuck { phase: String },
    /// The daemon stopped while the run waited before its rollout (for its time,
    /// for approval): the run is left as recorded, for the next daemon to resume.
    #[error("the run was suspended by the daemon stopping; the next daemon resumes it")]
    Suspended,
    /// `approve` or `reject` for a run that is not the one in progress.
    #[error("run {run_id} is not in progress{active}", active = match active {
        Some(a) => format!("; the run in progress is {a}"),
        None => "; no run is".to_owned(),
    })]
    NotActive {
        run_id: String,
        active: Option<String>,
    },
    /// `approve` or `reject` for a run that is not waiting for approval.
    #[error("run {run_id} is not waiting for approval (it is {phase})")]
    NotAwaitingApproval { run_id: String, phase: String },
    /// `approve` or `reject` by a name the run's config does not list.
    #[error("{by} may not decide on this run: the approvers are {from}")]
    NotAnApprover { by: String, from: String },
    /// A rejection needs a reason, for the record.
    #[error("a rejection needs a comment saying why (`--comment \"...\"`)")]
    RejectionWithoutReason,
    /// This person already decided on this run.
    #[error("{by} already decided on run {run_id} ({verdict})")]
    AlreadyDecided {
        run_id: String,
        by: String,
        verdict: &'static str,
    },
    /// A scheduled deploy's time, or the lack of one, does not fit its type.
    #[error("{0}")]
    InvalidSchedule(String),
    /// The store could not record the transition, so it was not made.
    #[error("could not record the run in the store")]
    Store(#[source] StoreError),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> EngineError {
        match e {
            StoreError::AlreadyDecided {
                run_id,
                by,
                verdict,
            } => EngineError::AlreadyDecided {
                run_id,
                by,
                verdict,
            },
            e => EngineError::Store(e),
        }
    }
}

/// A request to a running rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Skip the remaining steps and promote now.
    Promote,
    /// Go back to stable; `by` says who or what asked.
    Abort { by: String },
}

/// The config a run uses: read and validated when the run starts, and recorded
/// with it, so a later edit of the file changes the next run, never this one.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub config: Config,
    /// The file it was read from (relative paths in it are relative to its folder).
    pub path: PathBuf,
    /// The file's text as read.
    pub text: String,
}

/// What a run records of its config.
#[derive(Serialize, Deserialize)]
struct RecordedConfig {
    path: String,
    text: String,
    /// The environment it was read for, if the file defines environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
}

impl RunConfig {
    pub(crate) fn record(&self) -> String {
        let recorded = RecordedConfig {
            path: self.path.to_string_lossy().into_owned(),
            text: self.text.clone(),
            environment: self.config.environment.clone(),
        };
        // Two strings always encode.
        serde_json::to_string(&recorded).unwrap_or_default()
    }

    /// The config a run recorded, read again.
    pub(crate) fn recorded(json: &str) -> Option<RunConfig> {
        let r: RecordedConfig = serde_json::from_str(json).ok()?;
        let config =
            cutover_spec::parse_environment(&r.text, &r.path, r.environment.as_deref()).ok()?;
        Some(RunConfig {
            config,
            path: PathBuf::from(r.path),
            text: r.text,
        })
    }
}

/// The config text a run recorded (what its receipts show).
pub fn recorded_config_text(recorded: &str) -> Option<String> {
    serde_json::from_str::<RecordedConfig>(recorded)
        .ok()
        .map(|r| r.text)
}

/// Makes the platform a config asks for.
pub trait PlatformFactory: Send + Sync + 'static {
    fn platform(&self, config: &Config) -> Arc<dyn Platform>;

    /// The platform of the run `run_id`: what it starts is kept apart per run
    /// (its logs). By default, [`PlatformFactory::platform`].
    fn platform_for_run(&self, config: &Config, run_id: &str) -> Arc<dyn Platform> {
        let _ = run_id;
        self.platform(config)
    }
}

/// What the app serves when no run is in progress, as recorded for a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Serving {
    pub(crate) stable: Option<ReleaseSpec>,
}

/// The app as it is now.
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    pub app: String,
    pub stable: Option<String>,
    pub backends: Vec<BackendStatus>,
    pub active_run: Option<ActiveStatus>,
}

/// Everything the engine works with.
pub struct EngineParts {
    /// The config the daemon started with; each run brings its own.
    pub config: RunConfig,
    pub store: Arc<Store>,
    pub platforms: Arc<dyn PlatformFactory>,
    /// The platform of `config`, which adopts what an earlier daemon left.
    pub platform: Arc<dyn Platform>,
    pub traffic: Arc<dyn Traffic>,
    /// Each run's metrics source, made from its config.
    pub metrics: Arc<dyn MetricsFactory>,
    /// What the releases logged, for the log check.
    pub logs: Arc<dyn LogSource>,
    pub prober: Arc<dyn Prober>,
    /// The daemons of the config's other environments, for a run's staging.
    pub environments: Arc<dyn Environments>,
    /// Where receipts go, one folder per run.
    pub runs_dir: PathBuf,
}

/// The rollout engine of one app. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// Everything a run's executor works with.
///
/// Lock order, where two are held: `active`, then `routing`, then `releases`. No
/// std mutex is held across an `.await`; a release, which is grown, shrunk and
/// stopped with `.await`, sits behind a tokio mutex of its own.
pub(crate) struct Inner {
    /// The config of the latest run (or of the daemon's start), and its platform.
    pub(crate) current: Mutex<(Arc<RunConfig>, Arc<dyn Platform>)>,
    pub(crate) store: Arc<Store>,
    pub(crate) platforms: Arc<dyn PlatformFactory>,
    pub(crate) traffic: Arc<dyn Traffic>,
    pub(crate) metrics: Arc<dyn MetricsFactory>,
    pub(crate) logs: Arc<dyn LogSource>,
    pub(crate) prober: Arc<dyn Prober>,
    pub(crate) environments: Arc<dyn Environments>,
    pub(crate) runs_dir: PathBuf,
    /// Which releases get traffic, and how much.
    pub(crate) routing: Mutex<Routing>,
    /// The running releases, by name.
    pub(crate) releases: Mutex<HashMap<String, Owned>>,
    pub(crate) active: Mutex<Active>,
    /// True while no run is active.
    pub(crate) idle: watch::Sender<bool>,
    pub(crate) events: broadcast::Sender<cutover_api::RunEvent>,
    /// Final events the store could not record, by run id, so a client that asks
    /// after the broadcast still gets its run's end.
    pub(crate) unrecorded: Mutex<HashMap<String, cutover_api::RunEvent>>,
}

#[derive(Default)]
pub(crate) struct Active {
    pub(crate) run: Option<ActiveRun>,
    /// Set by [`Engine::shutdown`]: no new run starts.
    pub(crate) closed: bool,
}

pub(crate) struct ActiveRun {
    pub(crate) run: NewRun,
    pub(crate) config: Arc<RunConfig>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    /// Told when someone approves or rejects the run (the decision is in the store).
    pub(crate) decided: Arc<Notify>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here only swaps plain values, so a panic elsewhere
    // cannot leave them half-updated.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    pub(crate) fn platform(&self) -> Arc<dyn Platform> {
        lock(&self.current).1.clone()
    }

    /// Whether the daemon is stopping ([`Engine::shutdown`] was called).
    pub(crate) fn shutting_down(&self) -> bool {
        lock(&self.active).closed
    }

    pub(crate) fn drain_timeout(&self) -> Duration {
        self.platform().drain_timeout()
    }

    pub(crate) fn app(&self) -> String {
        lock(&self.current).0.config.app.clone()
    }
}

impl Engine {
    pub fn new(parts: EngineParts) -> Engine {
        let (events, _) = broadcast::channel(1024);
        Engine {
            inner: Arc::new(Inner {
                current: Mutex::new((Arc::new(parts.config), parts.platform)),
                store: parts.store,
                platforms: parts.platforms,
                traffic: parts.traffic,
                metrics: parts.metrics,
                logs: parts.logs,
                prober: parts.prober,
                environments: parts.environments,
                runs_dir: parts.runs_dir,
                routing: Mutex::new(Routing::default()),
                releases: Mutex::new(HashMap::new()),
                active: Mutex::new(Active::default()),
                idle: watch::Sender::new(true),
                events,
                unrecorded: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The config of the latest run, or the daemon's.
    pub fn config(&self) -> Arc<RunConfig> {
        lock(&self.inner.current).0.clone()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Live events of every run; a client filters by run id.
    pub fn subscribe(&self) -> broadcast::Receiver<cutover_api::RunEvent> {
        self.inner.events.subscribe()
    }

    /// Starts rolling out `version` with `config`: a plain start if the app
    /// serves nothing yet, the config's strategy otherwise. Returns once the run is
    /// recorded; the run goes on in the background.
    ///
    /// # Errors
    /// [`EngineError::Busy`] while another run is active, and the other variants for
    /// requests that cannot be honoured. Nothing is started when it fails.
    pub fn deploy(
        &self,
        version: &str,
        options: DeployOptions,
        config: RunConfig,
    ) -> Result<RunStarted, EngineError> {
        validate_version(version)?;
        validate_schedule(&options)?;
        self.start_run(config, options, |stable, _| {
            if stable == Some(version) {
                return Err(EngineError::AlreadyServing(version.to_owned()));
            }
            Ok((version.to_owned(), None))
        })
    }

    /// Records `by`'s decision on run `run_id`, which must be the run in progress
    /// and waiting for approval, and wakes the run to count it.
    ///
    /// # Errors
    /// When the run is not in progress or not waiting for approval, `by` is not
    /// one of its approvers, a rejection has no comment, or `by` already decided.
    /// Nothing is recorded then.
    pub fn decide(
        &self,
        run_id: &str,
        verdict: Verdict,
        by: &str,
        comment: Option<&str>,
    ) -> Result<(), EngineError> {
        let active = lock(&self.inner.active);
        let a = active
            .run
            .as_ref()
            .filter(|a| a.run.id == run_id)
            .ok_or_else(|| EngineError::NotActive {
                run_id: run_id.to_owned(),
                active: active.run.as_ref().map(|a| a.run.id.clone()),
            })?;
        let record = self.inner.store.run(run_id)?;
        let Phase::AwaitingApproval { .. } = record.phase else {
            return Err(EngineError::NotAwaitingApproval {
                run_id: run_id.to_owned(),
                phase: record.phase.to_string(),
            });
        };
        let state: Option<RunState> = self.inner.store.state(run_id)?;
        let waiting = state.as_ref().is_some_and(|s| {
            s.pipeline.stages.iter().any(|st| {
                st.stage == cutover_api::Stage::Approval && st.status == StageStatus::Running
            })
        });
        if !waiting {
            // The quorum was reached (or the wait ended) since the phase was read.
            return Err(EngineError::NotAwaitingApproval {
                run_id: run_id.to_owned(),
                phase: "past its approval".to_owned(),
            });
        }
        let hotfix = state
            .is_some_and(|s| s.pipeline.options.deploy_type == cutover_api::DeployType::Hotfix);
        let quorum = a
            .config
            .config
            .approvals
            .as_ref()
            .map(|spec| spec.quorum(hotfix).clone())
            .unwrap_or(cutover_spec::Quorum {
                required: 0,
                from: Vec::new(),
            });
        if !quorum.from.iter().any(|name| name == by) {
            return Err(EngineError::NotAnApprover {
                by: by.to_owned(),
                from: quorum.from.join(", "),
            });
        }
        let comment = comment.map(str::trim).filter(|c| !c.is_empty());
        if verdict == Verdict::Reject && comment.is_none() {
            return Err(EngineError::RejectionWithoutReason);
        }
        self.inner.store.add_approval(
            run_id,
            &ApprovalRecord {
                by: by.to_owned(),
                verdict,
                at_ms: now_ms(),
                comment: comment.map(str::to_owned),
            },
        )?;
        info!(run = %run_id, by, verdict = verdict.as_str(), "approval decision recorded");
        a.decided.notify_one();
        Ok(())
    }

    /// Goes back to a previous promoted version (`to`, or the one before the
    /// current), fast and without analysis. While a blue-green run still has blue
    /// running after its switch, this is that run's instant switch back.
    ///
    /// # Errors
    /// When another run is active or there is nothing to go back to.
    pub fn rollback(&self, to: Option<&str>, config: RunConfig) -> Result<RunStarted, EngineError> {
        if let Some(to) = to {
            validate_version(to)?;
        }
        if let Some(started) = self.switch_back()? {
            return Ok(started);
        }
        let app = config.config.app.clone();
        self.start_run(config, DeployOptions::default(), |stable, store| {
            let runs = store.runs(&app, ROLLBACK_HISTORY)?;
            let promoted = promoted_newest_first(&runs);
            let target = match to {
                Some(to) if stable == Some(to) => {
                    return Err(EngineError::AlreadyServing(to.into()));
                }
                Some(to) if promoted.iter().any(|p| p == to) => to.to_owned(),
                Some(to) => {
                    return Err(EngineError::NeverPromoted {
                        version: to.to_owned(),
                        promoted: if promoted.is_empty() {
                            "none".into()
                        } else {
                            promoted.join(", ")
                        },
                    });
                }
                None => previous_version(&runs, stable).ok_or(EngineError::NothingToRollBack)?,
            };
            Ok((target, Some(RunKind::Rollback)))
        })
    }

    /// A blue-green run past its switch, blue still running: abort it, which
    /// switches back at once. `None` when no such run is active.
    fn switch_back(&self) -> Result<Option<RunStarted>, EngineError> {
        let active = lock(&self.inner.active);
        let Some(a) = active.run.as_ref() else {
            return Ok(None);
        };
        if a.run.kind != RunKind::BlueGreen {
            return Ok(None);
        }
        let phase = self.inner.store.run(&a.run.id)?.phase;
        if phase != Phase::PostPromotion {
            return Ok(None);
        }
        a.control
            .send(Control::Abort {
                by: "`cutover rollback`".into(),
            })
            .map_err(|_| EngineError::TooLate {
                run_id: a.run.id.clone(),
            })?;
        Ok(Some(RunStarted {
            run_id: a.run.id.clone(),
            version: a.run.stable.clone().unwrap_or_default(),
            kind: a.run.kind,
            from: Some(a.run.version.clone()),
            receipts: self.inner.runs_dir.join(&a.run.id),
        }))
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
        let active = active.run.as_ref().ok_or(EngineError::NoActiveRun)?;
        // The executor closes its receiver once the outcome is decided.
        active
            .control
            .send(control)
            .map_err(|_| EngineError::TooLate {
                run_id: active.run.id.clone(),
            })?;
        Ok(active.run.id.clone())
    }

    /// Records and spawns a run. `plan` gets the stable version, read under the
    /// same lock that makes the run the only one, and says what to roll out (and
    /// the run's kind when it is not the config's strategy).
    fn start_run(
        &self,
        config: RunConfig,
        options: DeployOptions,
        plan: impl FnOnce(Option<&str>, &Store) -> Result<(String, Option<RunKind>), EngineError>,
    ) -> Result<RunStarted, EngineError> {
        let mut active = lock(&self.inner.active);
        if active.closed {
            return Err(EngineError::ShuttingDown);
        }
        if let Some(a) = active.run.as_ref() {
            return Err(EngineError::Busy {
                run_id: a.run.id.clone(),
                version: a.run.version.clone(),
            });
        }
        let stable = self.inner.stable_release();
        let (version, kind) = plan(
            stable.as_ref().map(|s| s.version.as_str()),
            &self.inner.store,
        )?;
        let kind = match (kind, &stable) {
            (Some(kind), _) => kind,
            (None, None) => RunKind::Initial,
            (None, Some(_)) => match &config.config.strategy {
                cutover_spec::StrategySpec::Canary(_) => RunKind::Canary,
                cutover_spec::StrategySpec::BlueGreen(_) => RunKind::BlueGreen,
                cutover_spec::StrategySpec::Rolling(_) => RunKind::Rolling,
            },
        };
        let run = NewRun {
            id: self.new_run_id(&version)?,
            app: config.config.app.clone(),
            version,
            stable: stable.as_ref().map(|s| s.version.clone()),
            kind,
            started_at_ms: now_ms(),
            config: config.record(),
        };
        self.inner.store.insert_run(&run)?;
        let platform = self
            .inner
            .platforms
            .platform_for_run(&config.config, &run.id);
        let switch = matches!(kind, RunKind::Initial | RunKind::Rollback);
        let pipeline = Pipeline::plan(&config.config, kind, options);
        let state = RunState::new(stable, strategy::plan(&config.config, switch), pipeline);
        let config = Arc::new(config);
        *lock(&self.inner.current) = (config.clone(), platform.clone());
        info!(app = %run.app, run = %run.id, version = %run.version, kind = run.kind.as_str(), "run started");
        let started = RunStarted {
            run_id: run.id.clone(),
            version: run.version.clone(),
            kind: run.kind,
            from: run.stable.clone(),
            receipts: self.inner.runs_dir.join(&run.id),
        };
        self.spawn(
            &mut active,
            run,
            config,
            platform,
            state,
            false,
            Observation::Begin,
        );
        Ok(started)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spawn(
        &self,
        active: &mut Active,
        run: NewRun,
        config: Arc<RunConfig>,
        platform: Arc<dyn Platform>,
        state: RunState,
        saved: bool,
        first: Observation,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let decided = Arc::new(Notify::new());
        debug_assert!(active.run.is_none(), "one run at a time");
        active.run = Some(ActiveRun {
            run: run.clone(),
            config: config.clone(),
            control: tx,
            decided: decided.clone(),
        });
        self.inner.idle.send_replace(false);
        let control = crate::run::Steering {
            control: rx,
            decided,
        };
        let runner = Runner::new(
            self.inner.clone(),
            run,
            config,
            platform,
            control,
            state,
            saved,
        );
        tokio::spawn(self.inner.clone().supervise(runner, first));
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
        while self.inner.store.run(&id).is_ok() {
            n += 1;
            id = format!("{base}-{n}");
        }
        Ok(id)
    }

    /// The app as it is now. Never waits for a release that is changing.
    pub async fn status(&self) -> AppStatus {
        let inner = &self.inner;
        let (routes, split) = {
            let routing = lock(&inner.routing);
            (routing.routes.clone(), routing.applied.clone())
        };
        let shares = crate::routing::shares(&split);
        let mut backends = Vec::new();
        for route in &routes {
            let owned = lock(&inner.releases).get(&route.release).cloned();
            let health = inner.health_of(&route.release);
            let (instances, describe) = match owned.as_ref().map(|o| o.try_lock()) {
                Some(Ok(release)) => (release.instance_count(), release.describe()),
                // Being grown or shrunk (which may take a startup timeout): its
                // health says what is ready meanwhile.
                Some(Err(_)) => {
                    let ready = health.as_ref().map_or(0, |h| h.borrow().ready.len() as u32);
                    (ready, vec!["(changing its number of instances)".to_owned()])
                }
                None => (0, Vec::new()),
            };
            let (ready, problem) = health.map_or((0, None), |h| {
                let h = h.borrow();
                (h.ready.len() as u32, h.problem.clone())
            });
            backends.push(BackendStatus {
                version: route.version.clone(),
                role: route.role,
                release: route.release.clone(),
                weight_bp: shares
                    .iter()
                    .find(|s| s.role == route.role && s.version == route.version)
                    .map_or(0, |s| s.weight_bp),
                instances,
                ready_instances: ready,
                first_problem: problem,
                describe,
            });
        }
        let active = lock(&inner.active).run.as_ref().map(|a| a.run.clone());
        // The store is read with no lock held.
        let active_run = active.map(|run| ActiveStatus {
            phase: inner
                .store
                .run(&run.id)
                .map(|r| r.phase)
                .unwrap_or_default(),
            run_id: run.id,
            version: run.version,
            kind: run.kind,
        });
        AppStatus {
            app: inner.app(),
            stable: inner.stable_version(),
            backends,
            active_run,
        }
    }

    /// Waits until no run is active.
    pub async fn wait_idle(&self) {
        let mut idle = self.inner.idle.subscribe();
        let _ = idle.wait_for(|idle| *idle).await;
    }

    /// The final event of a run whose outcome the store could not record.
    pub fn unrecorded_final(&self, run_id: &str) -> Option<cutover_api::RunEvent> {
        lock(&self.inner.unrecorded).get(run_id).cloned()
    }

    /// Refuses new runs, aborts the active one (stable keeps serving) and waits for
    /// it to finish. The stable version keeps serving until [`Engine::stop_serving`].
    pub async fn shutdown(&self) {
        lock(&self.inner.active).closed = true;
        let _ = self.abort("the daemon shutting down");
        self.wait_idle().await;
    }

    /// Takes all traffic away, drains and stops every version the engine runs.
    ///
    /// # Guarantees
    /// When it returns, every release the engine started has been stopped.
    pub async fn stop_serving(&self) {
        self.inner.stop_serving().await;
    }
}

/// How many past runs a rollback looks through.
const ROLLBACK_HISTORY: usize = 1000;

/// Versions ever promoted, newest first, without repeats.
fn promoted_newest_first(runs: &[cutover_store::RunRecord]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in runs.iter().filter(|r| r.outcome == Some(Outcome::Promoted)) {
        if !out.contains(&r.version) {
            out.push(r.version.clone());
        }
    }
    out
}

/// Where a plain `rollback` goes from `stable`: the version promoted before it,
/// skipping every version a rollback already left. So a second rollback goes
/// further back (v3, then v2, then v1), never forth to the version just rolled
/// back from. `runs` are newest first.
fn previous_version(runs: &[cutover_store::RunRecord], stable: Option<&str>) -> Option<String> {
    let mut left: Vec<&str> = Vec::new();
    for run in runs.iter().filter(|r| r.outcome == Some(Outcome::Promoted)) {
        let undone = Some(run.version.as_str()) == stable || left.contains(&run.version.as_str());
        if run.kind == RunKind::Rollback
            && undone
            && let Some(from) = run.stable.as_deref()
        {
            left.push(from);
        }
        if !undone {
            return Some(run.version.clone());
        }
    }
    None
}

/// A scheduled deploy has a time, and only a scheduled one.
fn validate_schedule(options: &DeployOptions) -> Result<(), EngineError> {
    let scheduled = options.deploy_type == cutover_api::DeployType::Scheduled;
    match (scheduled, options.at_ms) {
        (true, None) => Err(EngineError::InvalidSchedule(
            "a scheduled deploy needs the time it begins (`--at 2026-12-02T18:00:00Z`)".into(),
        )),
        (false, Some(_)) => Err(EngineError::InvalidSchedule(format!(
            "a time to begin (`--at`) is only for `--type scheduled`, not `{}`",
            options.deploy_type.as_str()
        ))),
        _ => Ok(()),
    }
}

fn validate_version(version: &str) -> Result<(), EngineError> {
    if cutover_api::valid_version(version) {
        Ok(())
    } else {
        Err(EngineError::InvalidVersion(version.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promoted(version: &str, kind: RunKind, from: Option<&str>) -> cutover_store::RunRecord {
        cutover_store::RunRecord {
            id: version.into(),
            app: "shop".into(),
            version: version.into(),
            stable: from.map(Into::into),
            kind,
            phase: Phase::Finished,
            started_at_ms: 0,
            finished_at_ms: Some(0),
            outcome: Some(Outcome::Promoted),
            reason: None,
        }
    }

    #[test]
    fn repeated_rollbacks_go_further_back_never_forth() {
        let mut runs = vec![
            promoted("v3", RunKind::Canary, Some("v2")),
            promoted("v2", RunKind::Canary, Some("v1")),
            promoted("v1", RunKind::Initial, None),
        ];
        assert_eq!(previous_version(&runs, Some("v3")).as_deref(), Some("v2"));
        runs.insert(0, promoted("v2", RunKind::Rollback, Some("v3")));
        assert_eq!(previous_version(&runs, Some("v2")).as_deref(), Some("v1"));
        runs.insert(0, promoted("v1", RunKind::Rollback, Some("v2")));
        assert_eq!(previous_version(&runs, Some("v1")), None);
        // A new release after rollbacks starts the story again from there.
        runs.insert(0, promoted("v4", RunKind::Canary, Some("v1")));
        assert_eq!(previous_version(&runs, Some("v4")).as_deref(), Some("v1"));
        assert_eq!(promoted_newest_first(&runs), ["v4", "v1", "v2", "v3"]);
    }
}
