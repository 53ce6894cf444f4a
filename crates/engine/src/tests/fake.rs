//! The fakes: one world of running releases, each instance with an address of
//! its own (never reused), and the platform, traffic layer, metrics and prober
//! that act on it, every act logged as an [`Op`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use cutover_analysis::{Histogram, Sample, SourceError, SourceFault};
use cutover_api::{DeployType, Outcome, Role, SmokeResult};
use cutover_spec::{Config, EnvironmentSpec, SmokeCheck};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Op;
use crate::PlatformFactory;
use crate::environments::{EnvironmentError, Environments, Staged, StagedRun};
use crate::logs::{LogFollower, LogSource};
use crate::platform::{Platform, PlatformError, Release, ReleaseHealth, ReleaseSpec};
use crate::traffic::{MetricsCursor, MetricsFactory, MetricsSource, Prober, Split, Traffic};

/// How long the fake platform takes to start an instance.
const START_TIME: Duration = Duration::from_millis(500);

/// Requests every (version, role) that serves gets in a window.
const REQUESTS: u64 = 200;

/// How a version starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Starts {
    #[default]
    Healthy,
    /// Its instances never pass their health checks.
    NeverHealthy,
    /// The platform panics when asked to start it (a bug in a platform).
    Panics,
    /// It passes its startup checks, then an instance exits at once.
    DiesRightAfterStart,
}

/// How a version serves in a role, window after window.
#[derive(Clone, Debug, Default)]
struct Serves {
    error_rate: f64,
    /// Gets no requests even when routed to.
    idle: bool,
    /// The metrics source cannot measure it: every window is this fault.
    unmeasured: Option<SourceFault>,
}

/// A release as it runs in the world, whichever daemon watches it.
struct Running {
    version: String,
    instances: Vec<SocketAddr>,
    detached: Vec<SocketAddr>,
    health: watch::Sender<ReleaseHealth>,
    /// The daemon that started or adopted it last.
    daemon: u32,
}

#[derive(Default)]
pub(crate) struct World {
    starts_as: HashMap<String, Starts>,
    serves: HashMap<(String, Role), Serves>,
    /// Paths of the smoke checks that fail.
    failing_checks: HashSet<String>,
    releases: HashMap<String, Running>,
    /// `Platform::start` calls, by release name.
    starts: HashMap<String, u32>,
    /// `Platform::adopt` calls that took something over, by release name.
    adoptions: HashMap<String, u32>,
    /// The daemon running now; releases watched by an earlier one are what a killed
    /// daemon left behind.
    daemon: u32,
    next_port: u16,
    log: Vec<(Instant, Op)>,
    /// What each version's releases log, every time their output is read.
    output: HashMap<String, Vec<String>>,
    /// The environment before this one, as its daemon would answer.
    earlier: EarlierEnvironment,
}

/// A fake of the daemon of the environment before this one (the real one is
/// another daemon, reached over HTTP).
#[derive(Default)]
struct EarlierEnvironment {
    /// Each deploy asked of it: the version, and the run it is the staging of.
    deploys: Vec<(String, String)>,
    /// How its run ended, once it has.
    ended: Option<(Outcome, String)>,
}

impl World {
    fn push(&mut self, op: Op) {
        self.log.push((Instant::now(), op));
    }

    fn addrs(&mut self, n: u32) -> Vec<SocketAddr> {
        (0..n)
            .map(|_| {
                self.next_port += 1;
                SocketAddr::from(([127, 0, 0, 1], 20_000 + self.next_port))
            })
            .collect()
    }

    fn splits(&self) -> impl Iterator<Item = &Split> {
        self.log.iter().filter_map(|(_, op)| match op {
            Op::Apply(split) => Some(split),
            _ => None,
        })
    }
}

/// The world, shared by every fake and every engine of a test.
#[derive(Clone, Default)]
pub(crate) struct Fake(Arc<Mutex<World>>);

