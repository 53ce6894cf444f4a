//! The engine against in-memory fakes of the platform and the traffic layer, with
//! paused tokio time: a whole canary of minutes runs in milliseconds.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cutover_analysis::Sample;
use cutover_store::{NewRun, Outcome, RunKind, Store};
use tokio::sync::watch;

use crate::platform::{Platform, PlatformError, Release, ReleaseHealth};
use crate::traffic::{MetricsCursor, MetricsSource, Split, Traffic};
use crate::{Engine, EngineError, RunEvent};

/// How a fake version behaves.
#[derive(Clone, Copy, Default)]
struct Behaviour {
    never_healthy: bool,
    /// The platform panics when asked to start it (a bug in a platform).
    panics: bool,
    /// It passes its startup checks, then an instance exits at once.
    dies_right_after_start: bool,
    error_rate: f64,
    /// Requests per window; 0 means it serves nothing.
    idle: bool,
}

impl Behaviour {
    fn never_healthy() -> Behaviour {
        Behaviour {
            never_healthy: true,
            ..Default::default()
        }
    }
    fn panics() -> Behaviour {
        Behaviour {
            panics: true,
            ..Default::default()
        }
    }
    fn dies_right_after_start() -> Behaviour {
        Behaviour {
            dies_right_after_start: true,
            ..Default::default()
        }
    }
    fn error_rate(rate: f64) -> Behaviour {
        Behaviour {
            error_rate: rate,
            ..Default::default()
        }
    }
    fn idle() -> Behaviour {
        Behaviour {
            idle: true,
            ..Default::default()
        }
    }
}

#[derive(Default)]
struct World {
    behaviours: HashMap<String, Behaviour>,
    running: HashSet<String>,
    splits: Vec<Split>,
    health: HashMap<String, watch::Sender<ReleaseHealth>>,
    /// Every apply, drain and stop, in order.
    log: Vec<Op>,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Apply(Split),
    Drain(String),
    Stop(String),
    /// A release dropped without being stopped: its processes would be killed
    /// without a drain.
    Dropped(String),
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<World>>);

impl Fake {
    fn behave(&self, version: &str, b: Behaviour) {
        self.0.lock().unwrap().behaviours.insert(version.into(), b);
    }
    fn running(&self) -> HashSet<String> {
        self.0.lock().unwrap().running.clone()
    }
    fn last_split(&self) -> Split {
        self.0
            .lock()
            .unwrap()
            .splits
            .last()
            .cloned()
            .unwrap_or_default()
    }
    fn splits(&self) -> Vec<Split> {
        self.0.lock().unwrap().splits.clone()
    }
    fn log(&self) -> Vec<Op> {
        self.0.lock().unwrap().log.clone()
    }

    /// Asserts that `version` got no traffic from the moment it was drained, and
    /// that it was drained before it was stopped.
    fn assert_routed_away_before_stop(&self, version: &str) {
        let log = self.log();
        let stop = log.iter().position(|op| *op == Op::Stop(version.into()));
        let stop = stop.unwrap_or_else(|| panic!("{version} never stopped: {log:?}"));
        let drain = log.iter().position(|op| *op == Op::Drain(version.into()));
        let drain = drain.unwrap_or_else(|| panic!("{version} stopped without a drain: {log:?}"));
        assert!(drain < stop, "{version} stopped before its drain: {log:?}");
        let last_apply = log[..drain].iter().rev().find_map(|op| match op {
            Op::Apply(split) => Some(split),
            _ => None,
        });
        let routed =
            |t: &Option<crate::traffic::Target>| t.as_ref().is_some_and(|t| t.version == version);
        if let Some(split) = last_apply {
            let gets_traffic = (routed(&split.canary) && split.canary_weight_bp > 0)
                || (routed(&split.stable) && split.canary_weight_bp < 10_000);
            assert!(
                !gets_traffic,
                "{version} still had traffic when drained: {split:?}"
            );
        }
        assert!(
            !log.iter().any(|op| matches!(op, Op::Dropped(_))),
            "a release was dropped unstopped: {log:?}"
        );
    }

    fn break_version(&self, version: &str, problem: &str) {
        let world = self.0.lock().unwrap();
        world.health[version].send_modify(|h| {
            h.ready.clear();
            h.problem = Some(problem.into());
        });
    }
}

fn addr(version: &str) -> SocketAddr {
    let port = 10_000 + version.bytes().map(u16::from).sum::<u16>();
    SocketAddr::from(([127, 0, 0, 1], port))
}

