//! Versions as child processes of the daemon, each instance in a process group of
//! its own, on a port picked for it and health-checked over HTTP: [`LocalPlatform`],
//! and starting a version until all its instances are healthy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cutover_engine::platform::{Platform, PlatformError, Release};
use cutover_spec::{HealthCheck, LocalSpec};
use nix::sys::signal::Signal;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::health;
use crate::instance::{RestartPolicy, Slot, lock};
use crate::logs::{address_in_use, log_tail_note};
use crate::ports::free_ports;
use crate::process::{self, Launcher, Process};
use crate::release::LocalRelease;

/// How long instances of a version that failed to start get to exit after SIGTERM.
const STARTUP_CLEANUP_GRACE: Duration = Duration::from_secs(2);

/// Runs versions as local processes: `spec.instances` per version, each on a free
/// port of 127.0.0.1, health-checked with `health`.
#[derive(Debug, Clone)]
pub struct LocalPlatform {
    spec: LocalSpec,
    health: HealthCheck,
    log_dir: PathBuf,
    restart: RestartPolicy,
}

impl LocalPlatform {
    /// `log_dir`: each instance's stdout+stderr go to `<log_dir>/<version>-<index>.log`
    /// (created, and appended to).
    pub fn new(spec: LocalSpec, health: HealthCheck, log_dir: PathBuf) -> LocalPlatform {
        LocalPlatform {
            spec,
            health,
            log_dir,
            restart: RestartPolicy::default(),
        }
    }

    /// The waits between restarts of an instance, shorter for tests.
    #[cfg(test)]
    pub(crate) fn with_restart_policy(mut self, restart: RestartPolicy) -> LocalPlatform {
        self.restart = restart;
        self
    }

    /// Where instance `index` of `version` writes its output.
    pub fn log_path(&self, version: &str, index: u32) -> PathBuf {
        process::log_path(&self.log_dir, version, index)
    }

    /// Spawns every instance; the release owns them from the first on, so an error
    /// (or the caller giving up) never leaves one behind.
    fn spawn_all(&self, release: &LocalRelease) -> Result<(), PlatformError> {
        let launcher = &release.launcher;
        std::fs::create_dir_all(&self.log_dir).map_err(|e| {
            launcher.error(
                0,
                format!(
                    "cannot create log directory {}: {e}",
                    self.log_dir.display()
                ),
            )
        })?;
        if !self.spec.workdir.is_dir() {
            return Err(launcher.error(
                0,
                format!(
                    "working directory {} does not exist",
                    self.spec.workdir.display()
                ),
            ));
        }
        // The ports are free when picked, but not reserved: see `free_port_except`.
        let ports = free_ports(self.spec.instances as usize)
            .map_err(|e| launcher.error(0, format!("cannot find a free port: {e}")))?;
        for (index, port) in (0..self.spec.instances).zip(ports) {
            let process = launcher.spawn(index, port)?;
            lock(&release.instances).slots.push(Slot {
                process,
                restarts: 0,
                started: false,
            });
        }
        Ok(())
    }

    /// Waits until every instance passes `healthy_threshold` checks in a row.
    ///
    /// An instance that exits saying its address is in use (its port, picked free,
    /// was taken before it could bind it) is started once more on another port,
    /// within the same startup timeout.
    async fn wait_all_ready(&self, release: &LocalRelease) -> Result<(), PlatformError> {
        let version = &release.launcher.version;
        let deadline = Instant::now() + self.spec.startup_timeout;
        let mut waits = JoinSet::new();
        let wait = |process: Process| {
            let health = self.health.clone();
            async move {
                let outcome = wait_ready(&process, &health, deadline).await;
                (process, outcome)
            }
        };
        let processes = lock(&release.instances).processes();
        for process in processes {
            waits.spawn(wait(process));
        }
        let mut retried: Vec<u32> = Vec::new();
        while let Some(joined) = waits.join_next().await {
            let (process, outcome) = match joined {
                Ok(r) => r,
                Err(e) => {
                    // A panic in a waiter: a bug, but still a failed start, not a crash.
                    return Err(PlatformError::StartupTimeout {
                        version: version.clone(),
                        timeout: self.spec.startup_timeout,
                        last: format!("health check task failed: {e}"),
                    });
                }
            };
            match outcome {
                Ready::Yes => {}
                Ready::Exited(status) => {
                    let retry = address_in_use(&process);
                    if retry && !retried.contains(&process.index) {
                        retried.push(process.index);
                        tracing::warn!(version, instance = process.index,
                            addr = %process.addr, "exited during startup ({status}): address in use, \
                            starting it again on another port");
                        // Whatever it left running in its group.
                        process.signal(Signal::SIGKILL);
                        let fresh =
                            lock(&release.instances).respawn(&release.launcher, process.index)?;
                        waits.spawn(wait(fresh));
                        continue;
                    }
                    let note = if retry {
                        " (the second time, after a retry on another port)"
                    } else {
                        ""
                    };
                    return Err(PlatformError::ExitedDuringStartup {
                        version: version.clone(),
                        instance: process.index,
                        status: format!("{status}{note}{}", log_tail_note(&process.log_path)),
                    });
                }
                Ready::TimedOut(last) => {
                    return Err(PlatformError::StartupTimeout {
                        version: version.clone(),
                        timeout: self.spec.startup_timeout,
                        last: format!(
                            "instance {} (pid {}, {}): {last}{}",
                            process.index,
                            process.pid,
                            process.addr,
                            log_tail_note(&process.log_path)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Platform for LocalPlatform {
    async fn start(&self, version: &str) -> Result<Box<dyn Release>, PlatformError> {
        let mut release = LocalRelease::new(Arc::new(Launcher {
            spec: self.spec.clone(),
            log_dir: self.log_dir.clone(),
            version: version.to_owned(),
        }));
        let started = match self.spawn_all(&release) {
            Ok(()) => self.wait_all_ready(&release).await,
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            tracing::warn!(version, "start failed, stopping its instances: {e}");
            release.stop(STARTUP_CLEANUP_GRACE).await;
            return Err(e);
        }
        release.go_live(&self.health, self.restart);
        tracing::info!(version, instances = self.spec.instances, "version ready");
        Ok(Box::new(release))
    }
}

enum Ready {
    Yes,
    Exited(String),
    TimedOut(String),
}

async fn wait_ready(process: &Process, health: &HealthCheck, deadline: Instant) -> Ready {
    let mut last = "no health check has completed".to_owned();
    let mut successes = 0;
    loop {
        let result = tokio::select! {
            biased;
            status = process.exited() => return Ready::Exited(status),
            () = tokio::time::sleep_until(deadline) => return Ready::TimedOut(last),
            r = health::check(process.addr, &health.path, health.timeout) => r,
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
