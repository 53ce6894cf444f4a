//! The instances of a live release: each followed by its health check, and
//! restarted when its process exits.
//!
//! A process that exits while its release serves leaves `ready` (and sets the
//! release's `problem`, if none is set yet), then is started again in its place:
//! same instance index, same command and environment, a fresh `${PORT}`, output
//! appended to the same log file. Restarts of one instance back off exponentially
//! (see [`RestartPolicy`]); the wait starts over once a process has stayed up for a
//! while. A restarted process rejoins `ready` after `healthy_threshold` successful
//! checks in a row, as at startup, and one that is not healthy within the startup
//! timeout is killed, which counts as one more exit. An instance that fails its
//! health checks without exiting is taken out of `ready` but not restarted: it may
//! recover. Adopted processes are followed the same way: only how their exit is
//! noticed differs (see [`Process::adopt`]).
//!
//! Stopping, detaching and restarting exclude each other through [`Instances`]:
//! `stop` (and `Drop`) set [`Instances::stopping`] under its lock, `detach` moves
//! slots out of [`Instances::slots`] under it, and a restart checks both and records
//! the process it spawned under the same lock. So a restart either happens before
//! `stop` collects the processes to stop (or `detach` the slots to take out), and is
//! stopped with them, or not at all. An instance joins `ready` under the same lock,
//! and only while its slot is still in the release, so a detached one never comes
//! back into `ready`.
//!
//! Lock order: the instances' lock before the health channel's, never the other
//! way round (`describe` copies what it needs from the channel before locking).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cutover_engine::platform::{PlatformError, ReleaseHealth};
use cutover_spec::HealthCheck;
use nix::sys::signal::Signal;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ports::free_port_except;
use crate::process::{Launcher, Process, Unit};

/// How long to wait before restarting an instance that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RestartPolicy {
    /// Before the first restart.
    pub(crate) first: Duration,
    /// The wait doubles on every restart up to this.
    pub(crate) max: Duration,
    /// A process that ran this long resets the wait to `first`.
    pub(crate) reset_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> RestartPolicy {
        RestartPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
}

/// The waits between restarts of one instance.
#[derive(Debug)]
struct Backoff {
    policy: RestartPolicy,
    next: Duration,
}

impl Backoff {
    fn new(policy: RestartPolicy) -> Backoff {
        Backoff {
            policy,
            next: policy.first,
        }
    }

    /// The wait before the next restart, after a process that ran for `uptime`
    /// (zero when it could not even be started).
    fn next(&mut self, uptime: Duration) -> Duration {
        if uptime >= self.policy.reset_after {
            self.next = self.policy.first;
        }
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.policy.max);
        wait
    }
}

/// One instance of a release.
#[derive(Debug)]
pub(crate) struct Slot {
    /// Unique within the release, unlike indexes, which are reused.
    pub(crate) id: u64,
    /// Its current process, which may have exited (and wait for its restart).
    pub(crate) process: Process,
    /// Processes it replaced while something of their group was still running,
    /// until that is seen gone: for `stop` to finish off.
    pub(crate) retired: Vec<Process>,
    /// How often it was restarted after the release went live.
    pub(crate) restarts: u32,
    /// Whether `process` has passed `healthy_threshold` checks in a row yet.
    pub(crate) started: bool,
}

impl Slot {
    /// Its process and the retired ones.
    pub(crate) fn processes(&self) -> impl Iterator<Item = &Process> {
        std::iter::once(&self.process).chain(&self.retired)
    }
}

/// The processes of a release, shared by the release and its supervisors.
#[derive(Debug, Default)]
pub(crate) struct Instances {
    /// Set by `stop` and `Drop`: no process is started any more.
    pub(crate) stopping: bool,
    /// The instances of the release, in the order they were added.
    pub(crate) slots: Vec<Slot>,
    /// Taken out of the release by `detach`, running until `stop_detached`.
    pub(crate) detached: Vec<Slot>,
    next_id: u64,
}

pub(crate) type SharedInstances = Arc<Mutex<Instances>>;

