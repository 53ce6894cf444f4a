//! The engine's public face: start a run, steer it, read the app's state, settle
//! what a previous daemon left, shut down.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cutover_spec::Config;
use cutover_store::{NewRun, Outcome, RunKind, Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{info, warn};

use crate::events::{RunEvent, format_bp, now_ms};
use crate::platform::{Platform, Release};
use crate::routing::Routing;
use crate::traffic::{MetricsSource, Traffic};

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
    /// `promote` or `abort` after the run already decided how it ends.
    #[error("run {run_id} has already decided how it ends and is finishing; see `cutover status`")]
    TooLate { run_id: String },
    /// `rollback` with no earlier promoted version to go back to.
    #[error("there is no earlier promoted version to roll back to")]
    NothingToRollBack,
    /// The daemon is shutting down and starts no new run.
    #[error("the daemon is shutting down and starts no new run")]
    ShuttingDown,
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
    /// The first thing that went wrong with it since it started, even if it has
    /// recovered since (an instance restarted, a health check passing again).
    pub first_problem: Option<String>,
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

/// Everything a run's driver works with.
///
/// Lock order, where two are held: `active` before `routing`. No std mutex is held
/// across an `.await`; the releases, which are stopped with `.await`, sit behind a
/// tokio mutex of their own.
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) store: Arc<Store>,
    pub(crate) platform: Arc<dyn Platform>,
    pub(crate) traffic: Arc<dyn Traffic>,
    pub(crate) metrics: Arc<dyn MetricsSource>,
    pub(crate) runs_dir: PathBuf,
    /// Which versions get traffic, and how much.
    pub(crate) routing: Mutex<Routing>,
    /// The running versions, owned here so that no error path can drop one (and
    /// with it its processes) while traffic still goes to it.
    pub(crate) releases: tokio::sync::Mutex<Releases>,
    pub(crate) active: Mutex<Active>,
    /// True while no run is active.
    pub(crate) idle: watch::Sender<bool>,
    pub(crate) events: broadcast::Sender<RunEvent>,
    /// Final events the store could not record, by run id, so a client that asks
    /// after the broadcast still gets its run's end.
    pub(crate) unrecorded: Mutex<HashMap<String, RunEvent>>,
}

#[derive(Default)]
pub(crate) struct Releases {
    pub(crate) stable: Option<Box<dyn Release>>,
    pub(crate) canary: Option<Box<dyn Release>>,
}

#[derive(Default)]
pub(crate) struct Active {
    pub(crate) run: Option<ActiveRun>,
    /// Set by [`Engine::shutdown`]: no new run starts.
    pub(crate) closed: bool,
}

pub(crate) struct ActiveRun {
    pub(crate) run: NewRun,
    pub(crate) control: mpsc::UnboundedSender<Control>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
                releases: tokio::sync::Mutex::new(Releases::default()),
                active: Mutex::new(Active::default()),
                idle: watch::Sender::new(true),
                events,
                unrecorded: Mutex::new(HashMap::new()),
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
            let message = format!("{} aborted: {reason}", run.version);
            inner
                .store
                .finish_run(&run.id, now_ms(), Outcome::Aborted, &reason, &message)?;
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
        self.start_run(|stable, _| {
            if stable == Some(version) {
                return Err(EngineError::AlreadyServing(version.to_owned()));
            }
            let kind = if stable.is_some() {
                RunKind::Canary
            } else {
                RunKind::Initial
            };
            Ok((version.to_owned(), kind))
        })
    }

    /// Goes back to the previous promoted version, fast and without analysis.
    ///
    /// # Errors
    /// When a run is active or there is nothing to go back to.
    pub fn rollback(&self) -> Result<RunStarted, EngineError> {
        self.start_run(|stable, store| {
            let promoted = store.promoted_versions(&self.inner.config.app, 2)?;
            let target = match (stable, promoted.as_slice()) {
                (Some(s), [first, second, ..]) if s == first => second.clone(),
                // The stable version is not the last promoted one only after a
                // failed restart; then the last promoted one is where "back" is.
                (Some(s), [first, ..]) if s != first => first.clone(),
                (None, [first, ..]) => first.clone(),
                _ => return Err(EngineError::NothingToRollBack),
            };
            Ok((target, RunKind::Rollback))
        })
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
        // The driver closes its receiver once the outcome is decided.
        active
            .control
            .send(control)
            .map_err(|_| EngineError::TooLate {
                run_id: active.run.id.clone(),
            })?;
        Ok(active.run.id.clone())
    }

    /// Records and spawns a run. `plan` gets the stable version, read under the
    /// same lock that makes the run the only one, and says what to roll out.
    fn start_run(
        &self,
        plan: impl FnOnce(Option<&str>, &Store) -> Result<(String, RunKind), EngineError>,
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
        let stable = lock(&self.inner.routing).stable_version();
        let (version, kind) = plan(stable.as_deref(), &self.inner.store)?;
        let run = NewRun {
            id: self.inner.new_run_id(&version)?,
            app: self.inner.config.app.clone(),
            version,
            stable,
            kind,
            started_at_ms: now_ms(),
        };
        self.inner.store.insert_run(&run)?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.idle.send_replace(false);
        tokio::spawn(self.inner.clone().supervise(run.clone(), rx));
        active.run = Some(ActiveRun {
            run: run.clone(),
            control: tx,
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
        let (stable, canary, weight_bp) = lock(&self.inner.routing).status();
        let active = lock(&self.inner.active).run.as_ref().map(|a| a.run.clone());
        // The store is read with no lock held: the health followers reroute under
        // the routing lock and must not wait for SQLite.
        let active_run = active.map(|run| ActiveStatus {
            phase: self
                .inner
                .store
                .run(&run.id)
                .map(|r| r.phase)
                .unwrap_or_default(),
            run_id: run.id,
            version: run.version,
            kind: run.kind,
        });
        Status {
            app: self.inner.config.app.clone(),
            stable,
            canary,
            canary_weight: format_bp(weight_bp),
            active_run,
        }
    }

    /// Waits until no run is active.
    pub async fn wait_idle(&self) {
        let mut idle = self.inner.idle.subscribe();
        let _ = idle.wait_for(|idle| *idle).await;
    }

    /// The final event of a run whose outcome the store could not record.
    pub fn unrecorded_final(&self, run_id: &str) -> Option<RunEvent> {
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