impl Fake {
    fn world(&self) -> MutexGuard<'_, World> {
        // A fake that panics on purpose must not take the world down with it.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn starts_as(&self, version: &str, how: Starts) {
        self.world().starts_as.insert(version.into(), how);
    }

    /// `version` in `role` fails this share of its requests from now on.
    pub(crate) fn erroring(&self, version: &str, role: Role, rate: f64) {
        let mut world = self.world();
        let serves = world.serves.entry((version.into(), role)).or_default();
        serves.error_rate = rate;
    }

    /// `version` in `role` gets no requests from now on, whatever its weight.
    pub(crate) fn idle(&self, version: &str, role: Role) {
        let mut world = self.world();
        world.serves.entry((version.into(), role)).or_default().idle = true;
    }

    /// `version`'s releases log `lines` every time their output is read (once a
    /// window) from now on.
    pub(crate) fn logs_each_window(&self, version: &str, lines: &[&str]) {
        let lines = lines.iter().map(|l| (*l).to_owned()).collect();
        self.world().output.insert(version.into(), lines);
    }

    /// The metrics source cannot measure `version` in `role` from now on.
    pub(crate) fn unmeasured(&self, version: &str, role: Role, fault: SourceFault) {
        let mut world = self.world();
        world
            .serves
            .entry((version.into(), role))
            .or_default()
            .unmeasured = Some(fault);
    }

    pub(crate) fn failing_check(&self, path: &str) {
        self.world().failing_checks.insert(path.into());
    }

    /// The releases that run, by name.
    pub(crate) fn running(&self) -> HashSet<String> {
        self.world().releases.keys().cloned().collect()
    }

    /// The instances `release` runs (detached ones not counted).
    pub(crate) fn instances(&self, release: &str) -> usize {
        self.world()
            .releases
            .get(release)
            .map_or(0, |r| r.instances.len())
    }

    pub(crate) fn starts(&self, release: &str) -> u32 {
        self.world().starts.get(release).copied().unwrap_or(0)
    }

    pub(crate) fn adoptions(&self, release: &str) -> u32 {
        self.world().adoptions.get(release).copied().unwrap_or(0)
    }

    pub(crate) fn log(&self) -> Vec<Op> {
        self.world().log.iter().map(|(_, op)| op.clone()).collect()
    }

    /// When the first op that matches happened.
    pub(crate) fn when(&self, what: impl Fn(&Op) -> bool) -> Instant {
        let world = self.world();
        let found = world.log.iter().find(|(_, op)| what(op));
        found.map(|(at, _)| *at).unwrap_or_else(|| {
            let ops: Vec<&Op> = world.log.iter().map(|(_, op)| op).collect();
            panic!("no such op in {ops:#?}")
        })
    }

    pub(crate) fn splits(&self) -> Vec<Split> {
        self.world().splits().cloned().collect()
    }

    pub(crate) fn last_split(&self) -> Split {
        self.world().splits().last().cloned().unwrap_or_default()
    }

    /// An instance of `release` turns unhealthy while serving: not ready any more,
    /// still running.
    pub(crate) fn break_release(&self, release: &str, problem: &str) {
        let world = self.world();
        world.releases[release].health.send_modify(|h| {
            h.ready.clear();
            h.problem = Some(problem.into());
        });
    }

    /// Every process of `release` died while no daemon was watching.
    pub(crate) fn vanish(&self, release: &str) {
        self.world().releases.remove(release);
    }

    /// The deploys the environment before this one was asked for: the version,
    /// and the run it is the staging of.
    pub(crate) fn staged_deploys(&self) -> Vec<(String, String)> {
        self.world().earlier.deploys.clone()
    }

    /// The run in the environment before this one ends, with `outcome`.
    pub(crate) fn staging_ends(&self, outcome: Outcome, reason: &str) {
        self.world().earlier.ended = Some((outcome, reason.into()));
    }

    /// The daemon running now is killed (SIGKILL): from here on, what its handles
    /// do as they are dropped does not reach the world, and what it started keeps
    /// running, left for the next daemon.
    pub(crate) fn kill_daemon(&self) {
        self.world().daemon += 1;
    }
}

/// A release handle; the instances themselves live in the world.
struct FakeRelease {
    name: String,
    version: String,
    fake: Fake,
    /// The daemon it belongs to.
    daemon: u32,
    health: watch::Receiver<ReleaseHealth>,
    stopped: bool,
}

impl Drop for FakeRelease {
    fn drop(&mut self) {
        let mut world = self.fake.world();
        if !self.stopped && world.daemon == self.daemon {
            world.push(Op::Dropped(self.name.clone()));
        }
    }
}

