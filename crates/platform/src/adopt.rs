//! Taking over a release an earlier daemon started: its recorded instances that
//! still run become instances of a [`SupervisedRelease`], as if started here.
//!
//! Only a process that is verifiably the one recorded is adopted (its leader alive
//! with the recorded start time), and only if it runs what this platform would run
//! for the release: the same version, and the same command on its port. Of two
//! recorded under one index, the later one. Everything not adopted stays with the
//! [`Leftovers`](crate::Leftovers), for `stop_unadopted`.
//!
//! [`SupervisedRelease::take_over`] is what adopting processes and containers
//! share: the survivors in, the missing instances started, or all stopped.

use std::cmp::Reverse;

use cutover_engine::platform::{PlatformError, Release, ReleaseSpec};

use crate::instance::lock;
use crate::local::LocalPlatform;
use crate::process::{Launcher, Process};
use crate::reaper::{self, Group, InstanceRecord};
use crate::release::SupervisedRelease;
use crate::startup::STARTUP_CLEANUP_GRACE;

impl LocalPlatform {
    /// [`Platform::adopt`](cutover_engine::platform::Platform::adopt) for local
    /// processes.
    pub(crate) async fn adopt_release(
        &self,
        spec: &ReleaseSpec,
    ) -> Result<Option<SupervisedRelease>, PlatformError> {
        let release = self.release(spec);
        let survivors = self.take_survivors(spec, &release.launcher);
        if survivors.is_empty() {
            return Ok(None);
        }
        let adopted = survivors
            .into_iter()
            .map(|(group, record)| {
                // Registered when the leftovers were read; made sure of here, as
                // from now on it is this daemon's like any child of its own.
                reaper::register_group(&group);
                tracing::info!(release = %spec.name, instance = record.index,
                    pid = group.pgid().as_raw(), addr = %record.addr, "adopting instance");
                Process::adopt(group, &record)
            })
            .collect();
        release.take_over(spec, adopted).await.map(Some)
    }

    /// Takes the recorded instances of `spec` that can be adopted out of the
    /// leftovers: at most `spec.instances`, lowest indexes first.
    fn take_survivors(
        &self,
        spec: &ReleaseSpec,
        launcher: &Launcher,
    ) -> Vec<(Group, InstanceRecord)> {
        let mut leftovers = self.leftovers();
        let mut survivors: Vec<(Group, InstanceRecord)> = Vec::new();
        for group in leftovers.of_release(&spec.name) {
            let Some(record) = group.instance.clone() else {
                continue;
            };
            let pid = group.pgid().as_raw();
            let expected = launcher.command_line(record.addr.port());
            if record.version != spec.version {
                tracing::info!(release = %spec.name, pid, recorded = %record.version,
                    "not adopting an instance of another version");
            } else if group.command != expected {
                tracing::info!(release = %spec.name, pid, recorded = %group.command, %expected,
                    "not adopting an instance started with another command");
            } else if !group.leader_running() {
                tracing::info!(release = %spec.name, pid, "not adopting an instance that has exited");
            } else {
                survivors.push((group, record));
            }
        }
        survivors.sort_by_key(|(group, record)| (record.index, Reverse(group.start_time)));
        survivors.dedup_by_key(|(_, record)| record.index);
        survivors.truncate(spec.instances as usize);
        let adopted: Vec<Group> = survivors.iter().map(|(g, _)| g.clone()).collect();
        leftovers.remove(&adopted);
        survivors
    }
}