/// Never held across an `await`.
pub(crate) fn lock(instances: &SharedInstances) -> MutexGuard<'_, Instances> {
    instances.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Instances {
    /// Every process not known to be gone, detached ones included.
    pub(crate) fn processes(&self) -> Vec<Process> {
        self.slots
            .iter()
            .chain(&self.detached)
            .flat_map(Slot::processes)
            .cloned()
            .collect()
    }

    /// The slot `id`, unless it has been detached (or taken out).
    pub(crate) fn slot_mut(&mut self, id: u64) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.id == id)
    }

    /// The ports of every process not known to be gone.
    fn taken_ports(&self) -> Vec<u16> {
        self.processes().iter().map(|p| p.addr.port()).collect()
    }

    /// Starts a new instance, on a free port, under the lowest index no instance
    /// (detached ones included) has; returns its slot's id.
    pub(crate) fn add(&mut self, launcher: &Launcher) -> Result<u64, PlatformError> {
        let used: Vec<u32> = self
            .slots
            .iter()
            .chain(&self.detached)
            .map(|s| s.process.index)
            .collect();
        let index = (0..).find(|i| !used.contains(i)).unwrap_or(u32::MAX);
        let process = self.spawn(launcher, index)?;
        Ok(self.push(process))
    }

    /// Makes `process` (spawned, or adopted) an instance of the release, not yet
    /// started; returns its slot's id.
    pub(crate) fn push(&mut self, process: Process) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.slots.push(Slot {
            id,
            process,
            retired: Vec::new(),
            restarts: 0,
            started: false,
        });
        id
    }

    /// Spawns instance `index` on a port no process of the release has.
    fn spawn(&self, launcher: &Launcher, index: u32) -> Result<Process, PlatformError> {
        let port = free_port_except(&self.taken_ports())
            .map_err(|e| launcher.error(index, format!("cannot find a free port: {e}")))?;
        launcher.spawn(index, port)
    }

    /// Starts instance `id` again, on a fresh port, in place of its process, which
    /// has exited (and whose group the caller has killed): that one is kept in
    /// `retired` while something of its group is left. `None` when the slot is no
    /// longer in the release.
    pub(crate) fn respawn(
        &mut self,
        launcher: &Launcher,
        id: u64,
    ) -> Result<Option<Process>, PlatformError> {
        let Some(at) = self.slots.iter().position(|s| s.id == id) else {
            return Ok(None);
        };
        let slot = &mut self.slots[at];
        // Groups seen gone are unregistered before a new process is started, which
        // could be given one of their ids.
        // A group whose id was given to someone else counts as gone: never kept
        // for `stop` to signal.
        slot.retired.retain(|p| {
            let alive = p.unit.alive();
            if !alive {
                p.unit.unregister();
            }
            alive
        });
        let old = slot.process.clone();
        let old_alive = old.unit.alive();
        if !old_alive {
            old.unit.unregister();
        }
        let fresh = self.spawn(launcher, old.index)?;
        let slot = &mut self.slots[at];
        slot.process = fresh.clone();
        slot.started = false;
        if old_alive {
            slot.retired.push(old);
        }
        Ok(Some(fresh))
    }

    /// Takes the slots `ids` out of the release (not into `detached`).
    pub(crate) fn take(&mut self, ids: &[u64]) -> Vec<Slot> {
        let (taken, kept) = std::mem::take(&mut self.slots)
            .into_iter()
            .partition(|s| ids.contains(&s.id));
        self.slots = kept;
        taken
    }
}

/// Follows one instance of a live release, and restarts it when it exits, until
/// aborted by `stop` or `detach` (or the release being dropped).
pub(crate) struct Supervisor {
    /// The slot it follows.
    pub(crate) id: u64,
    pub(crate) launcher: Arc<Launcher>,
    pub(crate) health: HealthCheck,
    pub(crate) policy: RestartPolicy,
    pub(crate) instances: SharedInstances,
    pub(crate) tx: Arc<watch::Sender<ReleaseHealth>>,
}