/// Instances being launched: stopped again unless they come up (a failed start,
/// or a start whose future is dropped).
struct Launch {
    fake: Fake,
    release: String,
    addrs: Vec<SocketAddr>,
    daemon: u32,
    up: bool,
}

impl Launch {
    fn new(fake: &Fake, release: &str, n: u32) -> Launch {
        let mut world = fake.world();
        let addrs = world.addrs(n);
        world.push(Op::Spawn {
            release: release.into(),
            addrs: addrs.clone(),
        });
        Launch {
            fake: fake.clone(),
            release: release.into(),
            addrs,
            daemon: world.daemon,
            up: false,
        }
    }

    fn up(mut self) -> Vec<SocketAddr> {
        self.up = true;
        std::mem::take(&mut self.addrs)
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        let mut world = self.fake.world();
        if !self.up && world.daemon == self.daemon {
            world.push(Op::Abandon {
                release: self.release.clone(),
                addrs: std::mem::take(&mut self.addrs),
            });
        }
    }
}

/// The platform as one config sees it.
struct FakePlatform {
    fake: Fake,
    instances: u32,
    drain_timeout: Duration,
}

impl PlatformFactory for Fake {
    fn platform(&self, config: &Config) -> Arc<dyn Platform> {
        Arc::new(FakePlatform {
            fake: self.clone(),
            instances: config.platform.instances(),
            drain_timeout: config.platform.drain_timeout(),
        })
    }
}

impl FakePlatform {
    fn handle(&self, world: &mut World, name: &str) -> Box<dyn Release> {
        let daemon = world.daemon;
        let running = world.releases.get_mut(name).expect("registered");
        running.daemon = daemon;
        Box::new(FakeRelease {
            name: name.into(),
            version: running.version.clone(),
            fake: self.fake.clone(),
            daemon,
            health: running.health.subscribe(),
            stopped: false,
        })
    }
}

#[async_trait]
impl Platform for FakePlatform {
    fn instances(&self) -> u32 {
        self.instances
    }

    fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    async fn start(&self, spec: &ReleaseSpec) -> Result<Box<dyn Release>, PlatformError> {
        let how = {
            let mut world = self.fake.world();
            *world.starts.entry(spec.name.clone()).or_default() += 1;
            world
                .starts_as
                .get(&spec.version)
                .copied()
                .unwrap_or_default()
        };
        assert!(
            how != Starts::Panics,
            "the fake platform was told to panic on {}",
            spec.version
        );
        let launch = Launch::new(&self.fake, &spec.name, spec.instances);
        tokio::time::sleep(START_TIME).await;
        if how == Starts::NeverHealthy {
            return Err(PlatformError::StartupTimeout {
                version: spec.name.clone(),
                timeout: Duration::from_secs(30),
                last: "connection refused".into(),
            });
        }
        let addrs = launch.up();
        let health = if how == Starts::DiesRightAfterStart {
            ReleaseHealth {
                ready: Vec::new(),
                problem: Some("instance 0 (pid 1) exited: exit status: 1".into()),
            }
        } else {
            ReleaseHealth {
                ready: addrs.clone(),
                problem: None,
            }
        };
        let mut world = self.fake.world();
        let running = Running {
            version: spec.version.clone(),
            instances: addrs,
            detached: Vec::new(),
            health: watch::Sender::new(health),
            daemon: world.daemon,
        };
        world.releases.insert(spec.name.clone(), running);
        Ok(self.handle(&mut world, &spec.name))
    }

    async fn adopt(&self, spec: &ReleaseSpec) -> Result<Option<Box<dyn Release>>, PlatformError> {
        let mut world = self.fake.world();
        let Some(running) = world.releases.get(&spec.name) else {
            return Ok(None);
        };
        let missing = spec
            .instances
            .saturating_sub(running.instances.len() as u32);
        if missing > 0 {
            let addrs = world.addrs(missing);
            world.push(Op::Spawn {
                release: spec.name.clone(),
                addrs: addrs.clone(),
            });
            let running = world.releases.get_mut(&spec.name).expect("found above");
            running.instances.extend(&addrs);
            running.health.send_modify(|h| h.ready.extend(&addrs));
        }
        *world.adoptions.entry(spec.name.clone()).or_default() += 1;
        Ok(Some(self.handle(&mut world, &spec.name)))
    }