struct FakeRelease {
    version: String,
    world: Fake,
    health: watch::Receiver<ReleaseHealth>,
    stopped: bool,
}

impl Drop for FakeRelease {
    fn drop(&mut self) {
        if !self.stopped {
            self.world
                .0
                .lock()
                .unwrap()
                .log
                .push(Op::Dropped(self.version.clone()));
        }
    }
}

#[async_trait]
impl Platform for Fake {
    async fn start(&self, version: &str) -> Result<Box<dyn Release>, PlatformError> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let behaviour = self
            .0
            .lock()
            .unwrap()
            .behaviours
            .get(version)
            .copied()
            .unwrap_or_default();
        assert!(
            !behaviour.panics,
            "the fake platform was told to panic on {version}"
        );
        let mut world = self.0.lock().unwrap();
        if behaviour.never_healthy {
            return Err(PlatformError::StartupTimeout {
                version: version.into(),
                timeout: Duration::from_secs(30),
                last: "connection refused".into(),
            });
        }
        let (tx, rx) = watch::channel(if behaviour.dies_right_after_start {
            ReleaseHealth {
                ready: vec![],
                problem: Some("instance 0 (pid 1) exited: exit status: 1".into()),
            }
        } else {
            ReleaseHealth {
                ready: vec![addr(version)],
                problem: None,
            }
        });
        world.health.insert(version.into(), tx);
        world.running.insert(version.into());
        Ok(Box::new(FakeRelease {
            version: version.into(),
            world: self.clone(),
            health: rx,
            stopped: false,
        }))
    }
}

#[async_trait]
impl Release for FakeRelease {
    fn version(&self) -> &str {
        &self.version
    }
    fn health(&self) -> watch::Receiver<ReleaseHealth> {
        self.health.clone()
    }
    fn describe(&self) -> Vec<String> {
        vec![format!("fake on {}", addr(&self.version))]
    }
    async fn stop(&mut self, _grace: Duration) {
        self.stopped = true;
        let mut world = self.world.0.lock().unwrap();
        world.log.push(Op::Stop(self.version.clone()));
        world.running.remove(&self.version);
        world.health.remove(&self.version);
    }
}

#[async_trait]
impl Traffic for Fake {
    fn apply(&self, split: &Split) {
        let mut world = self.0.lock().unwrap();
        world.splits.push(split.clone());
        world.log.push(Op::Apply(split.clone()));
    }
    async fn drain(&self, version: &str, _timeout: Duration) -> bool {
        self.0.lock().unwrap().log.push(Op::Drain(version.into()));
        true
    }
}

impl MetricsSource for Fake {
    fn cursor(&self, version: &str) -> Box<dyn MetricsCursor> {
        Box::new(FakeCursor {
            fake: self.clone(),
            version: version.into(),
        })
    }
}

struct FakeCursor {
    fake: Fake,
    version: String,
}

impl MetricsCursor for FakeCursor {
    fn next_window(&mut self) -> Sample {
        let version = self.version.as_str();
        let world = self.fake.0.lock().unwrap();
        let b = world.behaviours.get(version).copied().unwrap_or_default();
        if b.idle || !world.running.contains(version) {
            return Sample::default();
        }
        let requests = 200;
        let ms = Some(Duration::from_millis(20));
        Sample {
            requests,
            errors: (requests as f64 * b.error_rate) as u64,
            p50: ms,
            p95: ms,
            p99: ms,
        }
    }
}

const CONFIG: &str = r#"
app: shop
platform:
  local:
    command: ["true"]
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

struct Harness {
    engine: Engine,
    fake: Fake,
    store: Arc<Store>,
    _dir: tempfile::TempDir,
}

fn harness_with(config: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config = cutover_spec::parse(config, "cutover.yaml").unwrap();
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fake = Fake::default();
    let engine = Engine::new(
        config,
        store.clone(),
        Arc::new(fake.clone()),
        Arc::new(fake.clone()),
        Arc::new(fake.clone()),
        dir.path().join("runs"),
    );
    Harness {
        engine,
        fake,
        store,
        _dir: dir,
    }
}

fn harness() -> Harness {
    harness_with(CONFIG)
}

/// v1 live, and v2 waiting at a 50% step that only `promote` ends.
async fn paused_at_half() -> (Harness, Following) {
    let h = harness_with(&CONFIG.replace(
        "weight: 50%\n        pause: 30s",
        "weight: 50%\n        pause: until-promoted",
    ));
    h.deploy("v1").await;
    let mut run = h.start("v2");
    run.until(|e| e.kind == "weight" && e.weight_bp == Some(5000))
        .await;
    (h, run)
}

