//! The process-wide registry of the process groups this crate runs, so that one
//! call can kill them all when the daemon is told to exit or panics, and, persisted
//! to a file, so that the next daemon can adopt or kill them when this one dies
//! uncleanly (see [`Leftovers`](crate::Leftovers)).
//!
//! Every instance runs in a process group of its own (its pid is the group id), so
//! signalling the group also reaches whatever the instance started itself.
//!
//! Each group is recorded with its leader's start time (field 22 of
//! `/proc/<pid>/stat`) and session, so that a group id reused by someone else is
//! never signalled: see [`Group::find`]. The instances keep the [`Group`] recorded
//! when they were spawned, and signal their groups only through it
//! ([`Group::signal`]), so that a process whose pid was reused after it exited is
//! never mistaken for what is left of it. A group that runs an instance also
//! records which one ([`InstanceRecord`]), for the next daemon to adopt it.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// One process group started here, as recorded in memory and in the file, and as
/// kept by the instance that started it: a handle that signals the group only while
/// it is verifiably the one started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Group {
    /// The group id, which is also its leader's pid.
    pgid: i32,
    /// The leader's start time in clock ticks since boot (`/proc/<pid>/stat` field
    /// 22); `None` where `/proc` could not tell.
    pub(crate) start_time: Option<u64>,
    /// The leader's session id (field 6), `None` where `/proc` could not tell.
    session: Option<i32>,
    /// The command, for messages; for an instance, also what it must still be to be
    /// adopted.
    pub(crate) command: String,
    /// The instance it runs; `None` in files written before instances were
    /// recorded, and for groups that run none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) instance: Option<InstanceRecord>,
}

/// Which instance a group runs: what the next daemon needs to adopt it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InstanceRecord {
    /// The release's name ([`ReleaseSpec::name`](cutover_engine::platform::ReleaseSpec)).
    pub(crate) release: String,
    pub(crate) version: String,
    pub(crate) index: u32,
    /// Where it serves.
    pub(crate) addr: SocketAddr,
    /// Where its output goes.
    pub(crate) log: PathBuf,
}

/// The contents of the file written by [`persist_children_to`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct GroupsFile {
    /// The daemon that wrote it, for people reading the file.
    #[serde(default)]
    pub(crate) daemon_pid: u32,
    pub(crate) groups: Vec<Group>,
}

#[derive(Default)]
struct Registry {
    groups: BTreeMap<i32, Group>,
    /// Bumped on every change, so that writes of the file are never reordered.
    generation: u64,
}

/// Group ids of the instances started and not yet stopped.
static GROUPS: Mutex<Registry> = Mutex::new(Registry {
    groups: BTreeMap::new(),
    generation: 0,
});

struct Persist {
    path: Option<PathBuf>,
    /// The generation last written to `path`.
    written: u64,
    /// Files read for what an earlier daemon left (see [`read_groups_file`]), the
    /// only ones [`persist_children_to`] may write over.
    read: Vec<PathBuf>,
}

/// Where the registry is written. Locked only after `GROUPS` is released, never
/// the other way round, and never by [`kill_all_children`].
static PERSIST: Mutex<Persist> = Mutex::new(Persist {
    path: None,
    written: 0,
    read: Vec::new(),
});

fn groups() -> MutexGuard<'static, Registry> {
    // Nothing panics while holding the lock, but a panic hook must never be the
    // one to discover otherwise.
    GROUPS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn persist_state() -> MutexGuard<'static, Persist> {
    PERSIST.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records a group just started, and returns it for its owner to signal it with;
/// `command` is for messages, `instance` for the next daemon to adopt it. Call right
/// after spawning, before the child can be reaped (it has exec'd by then, so
/// `/proc` shows its final start time).
pub(crate) fn register(pgid: Pid, command: &str, instance: Option<InstanceRecord>) -> Group {
    let stat = read_stat(pgid.as_raw());
    let group = Group {
        pgid: pgid.as_raw(),
        start_time: stat.as_ref().map(|s| s.start_time),
        session: stat.as_ref().map(|s| s.session),
        command: command.to_owned(),
        instance,
    };
    register_group(&group);
    group
}

/// Records a group started elsewhere (by an earlier daemon), as it was recorded
/// there; replaces what is recorded under its id.
pub(crate) fn register_group(group: &Group) {
    let snapshot = {
        let mut registry = groups();
        if registry.groups.get(&group.pgid) == Some(group) {
            return;
        }
        registry.groups.insert(group.pgid, group.clone());
        registry.generation += 1;
        snapshot(&registry)
    };
    persist(snapshot);
}

