//! [`LocalRelease`]: a started version, its health, and stopping it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cutover_engine::platform::{Release, ReleaseHealth};
use cutover_spec::HealthCheck;
use nix::sys::signal::Signal;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::instance::{Instances, RestartPolicy, SharedInstances, Supervisor, lock};
use crate::process::{Launcher, wait_gone};

/// How long to wait for a process group to vanish after SIGKILL before giving up.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A version started by [`LocalPlatform`](crate::LocalPlatform).
///
/// Once live, an instance whose process exits is restarted (with a backoff), and
/// rejoins the ready ones once healthy again; `describe` counts the restarts.
///
/// Dropping it without [`Release::stop`] kills its processes (SIGKILL), so that a
/// version is never left running unowned.
#[derive(Debug)]
pub struct LocalRelease {
    pub(crate) launcher: Arc<Launcher>,
    pub(crate) instances: SharedInstances,
    health_tx: Arc<watch::Sender<ReleaseHealth>>,
    /// One [`Supervisor`] per instance, once live.
    supervisors: Vec<JoinHandle<()>>,
    stopped: bool,
}

impl LocalRelease {
    pub(crate) fn new(launcher: Arc<Launcher>) -> LocalRelease {
        LocalRelease {
            launcher,
            instances: Arc::new(std::sync::Mutex::new(Instances::default())),
            health_tx: Arc::new(watch::channel(ReleaseHealth::default()).0),
            supervisors: Vec::new(),
            stopped: false,
        }
    }

    /// Publishes every instance as ready and starts supervising them.
    pub(crate) fn go_live(&mut self, health: &HealthCheck, policy: RestartPolicy) {
        let processes: Vec<_> = {
            let mut instances = lock(&self.instances);
            for slot in &mut instances.slots {
                slot.started = true;
            }
            instances.slots.iter().map(|s| s.process.clone()).collect()
        };
        let mut ready: Vec<SocketAddr> = processes.iter().map(|p| p.addr).collect();
        ready.sort();
        self.health_tx.send_modify(|h| h.ready = ready);
        for process in processes {
            let supervisor = Supervisor {
                launcher: self.launcher.clone(),
                health: health.clone(),
                policy,
                instances: self.instances.clone(),
                tx: self.health_tx.clone(),
            };
            self.supervisors.push(tokio::spawn(supervisor.run(process)));
        }
    }

    /// Marks the release stopping, so that no process is started any more, and
    /// aborts the supervisors.
    fn stop_supervising(&mut self) -> Vec<JoinHandle<()>> {
        lock(&self.instances).stopping = true;
        let supervisors = std::mem::take(&mut self.supervisors);
        for s in &supervisors {
            s.abort();
        }
        supervisors
    }
}

#[async_trait]
impl Release for LocalRelease {
    fn version(&self) -> &str {
        &self.launcher.version
    }

    fn health(&self) -> watch::Receiver<ReleaseHealth> {
        self.health_tx.subscribe()
    }

    /// `pid 4242 on 127.0.0.1:40001 (ready)` per instance, the state being one of
    /// `starting`, `ready`, `unhealthy`, `exited: <status>` (waiting to be
    /// restarted) and `stopped`, followed by `, restarts: N` once restarted.
    fn describe(&self) -> Vec<String> {
        // Not holding the channel's lock while taking the instances'.
        let ready = self.health_tx.borrow().ready.clone();
        let instances = lock(&self.instances);
        instances
            .slots
            .iter()
            .map(|slot| {
                let p = &slot.process;
                let state = if self.stopped {
                    "stopped".to_owned()
                } else if let Some(status) = p.exit_status() {
                    format!("exited: {status}")
                } else if ready.contains(&p.addr) {
                    "ready".to_owned()
                } else if !slot.started {
                    "starting".to_owned()
                } else {
                    "unhealthy".to_owned()
                };
                let restarts = match slot.restarts {
                    0 => String::new(),
                    n => format!(", restarts: {n}"),
                };
                format!("pid {} on {} ({state}{restarts})", p.pid, p.addr)
            })
            .collect()
    }