    async fn stop_unadopted(&self) -> Vec<String> {
        let mut world = self.fake.world();
        let now = world.daemon;
        let left: Vec<String> = world
            .releases
            .iter()
            .filter(|(_, r)| r.daemon < now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &left {
            let running = world.releases.remove(name).expect("listed above");
            world.push(Op::Stop {
                release: name.clone(),
                addrs: running.instances,
            });
        }
        left
    }
}

#[async_trait]
impl Release for FakeRelease {
    fn name(&self) -> &str {
        &self.name
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn health(&self) -> watch::Receiver<ReleaseHealth> {
        self.health.clone()
    }

    fn describe(&self) -> Vec<String> {
        let world = self.fake.world();
        let instances = world.releases.get(&self.name).map(|r| &r.instances);
        instances
            .into_iter()
            .flatten()
            .map(|a| format!("fake on {a}"))
            .collect()
    }

    fn instance_count(&self) -> u32 {
        self.fake.instances(&self.name) as u32
    }

    async fn add_instances(&mut self, n: u32) -> Result<(), PlatformError> {
        if self.stopped {
            return Err(PlatformError::Stopped {
                release: self.name.clone(),
            });
        }
        let launch = Launch::new(&self.fake, &self.name, n);
        tokio::time::sleep(START_TIME).await;
        let addrs = launch.up();
        let mut world = self.fake.world();
        let running = world.releases.get_mut(&self.name).expect("not stopped");
        running.instances.extend(&addrs);
        running.health.send_modify(|h| {
            h.ready.extend(&addrs);
            h.ready.sort();
        });
        Ok(())
    }

    fn detach(&mut self, n: u32) -> Vec<SocketAddr> {
        let mut world = self.fake.world();
        let Some(running) = world.releases.get_mut(&self.name) else {
            return Vec::new();
        };
        // Unready ones first, then the newest.
        let ready = running.health.borrow().ready.clone();
        let mut order: Vec<SocketAddr> = running.instances.clone();
        order.reverse();
        order.sort_by_key(|a| ready.contains(a));
        let leaving: Vec<SocketAddr> = order.into_iter().take(n as usize).collect();
        running.instances.retain(|a| !leaving.contains(a));
        running.detached.extend(&leaving);
        running
            .health
            .send_modify(|h| h.ready.retain(|a| !leaving.contains(a)));
        world.push(Op::Detach {
            release: self.name.clone(),
            addrs: leaving.clone(),
        });
        leaving
    }

    async fn stop_detached(&mut self, _grace: Duration) {
        let mut world = self.fake.world();
        let Some(running) = world.releases.get_mut(&self.name) else {
            return;
        };
        let addrs = std::mem::take(&mut running.detached);
        world.push(Op::StopDetached {
            release: self.name.clone(),
            addrs,
        });
    }

    async fn stop(&mut self, _grace: Duration) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let mut world = self.fake.world();
        let mut addrs = Vec::new();
        if let Some(running) = world.releases.remove(&self.name) {
            addrs.extend(running.instances);
            addrs.extend(running.detached);
        }
        world.push(Op::Stop {
            release: self.name.clone(),
            addrs,
        });
    }
}

#[async_trait]
impl Traffic for Fake {
    fn apply(&self, split: &Split) {
        self.world().push(Op::Apply(split.clone()));
    }

