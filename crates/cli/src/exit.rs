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
/// Blocked before any traffic moved (another rollout is in progress).
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
        Outcome::Failed => INTERNAL,
    }
}

/// The exit code for an error that reached `main`.
pub fn code_for(err: &anyhow::Error) -> ExitCode {
    let code = if let Some(exit) = err.downcast_ref::<Exit>() {
        exit.code
    } else if let Some(refused) = err.downcast_ref::<crate::client::Refused>() {
        refused.exit_code()
    } else if err.downcast_ref::<cutover_spec::ConfigError>().is_some() {
        USAGE
    } else {
        INTERNAL
    };
    ExitCode::from(code)
}
