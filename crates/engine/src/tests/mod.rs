//! The engine against in-memory fakes of the platform, the traffic layer, the
//! metrics and the prober, with paused tokio time: a whole rollout of minutes runs
//! in milliseconds.
//!
//! The fakes (in `fake`) share one world: the releases that run (each instance
//! with an address of its own, never reused), how each version starts and serves,
//! and an [`Op`] log of every split applied, drain, launch, detach and stop, in
//! order. A second engine over the same store and the same world is the daemon
//! restarted: what the first one started still runs, for the second to adopt.
//!
//! Here: the harness, the configs, and what the `Op` log is checked for. The
//! tests are in one file per topic: `runs` (what every run shares: first deploys,
//! rollbacks, refusals, failures, shutdown), `canary`, `blue_green`, `rolling`,
//! `recovery`, `logs` (the log check).

mod blue_green;
mod canary;
mod fake;
mod logs;
mod pipeline;
mod recovery;
mod rolling;
mod runs;
mod sources;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cutover_api::{Event, Phase, Role, RunEvent, RunStarted};
use cutover_store::Store;
use tokio::sync::broadcast;

pub(super) use fake::{Fake, Starts};

use crate::traffic::Split;
use crate::{Engine, EngineError, EngineParts, PlatformFactory, RunConfig};

/// A canary of three 30s steps judged every 10s, on an absolute error-rate limit.
pub(super) const CANARY: &str = r#"
app: shop
platform:
  local:
    command: ["true", "${PORT}"]
strategy:
  canary:
    steps:
      - weight: 10%
        pause: 30s
      - weight: 50%
        pause: 30s
      - weight: 100%
        pause: 30s
analysis:
  interval: 10s
  min_requests: 20
  failure_limit: 1
  inconclusive_limit: 3
  metrics:
    error_rate: { max: 1% }
"#;

/// [`CANARY`] with its 50% step lasting until `cutover promote`.
pub(super) fn canary_paused_at_half() -> String {
    CANARY.replace(
        "weight: 50%\n        pause: 30s",
        "weight: 50%\n        pause: until-promoted",
    )
}

/// Every apply, drain, launch, detach and stop, in order.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Op {
    Apply(Split),
    Drain(Vec<SocketAddr>),
    /// Instances of a release launched (a start or more instances); they run from
    /// here, and are ready once the platform says so.
    Spawn {
        release: String,
        addrs: Vec<SocketAddr>,
    },
    /// A start or an addition that failed or was dropped: its instances stopped.
    Abandon {
        release: String,
        addrs: Vec<SocketAddr>,
    },
    /// Instances taken out of a release: no longer ready, still running.
    Detach {
        release: String,
        addrs: Vec<SocketAddr>,
    },
    /// The detached instances of a release stopped.
    StopDetached {
        release: String,
        addrs: Vec<SocketAddr>,
    },
    /// A whole release stopped, with the instances it still ran.
    Stop {
        release: String,
        addrs: Vec<SocketAddr>,
    },
    /// A smoke check sent to a role.
    Probe {
        path: String,
        role: Role,
    },
    /// A release dropped without being stopped: its processes would be killed
    /// without a drain.
    Dropped(String),
}

impl Op {
    /// The instances this op stops, if it stops any.
    fn stopped(&self) -> &[SocketAddr] {
        match self {
            Op::Abandon { addrs, .. } | Op::StopDetached { addrs, .. } | Op::Stop { addrs, .. } => {
                addrs
            }
            _ => &[],
        }
    }
}

impl Fake {
    /// Asserts that `release` was stopped, and that each of its instances the
    /// traffic layer was ever given was routed away and drained before it was
    /// stopped (see [`Fake::assert_orderly`]).
    pub(super) fn assert_routed_away_before_stop(&self, release: &str) {
        let log = self.log();
        let stop = log
            .iter()
            .rposition(|op| matches!(op, Op::Stop { release: r, .. } if r == release))
            .unwrap_or_else(|| panic!("{release} never stopped: {log:#?}"));
        let mut routed = 0;
        for op in &log[..stop] {
            if let Op::Spawn { release: r, addrs } = op
                && r == release
            {
                for addr in addrs {
                    routed += usize::from(first_routed(&log, *addr).is_some());
                    if let Some(wrong) = disorder(&log, *addr) {
                        panic!("{release}: {wrong}: {log:#?}");
                    }
                }
            }
        }
        assert!(routed > 0, "{release} was never routed to: {log:#?}");
        self.assert_orderly();
    }