    async fn drain(&self, instances: &[SocketAddr], _timeout: Duration) -> bool {
        self.world().push(Op::Drain(instances.to_vec()));
        true
    }
}

impl LogSource for Fake {
    fn follow(&self, release: &str) -> Box<dyn LogFollower> {
        Box::new(FakeLogs {
            fake: self.clone(),
            release: release.into(),
        })
    }
}

/// One release's output: what its version logs, while the release runs.
struct FakeLogs {
    fake: Fake,
    release: String,
}

impl LogFollower for FakeLogs {
    fn next_lines(&mut self) -> Vec<String> {
        let world = self.fake.world();
        world
            .releases
            .get(&self.release)
            .and_then(|r| world.output.get(&r.version))
            .cloned()
            .unwrap_or_default()
    }
}

impl MetricsFactory for Fake {
    fn source(&self, _config: &Config) -> Arc<dyn MetricsSource> {
        Arc::new(self.clone())
    }
}

impl MetricsSource for Fake {
    fn cursor(&self, version: &str, role: Role) -> Box<dyn MetricsCursor> {
        Box::new(FakeCursor {
            fake: self.clone(),
            version: version.into(),
            role,
            from: self.world().log.len(),
        })
    }
}

/// One (version, role)'s windows: [`REQUESTS`] requests in every window in which
/// some split gave it traffic (unpinned, pinned to a preview, or mirrored to it
/// as a shadow), none otherwise.
struct FakeCursor {
    fake: Fake,
    version: String,
    role: Role,
    /// Where in the log the window began.
    from: usize,
}

#[async_trait]
impl MetricsCursor for FakeCursor {
    async fn next_window(&mut self) -> Result<Sample, SourceError> {
        let world = self.fake.world();
        // The split in force when the window began, and every one applied since.
        let in_force = world.log[..self.from]
            .iter()
            .rposition(|(_, op)| matches!(op, Op::Apply(_)))
            .unwrap_or(self.from);
        let served = world.log[in_force..].iter().any(|(_, op)| match op {
            Op::Apply(split) => {
                split.backends.iter().any(|b| {
                    b.version == self.version
                        && b.role == self.role
                        && !b.instances.is_empty()
                        && (b.weight > 0 || b.role == Role::Preview)
                }) || split.mirror.as_ref().is_some_and(|m| {
                    self.role == Role::Shadow && m.version == self.version && m.share_bp > 0
                })
            }
            _ => false,
        });
        self.from = world.log.len();
        let serves = world
            .serves
            .get(&(self.version.clone(), self.role))
            .cloned()
            .unwrap_or_default();
        if let Some(fault) = serves.unmeasured {
            return Err(SourceError {
                field: "analysis.source.fake.queries.requests".into(),
                version: self.version.clone(),
                role: self.role.as_str().into(),
                fault,
            });
        }
        if !served || serves.idle {
            return Ok(Sample::default());
        }
        let ms = Some(Duration::from_millis(20));
        let mut latency = Histogram::new();
        latency.record(20_000, REQUESTS);
        Ok(Sample {
            requests: REQUESTS,
            errors: (REQUESTS as f64 * serves.error_rate).round() as u64,
            p50: ms,
            p95: ms,
            p99: ms,
            latency,
            custom: Default::default(),
        })
    }
}

#[async_trait]
impl Prober for Fake {
    async fn probe(&self, check: &SmokeCheck, role: Role) -> SmokeResult {
        let mut world = self.world();
        world.push(Op::Probe {
            path: check.path.clone(),
            role,
        });
        let passed = !world.failing_checks.contains(&check.path);
        SmokeResult {
            check: format!("{} {}", check.method, check.path),
            passed,
            status: Some(if passed { check.status } else { 503 }),
            latency_ms: Some(3),
            problem: (!passed).then(|| format!("expected status {}, got 503", check.status)),
        }
    }
}

#[async_trait]
impl Environments for Fake {
    async fn deploy(
        &self,
        _: &EnvironmentSpec,
        version: &str,
        _: DeployType,
        staged_for: &str,
    ) -> Result<Staged, EnvironmentError> {
        let mut world = self.world();
        let deploys = &mut world.earlier.deploys;
        deploys.push((version.into(), staged_for.into()));
        Ok(Staged::Started {
            run_id: format!("staging-{}", deploys.len()),
        })
    }

    async fn run(&self, _: &EnvironmentSpec, _: &str) -> Result<StagedRun, EnvironmentError> {
        let world = self.world();
        let ended = world.earlier.ended.clone();
        Ok(StagedRun {
            outcome: ended.as_ref().map(|(o, _)| *o),
            reason: ended.map(|(_, r)| r),
        })
    }

    async fn url(&self, env: &EnvironmentSpec) -> Result<String, EnvironmentError> {
        Err(EnvironmentError::Unreachable(format!(
            "the fake `{}` serves no HTTP",
            env.name
        )))
    }
}
