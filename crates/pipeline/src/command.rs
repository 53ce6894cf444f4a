//! Running one of the user's commands, the way every stage does (a gate, a smoke
//! test, a hook, a migration): its argv as written (no shell), in a process group
//! of its own, its output in files in the run's folder, and the whole group killed
//! at its timeout, or when the caller gives up on it.
//!
//! One core runs every command (crate-private, used by the gates and smoke tests);
//! [`run_command`] wraps it for the stages whose receipt shows the command's result
//! with the end of its log (hooks, migrations).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// How long a timed-out command has between SIGTERM to its group and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How much of the end of a command's log its result keeps for the receipt.
const TAIL_BYTES: u64 = 4096;

/// A command to run.
pub(crate) struct Command<'a> {
    /// Never empty (the config guarantees it).
    pub argv: &'a [String],
    pub workdir: &'a Path,
    /// Added to cutover's own environment.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
}

/// Where a command's output goes: files created (or truncated) for this run.
pub(crate) enum Output<'a> {
    /// stdout and stderr, interleaved, in one file.
    Combined(&'a Path),
    /// stdout in one file (a report read from it), stderr in another.
    Split { stdout: &'a Path, stderr: &'a Path },
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Exit {
    /// It exited with this status.
    Code { code: i32 },
    /// A signal ended it (not ours: it was within its timeout).
    Signal { signal: i32 },
    /// It ran past its timeout and its process group was killed.
    TimedOut,
    /// It could not be started; what went wrong.
    NotStarted { error: String },
}

impl Exit {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        matches!(self, Exit::Code { code: 0 })
    }

    /// `exit 0`, `signal 9`, `timed out`, `not started`.
    pub fn describe(&self) -> String {
        match self {
            Exit::Code { code } => format!("exit {code}"),
            Exit::Signal { signal } => format!("signal {signal}"),
            Exit::TimedOut => "timed out".to_owned(),
            Exit::NotStarted { .. } => "not started".to_owned(),
        }
    }
}

/// Run `command` to its end, with its output in `output`.
///
/// # Guarantees
/// When this returns, nothing the command started in its group is left running:
/// at its timeout the group gets SIGTERM, then SIGKILL after [`KILL_GRACE`], and
/// after it exits whatever it left behind in its group gets SIGKILL. When the
/// returned future is dropped before the end, the group gets SIGKILL at once.
/// Processes it moved to a group of their own (`setsid`) are its own business.
pub(crate) async fn run(command: &Command<'_>, output: &Output<'_>) -> (Exit, Duration) {
    let started = Instant::now();
    let exit = match spawn(command, output) {
        Ok(child) => supervise(child, command.timeout).await,
        Err(error) => Exit::NotStarted { error },
    };
    (exit, started.elapsed())
}

fn spawn(command: &Command<'_>, output: &Output<'_>) -> Result<tokio::process::Child, String> {
    let shown = shell_words(command.argv);
    if !command.workdir.is_dir() {
        return Err(format!(
            "cannot run {shown}: its working directory {} does not exist",
            command.workdir.display()
        ));
    }
    let (stdout, stderr) = match output {
        Output::Combined(path) => {
            let file = create(path)?;
            let copy = file
                .try_clone()
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            (file, copy)
        }
        Output::Split { stdout, stderr } => (create(stdout)?, create(stderr)?),
    };
    let (program, args) = command
        .argv
        .split_first()
        .ok_or_else(|| "the command is empty".to_owned())?;
    tokio::process::Command::new(program)
        .args(args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .current_dir(command.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                format!("cannot run {shown}: `{program}` was not found (looked up on PATH)")
            }
            _ => format!("cannot run {shown}: {e}"),
        })
}

/// Creates `path` (and its folder) for a command's output.
fn create(path: &Path) -> Result<File, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the folder {}: {e}", dir.display()))?;
    }
    File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

async fn supervise(mut child: tokio::process::Child, timeout: Duration) -> Exit {
    // The child leads its own group: its pid is the group's id.
    let group = KillGroupOnDrop(child.id().map(|pid| Pid::from_raw(pid as i32)));
    let exit = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => exit_of(status),
        Err(_) => {
            group.signal(Signal::SIGTERM);
            if tokio::time::timeout(KILL_GRACE, child.wait())
                .await
                .is_err()
            {
                group.signal(Signal::SIGKILL);
            }
            // SIGKILL cannot be ignored: this returns at once.
            let _ = child.wait().await;
            Exit::TimedOut
        }
    };
    // Whatever it left behind in its group goes with it (the drop).
    drop(group);
    exit
}

fn exit_of(status: io::Result<ExitStatus>) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code { code },
            (None, Some(signal)) => Exit::Signal { signal },
            (None, None) => Exit::NotStarted {
                error: format!("ended without a status ({status})"),
            },
        },
        Err(e) => Exit::NotStarted {
            error: format!("cannot wait for it: {e}"),
        },
    }
}

