//! Bringing instances of a release up: spawning them and waiting until every one
//! passes its health check, for `start`, `add_instances` and `adopt` alike.
//!
//! Instances being brought up are in the release from their first spawn on, so an
//! error (or the caller giving up) never leaves one behind: see [`Pending`].

use std::time::Duration;

use cutover_engine::platform::PlatformError;
use cutover_spec::HealthCheck;
use nix::sys::signal::Signal;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::instance::{SharedInstances, Slot, lock};
use crate::logs::{address_in_use, log_tail_note};
use crate::process::{self, Process, kill_now};
use crate::release::SupervisedRelease;

/// How long instances that failed to start get to exit after SIGTERM.
pub(crate) const STARTUP_CLEANUP_GRACE: Duration = Duration::from_secs(2);

/// Instances being brought up, not live yet: taken out of the release and killed
/// when dropped, unless [`Pending::live`] says they made it.
pub(crate) struct Pending {
    instances: SharedInstances,
    pub(crate) ids: Vec<u64>,
}

impl Pending {
    pub(crate) fn new(instances: SharedInstances) -> Pending {
        Pending {
            instances,
            ids: Vec::new(),
        }
    }

    /// They are live: left in the release. Returns their ids.
    pub(crate) fn live(mut self) -> Vec<u64> {
        std::mem::take(&mut self.ids)
    }

    /// Every process of theirs not known to be gone.
    pub(crate) fn processes(&self) -> Vec<Process> {
        lock(&self.instances)
            .slots
            .iter()
            .filter(|s| self.ids.contains(&s.id))
            .flat_map(Slot::processes)
            .cloned()
            .collect()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let slots = lock(&self.instances).take(&self.ids);
        kill_now(slots.iter().flat_map(Slot::processes).cloned().collect());
    }
}

impl SupervisedRelease {
    /// Spawns `n` new instances into the release, recorded in `pending` as each is
    /// spawned.
    pub(crate) fn spawn_instances(
        &self,
        pending: &mut Pending,
        n: u32,
    ) -> Result<(), PlatformError> {
        if n == 0 {
            return Ok(());
        }
        let launcher = &self.launcher;
        launcher.prepare()?;
        for _ in 0..n {
            let id = lock(&self.instances).add(launcher)?;
            pending.ids.push(id);
        }
        Ok(())
    }

