//! Instances' log files, whatever runs the instances: where they are, keeping
//! them within a size, and reading them back as they grow.
//!
//! **Layout.** `<root>/<run>/<release>-<n>.log`: one file per instance, in the
//! folder of the run that started it ([`LogFiles::run_dir`]; instances the daemon
//! starts outside any run, such as the stable version started again after a
//! restart, go to [`OUTSIDE_RUNS`]). A version that keeps serving through later
//! runs keeps writing where its run put it. Rotated files sit beside it:
//! `.log.1` the newest, up to `.log.<keep>`. Only the folders of the
//! `logs.keep_runs` runs started last are kept ([`LogFiles::prune_runs`]), and those a
//! release still serving or the run in progress writes to.
//!
//! **Rotation** ([`rotate`]) is copy-truncate, because a local instance writes to
//! the file through a descriptor of its own (opened in append mode and inherited,
//! so that it outlives the daemon and keeps logging while no daemon runs): the
//! older files shift up, the file is copied to `.1`, and truncated; the
//! instance's next append lands at the new end. A line written between the copy
//! and the truncation is lost; the copy is taken twice to keep that gap short.
//! Rotation is checked on a timer, so a file may pass `max_size` by what is
//! written between two checks. Output the daemon writes itself (a container's)
//! goes through a [`LogWriter`], which rotates by renaming before a write would
//! pass the limit, and loses nothing.
//!
//! **Reading** ([`FileCursor`]) goes on from a remembered offset, across
//! rotations of either kind: a file shorter than the offset, with other bytes
//! just before it than were read there, or another file under the name, was
//! rotated, and the rest of the old content is read from `.1` first.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cutover_engine::logs::{LogFollower, LogSource};
use cutover_spec::LogsSpec;

use crate::process::file_safe;

/// The folder of the instances the daemon starts outside any run.
pub const OUTSIDE_RUNS: &str = "daemon";

/// Bytes one read of a [`FileCursor`] takes at most: a program logging faster than
/// that per analysis window is read behind, never without bound.
const MAX_READ: u64 = 4 * 1024 * 1024;

/// The log files under one root (`<state_dir>/logs`).
#[derive(Debug, Clone)]
pub struct LogFiles {
    root: PathBuf,
}

/// One instance's log file, as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// The run it was started in ([`OUTSIDE_RUNS`] when none).
    pub run: String,
    /// The release's name as written in the file name.
    pub release: String,
    pub instance: u32,
    pub path: PathBuf,
    pub modified: SystemTime,
}

impl LogFiles {
    pub fn new(root: PathBuf) -> LogFiles {
        LogFiles { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of the instances started in `run` (a run id; `None`: outside any run).
    pub fn run_dir(&self, run: Option<&str>) -> PathBuf {
        self.root
            .join(run.map_or_else(|| OUTSIDE_RUNS.to_owned(), file_safe))
    }

    /// Every instance's log file (rotated ones not counted), oldest run first.
    pub fn list(&self) -> Vec<LogFile> {
        let mut out = Vec::new();
        let Ok(runs) = std::fs::read_dir(&self.root) else {
            return out;
        };
        for run in runs.flatten() {
            let Ok(files) = std::fs::read_dir(run.path()) else {
                continue;
            };
            let run_name = run.file_name().to_string_lossy().into_owned();
            for file in files.flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                let Some((release, instance)) = parse_name(&name) else {
                    continue;
                };
                let modified = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push(LogFile {
                    run: run_name.clone(),
                    release: release.to_owned(),
                    instance,
                    path: file.path(),
                    modified,
                });
            }
        }
        out.sort_by(|a, b| (&a.run, &a.release, a.instance).cmp(&(&b.run, &b.release, b.instance)));
        out
    }

    /// The files of `release`, one per instance: the one written to last, of
    /// all runs, or of `run` only.
    pub fn current(&self, release: &str, run: Option<&str>) -> Vec<LogFile> {
        let safe = file_safe(release);
        let mut latest: Vec<LogFile> = Vec::new();
        for file in self.list() {
            if file.release != safe || run.is_some_and(|r| file.run != r) {
                continue;
            }
            match latest.iter_mut().find(|l| l.instance == file.instance) {
                Some(l) if l.modified < file.modified => *l = file,
                Some(_) => {}
                None => latest.push(file),
            }
        }
        latest.sort_by_key(|f| f.instance);
        latest
    }

    /// Rotates every file past `spec.max_size`; returns those it could not
    /// rotate, with why.
    pub fn rotate_all(&self, spec: &LogsSpec) -> Vec<(PathBuf, io::Error)> {
        self.list()
            .into_iter()
            .filter_map(|f| rotate(&f.path, spec).err().map(|e| (f.path, e)))
            .collect()
    }
}

/// What [`LogFiles::prune_runs`] did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// The run folders removed.
    pub removed: Vec<PathBuf>,
    /// Those it could not remove, with why.
    pub failed: Vec<(PathBuf, io::Error)>,
}

