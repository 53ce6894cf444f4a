//! The exit-code contract of `cutover` (documented in the README).

use std::process::ExitCode;

use cutover_api::Outcome;

/// The new version is live.
pub const PROMOTED: u8 = 0;
/// Internal error.
pub const INTERNAL: u8 = 1;
/// Usage or configuration error; nothing was changed.
pub const USAGE: u8 = 2;
/// Rolled back: the old version serves.
pub const ROLLED_BACK: u8 = 3;
/// Blocked before any traffic moved: a gate failed, an approval was refused, the
/// deployment window is closed, or another rollout is in progress.
pub const BLOCKED: u8 = 4;
/// Aborted by a person, or timed out waiting.
pub const ABORTED: u8 = 5;

/// An error that carries its own exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: USAGE,
        message: message.into(),
    }
    .into()
}

pub fn with_code(code: u8, message: impl Into<String>) -> anyhow::Error {
    Exit {
        code,
        message: message.into(),
    }
    .into()
}

pub fn for_outcome(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Promoted => PROMOTED,
        Outcome::RolledBack => ROLLED_BACK,
        Outcome::Aborted => ABORTED,
        Outcome::Blocked => BLOCKED,
        Outcome::Failed => INTERNAL,
    }
}

/// The exit code for an error that reached `main`.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if let Some(exit) = err.downcast_ref::<Exit>() {
        exit.code
    } else if let Some(refused) = err.downcast_ref::<crate::client::Refused>() {
        refused.exit_code()
    } else if err.downcast_ref::<cutover_spec::ConfigError>().is_some() {
        USAGE
    } else {
        INTERNAL
    }
}

/// The stable machine code of an error: the daemon's own when it refused
/// (`busy`, `no_active_run`, `unauthorized`, ...), else one that names its kind.
pub fn error_code(err: &anyhow::Error) -> String {
    if let Some(refused) = err.downcast_ref::<crate::client::Refused>()
        && !refused.code.is_empty()
    {
        return refused.code.clone();
    }
    if err.downcast_ref::<cutover_spec::ConfigError>().is_some() {
        return "invalid_config".into();
    }
    let unreachable = err.chain().any(|cause| {
        cause
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_connect)
    });
    if unreachable {
        return "unreachable".into();
    }
    match code_for(err) {
        USAGE => "usage",
        ROLLED_BACK => "rolled_back",
        BLOCKED => "blocked",
        ABORTED => "aborted",
        _ => "internal",
    }
    .into()
}

/// Says what went wrong, and returns the exit code: the error chain on stderr, or
/// with `--json` one `{"error": ..., "code": ...}` object on stdout.
pub fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    if json {
        println!("{}", error_json(&format!("{err:#}"), &error_code(err)));
    } else {
        eprintln!("error: {err:#}");
    }
    ExitCode::from(code_for(err))
}

/// A command line clap could not parse: its message and usage, or with `--json`
/// anywhere in it, the JSON error (exit 2 either way). Help and `--version` are
/// printed as they are, exit 0.
pub fn bad_arguments(err: &clap::Error, json: bool) -> ExitCode {
    if json && err.use_stderr() {
        let text = err.render().to_string();
        let message = text.trim().trim_start_matches("error: ");
        println!("{}", error_json(message, "usage"));
        return ExitCode::from(USAGE);
    }
    let _ = err.print();
    ExitCode::from(if err.use_stderr() { USAGE } else { PROMOTED })
}

fn error_json(message: &str, code: &str) -> String {
    serde_json::json!({ "error": message, "code": code }).to_string()
}
