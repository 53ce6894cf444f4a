//! The process-wide registry of the process groups this crate started, so that one
//! call can kill them all when the daemon is told to exit or panics.
//!
//! Every instance runs in a process group of its own (its pid is the group id), so
//! signalling the group also reaches whatever the instance started itself.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Group ids of the instances started and not yet stopped.
static GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn groups() -> MutexGuard<'static, BTreeSet<i32>> {
    // Nothing panics while holding the lock, but a panic hook must never be the
    // one to discover otherwise.
    GROUPS.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn register(pgid: Pid) {
    groups().insert(pgid.as_raw());
}

pub(crate) fn unregister(pgid: Pid) {
    groups().remove(&pgid.as_raw());
}

/// Sends `signal` to the process group; a group that no longer exists is not an error.
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
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut live = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        // Vanishing processes are simply skipped.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((state, pgrp)) = parse_stat(&stat)
            && pgrp == pgid.as_raw()
            && !matches!(state, 'Z' | 'X' | 'x')
        {
            live += 1;
        }
    }
    Some(live)
}

/// State and process group from `/proc/<pid>/stat`: `pid (comm) state ppid pgrp ...`,
/// where comm may hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Kills (SIGKILL) the process group of every instance still running.
///
/// For the daemon's signal handler and panic hook: synchronous, never blocks on
/// anything but a short lock, and leaves the children to be reaped by whoever owns
/// them (or by init once this process is gone).
pub fn kill_all_children() {
    let groups = std::mem::take(&mut *groups());
    for pgid in groups {
        tracing::debug!(pgid, "killing process group");
        signal_group(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        assert_eq!(
            parse_stat("4242 (python3) S 1 4242 4242 0 -1"),
            Some(('S', 4242))
        );
        assert_eq!(
            parse_stat("17 (a (b) c) Z 4242 4240 17 0"),
            Some(('Z', 4240))
        );
        assert_eq!(parse_stat("garbage"), None);
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
        register(id);
        assert!(groups().contains(&id.as_raw()));
        unregister(id);
        assert!(!groups().contains(&id.as_raw()));
    }
}
