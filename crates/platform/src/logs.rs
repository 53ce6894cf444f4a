//! Reading instances' log files back: for startup errors, and to tell why an
//! instance exited.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::process::Process;

/// Log lines quoted in startup errors.
const LOG_TAIL_LINES: usize = 8;

/// Whether the process's exit `status`, or its output since it started, says its
/// address was in use (a container's status carries the daemon's own words when
/// it could not publish the port).
pub(crate) fn address_in_use(process: &Process, status: &str) -> bool {
    let says_so = |text: &str| {
        let text = text.to_ascii_lowercase();
        text.contains("address already in use")
            || text.contains("address in use")
            || text.contains("port is already allocated")
    };
    says_so(status) || log_since(&process.log_path, process.log_start).is_some_and(|t| says_so(&t))
}

/// The file from byte `start` on, at most its last 64 KiB of that.
fn log_since(path: &Path, start: u64) -> Option<String> {
    const MAX: u64 = 64 * 1024;
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(start.max(len.saturating_sub(MAX))))
        .ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// `; last lines of <log>:\n  | ...`, or nothing when the log is empty or unreadable.
pub(crate) fn log_tail_note(path: &Path) -> String {
    match log_tail(path, LOG_TAIL_LINES) {
        Some(lines) if !lines.is_empty() => {
            let mut note = format!("; last lines of {}:", path.display());
            for line in lines {
                note.push_str("\n  | ");
                note.push_str(&line);
            }
            note
        }
        Some(_) => format!("; its log {} is empty", path.display()),
        None => String::new(),
    }
}

/// The last `n` lines of a file, reading at most its last 8 KiB.
fn log_tail(path: &Path, n: usize) -> Option<Vec<String>> {
    const MAX: u64 = 8 * 1024;
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(MAX);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // probably cut in the middle
    }
    let lines: Vec<String> = lines
        .iter()
        .rev()
        .map(|l| l.trim_end())
        .filter(|l| !l.is_empty())
        .take(n)
        .map(str::to_owned)
        .collect();
    Some(lines.into_iter().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_takes_the_last_non_empty_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        assert_eq!(log_tail(&path, 3), None);
        std::fs::write(&path, "a\nb\n\nc\nd\n\n").unwrap();
        assert_eq!(log_tail(&path, 3).unwrap(), vec!["b", "c", "d"]);
        std::fs::write(&path, "").unwrap();
        assert!(log_tail_note(&path).contains("is empty"));
        let long = format!("{}\nlast\n", "x".repeat(20_000));
        std::fs::write(&path, long).unwrap();
        assert_eq!(log_tail(&path, 3).unwrap(), vec!["last"]);
    }

    #[test]
    fn log_since_skips_earlier_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "old run\nnew run\n").unwrap();
        assert_eq!(log_since(&path, 8).unwrap(), "new run\n");
    }
}
