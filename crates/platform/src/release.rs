//! [`SupervisedRelease`]: a started (or adopted) release, its health, growing and
//! shrinking it, and stopping it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cutover_engine::platform::{PlatformError, Release, ReleaseHealth};
use cutover_spec::HealthCheck;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::instance::{
    Instances, RestartPolicy, SharedInstances, Slot, Supervisor, insert, lock, remove,
};
use crate::process::{Launcher, kill_now, stop_processes};

/// A release started (or adopted) by [`LocalPlatform`](crate::LocalPlatform) or
/// [`DockerPlatform`](crate::DockerPlatform): its instances are processes or
/// containers, supervised here alike.
///
/// Once live, an instance whose process exits is restarted (with a backoff), and
/// rejoins the ready ones once healthy again; `describe` counts the restarts.
///
/// Dropping it without [`Release::stop`] kills its processes (SIGKILL), detached
/// ones included, so that nothing is ever left running unowned (containers are
/// killed and removed by tasks, in the background).
#[derive(Debug)]
pub struct SupervisedRelease {
    pub(crate) launcher: Arc<Launcher>,
    pub(crate) health: HealthCheck,
    policy: RestartPolicy,
    pub(crate) instances: SharedInstances,
    health_tx: Arc<watch::Sender<ReleaseHealth>>,
    /// One [`Supervisor`] per live instance, with its slot's id.
    supervisors: Vec<(u64, JoinHandle<()>)>,
    /// Those of detached instances, aborted: for `stop_detached` to await.
    detached_supervisors: Vec<JoinHandle<()>>,
    /// Replaces the grace the engine gives when stopping, when set.
    stop_grace: Option<Duration>,
    stopped: bool,
}

impl SupervisedRelease {
    pub(crate) fn new(
        launcher: Arc<Launcher>,
        health: HealthCheck,
        policy: RestartPolicy,
    ) -> SupervisedRelease {
        SupervisedRelease {
            launcher,
            health,
            policy,
            instances: Arc::new(std::sync::Mutex::new(Instances::default())),
            health_tx: Arc::new(watch::channel(ReleaseHealth::default()).0),
            supervisors: Vec::new(),
            detached_supervisors: Vec::new(),
            stop_grace: None,
            stopped: false,
        }
    }

    /// Gives instances `grace` between the polite signal and force when stopped,
    /// whatever grace the caller asks for (`platform.docker.stop_grace`).
    pub(crate) fn with_stop_grace(mut self, grace: Duration) -> SupervisedRelease {
        self.stop_grace = Some(grace);
        self
    }

    /// Publishes the instances `ids`, healthy, as ready and starts supervising them.
    pub(crate) fn go_live(&mut self, ids: &[u64]) {
        let live: Vec<(u64, crate::process::Process)> = {
            let mut instances = lock(&self.instances);
            let live: Vec<_> = instances
                .slots
                .iter_mut()
                .filter(|s| ids.contains(&s.id))
                .map(|slot| {
                    slot.started = true;
                    (slot.id, slot.process.clone())
                })
                .collect();
            self.health_tx.send_if_modified(|h| {
                let mut changed = false;
                for (_, p) in &live {
                    changed |= insert(&mut h.ready, p.addr);
                }
                changed
            });
            live
        };
        for (id, process) in live {
            let supervisor = Supervisor {
                id,
                launcher: self.launcher.clone(),
                health: self.health.clone(),
                policy: self.policy,
                instances: self.instances.clone(),
                tx: self.health_tx.clone(),
            };
            self.supervisors
                .push((id, tokio::spawn(supervisor.run(process))));
        }
    }

    /// Marks the release stopping, so that no process is started any more, and
    /// aborts the supervisors, detached instances' included.
    fn stop_supervising(&mut self) -> Vec<JoinHandle<()>> {
        lock(&self.instances).stopping = true;
        let supervisors: Vec<JoinHandle<()>> = std::mem::take(&mut self.supervisors)
            .into_iter()
            .map(|(_, s)| s)
            .chain(std::mem::take(&mut self.detached_supervisors))
            .collect();
        for s in &supervisors {
            s.abort();
        }
        supervisors
    }
}

#[async_trait]
impl Release for SupervisedRelease {
    fn name(&self) -> &str {
        &self.launcher.name
    }

    fn version(&self) -> &str {
        &self.launcher.version
    }

    fn health(&self) -> watch::Receiver<ReleaseHealth> {
        self.health_tx.subscribe()
    }

