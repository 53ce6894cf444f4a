//! What an earlier daemon recorded with [`persist_children_to`] and left running:
//! [`Leftovers`], read before this daemon writes over the file, handed to
//! [`LocalPlatform::with_leftovers`] for the releases the engine adopts, and the
//! rest stopped by `stop_unadopted`.
//!
//! Every group read is registered with this process's registry at once, so that
//! from the moment the file is read to the moment a group is adopted or stopped,
//! it is in the file this daemon writes and is killed by [`kill_all_children`]:
//! a daemon that dies in between leaves nothing unrecorded.
//!
//! [`persist_children_to`]: crate::persist_children_to
//! [`kill_all_children`]: crate::kill_all_children
//! [`LocalPlatform::with_leftovers`]: crate::LocalPlatform::with_leftovers

use std::io;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;

use crate::reaper::{self, Found, Group};

/// How long [`Leftovers::stop`] waits for the groups it killed to vanish.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// How often [`Leftovers::stop`] looks whether they have.
const POLL: Duration = Duration::from_millis(20);

/// The process groups an earlier daemon recorded and left running, verified to be
/// the very ones it recorded (never a process that merely reuses a pid since).
#[derive(Debug, Default)]
pub struct Leftovers {
    /// Alive when read (their leader, or members it left behind), and registered.
    groups: Vec<Group>,
    /// Those `/proc` could not verify: neither adopted nor killed.
    unverified: Vec<Group>,
}

impl Leftovers {
    /// Reads the file an earlier daemon kept with [`persist_children_to`]
    /// (files of earlier versions of it included) and registers every group of it
    /// still running here (see the module doc). A missing file leaves nothing.
    ///
    /// Call it before [`persist_children_to`] on the same path, which refuses to
    /// write over a file not read.
    ///
    /// # Errors
    /// When `path` cannot be read or parsed (the file is left as it is), and when it
    /// is where this process records its own children.
    ///
    /// [`persist_children_to`]: crate::persist_children_to
    pub fn read(path: &Path) -> io::Result<Leftovers> {
        let mut leftovers = Leftovers::default();
        for group in reaper::read_groups_file(path)? {
            match group.find() {
                // A leader that is only a zombie, waiting for init: nothing to do.
                Found::Leader | Found::Orphans(_) if group.alive() => {
                    reaper::register_group(&group);
                    leftovers.groups.push(group);
                }
                Found::Leader | Found::Orphans(_) | Found::Nothing => {}
                Found::Unknown => leftovers.unverified.push(group),
            }
        }
        Ok(leftovers)
    }

    /// Whether nothing was left running.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.unverified.is_empty()
    }

    /// How many process groups were left running (or could not be verified).
    pub fn len(&self) -> usize {
        self.groups.len() + self.unverified.len()
    }

    /// Leftovers of `groups`, as if read (but not registered).
    #[cfg(test)]
    pub(crate) fn of(groups: Vec<Group>) -> Leftovers {
        Leftovers {
            groups,
            unverified: Vec::new(),
        }
    }

    /// The groups recorded as running an instance of the release `name`.
    pub(crate) fn of_release(&self, name: &str) -> Vec<Group> {
        self.groups
            .iter()
            .filter(|g| g.instance.as_ref().is_some_and(|i| i.release == name))
            .cloned()
            .collect()
    }

    /// Hands `adopted` over to whoever adopts them: no longer stopped here.
    pub(crate) fn remove(&mut self, adopted: &[Group]) {
        self.groups.retain(|g| !adopted.contains(g));
    }

    /// Kills (SIGKILL to the group) every group still verifiably the one recorded:
    /// its leader alive with the recorded start time, or its leader gone and every
    /// process left in the group started after it, in its session. Waits (up to
    /// 2 s) for them to vanish, and unregisters those gone. Returns what it killed,
    /// as `pid N (command)`.
    pub async fn stop(self) -> Vec<String> {
        for group in &self.unverified {
            tracing::warn!(
                pgid = group.pgid().as_raw(),
                command = group.command,
                "cannot tell whether a process group left by an earlier daemon is still \
                 running; not stopping it"
            );
        }
        let mut killed = Vec::new();
        let mut pending = Vec::new();
        for group in self.groups {
            // Exited since it was read (or only a zombie is left of it).
            if !group.alive() {
                group.unregister();
                continue;
            }
            let what = match group.find() {
                Found::Leader => format!("pid {} ({})", group.pgid(), group.command),
                Found::Orphans(n) => format!(
                    "pid {} ({}; its leader had exited, {n} process(es) left in its group)",
                    group.pgid(),
                    group.command
                ),
                Found::Nothing | Found::Unknown => {
                    group.unregister();
                    continue;
                }
            };
            reaper::signal_group(group.pgid(), Signal::SIGKILL);
            tracing::warn!(
                pgid = group.pgid().as_raw(),
                "killed {what}, left by an earlier daemon"
            );
            killed.push(what);
            pending.push(group);
        }
        let deadline = Instant::now() + KILL_WAIT;
        loop {
            pending.retain(|group| {
                let alive = group.alive();
                if !alive {
                    group.unregister();
                }
                alive
            });
            if pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        for group in pending {
            // Left registered, for `kill_all_children` (or the next daemon) to retry.
            tracing::error!(
                pgid = group.pgid().as_raw(),
                "process group left by an earlier daemon still present {KILL_WAIT:?} after SIGKILL"
            );
        }
        killed
    }
}