impl LogFiles {
    /// Removes the folders of old runs: all but the `keep` started last (run ids
    /// begin with their start time), and but `active_run`'s and those holding a file of a release in `serving`
    /// (which may still be writing to it), whatever their age.
    ///
    /// # Guarantees
    /// [`OUTSIDE_RUNS`] is never removed, nor anything but a folder of the root.
    pub fn prune_runs(&self, keep: u32, serving: &[String], active_run: Option<&str>) -> Pruned {
        let mut pruned = Pruned::default();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return pruned;
        };
        let serving: Vec<String> = serving.iter().map(|r| file_safe(r)).collect();
        let mut in_use: Vec<String> = self
            .list()
            .into_iter()
            .filter(|f| serving.contains(&f.release))
            .map(|f| f.run)
            .collect();
        in_use.extend(active_run.map(file_safe));
        let mut runs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name() != OUTSIDE_RUNS)
            .map(|e| e.path())
            .collect();
        // Run ids begin with their start time: by name, newest first.
        runs.sort_by(|a, b| b.cmp(a));
        let old = runs.into_iter().skip(keep as usize);
        for dir in old.filter(|d| !in_use.iter().any(|r| d.file_name() == Some(r.as_ref()))) {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => pruned.removed.push(dir),
                Err(e) => pruned.failed.push((dir, e)),
            }
        }
        pruned
    }
}

/// `v2-0.log` -> (`v2`, 0).
fn parse_name(name: &str) -> Option<(&str, u32)> {
    let stem = name.strip_suffix(".log")?;
    let (release, index) = stem.rsplit_once('-')?;
    Some((release, index.parse().ok()?)).filter(|(r, _)| !r.is_empty())
}

/// `path` with `.n` appended (`v2-0.log.1`).
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Rotates `path` if it is past `spec.max_size`, copy-truncate style (see the
/// module doc); returns whether it did.
///
/// # Guarantees
/// A writer holding the file open in append mode goes on writing to it, at its
/// new end. At most `spec.keep` rotated files are left.
pub fn rotate(path: &Path, spec: &LogsSpec) -> io::Result<bool> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= spec.max_size {
        return Ok(false);
    }
    shift(path, spec.keep)?;
    let mut source = File::open(path)?;
    if spec.keep > 0 {
        let mut copy = File::create(rotated(path, 1))?;
        io::copy(&mut source, &mut copy)?;
        // What was appended during the first copy.
        io::copy(&mut source, &mut copy)?;
    }
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(true)
}