/// A run being followed through its events.
struct Following {
    started: crate::RunStarted,
    events: tokio::sync::broadcast::Receiver<RunEvent>,
}

impl Following {
    /// Waits for the run's first event that matches.
    async fn until(&mut self, matches: impl Fn(&RunEvent) -> bool) -> RunEvent {
        let run_id = self.started.run_id.clone();
        wait_for(&mut self.events, |e| e.run_id == run_id && matches(e)).await
    }

    /// Waits for the run's final event.
    async fn end(&mut self) -> RunEvent {
        self.until(RunEvent::is_final).await
    }
}

impl Harness {
    /// Starts a run with `start` and follows it from its first event.
    fn follow(
        &self,
        start: impl FnOnce(&Engine) -> Result<crate::RunStarted, EngineError>,
    ) -> Following {
        let events = self.engine.subscribe();
        let started = start(&self.engine).unwrap();
        Following { started, events }
    }

    /// Deploys `version` and follows the run.
    fn start(&self, version: &str) -> Following {
        self.follow(|e| e.deploy(version))
    }

    /// Deploys and waits for the run's final event.
    async fn deploy(&self, version: &str) -> RunEvent {
        self.start(version).end().await
    }

    fn receipts(&self, run_id: &str) -> std::path::PathBuf {
        self._dir.path().join("runs").join(run_id)
    }
}

/// The first event that matches.
async fn wait_for(
    events: &mut tokio::sync::broadcast::Receiver<RunEvent>,
    matches: impl Fn(&RunEvent) -> bool,
) -> RunEvent {
    loop {
        let e = events.recv().await.unwrap();
        if matches(&e) {
            return e;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn first_deploy_starts_and_serves_without_a_canary() {
    let h = harness();
    let end = h.deploy("v1").await;
    assert_eq!(end.outcome, Some(Outcome::Promoted));
    let split = h.fake.last_split();
    assert_eq!(split.stable.unwrap().version, "v1");
    assert!(split.canary.is_none());
    assert_eq!(h.store.promoted_versions("shop", 5).unwrap(), vec!["v1"]);
}

#[tokio::test(start_paused = true)]
async fn healthy_canary_walks_every_step_then_replaces_stable() {
    let h = harness();
    h.deploy("v1").await;
    let started = tokio::time::Instant::now();
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    // Three steps of 30s, judged every 10s: no step can end before its pause.
    assert!(
        started.elapsed() >= Duration::from_secs(90),
        "{:?}",
        started.elapsed()
    );
    let weights: Vec<u16> = h
        .fake
        .splits()
        .iter()
        .filter(|s| s.canary.is_some())
        .map(|s| s.canary_weight_bp)
        .collect();
    for w in [1000, 5000, 10_000] {
        assert!(
            weights.contains(&w),
            "weight {w} never applied: {weights:?}"
        );
    }
    assert!(
        weights.windows(2).all(|w| w[0] <= w[1]),
        "weights went down: {weights:?}"
    );
    let split = h.fake.last_split();
    assert_eq!(split.stable.unwrap().version, "v2");
    assert!(split.canary.is_none());
    assert_eq!(h.fake.running(), HashSet::from(["v2".to_string()]));
    h.fake.assert_routed_away_before_stop("v1");
    let receipts = h.receipts(&end.run_id);
    assert!(receipts.join("deployment-log.md").exists());
    assert!(receipts.join("canary-analysis.md").exists());
    assert!(!receipts.join("rollback-log.md").exists());
}

#[tokio::test(start_paused = true)]
async fn erroring_canary_rolls_back_at_the_first_failed_window() {
    let h = harness();
    h.deploy("v1").await;
    h.fake.behave("v2", Behaviour::error_rate(0.05));
    let started = tokio::time::Instant::now();
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack));
    assert!(end.message.contains("error rate 5.00%"), "{}", end.message);
    // start (0.5s) + one 10s window: it did not wait for the step's pause to end.
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    let split = h.fake.last_split();
    assert_eq!(split.stable.unwrap().version, "v1");
    assert!(split.canary.is_none());
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    let rollback =
        std::fs::read_to_string(h.receipts(&end.run_id).join("rollback-log.md")).unwrap();
    assert!(rollback.contains("error_rate"), "{rollback}");
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(h.receipts(&end.run_id).join("run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(run["run"]["outcome"], "rolled_back");
}

#[tokio::test(start_paused = true)]
async fn a_canary_that_never_becomes_healthy_never_gets_traffic() {
    let h = harness();
    h.deploy("v1").await;
    h.fake.behave("v2", Behaviour::never_healthy());
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack));
    assert!(
        end.message.contains("never became healthy"),
        "{}",
        end.message
    );
    assert!(h.fake.splits().iter().all(|s| s.canary.is_none()));
}

#[tokio::test(start_paused = true)]
async fn a_canary_that_breaks_mid_step_rolls_back_at_once() {
    let h = harness();
    h.deploy("v1").await;
    let mut run = h.start("v2");
    // Wait until the first weight is applied, then break the canary.
    run.until(|e| e.kind == "weight" && e.weight_bp == Some(1000))
        .await;
    h.fake
        .break_version("v2", "instance 0 (pid 1) exited: exit status: 101");
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack));
    assert!(end.message.contains("exited"), "{}", end.message);
    assert_eq!(h.fake.last_split().stable.unwrap().version, "v1");
    h.fake.assert_routed_away_before_stop("v2");
}