    /// Asserts, for every instance the traffic layer was ever given that was then
    /// stopped: from the split in force when it was drained on, no split routes to
    /// it; it was drained before it was stopped; and no release was dropped without
    /// being stopped.
    pub(super) fn assert_orderly(&self) {
        let log = self.log();
        let stopped: HashSet<SocketAddr> = log
            .iter()
            .flat_map(|op| op.stopped().iter().copied())
            .collect();
        for addr in stopped {
            if let Some(wrong) = disorder(&log, addr) {
                panic!("{wrong}: {log:#?}");
            }
        }
        assert!(
            !log.iter().any(|op| matches!(op, Op::Dropped(_))),
            "a release was dropped unstopped: {log:#?}"
        );
    }
}

fn in_split(split: &Split, addr: SocketAddr) -> bool {
    split.backends.iter().any(|b| b.instances.contains(&addr))
        || (split.mirror.iter()).any(|m| m.instances.contains(&addr))
}

/// Where `addr` was first handed to the traffic layer.
fn first_routed(log: &[Op], addr: SocketAddr) -> Option<usize> {
    log.iter()
        .position(|op| matches!(op, Op::Apply(s) if in_split(s, addr)))
}

/// What went wrong between routing `addr`, draining it and stopping it, if anything.
fn disorder(log: &[Op], addr: SocketAddr) -> Option<String> {
    let routed = first_routed(log, addr)?;
    let stopped = log.iter().position(|op| op.stopped().contains(&addr))?;
    let Some(drained) = log
        .iter()
        .position(|op| matches!(op, Op::Drain(a) if a.contains(&addr)))
    else {
        return Some(format!(
            "{addr} was routed to (op {routed}) and stopped without a drain"
        ));
    };
    if drained > stopped {
        return Some(format!(
            "{addr} stopped (op {stopped}) before its drain (op {drained})"
        ));
    }
    let in_force = log[..drained]
        .iter()
        .rposition(|op| matches!(op, Op::Apply(_)))
        .unwrap_or(0);
    let still = log[in_force..]
        .iter()
        .position(|op| matches!(op, Op::Apply(s) if in_split(s, addr)));
    still.map(|at| {
        format!(
            "{addr} drained (op {drained}) while a split routed to it (op {})",
            in_force + at
        )
    })
}

/// The one version serving, when the split has one backend: the stable one, with
/// ready instances and all the unpinned traffic.
pub(super) fn only_stable(split: &Split) -> Option<&str> {
    match split.backends.as_slice() {
        [b] if b.role == Role::Stable && b.weight > 0 && !b.instances.is_empty() => {
            Some(&b.version)
        }
        _ => None,
    }
}

/// `version`'s share of the unpinned traffic, whatever its role.
pub(super) fn share(split: &Split, version: &str) -> u16 {
    let roles: HashSet<Role> = split
        .backends
        .iter()
        .filter(|b| b.version == version)
        .map(|b| b.role)
        .collect();
    roles.into_iter().map(|r| split.share_bp(r)).sum()
}

/// Whether the split has a backend of `version`, routed to or not.
pub(super) fn mentions(split: &Split, version: &str) -> bool {
    split.backends.iter().any(|b| b.version == version)
}

/// Runs `script` on a runtime of its own (paused time too), on a thread of its
/// own; the runtime, and every task still on it, is dropped when `script` is done.
pub(super) fn on_own_runtime<T, F>(
    script: impl FnOnce() -> F + Send + 'static,
) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let out = runtime.block_on(script());
        drop(runtime);
        out
    })
}

pub(super) fn run_config(text: &str) -> RunConfig {
    let config = cutover_spec::parse(text, "cutover.yaml").unwrap_or_else(|e| panic!("{e}"));
    RunConfig {
        config,
        path: "cutover.yaml".into(),
        text: text.into(),
    }
}