/// Forgets the group recorded under `pgid`, whichever it is.
#[cfg(test)]
pub(crate) fn unregister(pgid: Pid) {
    unregister_if(pgid, |_| true);
}

/// Forgets the group recorded under `pgid` if `matches` says it is the one meant.
fn unregister_if(pgid: Pid, matches: impl FnOnce(&Group) -> bool) {
    let snapshot = {
        let mut registry = groups();
        if !registry.groups.get(&pgid.as_raw()).is_some_and(matches) {
            return;
        }
        registry.groups.remove(&pgid.as_raw());
        registry.generation += 1;
        snapshot(&registry)
    };
    persist(snapshot);
}

fn snapshot(registry: &Registry) -> (u64, Vec<Group>) {
    (
        registry.generation,
        registry.groups.values().cloned().collect(),
    )
}

/// Writes the registry as of `generation`, unless a newer one was written already.
fn persist((generation, groups): (u64, Vec<Group>)) {
    let mut state = persist_state();
    let Some(path) = state.path.clone() else {
        return;
    };
    if generation <= state.written {
        return;
    }
    match write_file(&path, groups) {
        Ok(()) => state.written = generation,
        Err(e) => tracing::warn!(
            path = %path.display(),
            "could not record the running process groups: {e}"
        ),
    }
}

/// Atomically: a temporary file next to `path`, renamed over it. Not fsync'ed: the
/// file is for a daemon that crashed, not for a machine that did (after a reboot
/// none of the processes exist any more).
fn write_file(path: &Path, groups: Vec<Group>) -> io::Result<()> {
    let file = GroupsFile {
        daemon_pid: std::process::id(),
        groups,
    };
    let json = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

/// Records every live process group started here in `path`, as JSON, and keeps it
/// up to date: the file is rewritten atomically (a temporary file renamed over it)
/// whenever a group is registered or unregistered. A daemon that dies uncleanly
/// leaves it behind for the next one's [`Leftovers::read`](crate::Leftovers::read).
///
/// Writes the file at once.
///
/// # Errors
/// When the file cannot be written (later errors are logged), and when `path`
/// holds a file that [`Leftovers::read`](crate::Leftovers::read) has not read: what
/// an earlier daemon recorded there would be lost, and whatever it left running
/// with it.
pub fn persist_children_to(path: PathBuf) -> io::Result<()> {
    let mut state = persist_state();
    if !state.read.contains(&path) && std::fs::symlink_metadata(&path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} may list processes an earlier daemon left running; read it with \
                 Leftovers::read before writing over it",
                path.display()
            ),
        ));
    }
    let (generation, groups) = snapshot(&groups());
    write_file(&path, groups)?;
    state.path = Some(path);
    state.written = generation;
    Ok(())
}

/// The groups an earlier daemon recorded in `path`; a missing file lists none.
/// Once called, [`persist_children_to`] may write over `path`, whether or not it
/// could be read.
///
/// # Errors
/// When `path` is where this process records its own children, and when it
/// cannot be read or parsed.
pub(crate) fn read_groups_file(path: &Path) -> io::Result<Vec<Group>> {
    {
        let mut state = persist_state();
        if state.path.as_deref() == Some(path) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is where this process records its own children",
                    path.display()
                ),
            ));
        }
        if !state.read.iter().any(|p| p == path) {
            state.read.push(path.to_owned());
        }
    }
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let file: GroupsFile = serde_json::from_slice(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    Ok(file.groups)
}

/// What is left of a recorded group.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// Its leader, the very process recorded (and whatever else is in its group).
    Leader,
    /// Only members, this many, its leader having exited.
    Orphans(usize),
    /// Nothing of it: gone, or its id belongs to another process now.
    Nothing,
    /// No `/proc`, or nothing recorded to compare with.
    Unknown,
}

impl Group {
    /// The group id, which was its leader's pid.
    pub(crate) fn pgid(&self) -> Pid {
        Pid::from_raw(self.pgid)
    }

    /// Sends `signal` to the group if it is verifiably this one (see [`Group::find`]):
    /// its leader alive, or members of it left behind by its leader. Where `/proc`
    /// cannot tell, only if `leader_unreaped`: the caller knows the leader has not
    /// been waited for yet, so its pid (and the group id) cannot have been reused.
    /// Returns whether the signal was sent (to a group that may have just vanished).
    pub(crate) fn signal(&self, signal: Signal, leader_unreaped: bool) -> bool {
        let ours = match self.find() {
            Found::Leader | Found::Orphans(_) => true,
            Found::Nothing => false,
            Found::Unknown => leader_unreaped,
        };
        if ours {
            signal_group(self.pgid(), signal);
        } else {
            tracing::debug!(pgid = self.pgid, %signal,
                "not signalling a process group that is gone or not ours any more");
        }
        ours
    }