#[tokio::test(start_paused = true)]
async fn abort_returns_to_stable_and_records_who_asked() {
    let h = harness();
    h.deploy("v1").await;
    let mut run = h.start("v2");
    run.until(|e| e.kind == "weight").await;
    h.engine.abort("a test").unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted));
    assert!(end.message.contains("a test"));
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    h.fake.assert_routed_away_before_stop("v2");
    assert!(matches!(
        h.engine.abort("again"),
        Err(EngineError::NoActiveRun)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_second_deploy_is_refused_while_one_runs() {
    let h = harness();
    h.deploy("v1").await;
    let first = h.engine.deploy("v2").unwrap();
    match h.engine.deploy("v3") {
        Err(EngineError::Busy { run_id, version }) => {
            assert_eq!(run_id, first.run_id);
            assert_eq!(version, "v2");
        }
        other => panic!("expected Busy, got {:?}", other.map(|r| r.run_id)),
    }
    h.engine.abort("test").unwrap();
    h.engine.wait_idle().await;
}

#[tokio::test(start_paused = true)]
async fn no_canary_traffic_is_inconclusive_and_never_promoted() {
    let h = harness();
    h.deploy("v1").await;
    h.fake.behave("v2", Behaviour::idle());
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack));
    assert!(end.message.contains("inconclusive"), "{}", end.message);
}

#[tokio::test(start_paused = true)]
async fn until_promoted_waits_for_a_person() {
    let (h, mut run) = paused_at_half().await;
    // An hour at the paused step: still waiting.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(h.engine.status().active_run.is_some());
    h.engine.promote().unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted));
    assert_eq!(h.fake.last_split().stable.unwrap().version, "v2");
}

#[tokio::test(start_paused = true)]
async fn rollback_goes_to_the_previous_promoted_version_without_analysis() {
    let h = harness();
    assert!(matches!(
        h.engine.rollback(),
        Err(EngineError::NothingToRollBack)
    ));
    h.deploy("v1").await;
    h.deploy("v2").await;
    let mut run = h.follow(|e| e.rollback());
    assert_eq!(run.started.version, "v1");
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted));
    assert!(
        h.store
            .measurements(&run.started.run_id)
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.fake.last_split().stable.unwrap().version, "v1");
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
}

#[tokio::test(start_paused = true)]
async fn a_restarted_daemon_settles_interrupted_runs_and_restores_stable() {
    let h = harness();
    h.deploy("v1").await;
    // What a daemon killed mid-canary leaves behind: a run with no outcome.
    h.store
        .insert_run(&NewRun {
            id: "interrupted".into(),
            app: "shop".into(),
            version: "v2".into(),
            stable: Some("v1".into()),
            kind: RunKind::Canary,
            started_at_ms: 1,
        })
        .unwrap();
    h.store.set_phase("interrupted", "step 2/3 at 50%").unwrap();
    let fresh = harness_with(CONFIG);
    let engine = Engine::new(
        fresh.engine.config().clone(),
        h.store.clone(),
        Arc::new(fresh.fake.clone()),
        Arc::new(fresh.fake.clone()),
        Arc::new(fresh.fake.clone()),
        fresh._dir.path().join("runs"),
    );
    engine.recover().await.unwrap();
    let run = h.store.run("interrupted").unwrap();
    assert_eq!(run.outcome, Some(Outcome::Aborted));
    assert!(run.reason.unwrap().contains("step 2/3"));
    assert_eq!(fresh.fake.last_split().stable.unwrap().version, "v1");
}