impl SupervisedRelease {
    /// Takes `adopted` (instances an earlier daemon started, still running) in,
    /// and starts the instances `spec` needs beyond them.
    ///
    /// # Errors
    /// [`PlatformError::Adoption`] when they do not all become healthy; every
    /// instance, adopted or started, is stopped then.
    pub(crate) async fn take_over(
        mut self,
        spec: &ReleaseSpec,
        adopted: Vec<Process>,
    ) -> Result<SupervisedRelease, PlatformError> {
        let count = adopted.len() as u32;
        let ids: Vec<u64> = {
            let mut instances = lock(&self.instances);
            adopted.into_iter().map(|p| instances.push(p)).collect()
        };
        let missing = spec.instances.saturating_sub(count);
        if let Err(e) = self.bring_up(&ids, missing).await {
            tracing::warn!(release = %spec.name, "could not take the release over, stopping it: {e}");
            self.stop(STARTUP_CLEANUP_GRACE).await;
            return Err(PlatformError::Adoption {
                release: spec.name.clone(),
                adopted: count,
                source: Box::new(e),
            });
        }
        tracing::info!(release = %spec.name, version = %spec.version, adopted = count,
            started = missing, "release taken over");
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    //! Which recorded processes adoption picks; adopting them is in `tests/adopt.rs`.
    use std::collections::BTreeMap;
    use std::os::unix::process::CommandExt;
    use std::time::Duration;

    use cutover_spec::{HealthCheck, LocalSpec};
    use nix::unistd::Pid;

    use super::*;
    use crate::leftovers::Leftovers;

    fn spec() -> LocalSpec {
        LocalSpec {
            command: ["serve", "--port", "${PORT}", "${VERSION}"]
                .map(String::from)
                .to_vec(),
            env: BTreeMap::new(),
            workdir: "/".into(),
            instances: 2,
            startup_timeout: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(1),
        }
    }

    fn health() -> HealthCheck {
        HealthCheck {
            path: "/".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        }
    }

    fn record(version: &str, index: u32, port: u16) -> InstanceRecord {
        InstanceRecord {
            release: "v1".into(),
            version: version.into(),
            index,
            addr: ([127, 0, 0, 1], port).into(),
            log: "/logs/v1-0.log".into(),
        }
    }

    #[test]
    fn the_recorded_command_is_the_one_the_launcher_runs_on_that_port() {
        let platform = LocalPlatform::new(spec(), health(), "/logs".into());
        let release = platform.release(&ReleaseSpec {
            name: "v1.baseline".into(),
            version: "v1".into(),
            instances: 1,
        });
        assert_eq!(release.launcher.command_line(4000), "serve --port 4000 v1");
    }

    #[test]
    fn only_live_instances_of_the_same_version_and_command_are_taken_one_per_index() {
        let mut sleeps: Vec<std::process::Child> = (0..5)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("1000")
                    .process_group(0)
                    .spawn()
                    .unwrap()
            })
            .collect();
        let pid = |n: usize| Pid::from_raw(sleeps[n].id() as i32);
        // No such process any more: never taken.
        let mut gone = Group::of_an_earlier_process(pid(4));
        gone.command = "serve --port 4005 v1".into();
        gone.instance = Some(record("v1", 3, 4005));
        let groups = vec![
            Group::recorded(pid(0), "serve --port 4000 v1", Some(record("v1", 0, 4000))),
            // Index 0 again, started later: taken instead.
            Group::recorded(pid(1), "serve --port 4001 v1", Some(record("v1", 0, 4001))),
            Group::recorded(pid(2), "serve --port 4002 v2", Some(record("v2", 1, 4002))),
            Group::recorded(pid(3), "serve --port 4000 v1", Some(record("v1", 1, 4003))),
            Group::recorded(pid(4), "serve --port 4004 v1", Some(record("v1", 2, 4004))),
            gone,
        ];
        let platform = LocalPlatform::new(spec(), health(), "/logs".into())
            .with_leftovers(Leftovers::of(groups.clone()));
        let spec = ReleaseSpec {
            name: "v1".into(),
            version: "v1".into(),
            instances: 2,
        };
        let release = platform.release(&spec);
        let taken = platform.take_survivors(&spec, &release.launcher);
        let indexes: Vec<u32> = taken.iter().map(|(_, r)| r.index).collect();
        // Index 1 was another version (pid 2) or another command (pid 3).
        assert_eq!(indexes, [0, 2]);
        // Started in the same clock tick, the two of index 0 may tie.
        let latest = groups[0].start_time.max(groups[1].start_time);
        assert_eq!(taken[0].0.start_time, latest);
        assert!([pid(0), pid(1)].contains(&taken[0].0.pgid()));
        assert_eq!(taken[1].0.pgid(), pid(4));
        // The rest is left for `stop_unadopted`; taken ones are not offered again.
        assert_eq!(platform.leftovers().of_release("v1").len(), 4);
        assert!(platform.take_survivors(&spec, &release.launcher).len() == 1);
        for sleep in &mut sleeps {
            sleep.kill().unwrap();
            sleep.wait().unwrap();
        }
    }
}