    /// `pid 4242 on 127.0.0.1:40001 (ready)` per instance, the state being one of
    /// `starting`, `ready`, `unhealthy`, `exited: <status>` (waiting to be
    /// restarted), `detached` (taken out, still running) and `stopped`, followed by
    /// `, adopted` for a process an earlier daemon started and `, restarts: N` once
    /// restarted. Detached instances come last.
    fn describe(&self) -> Vec<String> {
        // Not holding the channel's lock while taking the instances'.
        let ready = self.health_tx.borrow().ready.clone();
        let instances = lock(&self.instances);
        let line = |slot: &Slot, detached: bool| {
            let p = &slot.process;
            let state = if self.stopped {
                "stopped".to_owned()
            } else if let Some(status) = p.exit_status() {
                format!("exited: {status}")
            } else if detached {
                "detached".to_owned()
            } else if ready.contains(&p.addr) {
                "ready".to_owned()
            } else if !slot.started {
                "starting".to_owned()
            } else {
                "unhealthy".to_owned()
            };
            let adopted = if p.adopted { ", adopted" } else { "" };
            let restarts = match slot.restarts {
                0 => String::new(),
                n => format!(", restarts: {n}"),
            };
            format!("{} on {} ({state}{adopted}{restarts})", p.unit, p.addr)
        };
        let live = instances.slots.iter().map(|s| line(s, false));
        let detached = instances.detached.iter().map(|s| line(s, true));
        live.chain(detached).collect()
    }

    async fn add_instances(&mut self, n: u32) -> Result<(), PlatformError> {
        if self.stopped || lock(&self.instances).stopping {
            return Err(PlatformError::Stopped {
                release: self.launcher.name.clone(),
            });
        }
        self.bring_up(&[], n).await?;
        tracing::info!(release = %self.launcher.name, added = n,
            instances = self.instance_count(), "instances added");
        Ok(())
    }

    fn detach(&mut self, n: u32) -> Vec<SocketAddr> {
        let detached: Vec<(u64, SocketAddr)> = {
            let ready = self.health_tx.borrow().ready.clone();
            let mut instances = lock(&self.instances);
            // Unready ones first, then ready ones; the newest first among each.
            let mut order: Vec<(bool, usize, u64)> = instances
                .slots
                .iter()
                .enumerate()
                .map(|(at, s)| (ready.contains(&s.process.addr), at, s.id))
                .collect();
            order.sort_by_key(|&(is_ready, at, _)| (is_ready, std::cmp::Reverse(at)));
            let ids: Vec<u64> = order.iter().take(n as usize).map(|o| o.2).collect();
            let mut slots = instances.take(&ids);
            // In the order chosen.
            slots.sort_by_key(|s| ids.iter().position(|id| *id == s.id));
            let detached = slots.iter().map(|s| (s.id, s.process.addr)).collect();
            self.health_tx.send_if_modified(|h| {
                let mut changed = false;
                for s in &slots {
                    changed |= remove(&mut h.ready, s.process.addr);
                }
                changed
            });
            instances.detached.extend(slots);
            detached
        };
        let ids: Vec<u64> = detached.iter().map(|d| d.0).collect();
        let (taken, kept) = std::mem::take(&mut self.supervisors)
            .into_iter()
            .partition(|(id, _)| ids.contains(id));
        self.supervisors = kept;
        for (_, supervisor) in taken {
            supervisor.abort();
            self.detached_supervisors.push(supervisor);
        }
        if !detached.is_empty() {
            tracing::info!(release = %self.launcher.name, detached = detached.len(),
                instances = self.instance_count(), "instances detached");
        }
        detached.into_iter().map(|d| d.1).collect()
    }

    async fn stop_detached(&mut self, grace: Duration) {
        let grace = self.stop_grace.unwrap_or(grace);
        // As in `stop`: once the supervisors are awaited, nothing else changes them.
        for supervisor in std::mem::take(&mut self.detached_supervisors) {
            let _ = supervisor.await;
        }
        // Left in the release until stopped, for `Drop` to kill should this future be
        // dropped half-way.
        let (ids, processes): (Vec<u64>, Vec<_>) = {
            let instances = lock(&self.instances);
            let ids = instances.detached.iter().map(|s| s.id).collect();
            let processes = instances
                .detached
                .iter()
                .flat_map(Slot::processes)
                .cloned()
                .collect();
            (ids, processes)
        };
        if ids.is_empty() {
            return;
        }
        stop_processes(&self.launcher.name, &processes, grace).await;
        lock(&self.instances)
            .detached
            .retain(|s| !ids.contains(&s.id));
        tracing::info!(release = %self.launcher.name, stopped = ids.len(), "detached instances stopped");
    }