    async fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        // Supervisors first: no restart from here on, and the exits caused here are
        // not reported as problems. Once they are awaited, nothing else changes the
        // processes.
        for supervisor in self.stop_supervising() {
            let _ = supervisor.await;
        }
        self.health_tx
            .send_if_modified(|h| !std::mem::take(&mut h.ready).is_empty());

        let version = &self.launcher.version;
        let all = lock(&self.instances).processes();
        // Every signal only to a group still verifiably ours: an instance waiting
        // to be restarted has exited, and its pid may belong to anyone by now.
        for p in &all {
            p.signal(Signal::SIGTERM);
        }
        let polite = Instant::now() + grace;
        for p in &all {
            if !wait_gone(p, polite).await {
                tracing::info!(
                    version,
                    instance = p.index,
                    pid = p.pid.as_raw(),
                    "still running {grace:?} after SIGTERM, killing"
                );
            }
        }
        // Whether or not the leader is gone: the group may hold processes that
        // outlived it.
        for p in &all {
            p.signal(Signal::SIGKILL);
        }
        let forced = Instant::now() + KILL_WAIT;
        for p in &all {
            if wait_gone(p, forced).await {
                p.group.unregister();
            } else {
                // Left registered, for `kill_all_children` (or the next daemon) to retry.
                tracing::error!(
                    version,
                    instance = p.index,
                    pid = p.pid.as_raw(),
                    "process group still present {KILL_WAIT:?} after SIGKILL"
                );
            }
        }
        self.stopped = true;
        tracing::info!(version, "stopped");
    }
}

impl Drop for LocalRelease {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        // A supervisor still running on another thread can start nothing after this.
        self.stop_supervising();
        let runtime = tokio::runtime::Handle::try_current().ok();
        let all = lock(&self.instances).processes();
        for p in all {
            p.signal(Signal::SIGKILL);
            // Unregistered once gone, as in `stop`; without a runtime to wait in, now.
            match &runtime {
                Some(runtime) => {
                    runtime.spawn(async move {
                        if wait_gone(&p, Instant::now() + KILL_WAIT).await {
                            p.group.unregister();
                        }
                    });
                }
                None => p.group.unregister(),
            }
        }
        // Reaping is left to each process's waiting task (or tokio's orphan queue).
    }
}

#[cfg(test)]
mod tests {
    //! Restarts against `stop`, with a backoff of milliseconds so that restarts
    //! race with it.

    use std::collections::BTreeMap;
    use std::os::unix::process::CommandExt;
    use std::path::Path;

    use cutover_engine::platform::Platform;
    use cutover_spec::LocalSpec;
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;

    use super::*;
    use crate::instance::Slot;
    use crate::{LocalPlatform, reaper};

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
            let mut release = platform.start("v1").await.unwrap();
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
        let mut release = platform.start("v1").await.unwrap();
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
                spec: LocalSpec {
                    command: ["sh", "-c", command, "${PORT}"].map(String::from).to_vec(),
                    env: BTreeMap::new(),
                    workdir: dir.path().to_owned(),
                    instances: 2,
                    startup_timeout: Duration::from_secs(5),
                    drain_timeout: Duration::from_secs(1),
                },
                log_dir: dir.path().to_owned(),
                version: "v1".to_owned(),
            })
        };
        let leaves_one_behind = launcher("sleep 1000 & echo $! > left");
        let exits = launcher("true");
        let release = LocalRelease::new(leaves_one_behind.clone());

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
            &mut reused.group,
            reaper::Group::of_an_earlier_process(other_pid),
        );
        reused.pid = other_pid;

        lock(&release.instances).slots = [ours, reused]
            .into_iter()
            .map(|process| Slot {
                process,
                restarts: 0,
                started: true,
            })
            .collect();
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
