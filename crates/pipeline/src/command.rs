//! Running one command the way every stage does: its argv as written (no shell), in
//! a process group of its own so that a timeout kills everything it started, with
//! stdout and stderr captured together in one log file in the receipts folder.
//!
//! The result is data: how it ended, how long it took, where its log is and the
//! end of that log, for the stage's Markdown receipt.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// How much of the end of a command's log its result keeps for the receipt.
const TAIL_BYTES: u64 = 4096;

/// One command to run.
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
    pub outcome: CommandOutcome,
    /// From the start to the end (or the kill).
    pub duration_ms: u64,
    /// Stdout and stderr, interleaved as written, relative to the receipts folder.
    pub log: String,
    /// The last few KiB of the log, cut at a line start.
    pub output_tail: String,
}

/// The end of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CommandOutcome {
    /// Exit status 0.
    Succeeded,
    /// A non-zero exit status, or killed by a signal it did not get from us.
    Failed {
        exit_code: Option<i32>,
        signal: Option<i32>,
    },
    /// Still running at its timeout; its process group was killed.
    TimedOut { timeout_ms: u64 },
    /// It could not be started (no such program, no such directory, ...).
    NotStarted { error: String },
}

impl CommandResult {
    /// It exited 0.
    pub fn succeeded(&self) -> bool {
        self.outcome == CommandOutcome::Succeeded
    }

    /// One line saying how it ended: `exit 0`, `exit 3`, `timed out after 5s`, ...
    pub fn summary(&self) -> String {
        match &self.outcome {
            CommandOutcome::Succeeded => "exit 0".to_owned(),
            CommandOutcome::Failed {
                exit_code: Some(code),
                ..
            } => format!("exit {code}"),
            CommandOutcome::Failed {
                signal: Some(signal),
                ..
            } => format!("killed by signal {signal}"),
            CommandOutcome::Failed { .. } => "failed".to_owned(),
            CommandOutcome::TimedOut { timeout_ms } => format!(
                "timed out after {}; its process group was killed",
                humantime::format_duration(Duration::from_millis(*timeout_ms))
            ),
            CommandOutcome::NotStarted { error } => format!("not started: {error}"),
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

/// The argv as one line, each word quoted when it needs it.
pub fn shown_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
            {
                a.clone()
            } else {
                format!("{a:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
        .replace('`', "'")
}

/// Run `run` to its end or its timeout.
///
/// # Guarantees
/// Never panics and never fails: a command that cannot start, fails or times out is
/// a result saying so. When it times out, or when the returned future is dropped
/// before the end, its whole process group is killed (SIGKILL), so nothing it started
/// in that group outlives it. Processes it moved to a group of their own (`setsid`)
/// are its own business.
pub async fn run_command(run: CommandRun<'_>) -> CommandResult {
    let started = Instant::now();
    let log_path = run.receipts_dir.join(run.log);
    let finish = |outcome: CommandOutcome| CommandResult {
        argv: run.argv.to_vec(),
        outcome,
        duration_ms: started.elapsed().as_millis() as u64,
        log: run.log.to_owned(),
        output_tail: tail(&log_path),
    };
    let mut child = match spawn(&run, &log_path) {
        Ok(child) => child,
        Err(error) => return finish(CommandOutcome::NotStarted { error }),
    };
    let group = KillGroupOnDrop(child.id().map(|pid| Pid::from_raw(pid as i32)));
    let outcome = match tokio::time::timeout(run.timeout, child.wait()).await {
        Ok(Ok(status)) => exited(status),
        Ok(Err(err)) => {
            // Waiting on our own child fails only if something else reaped it.
            tracing::warn!(argv = ?run.argv, error = %err, "lost track of a command");
            CommandOutcome::Failed {
                exit_code: None,
                signal: None,
            }
        }
        Err(_elapsed) => {
            group.kill();
            // SIGKILL cannot be ignored; the wait is for the zombie.
            let _ = child.wait().await;
            CommandOutcome::TimedOut {
                timeout_ms: run.timeout.as_millis() as u64,
            }
        }
    };
    group.disarm();
    finish(outcome)
}

fn spawn(run: &CommandRun<'_>, log_path: &Path) -> Result<tokio::process::Child, String> {
    let (program, args) = run
        .argv
        .split_first()
        .ok_or_else(|| "the argv is empty".to_owned())?;
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the log folder {}: {e}", dir.display()))?;
    }
    let stdout = File::create(log_path)
        .map_err(|e| format!("cannot create the log {}: {e}", log_path.display()))?;
    let stderr = stdout
        .try_clone()
        .map_err(|e| format!("cannot share the log {}: {e}", log_path.display()))?;
    tokio::process::Command::new(program)
        .args(args)
        .current_dir(run.workdir)
        .envs(run.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound if !run.workdir.is_dir() => format!(
                "the working directory {} does not exist",
                run.workdir.display()
            ),
            io::ErrorKind::NotFound => format!("`{program}` was not found (looked up on PATH)"),
            _ => format!("cannot run `{program}`: {e}"),
        })
}

fn exited(status: ExitStatus) -> CommandOutcome {
    if status.success() {
        CommandOutcome::Succeeded
    } else {
        CommandOutcome::Failed {
            exit_code: status.code(),
            signal: status.signal(),
        }
    }
}

/// Kills a process group when dropped, unless disarmed: the command's future may be
/// dropped mid-run (the daemon stops, the caller gives up), and its children must
/// not outlive it.
struct KillGroupOnDrop(Option<Pid>);

impl KillGroupOnDrop {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            // ESRCH: the group is already gone, which is what we want.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        self.kill();
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