#[tokio::test(start_paused = true)]
async fn bad_version_names_are_refused_before_anything_starts() {
    let h = harness();
    assert!(matches!(
        h.engine.deploy("../etc"),
        Err(EngineError::InvalidVersion(_))
    ));
    assert!(matches!(
        h.engine.deploy(""),
        Err(EngineError::InvalidVersion(_))
    ));
    assert!(h.fake.splits().is_empty());
    h.deploy("v1").await;
    assert!(matches!(
        h.engine.deploy("v1"),
        Err(EngineError::AlreadyServing(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn abort_while_starting_stops_at_once_without_waiting_for_health() {
    let h = harness();
    h.deploy("v1").await;
    let mut run = h.start("v2");
    // The fake takes 500ms to start; abort before that.
    h.engine.abort("a test").unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted));
    assert!(
        end.message.contains("while v2 was starting"),
        "{}",
        end.message
    );
    assert!(h.fake.splits().iter().all(|s| s.canary.is_none()));
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_platform_fails_the_run_and_frees_the_app() {
    let h = harness();
    h.deploy("v1").await;
    h.fake.behave("v2", Behaviour::panics());
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::Failed));
    assert!(end.message.contains("panicked"), "{}", end.message);
    assert_eq!(h.fake.last_split().stable.unwrap().version, "v1");
    assert_eq!(
        h.store.run(&end.run_id).unwrap().outcome,
        Some(Outcome::Failed)
    );
    // The app is free again.
    assert_eq!(h.deploy("v3").await.outcome, Some(Outcome::Promoted));
}

#[tokio::test(start_paused = true)]
async fn shutdown_aborts_the_run_refuses_new_ones_and_stop_serving_stops_everything() {
    let h = harness();
    h.deploy("v1").await;
    let mut run = h.start("v2");
    run.until(|e| e.kind == "weight").await;
    h.engine.shutdown().await;
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted));
    assert!(matches!(
        h.engine.deploy("v3"),
        Err(EngineError::ShuttingDown)
    ));
    // Stable still serves until told to stop.
    assert_eq!(h.fake.last_split().stable.unwrap().version, "v1");
    h.engine.stop_serving().await;
    assert!(h.fake.running().is_empty());
    h.fake.assert_routed_away_before_stop("v1");
}

#[tokio::test(start_paused = true)]
async fn requests_after_the_run_has_decided_are_refused_as_too_late() {
    let h = harness();
    h.deploy("v1").await;
    h.fake.behave("v2", Behaviour::error_rate(0.5));
    let mut run = h.start("v2");
    run.until(|e| e.kind == "rollback").await;
    // Decided to roll back, still finishing: neither promote nor abort applies.
    match h.engine.promote() {
        Err(EngineError::TooLate { run_id }) => assert_eq!(run_id, run.started.run_id),
        Err(EngineError::NoActiveRun) => {} // it may already have finished
        other => panic!("expected TooLate, got {other:?}"),
    }
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack));
}

#[tokio::test(start_paused = true)]
async fn an_abort_accepted_with_a_promote_is_honoured() {
    let (h, mut run) = paused_at_half().await;
    // Both accepted before the driver looks: the promote decides, the abort vetoes.
    h.engine.promote().unwrap();
    h.engine.abort("a test").unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted), "{}", end.message);
    assert_eq!(h.fake.last_split().stable.unwrap().version, "v1");
    h.fake.assert_routed_away_before_stop("v2");
}

#[tokio::test(start_paused = true)]
async fn a_canary_promoted_while_starting_is_still_checked_before_it_gets_traffic() {
    let h = harness();
    h.deploy("v1").await;
    h.fake.behave("v2", Behaviour::dies_right_after_start());
    let mut run = h.start("v2");
    h.engine.promote().unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(end.message.contains("exited"), "{}", end.message);
    assert!(
        h.fake
            .splits()
            .iter()
            .all(|s| s.canary_weight_bp == 0 || s.canary.is_none()),
        "the broken canary got traffic: {:?}",
        h.fake.splits()
    );
}

#[tokio::test(start_paused = true)]
async fn a_rollback_target_that_dies_right_after_start_never_replaces_stable() {
    let h = harness();
    h.deploy("v1").await;
    h.deploy("v2").await;
    h.fake.behave("v1", Behaviour::dies_right_after_start());
    let mut run = h.follow(|e| e.rollback());
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert_eq!(h.fake.last_split().stable.unwrap().version, "v2");
    assert_eq!(h.fake.running(), HashSet::from(["v2".to_string()]));
}