/// One daemon's engine over a store and a world. Cheap to clone.
#[derive(Clone)]
pub(super) struct Harness {
    pub(super) engine: Engine,
    pub(super) fake: Fake,
    pub(super) store: Arc<Store>,
    pub(super) config: RunConfig,
    dir: Arc<tempfile::TempDir>,
}

impl Harness {
    /// A daemon of its own, with an empty store and an empty world.
    pub(super) fn new(config: &str) -> Harness {
        let store = Arc::new(Store::open_in_memory().unwrap());
        Harness::over(store, Fake::default(), config)
    }

    /// A daemon over `store` and the world of `fake`; a second one over the same
    /// two is the first one restarted.
    pub(super) fn over(store: Arc<Store>, fake: Fake, config: &str) -> Harness {
        let config = run_config(config);
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let engine = Engine::new(EngineParts {
            config: config.clone(),
            store: store.clone(),
            platforms: Arc::new(fake.clone()),
            platform: fake.platform(&config.config),
            traffic: Arc::new(fake.clone()),
            metrics: Arc::new(fake.clone()),
            logs: Arc::new(fake.clone()),
            prober: Arc::new(fake.clone()),
            environments: Arc::new(fake.clone()),
            runs_dir: dir.path().join("runs"),
        });
        Harness {
            engine,
            fake,
            store,
            config,
            dir,
        }
    }

    /// Starts a run with `start` (given the harness's config) and follows it from
    /// its first event.
    pub(super) fn follow(
        &self,
        start: impl FnOnce(&Engine, RunConfig) -> Result<RunStarted, EngineError>,
    ) -> Following {
        let events = self.engine.subscribe();
        let started = start(&self.engine, self.config.clone()).unwrap();
        Following { started, events }
    }

    /// Follows a run this daemon did not start (one it resumes), from now on.
    pub(super) fn follow_resumed(&self, run_id: &str) -> Following {
        let events = self.engine.subscribe();
        let run = self.store.run(run_id).unwrap();
        let started = RunStarted {
            run_id: run.id,
            version: run.version,
            kind: run.kind,
            from: run.stable,
            receipts: self.receipts(run_id),
        };
        Following { started, events }
    }

    /// Deploys `version` and follows the run.
    pub(super) fn start(&self, version: &str) -> Following {
        self.follow(|e, config| e.deploy(version, Default::default(), config))
    }

    /// Deploys and waits for the run's final event.
    pub(super) async fn deploy(&self, version: &str) -> RunEvent {
        self.start(version).end().await
    }

    pub(super) fn receipts(&self, run_id: &str) -> PathBuf {
        self.dir.path().join("runs").join(run_id)
    }

    /// The phase of the run in progress, if one is.
    pub(super) async fn active_phase(&self) -> Option<Phase> {
        self.engine.status().await.active_run.map(|a| a.phase)
    }
}

/// A run being followed through its events.
pub(super) struct Following {
    pub(super) started: RunStarted,
    events: broadcast::Receiver<RunEvent>,
}

impl Following {
    /// Waits for the run's first event that matches; panics if the run ends
    /// first, or if none comes within a day of (paused) time.
    pub(super) async fn until(&mut self, what: impl Fn(&RunEvent) -> bool) -> RunEvent {
        let run_id = self.started.run_id.clone();
        let events = &mut self.events;
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(e) if e.run_id != run_id => {}
                    Ok(e) if what(&e) => return e,
                    Ok(e) if e.is_final() => {
                        panic!("the run ended before the event waited for: {}", e.message)
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => panic!("the engine went away"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(86_400), wait)
            .await
            .expect("no such event within a day")
    }

    /// Waits for the run's final event.
    pub(super) async fn end(&mut self) -> RunEvent {
        self.until(RunEvent::is_final).await
    }
}

/// A traffic change after which the new version has `bp` of the traffic.
pub(super) fn traffic_at(bp: u16) -> impl Fn(&RunEvent) -> bool {
    move |e| matches!(e.event, Event::Traffic { .. }) && e.weight_bp == Some(bp)
}

/// The run entering `phase`.
pub(super) fn entered(phase: Phase) -> impl Fn(&RunEvent) -> bool {
    move |e| matches!(&e.event, Event::Phase { phase: p } if *p == phase)
}

pub(super) fn rolling_back(e: &RunEvent) -> bool {
    matches!(e.event, Event::RollingBack { .. })
}