impl Supervisor {
    /// `process`: the instance's process, ready.
    pub(crate) async fn run(self, mut process: Process) {
        let release = self.launcher.name.as_str();
        let index = process.index;
        let mut backoff = Backoff::new(self.policy);
        let mut serving = true;
        loop {
            let status = self.follow(&process, serving).await;
            let problem = format!("instance {index} ({}) exited: {status}", process.unit);
            tracing::warn!(release, "{problem}");
            let addr = process.addr;
            self.tx.send_if_modified(|h| {
                let was_ready = remove(&mut h.ready, addr);
                set_problem(h, problem) || was_ready
            });
            // Whatever it left running in its group: right away, not after the
            // backoff, when the group id is more likely to have been reused.
            process.signal(Signal::SIGKILL);
            let mut uptime = process.started_at.elapsed();
            process = loop {
                let wait = backoff.next(uptime);
                tracing::info!(release, instance = index, "restarting in {wait:?}");
                tokio::time::sleep(wait).await;
                match self.restart() {
                    Ok(Some(fresh)) => break fresh,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(release, instance = index, "could not restart: {e}");
                        uptime = Duration::ZERO;
                    }
                }
            };
            serving = false;
        }
    }

    /// Starts the instance's next process, unless the release is stopping or the
    /// instance was detached.
    fn restart(&self) -> Result<Option<Process>, PlatformError> {
        let mut instances = lock(&self.instances);
        if instances.stopping {
            return Ok(None);
        }
        let Some(fresh) = instances.respawn(&self.launcher, self.id)? else {
            return Ok(None);
        };
        if let Some(slot) = instances.slot_mut(self.id) {
            slot.restarts += 1;
            tracing::info!(release = %self.launcher.name, instance = fresh.index,
                unit = %fresh.unit, addr = %fresh.addr, restarts = slot.restarts, "restarted instance");
        }
        Ok(Some(fresh))
    }

    /// Marks `process` started and adds it to `ready`, if it is still its slot's
    /// process, in the release; returns whether it did.
    fn join_ready(&self, process: &Process) -> bool {
        let mut instances = lock(&self.instances);
        let Some(slot) = instances.slot_mut(self.id) else {
            return false;
        };
        if slot.process.unit != process.unit {
            return false;
        }
        slot.started = true;
        self.tx
            .send_if_modified(|h| insert(&mut h.ready, process.addr));
        true
    }

    /// Follows `process` until it exits, to its exit status; `serving`: whether it
    /// is in `ready` already (otherwise it joins after `healthy_threshold` checks).
    async fn follow(&self, process: &Process, mut serving: bool) -> String {
        let Process {
            index,
            ref unit,
            addr,
            ..
        } = *process;
        let health = &self.health;
        let mut started = serving;
        let startup_timeout = self.launcher.startup_timeout();
        let mut startup_deadline = Some(Instant::now() + startup_timeout);
        let mut failures = 0u32;
        let mut successes = 0u32;
        loop {
            let result = tokio::select! {
                biased;
                status = process.exited() => return status,
                () = until(startup_deadline.filter(|_| !started)) => {
                    tracing::warn!(release = %self.launcher.name, index, %unit, %addr,
                        "restarted instance not healthy within {startup_timeout:?}, killing it");
                    process.signal(Signal::SIGKILL);
                    startup_deadline = None;
                    continue;
                }
                r = async {
                    tokio::time::sleep(health.interval).await;
                    process.check(health).await
                } => r,
            };
            match result {
                Ok(()) => {
                    failures = 0;
                    successes = successes.saturating_add(1);
                    if !serving && successes >= health.healthy_threshold && self.join_ready(process)
                    {
                        serving = true;
                        if started {
                            tracing::info!(index, %unit, %addr, "instance healthy again");
                        } else {
                            started = true;
                            tracing::info!(index, %unit, %addr, "restarted instance ready");
                        }
                    }
                }
                Err(e) => {
                    successes = 0;
                    failures = failures.saturating_add(1);
                    if serving && failures >= health.unhealthy_threshold {
                        serving = false;
                        self.tx.send_if_modified(|h| remove(&mut h.ready, addr));
                        if let Some(status) = exit_news(process).await {
                            return status;
                        }
                        let problem = format!(
                            "instance {index} ({unit}, {addr}) failed {failures} health checks: {e}"
                        );
                        tracing::warn!("{problem}");
                        self.tx.send_if_modified(|h| {
                            let was_ready = remove(&mut h.ready, addr);
                            set_problem(h, problem) || was_ready
                        });
                    }
                }
            }
        }
    }
}

/// How long an instance that turned unhealthy is given to be known as exited.
const EXIT_NEWS_WAIT: Duration = Duration::from_secs(1);

/// The exit status of a container that failed its health checks because it
/// exited: its daemon tells of the exit, often after the failed checks it causes,
/// and the exit code (an OOM kill) says more than `connection refused`. A
/// process's exit is known at once: `None` for it, and for a container still
/// running.
async fn exit_news(process: &Process) -> Option<String> {
    if !matches!(process.unit, Unit::Container(_)) {
        return None;
    }
    tokio::time::timeout(EXIT_NEWS_WAIT, process.exited())
        .await
        .ok()
}

/// Sleeps until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn remove(ready: &mut Vec<SocketAddr>, addr: SocketAddr) -> bool {
    let before = ready.len();
    ready.retain(|a| *a != addr);
    ready.len() != before
}

pub(crate) fn insert(ready: &mut Vec<SocketAddr>, addr: SocketAddr) -> bool {
    match ready.binary_search(&addr) {
        Ok(_) => false,
        Err(at) => {
            ready.insert(at, addr);
            true
        }
    }
}

/// The first problem wins.
fn set_problem(health: &mut ReleaseHealth, problem: String) -> bool {
    if health.problem.is_some() {
        return false;
    }
    health.problem = Some(problem);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_list_stays_sorted_and_unique() {
        let a: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let mut ready = vec![];
        assert!(insert(&mut ready, a));
        assert!(insert(&mut ready, b));
        assert!(!insert(&mut ready, a));
        assert_eq!(ready, vec![b, a]);
        assert!(remove(&mut ready, b));
        assert!(!remove(&mut ready, b));
        assert_eq!(ready, vec![a]);
    }

    #[test]
    fn first_problem_wins() {
        let mut h = ReleaseHealth::default();
        assert!(set_problem(&mut h, "first".into()));
        assert!(!set_problem(&mut h, "second".into()));
        assert_eq!(h.problem.as_deref(), Some("first"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_after_a_long_run() {
        let mut backoff = Backoff::new(RestartPolicy::default());
        let short = Duration::from_secs(5);
        let waits: Vec<u64> = (0..8).map(|_| backoff.next(short).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(
            backoff.next(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
        assert_eq!(backoff.next(Duration::ZERO), Duration::from_secs(2));
        assert_eq!(
            backoff.next(Duration::from_secs(59)),
            Duration::from_secs(4)
        );
    }
}