    fn instance_count(&self) -> u32 {
        lock(&self.instances).slots.len() as u32
    }

    async fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        let grace = self.stop_grace.unwrap_or(grace);
        // Supervisors first: no restart from here on, and the exits caused here are
        // not reported as problems. Once they are awaited, nothing else changes the
        // processes.
        for supervisor in self.stop_supervising() {
            let _ = supervisor.await;
        }
        self.health_tx
            .send_if_modified(|h| !std::mem::take(&mut h.ready).is_empty());
        let all = lock(&self.instances).processes();
        stop_processes(&self.launcher.name, &all, grace).await;
        self.stopped = true;
        tracing::info!(release = %self.launcher.name, "stopped");
    }
}

impl Drop for SupervisedRelease {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        // A supervisor still running on another thread can start nothing after this.
        self.stop_supervising();
        kill_now(lock(&self.instances).processes());
    }
}

#[cfg(test)]
mod tests {
    //! Restarts against `stop`, with a backoff of milliseconds so that restarts
    //! race with it.

    use std::collections::BTreeMap;
    use std::os::unix::process::CommandExt;
    use std::path::Path;

    use cutover_engine::platform::{Platform, ReleaseSpec};
    use cutover_spec::LocalSpec;
    use nix::errno::Errno;
    use nix::sys::signal::Signal;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    use tokio::time::Instant;

    use super::*;
    use crate::process::{Runs, Unit};
    use crate::{LocalPlatform, reaper};

    fn v1(instances: u32) -> ReleaseSpec {
        ReleaseSpec {
            name: "v1".into(),
            version: "v1".into(),
            instances,
        }
    }

    fn platform(dir: &Path, command: &str, instances: u32, startup: Duration) -> LocalPlatform {
        let spec = LocalSpec {
            command: ["sh", "-c", command, "${PORT}"].map(String::from).to_vec(),
            env: BTreeMap::new(),
            workdir: dir.to_owned(),
            instances,
            startup_timeout: startup,
            drain_timeout: Duration::from_secs(1),
        };
        let health = HealthCheck {
            path: "/".to_owned(),
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(1),
            healthy_threshold: 1,
            unhealthy_threshold: 2,
        };
        LocalPlatform::new(spec, health, dir.join("logs")).with_restart_policy(RestartPolicy {
            first: Duration::from_millis(1),
            max: Duration::from_millis(10),
            reset_after: Duration::from_secs(60),
        })
    }

    /// Appends its pid to `runs`; serves when among the first three runs (those of
    /// the three instances at startup), exits at once otherwise.
    const SERVES_ONCE: &str = r#"echo $$ >> runs; if [ "$(wc -l < runs)" -gt 3 ]; then exit 1; fi; exec python3 -m http.server "$0" --bind 127.0.0.1"#;

    fn runs(dir: &Path) -> Vec<i32> {
        std::fs::read_to_string(dir.join("runs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    }

    fn gone(pid: i32) -> bool {
        if kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH) {
            return true;
        }
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
            rest.split_whitespace().next() == Some("Z")
        })
    }

