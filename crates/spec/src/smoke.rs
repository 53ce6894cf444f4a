//! The smoke tests run against an environment before production traffic moves
//! (`smoke:`): HTTP checks, and commands that are told the environment's URL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::types::SmokeCheck;

/// One smoke test of the top-level `smoke:` list.
#[derive(Debug, Clone, PartialEq)]
pub enum SmokeTest {
    /// A request to the environment (an entry with `path:`).
    Http(SmokeCheck),
    /// A command of the user's own (an entry with `run:`): a test suite, a k6 script,
    /// a Playwright run.
    Command(SmokeCommand),
}

/// A command run as a smoke test; it passes when it exits 0 within its timeout. It
/// gets the environment's base URL in `CUTOVER_URL` and its name in `CUTOVER_ENV`.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeCommand {
    /// What the receipt calls it (default the argv, joined by spaces).
    pub name: String,
    /// argv, never empty; no shell unless it says `sh -c`.
    pub run: Vec<String>,
    /// How long it may run before its process group is killed (default 5m).
    pub timeout: Duration,
    /// Working directory, resolved against the config file's directory (default that
    /// directory).
    pub workdir: PathBuf,
    /// Extra environment (default none).
    pub env: BTreeMap<String, String>,
}

/// A value a smoke check expects at a field of a JSON response body (`json:`).
/// Numbers are equal when their values are (`1` and `1.0`); a string never equals
/// a number.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonScalar {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}
