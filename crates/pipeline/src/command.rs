//! Running one of the user's commands (a gate, a smoke test): argv as written, no
//! shell, in a process group of its own, its output in files, and the whole group
//! killed at its timeout.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Serialize;

/// How long a timed-out command has between SIGTERM to its group and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
/// When this returns, nothing the command started is left running: at its
/// timeout its process group gets SIGTERM, then SIGKILL after [`KILL_GRACE`], and
/// after it exits whatever it left behind in its group gets SIGKILL.
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
        .map_err(|e| format!("cannot run {shown}: {e}"))
}

fn create(path: &Path) -> Result<File, String> {
    File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

async fn supervise(mut child: tokio::process::Child, timeout: Duration) -> Exit {
    // The child leads its own group: its pid is the group's id.
    let group = child.id().map(|pid| Pid::from_raw(pid as i32));
    let exit = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => exit_of(status),
        Err(_) => {
            if let Some(group) = group {
                signal_group(group, Signal::SIGTERM);
                if tokio::time::timeout(KILL_GRACE, child.wait())
                    .await
                    .is_err()
                {
                    signal_group(group, Signal::SIGKILL);
                }
            }
            // SIGKILL cannot be ignored: this returns at once.
            let _ = child.wait().await;
            Exit::TimedOut
        }
    };
    if let Some(group) = group {
        signal_group(group, Signal::SIGKILL);
    }
    exit
}

fn exit_of(status: std::io::Result<ExitStatus>) -> Exit {
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

/// A group that no longer exists is not an error: everything in it has ended.
fn signal_group(group: Pid, signal: Signal) {
    match killpg(group, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(pgid = group.as_raw(), %signal, "could not signal process group: {e}")
        }
    }
}

/// argv as a person would type it: `cargo test`, `sh -c 'echo hi'`.
pub(crate) fn shell_words(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
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
        .collect();
    format!("`{}`", words.join(" "))
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