/// A command's process group, killed (SIGKILL) when dropped: the command's future
/// may be dropped mid-run (the daemon stops, the caller gives up), and nothing it
/// started may outlive it.
struct KillGroupOnDrop(Option<Pid>);

impl KillGroupOnDrop {
    /// A group that no longer exists is not an error: everything in it has ended.
    fn signal(&self, signal: Signal) {
        let Some(group) = self.0 else { return };
        match killpg(group, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                tracing::warn!(pgid = group.as_raw(), %signal, "could not signal process group: {e}")
            }
        }
    }
}

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// argv as a person would type it: `cargo test`, `sh -c 'echo hi'`.
pub(crate) fn shell_words(argv: &[String]) -> String {
    format!("`{}`", shown_argv(argv))
}

/// The argv as one line, each word quoted (shell style) when it needs it.
pub fn shown_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
        .replace('`', "'")
}

/// `path` relative to `base` when it is inside it, for receipts that move with
/// their folder.
pub(crate) fn relative(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

/// The environment a command gets: its own settings, then cutover's variables.
pub(crate) fn environment(
    own: &BTreeMap<String, String>,
    cutover: &[(&str, &str)],
) -> Vec<(String, String)> {
    own.iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(
            cutover
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .collect()
}

/// One command to run whose receipt shows its result and the end of its log.
#[derive(Debug, Clone)]
pub struct CommandRun<'a> {
    /// The argv; `argv[0]` is looked up on `PATH`. Never empty.
    pub argv: &'a [String],
    pub workdir: &'a Path,
    /// Then the whole process group is killed.
    pub timeout: Duration,
    /// Added to the daemon's own environment.
    pub env: &'a [(String, String)],
    /// The run's receipts folder; the log is written inside it.
    pub receipts_dir: &'a Path,
    /// The log's path relative to `receipts_dir`, like `hooks/before_deploy-1.log`.
    pub log: &'a str,
}

/// How a command ended, what it printed last, and where the rest is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub argv: Vec<String>,
    pub exit: Exit,
    /// Its timeout, to say how long it had when it timed out.
    pub timeout_ms: u64,
    /// From the start to the end (or the kill).
    pub duration_ms: u64,
    /// Stdout and stderr, interleaved as written, relative to the receipts folder.
    pub log: String,
    /// The last few KiB of the log, cut at a line start.
    pub output_tail: String,
}

impl CommandResult {
    /// It exited 0.
    pub fn succeeded(&self) -> bool {
        self.exit.success()
    }

    /// One line saying how it ended: `exit 0`, `exit 3`, `timed out after 5s`, ...
    pub fn summary(&self) -> String {
        match &self.exit {
            Exit::Code { code } => format!("exit {code}"),
            Exit::Signal { signal } => format!("killed by signal {signal}"),
            Exit::TimedOut => format!(
                "timed out after {}; its process group was killed",
                humantime::format_duration(Duration::from_millis(self.timeout_ms))
            ),
            Exit::NotStarted { error } => format!("not started: {error}"),
        }
    }

    /// A Markdown block: the argv, how it ended, the log's name and its tail.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "- `{}`: **{}** in {} ms; output: [{}]({})\n",
            shown_argv(&self.argv),
            self.summary(),
            self.duration_ms,
            self.log,
            self.log
        );
        if !self.output_tail.trim().is_empty() {
            out.push_str("\n  ```text\n");
            for line in self.output_tail.trim_end().lines() {
                out.push_str(&format!("  {}\n", line.replace("```", "'''")));
            }
            out.push_str("  ```\n");
        }
        out
    }
}

/// Run `run` to its end or its timeout, its output in one log.
///
/// # Guarantees
/// Never panics and never fails: a command that cannot start, fails or times out is
/// a result saying so. At its timeout its process group gets SIGTERM, then SIGKILL
/// after [`KILL_GRACE`]; when it exits, or the future is dropped, whatever it left
/// in its group gets SIGKILL.
pub async fn run_command(run: CommandRun<'_>) -> CommandResult {
    let log_path = run.receipts_dir.join(run.log);
    let command = Command {
        argv: run.argv,
        workdir: run.workdir,
        env: run.env.to_vec(),
        timeout: run.timeout,
    };
    let (exit, took) = self::run(&command, &Output::Combined(&log_path)).await;
    CommandResult {
        argv: run.argv.to_vec(),
        exit,
        timeout_ms: run.timeout.as_millis() as u64,
        duration_ms: took.as_millis() as u64,
        log: run.log.to_owned(),
        output_tail: tail(&log_path),
    }
}

/// The last [`TAIL_BYTES`] of the file at `path`, from the first whole line; empty
/// when it cannot be read.
fn tail(path: &Path) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        let start = len.saturating_sub(TAIL_BYTES);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(match (start > 0, text.find('\n')) {
            (true, Some(newline)) => text[newline + 1..].to_owned(),
            _ => text,
        })
    };
    read().unwrap_or_default()
}