    /// Whether any live process is left of the group, as [`group_alive`] but never
    /// counting a group that is verifiably someone else's by now.
    pub(crate) fn alive(&self) -> bool {
        match self.find() {
            Found::Nothing => false,
            Found::Orphans(_) => true,
            // The leader may be a zombie; `group_alive` does not count those.
            Found::Leader | Found::Unknown => group_alive(self.pgid()),
        }
    }

    /// Forgets the group, unless the registry holds another group with its id by
    /// now (a process started here since, given the id once this group was gone).
    pub(crate) fn unregister(&self) {
        unregister_if(self.pgid(), |recorded| {
            recorded.start_time == self.start_time
        });
    }

    /// Whether its leader is the very process recorded, and has not exited: a
    /// zombie, or a process that merely got its pid since, does not count.
    pub(crate) fn leader_running(&self) -> bool {
        let (Some(start_time), Some(leader)) = (self.start_time, read_stat(self.pgid)) else {
            return false;
        };
        leader.start_time == start_time && !leader.zombie()
    }

    /// What is left of the group: the recorded leader itself, members it left
    /// behind, nothing (gone, or its id is someone else's by now), or `Unknown`
    /// where `/proc` cannot tell.
    pub(crate) fn find(&self) -> Found {
        let Some(start_time) = self.start_time else {
            return Found::Unknown;
        };
        if let Some(leader) = read_stat(self.pgid) {
            return if leader.start_time == start_time {
                Found::Leader
            } else {
                Found::Nothing
            };
        }
        if std::fs::metadata("/proc/self/stat").is_err() {
            return Found::Unknown;
        }
        // No process has the group's id as its pid, so the id cannot have been
        // handed out again while the group has members: Linux keeps a pid allocated
        // while it names a process group. Still, every member must look like ours.
        let Some(members) = proc_stats() else {
            return Found::Unknown;
        };
        let mut live = 0;
        for member in members {
            if member.pgrp != self.pgid || member.zombie() {
                continue;
            }
            if member.start_time < start_time || Some(member.session) != self.session {
                return Found::Nothing;
            }
            live += 1;
        }
        if live > 0 {
            Found::Orphans(live)
        } else {
            Found::Nothing
        }
    }
}

/// Sends `signal` to the process group; a group that no longer exists is not an error.
/// Unchecked: see [`Group::signal`].
pub(crate) fn signal_group(pgid: Pid, signal: Signal) {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(pgid = pgid.as_raw(), %signal, "could not signal process group: {e}")
        }
    }
}

/// Whether any live process is left in the group.
///
/// Zombies do not count: a grandchild orphaned by the instance's exit is reaped by
/// init, not by us, and some inits (in containers and VMs) take seconds or forever
/// to do it. Where `/proc` is readable it tells which members are zombies; elsewhere
/// every member counts.
pub(crate) fn group_alive(pgid: Pid) -> bool {
    // EPERM would mean the id now belongs to someone else's group: not ours any more.
    if matches!(killpg(pgid, None), Err(Errno::ESRCH | Errno::EPERM)) {
        return false;
    }
    live_members_from_proc(pgid).is_none_or(|live| live > 0)
}

/// How many processes of the group are not zombies, or `None` without `/proc`.
fn live_members_from_proc(pgid: Pid) -> Option<usize> {
    Some(
        proc_stats()?
            .filter(|s| s.pgrp == pgid.as_raw() && !s.zombie())
            .count(),
    )
}

/// The stat of every process, or `None` without `/proc`. Vanishing processes are
/// simply skipped.
fn proc_stats() -> Option<impl Iterator<Item = ProcStat>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(entries.flatten().filter_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        read_stat(pid)
    }))
}

/// The fields of `/proc/<pid>/stat` used here.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcStat {
    state: char,
    pgrp: i32,
    session: i32,
    /// Clock ticks after boot.
    start_time: u64,
}