    /// Waits until the instances `ids` pass `healthy_threshold` checks in a row.
    ///
    /// An instance that exits saying its address is in use (its port, picked free,
    /// was taken before it could bind it) is started once more on another port,
    /// within the same startup timeout. An adopted one that exits, or is not healthy
    /// within the startup timeout, is killed and started afresh (counted as a
    /// restart), with a startup timeout of its own.
    pub(crate) async fn wait_ready(&self, ids: &[u64]) -> Result<(), PlatformError> {
        let name = &self.launcher.name;
        let timeout = self.launcher.startup_timeout();
        let deadline = Instant::now() + timeout;
        let mut waits = JoinSet::new();
        let wait = |id: u64, process: Process, deadline: Instant| {
            let health = self.health.clone();
            async move {
                let outcome = wait_healthy(&process, &health, deadline).await;
                (id, process, deadline, outcome)
            }
        };
        let processes: Vec<(u64, Process)> = lock(&self.instances)
            .slots
            .iter()
            .filter(|s| ids.contains(&s.id))
            .map(|s| (s.id, s.process.clone()))
            .collect();
        for (id, process) in processes {
            waits.spawn(wait(id, process, deadline));
        }
        let mut retried: Vec<u64> = Vec::new();
        while let Some(joined) = waits.join_next().await {
            let (id, process, deadline, outcome) = match joined {
                Ok(r) => r,
                Err(e) => {
                    // A panic in a waiter: a bug, but still a failed start, not a crash.
                    return Err(PlatformError::StartupTimeout {
                        version: name.clone(),
                        timeout,
                        last: format!("health check task failed: {e}"),
                    });
                }
            };
            match outcome {
                Ready::Yes => {}
                Ready::Exited(status) if process.adopted => {
                    if let Some(fresh) = self.replace_adopted(id, &process, &status)? {
                        waits.spawn(wait(id, fresh, Instant::now() + timeout));
                    }
                }
                Ready::TimedOut(last) if process.adopted => {
                    let why = format!("not healthy within {timeout:?}: {last}");
                    if let Some(fresh) = self.replace_adopted(id, &process, &why)? {
                        waits.spawn(wait(id, fresh, Instant::now() + timeout));
                    }
                }
                Ready::Exited(status) => {
                    let retry = address_in_use(&process, &status);
                    if retry && !retried.contains(&id) {
                        retried.push(id);
                        tracing::warn!(release = %name, instance = process.index,
                            addr = %process.addr, "exited during startup ({status}): address in use, \
                            starting it again on another port");
                        // Whatever it left running in its group.
                        process.signal(Signal::SIGKILL);
                        let fresh = lock(&self.instances).respawn(&self.launcher, id)?;
                        if let Some(fresh) = fresh {
                            waits.spawn(wait(id, fresh, deadline));
                        }
                        continue;
                    }
                    let note = if retry {
                        format!(
                            " (the second time, after a retry on another port; {})",
                            self.launcher.port_hint()
                        )
                    } else {
                        String::new()
                    };
                    return Err(PlatformError::ExitedDuringStartup {
                        version: name.clone(),
                        instance: process.index,
                        status: format!("{status}{note}{}", log_tail_note(&process.log_path)),
                    });
                }
                Ready::TimedOut(last) => {
                    return Err(PlatformError::StartupTimeout {
                        version: name.clone(),
                        timeout,
                        last: format!(
                            "instance {} ({}, {}): {last}{}",
                            process.index,
                            process.unit,
                            process.addr,
                            log_tail_note(&process.log_path)
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Kills the adopted `process` of slot `id`, which `why` is not healthy, and
    /// starts the instance afresh in its place, as a restart.
    fn replace_adopted(
        &self,
        id: u64,
        process: &Process,
        why: &str,
    ) -> Result<Option<Process>, PlatformError> {
        tracing::warn!(release = %self.launcher.name, instance = process.index,
            unit = %process.unit, addr = %process.addr,
            "adopted instance {why}; starting it afresh");
        process.signal(Signal::SIGKILL);
        let mut instances = lock(&self.instances);
        let fresh = instances.respawn(&self.launcher, id)?;
        if let Some(slot) = instances.slot_mut(id) {
            slot.restarts += 1;
        }
        Ok(fresh)
    }

    /// Spawns `n` instances, waits until they and the not yet live instances
    /// `existing` are healthy, and makes them all live.
    ///
    /// # Guarantees
    /// On error, and when dropped before it completes, the `n` new instances are
    /// stopped and taken out of the release again; the others are untouched
    /// (`existing` included, for the caller to decide about).
    pub(crate) async fn bring_up(&mut self, existing: &[u64], n: u32) -> Result<(), PlatformError> {
        let mut pending = Pending::new(self.instances.clone());
        let started = match self.spawn_instances(&mut pending, n) {
            Ok(()) => {
                let all: Vec<u64> = existing.iter().chain(&pending.ids).copied().collect();
                self.wait_ready(&all).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            tracing::warn!(release = %self.launcher.name, "start failed, stopping the instances it started: {e}");
            process::stop_processes(
                &self.launcher.name,
                &pending.processes(),
                STARTUP_CLEANUP_GRACE,
            )
            .await;
            return Err(e);
        }
        let ids: Vec<u64> = existing.iter().copied().chain(pending.live()).collect();
        self.go_live(&ids);
        Ok(())
    }
}

enum Ready {
    Yes,
    Exited(String),
    TimedOut(String),
}

async fn wait_healthy(process: &Process, health: &HealthCheck, deadline: Instant) -> Ready {
    let mut last = "no health check has completed".to_owned();
    let mut successes = 0;
    loop {
        let result = tokio::select! {
            biased;
            status = process.exited() => return Ready::Exited(status),
            () = tokio::time::sleep_until(deadline) => return Ready::TimedOut(last),
            r = process.check(health) => r,
        };
        match result {
            Ok(()) => {
                successes += 1;
                if successes >= health.healthy_threshold {
                    return Ready::Yes;
                }
            }
            Err(e) => {
                successes = 0;
                last = e;
            }
        }
        tokio::select! {
            biased;
            status = process.exited() => return Ready::Exited(status),
            () = tokio::time::sleep_until(deadline) => return Ready::TimedOut(last),
            () = tokio::time::sleep(health.interval) => {}
        }
    }
}