/// Moves `.keep-1` to `.keep`, ... `.1` to `.2`, dropping the oldest.
fn shift(path: &Path, keep: u32) -> io::Result<()> {
    if keep == 0 {
        return Ok(());
    }
    match std::fs::remove_file(rotated(path, keep)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    for n in (1..keep).rev() {
        match std::fs::rename(rotated(path, n), rotated(path, n + 1)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Appends output the daemon itself receives (a container's) to a log file,
/// rotating it by renaming before a write would take it past `max_size`.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    spec: LogsSpec,
}

impl LogWriter {
    /// Opens (or creates) `path` for appending, its folder too.
    pub fn open(path: PathBuf, spec: LogsSpec) -> io::Result<LogWriter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = append(&path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path,
            file,
            size,
            spec,
        })
    }

    /// Appends `bytes`, rotating first if they would take the file past `max_size`.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > self.spec.max_size {
            shift(&self.path, self.spec.keep)?;
            if self.spec.keep > 0 {
                std::fs::rename(&self.path, rotated(&self.path, 1))?;
            } else {
                std::fs::remove_file(&self.path)?;
            }
            self.file = append(&self.path)?;
            self.size = 0;
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }
}

/// Opens `path` for appending, creating it.
pub fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Reads a log file's new lines as it grows, across rotations.
///
/// It remembers the last bytes before its offset: a file that is shorter than
/// the offset, holds other bytes there, or is another file (inode) under the
/// name, was rotated, and the rest of what was being read is taken from `.1` if
/// `.1` holds those same bytes there (else it is lost: rotated twice between two
/// reads). A file truncated and grown back to the same bytes at the same place
/// (a program logging one identical line over and over) is not noticed, and
/// what it wrote up to the offset is skipped.
#[derive(Debug)]
pub struct FileCursor {
    path: PathBuf,
    offset: u64,
    /// The inode read from: another one under the name means a rename-rotation.
    inode: Option<u64>,
    /// The file's last bytes before `offset` (at most [`FINGERPRINT`]).
    before: Vec<u8>,
    /// The start of a line not finished yet.
    partial: Vec<u8>,
}

/// Bytes before its offset a [`FileCursor`] checks the file still has.
const FINGERPRINT: u64 = 64;

impl FileCursor {
    /// From the file's current end: only what is written from now on.
    pub fn at_end(path: PathBuf) -> FileCursor {
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        FileCursor::at(path, len)
    }

    /// From the file's first byte (a file that does not exist yet included).
    pub fn at_start(path: PathBuf) -> FileCursor {
        FileCursor::at(path, 0)
    }

    /// From byte `offset` of the file (where a [`tail`] ended).
    pub fn at(path: PathBuf, offset: u64) -> FileCursor {
        let before = File::open(&path)
            .and_then(|mut f| bytes_before(&mut f, offset))
            .unwrap_or_default();
        FileCursor {
            inode: std::fs::metadata(&path).ok().map(|m| m.ino()),
            offset,
            before,
            path,
            partial: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The complete lines written since the last call (without their newlines),
    /// at most 4 MiB of them; nothing when the file does not exist (yet).
    pub fn read_lines(&mut self) -> io::Result<Vec<String>> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let was_rotated = self.inode.is_some_and(|i| i != meta.ino())
            || meta.len() < self.offset
            || bytes_before(&mut file, self.offset)? != self.before;
        let mut bytes = std::mem::take(&mut self.partial);
        if was_rotated {
            // The rest of what was read from is `.1` now, if it is that file.
            if let Ok(mut old) = File::open(rotated(&self.path, 1))
                && bytes_before(&mut old, self.offset)? == self.before
            {
                read_from(&mut old, self.offset, &mut bytes)?;
            } else {
                // Lost: an unfinished line must not be glued to another.
                bytes.clear();
            }
            self.offset = 0;
            self.before.clear();
        }
        self.inode = Some(meta.ino());
        let mut fresh = Vec::new();
        self.offset += read_from(&mut file, self.offset, &mut fresh)?;
        self.before.extend_from_slice(&fresh);
        let keep = self.before.len().saturating_sub(FINGERPRINT as usize);
        self.before.drain(..keep);
        bytes.append(&mut fresh);
        Ok(self.split(bytes))
    }

    /// Complete lines of `bytes`; the unfinished rest is kept for next time.
    fn split(&mut self, mut bytes: Vec<u8>) -> Vec<String> {
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.partial = bytes.split_off(complete);
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The (at most [`FINGERPRINT`]) bytes of `file` before `offset`; fewer when
/// the file is shorter.
fn bytes_before(file: &mut File, offset: u64) -> io::Result<Vec<u8>> {
    let start = offset.saturating_sub(FINGERPRINT);
    file.seek(SeekFrom::Start(start))?;
    let mut out = Vec::new();
    file.take(offset - start).read_to_end(&mut out)?;
    Ok(out)
}

/// Appends `file` from `offset` to `out`, at most [`MAX_READ`] bytes; returns
/// how many.
fn read_from(file: &mut File, offset: u64, out: &mut Vec<u8>) -> io::Result<u64> {
    file.seek(SeekFrom::Start(offset))?;
    file.take(MAX_READ).read_to_end(out).map(|n| n as u64)
}

/// The end of a log file as read by [`tail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// Its last complete lines, oldest first (from the rotated file before it
    /// when the file itself has fewer).
    pub lines: Vec<String>,
    /// Where the last complete line ends: a [`FileCursor::at`] there goes on
    /// with the next line.
    pub end: u64,
}

/// The last `n` complete lines of a log file and the one rotated before it.
pub fn tail(path: &Path, n: usize) -> io::Result<Tail> {
    let (mut lines, end) = last_lines(path, n)?;
    if lines.len() < n {
        let (mut older, _) = last_lines(&rotated(path, 1), n - lines.len()).unwrap_or_default();
        older.append(&mut lines);
        lines = older;
    }
    Ok(Tail { lines, end })
}

/// The last `n` complete lines of one file, reading at most its last 4 MiB, and
/// where the last of them ends.
fn last_lines(path: &Path, n: usize) -> io::Result<(Vec<String>, u64)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(MAX_READ);
    let mut bytes = Vec::new();
    read_from(&mut file, start, &mut bytes)?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&bytes[..complete]);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    let from = lines.len().saturating_sub(n);
    let lines = lines[from..].iter().map(|l| (*l).to_owned()).collect();
    Ok((lines, start + complete as u64))
}

impl LogSource for LogFiles {
    fn follow(&self, release: &str) -> Box<dyn LogFollower> {
        let cursors = self
            .list()
            .into_iter()
            .filter(|f| f.release == file_safe(release))
            .map(|f| FileCursor::at_end(f.path))
            .collect();
        Box::new(ReleaseLogs {
            files: self.clone(),
            release: release.to_owned(),
            cursors,
        })
    }
}

/// Every log file of one release, in any run's folder: those there when it began
/// followed from their end, those that appear later (an instance added or
/// started again elsewhere) from their start.
struct ReleaseLogs {
    files: LogFiles,
    release: String,
    cursors: Vec<FileCursor>,
}

impl LogFollower for ReleaseLogs {
    fn next_lines(&mut self) -> Vec<String> {
        let safe = file_safe(&self.release);
        for file in self.files.list() {
            if file.release == safe && !self.cursors.iter().any(|c| c.path() == file.path) {
                self.cursors.push(FileCursor::at_start(file.path));
            }
        }
        let mut lines = Vec::new();
        for cursor in &mut self.cursors {
            match cursor.read_lines() {
                Ok(mut new) => lines.append(&mut new),
                Err(e) => {
                    tracing::debug!(file = %cursor.path().display(), error = %e, "could not read a log file");
                }
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max_size: u64, keep: u32) -> LogsSpec {
        LogsSpec {
            max_size,
            keep,
            ..LogsSpec::default()
        }
    }

    /// A run folder with one log file.
    fn run_folder(files: &LogFiles, run: &str, release: &str) -> PathBuf {
        let dir = files.run_dir(Some(run));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{release}-0.log")), "x\n").unwrap();
        dir
    }

    #[test]
    fn old_runs_folders_go_but_the_newest_those_in_use_and_the_daemon_s_stay() {
        let root = tempfile::tempdir().unwrap();
        let files = LogFiles::new(root.path().to_owned());
        assert!(
            files.prune_runs(2, &[], None).removed.is_empty(),
            "no root yet"
        );
        let daemon = run_folder(&files, OUTSIDE_RUNS, "v1");
        let run = |n: u32, release: &str| {
            run_folder(&files, &format!("20261201T10000{n}Z-v{n}"), release)
        };
        let r1 = run(1, "v1"); // v1 still serves
        let r2 = run(2, "v2");
        let r3 = run(3, "v3");
        let r4 = run(4, "v4"); // in progress (as if started before the newest)
        let r5 = run(5, "v5+baseline"); // serves
        let r6 = run(6, "v6"); // the newest
        let serving = ["v1".to_owned(), "v5+baseline".to_owned()];
        let active = Some("20261201T100004Z-v4");
        let pruned = files.prune_runs(1, &serving, active);
        assert!(pruned.failed.is_empty(), "{:?}", pruned.failed);
        let mut removed = pruned.removed;
        removed.sort();
        assert_eq!(removed, [r2, r3]);
        for kept in [daemon, r1, r4, r5, r6] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
        // Nothing more to do.
        assert!(files.prune_runs(1, &serving, active).removed.is_empty());
    }

    #[test]
    fn copy_truncate_keeps_an_appending_writer_and_the_cursor_reads_across_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2-0.log");
        // Like an instance: one descriptor in append mode, held throughout.
        let mut writer = append(&path).unwrap();
        let mut cursor = FileCursor::at_end(path.clone());
        writeln!(writer, "one").unwrap();
        assert_eq!(cursor.read_lines().unwrap(), ["one"]);
        write!(writer, "two\nthr").unwrap();
        assert!(rotate(&path, &spec(4, 2)).unwrap());
        write!(writer, "ee\nfour\n").unwrap();
        // `two` and the start of `three` are in `.1` now; the rest after the truncation.
        assert_eq!(cursor.read_lines().unwrap(), ["two", "three", "four"]);
        assert_eq!(
            std::fs::read_to_string(rotated(&path, 1)).unwrap(),
            "one\ntwo\nthr"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "ee\nfour\n");
        assert!(!rotate(&path, &spec(100, 2)).unwrap());
    }

    #[test]
    fn a_read_between_the_copy_and_the_truncation_repeats_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2-0.log");
        let mut writer = append(&path).unwrap();
        writeln!(writer, "a\nb").unwrap();
        let mut cursor = FileCursor::at_start(path.clone());
        assert_eq!(cursor.read_lines().unwrap(), ["a", "b"]);
        // Copied, not truncated yet, and written to in between.
        std::fs::copy(&path, rotated(&path, 1)).unwrap();
        writeln!(writer, "c").unwrap();
        assert_eq!(cursor.read_lines().unwrap(), ["c"]);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        writeln!(writer, "d\ne").unwrap();
        assert_eq!(cursor.read_lines().unwrap(), ["d", "e"]);
        assert!(cursor.read_lines().unwrap().is_empty());
    }

    #[test]
    fn rotation_keeps_at_most_keep_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1-0.log");
        for round in 0..5 {
            std::fs::write(&path, format!("round {round}\n")).unwrap();
            assert!(rotate(&path, &spec(2, 2)).unwrap());
        }
        assert_eq!(
            std::fs::read_to_string(rotated(&path, 1)).unwrap(),
            "round 4\n"
        );
        assert_eq!(
            std::fs::read_to_string(rotated(&path, 2)).unwrap(),
            "round 3\n"
        );
        assert!(!rotated(&path, 3).exists());
        std::fs::write(&path, "gone\n").unwrap();
        assert!(rotate(&path, &spec(2, 0)).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn a_writer_rotates_by_renaming_and_the_cursor_follows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("v2-1.log");
        let mut writer = LogWriter::open(path.clone(), spec(10, 1)).unwrap();
        let mut cursor = FileCursor::at_start(path.clone());
        writer.write_all(b"12345678\n").unwrap();
        assert_eq!(cursor.read_lines().unwrap(), ["12345678"]);
        writer.write_all(b"abc\n").unwrap();
        writer.write_all(b"de").unwrap();
        assert_eq!(
            std::fs::read_to_string(rotated(&path, 1)).unwrap(),
            "12345678\n"
        );
        assert_eq!(cursor.read_lines().unwrap(), ["abc"]);
        writer.write_all(b"f\n").unwrap();
        assert_eq!(cursor.read_lines().unwrap(), ["def"]);
    }

    #[test]
    fn files_are_found_per_run_release_and_instance() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::new(dir.path().to_owned());
        for (run, name) in [("r1", "v1-0.log"), ("r1", "v1-1.log"), ("r2", "v2-0.log")] {
            let d = files.root().join(run);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(name), "x\n").unwrap();
        }
        std::fs::write(files.root().join("r1").join("v1-0.log.1"), "old\n").unwrap();
        assert_eq!(files.list().len(), 3);
        let v1 = files.current("v1", None);
        assert_eq!(v1.iter().map(|f| f.instance).collect::<Vec<_>>(), [0, 1]);
        assert!(files.current("v1", Some("r2")).is_empty());
        assert_eq!(files.current("v2", Some("r2"))[0].run, "r2");
        assert_eq!(files.run_dir(None), dir.path().join(OUTSIDE_RUNS));
        assert_eq!(parse_name("v1.baseline-3.log"), Some(("v1.baseline", 3)));
        assert_eq!(parse_name("v1-x.log"), None);
    }

    #[test]
    fn a_release_is_followed_in_every_run_folder_and_new_instances_from_their_start() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::new(dir.path().to_owned());
        let r1 = files.run_dir(Some("r1"));
        std::fs::create_dir_all(&r1).unwrap();
        std::fs::write(r1.join("v2-0.log"), "before\n").unwrap();
        std::fs::write(r1.join("v1-0.log"), "other\n").unwrap();
        let mut follower = files.follow("v2");
        assert!(follower.next_lines().is_empty());
        let mut zero = append(&r1.join("v2-0.log")).unwrap();
        writeln!(zero, "after").unwrap();
        let r2 = files.run_dir(Some("r2"));
        std::fs::create_dir_all(&r2).unwrap();
        std::fs::write(r2.join("v2-1.log"), "new instance\n").unwrap();
        std::fs::write(r2.join("v1-1.log"), "other again\n").unwrap();
        assert_eq!(follower.next_lines(), ["after", "new instance"]);
    }

    #[test]
    fn tail_reaches_into_the_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1-0.log");
        std::fs::write(rotated(&path, 1), "a\nb\n").unwrap();
        std::fs::write(&path, "c\nunfinish").unwrap();
        assert_eq!(tail(&path, 2).unwrap().lines, ["b", "c"]);
        let last = tail(&path, 1).unwrap();
        assert_eq!(last.lines, ["c"]);
        assert_eq!(last.end, 2);
        let mut cursor = FileCursor::at(path.clone(), last.end);
        let mut file = append(&path).unwrap();
        writeln!(file, "ed").unwrap();
        assert_eq!(cursor.read_lines().unwrap(), ["unfinished"]);
    }
}