impl ProcStat {
    fn zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

fn read_stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `pid (comm) state ppid pgrp session ... starttime ...` (`starttime` is field 22),
/// where comm may hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<ProcStat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 onwards.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    Some(ProcStat {
        state: field(3)?.chars().next()?,
        pgrp: field(5)?.parse().ok()?,
        session: field(6)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

/// Kills (SIGKILL) the process group of every instance still running.
///
/// For the daemon's signal handler and panic hook: synchronous, never blocks on
/// anything but a short lock (and reading `/proc`), and leaves the children to be
/// reaped by whoever owns them (or by init once this process is gone). A group
/// whose id visibly belongs to another process by now is spared. The file of
/// [`persist_children_to`] is left as it is: the next daemon checks it anyway.
pub fn kill_all_children() {
    let groups = std::mem::take(&mut groups().groups);
    for group in groups.into_values() {
        if group.find() == Found::Nothing {
            continue;
        }
        tracing::debug!(pgid = group.pgid, "killing process group");
        signal_group(Pid::from_raw(group.pgid), Signal::SIGKILL);
    }
}

/// Installs a panic hook that runs the one already installed (which prints the
/// message), then [`kill_all_children`], when the panic happens on the thread
/// calling this: the daemon's main thread, where a panic ends the process.
///
/// Panics on other threads are left alone: they are mostly in tasks whose panic is
/// caught (tokio's, the proxy's), and the daemon lives on, still owning its
/// children. A daemon killed by one anyway leaves its children to the next
/// daemon's [`Leftovers`](crate::Leftovers).
pub fn install_panic_hook() {
    let main = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if std::thread::current().id() == main {
            kill_all_children();
        }
    }));
}

#[cfg(test)]
impl Group {
    /// The group of the live process `pgid` as if recorded for an earlier process
    /// that had the same id: same session, an earlier start time.
    pub(crate) fn of_an_earlier_process(pgid: Pid) -> Group {
        let stat = read_stat(pgid.as_raw()).expect("a live process");
        Group {
            pgid: pgid.as_raw(),
            start_time: Some(stat.start_time - 1),
            session: Some(stat.session),
            command: "an earlier process".into(),
            instance: None,
        }
    }

    /// The group of the live process `pgid`, as recorded when it was started.
    pub(crate) fn recorded(pgid: Pid, command: &str, instance: Option<InstanceRecord>) -> Group {
        let stat = read_stat(pgid.as_raw()).expect("a live process");
        Group {
            pgid: pgid.as_raw(),
            start_time: Some(stat.start_time),
            session: Some(stat.session),
            command: command.into(),
            instance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let tail = "0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 20";
        assert_eq!(
            parse_stat(&format!("4242 (python3) S 1 4242 4200 {tail}")),
            Some(ProcStat {
                state: 'S',
                pgrp: 4242,
                session: 4200,
                start_time: 987654
            })
        );
        assert_eq!(
            parse_stat(&format!("17 (a (b) c) Z 4242 4240 17 {tail}")).map(|s| (s.state, s.pgrp)),
            Some(('Z', 4240))
        );
        assert_eq!(parse_stat("4242 (python3) S 1 4242 4242 0 -1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_stat_is_readable() {
        let stat = read_stat(std::process::id() as i32).unwrap();
        assert_eq!(stat.pgrp, nix::unistd::getpgrp().as_raw());
        assert!(stat.start_time > 0);
    }

    #[test]
    fn own_group_is_alive_and_a_free_id_is_not() {
        assert!(group_alive(nix::unistd::getpgrp()));
        // Pid max is at most 2^22 on Linux: this group cannot exist.
        assert!(!group_alive(Pid::from_raw(i32::MAX - 1)));
    }

    #[test]
    fn registry_adds_and_removes() {
        let id = Pid::from_raw(i32::MAX - 2);
        register(id, "nothing", None);
        assert_eq!(groups().groups[&id.as_raw()].start_time, None);
        unregister(id);
        assert!(!groups().groups.contains_key(&id.as_raw()));
    }

    #[test]
    fn a_recorded_group_is_found_only_with_its_start_time() {
        let me = std::process::id() as i32;
        let stat = read_stat(me).unwrap();
        let group = |start_time| Group {
            pgid: me,
            start_time,
            session: Some(stat.session),
            command: "test".into(),
            instance: None,
        };
        assert_eq!(group(Some(stat.start_time)).find(), Found::Leader);
        assert_eq!(group(Some(stat.start_time + 1)).find(), Found::Nothing);
        assert_eq!(group(None).find(), Found::Unknown);
        let gone = Group {
            pgid: i32::MAX - 1,
            ..group(Some(1))
        };
        assert_eq!(gone.find(), Found::Nothing);
    }
}