    async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `(pid, restarts)` of every instance, from `describe`.
    fn described(release: &dyn Release) -> Vec<(i32, u32)> {
        release
            .describe()
            .iter()
            .map(|line| {
                let pid = line.split_whitespace().nth(1).unwrap().parse().unwrap();
                let restarts = line
                    .split_once("restarts: ")
                    .map_or(0, |(_, n)| n.trim_end_matches(')').parse().unwrap());
                (pid, restarts)
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_restart_outlives_stop() {
        for round in 0..5u64 {
            let dir = tempfile::tempdir().unwrap();
            let platform = platform(dir.path(), SERVES_ONCE, 3, Duration::from_secs(20));
            let mut release = platform.start(&v1(3)).await.unwrap();
            for (pid, _) in described(release.as_ref()) {
                kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
            }
            // Restarting in a tight loop by now.
            wait_until("restarts", || {
                runs(dir.path()).len() >= 10 + round as usize * 7
            })
            .await;
            release.stop(Duration::from_secs(1)).await;
            let after_stop = runs(dir.path());
            for pid in &after_stop {
                assert!(gone(*pid), "round {round}: {pid} survived stop");
            }
            // Many backoffs' worth: nothing more starts.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(
                runs(dir.path()),
                after_stop,
                "round {round}: started after stop"
            );
            let restarts: u32 = described(release.as_ref()).iter().map(|d| d.1).sum();
            assert!(restarts >= 3, "round {round}: {restarts}");
        }
    }

    #[tokio::test]
    async fn a_restart_not_healthy_in_time_is_killed_and_restarted() {
        let dir = tempfile::tempdir().unwrap();
        // Serves the first time, then hangs without listening.
        let command = r#"echo $$ >> runs; if [ "$(wc -l < runs)" -gt 1 ]; then exec sleep 1000; fi; exec python3 -m http.server "$0" --bind 127.0.0.1"#;
        let platform = platform(dir.path(), command, 1, Duration::from_millis(1500));
        let mut release = platform.start(&v1(1)).await.unwrap();
        let (pid, _) = described(release.as_ref())[0];
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        wait_until("a restart", || runs(dir.path()).len() == 2).await;
        let hung = runs(dir.path())[1];
        wait_until("the restart to be known", || {
            let line = &release.describe()[0];
            line.starts_with(&format!("pid {hung} on "))
                && line.ends_with(" (starting, restarts: 1)")
        })
        .await;
        wait_until("the hung restart killed", || gone(hung)).await;
        wait_until("another restart", || runs(dir.path()).len() == 3).await;
        assert!(release.health().borrow().ready.is_empty());
        release.stop(Duration::from_secs(1)).await;
        for pid in runs(dir.path()) {
            assert!(gone(pid));
        }
    }

    /// Stop (`by_drop`: drop) a release of two instances that have exited: one
    /// left a process behind in its group, the other one's pid now leads someone
    /// else's group (a live `sleep`, recorded with an earlier start time).
    async fn spares_reused_group_ids(by_drop: bool) {
        let dir = tempfile::tempdir().unwrap();
        let launcher = |command: &str| {
            Arc::new(Launcher {
                runs: Runs::Processes(LocalSpec {
                    command: ["sh", "-c", command, "${PORT}"].map(String::from).to_vec(),
                    env: BTreeMap::new(),
                    workdir: dir.path().to_owned(),
                    instances: 2,
                    startup_timeout: Duration::from_secs(5),
                    drain_timeout: Duration::from_secs(1),
                }),
                log_dir: dir.path().to_owned(),
                name: "v1".to_owned(),
                version: "v1".to_owned(),
            })
        };
        let leaves_one_behind = launcher("sleep 1000 & echo $! > left");
        let exits = launcher("true");
        let platform = platform(dir.path(), "true", 2, Duration::from_secs(5));
        let release = SupervisedRelease::new(
            leaves_one_behind.clone(),
            platform.health.clone(),
            platform.restart,
        );

        let ours = leaves_one_behind.spawn(0, 1).unwrap();
        ours.exited().await;
        let left: i32 = std::fs::read_to_string(dir.path().join("left"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!gone(left));

        let mut other = std::process::Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .spawn()
            .unwrap();
        let other_pid = Pid::from_raw(other.id() as i32);
        let mut reused = exits.spawn(1, 2).unwrap();
        reused.exited().await;
        let real_group = std::mem::replace(
            &mut reused.unit,
            Unit::Group(reaper::Group::of_an_earlier_process(other_pid)),
        );

        {
            let mut instances = lock(&release.instances);
            instances.push(ours);
            instances.push(reused);
            for slot in &mut instances.slots {
                slot.started = true;
            }
        }
        let mut release: Box<dyn Release> = Box::new(release);
        if by_drop {
            drop(release);
        } else {
            release.stop(Duration::from_millis(200)).await;
            // Idempotent.
            release.stop(Duration::from_millis(200)).await;
        }
        wait_until("what was left in our group killed", || gone(left)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            other.try_wait().unwrap(),
            None,
            "someone else's group killed"
        );
        other.kill().unwrap();
        other.wait().unwrap();
        real_group.unregister();
    }

    #[tokio::test]
    async fn stop_spares_reused_group_ids_but_kills_what_is_left_of_its_own() {
        spares_reused_group_ids(false).await;
    }

    #[tokio::test]
    async fn drop_spares_reused_group_ids_but_kills_what_is_left_of_its_own() {
        spares_reused_group_ids(true).await;
    }
}
