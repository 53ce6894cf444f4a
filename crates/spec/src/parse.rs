//! Reading `cutover.yaml`: [`parse`] and [`load`], and the errors they report.
//!
//! Parsing runs in two passes. serde-saphyr reads the YAML into a tree of nodes that
//! know their line and column (`node`); a syntax error stops there. Then `check`
//! walks the tree, builds the [`Config`] with every default from
//! [`crate::defaults`] filled in, and collects *every* mistake it finds, each with
//! the place it is at, what is wrong and what would be valid.

mod check;
mod node;
mod starter;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::Path;

use crate::types::Config;

pub use starter::STARTER;

/// Parse, validate and default a `cutover.yaml` given as text.
///
/// `file_name` is used in diagnostics, and relative `state_dir` and `workdir`
/// resolve against its directory (`.` when it has none).
///
/// `${env:NAME}` placeholders (in `analysis.source` URLs, headers and keys) are
/// read from the process environment.
pub fn parse(src: &str, file_name: &str) -> Result<Config, ConfigError> {
    parse_with_env(src, file_name, &|name| std::env::var(name).ok())
}

/// [`parse`], for the environment `environment` of the file's `environments`
/// (`None`: the last one; it must be `None` when the file defines none).
pub fn parse_environment(
    src: &str,
    file_name: &str,
    environment: Option<&str>,
) -> Result<Config, ConfigError> {
    parse_as(
        src,
        file_name,
        &|name| std::env::var(name).ok(),
        true,
        environment,
    )
}

/// Read the file at `path` and [`parse`] it, leaving its `${env:NAME}` values
/// unresolved: for a client that only needs to find the daemon (its state
/// directory), which alone needs the secrets. The config's secrets then hold
/// their text as written, and the config must not be used for a run.
pub fn load_without_secrets(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &|_| None, false, None)
}

/// [`load_without_secrets`], for the environment `environment` (as
/// [`parse_environment`] says).
pub fn load_environment_without_secrets(
    path: &Path,
    environment: Option<&str>,
) -> Result<Config, ConfigError> {
    load_with(path, &|_| None, false, environment)
}

/// [`parse`], with `${env:NAME}` placeholders looked up by `env`.
pub fn parse_with_env(
    src: &str,
    file_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    parse_as(src, file_name, env, true, None)
}

fn parse_as(
    src: &str,
    file_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    resolve: bool,
    environment: Option<&str>,
) -> Result<Config, ConfigError> {
    let diag = |pos: node::Pos, message: String| Diagnostic {
        file: file_name.to_owned(),
        line: pos.line,
        col: pos.col,
        message,
    };
    let tree = node::read(src).map_err(|e| ConfigError {
        diagnostics: vec![diag(e.pos, syntax_message(&e.message))],
    })?;
    let base = match Path::new(file_name).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    check::config(&tree, base, resolve.then_some(env), environment).map_err(|mut errors| {
        errors.sort_by_key(|(pos, _)| *pos);
        ConfigError {
            diagnostics: errors
                .into_iter()
                .map(|(pos, msg)| diag(pos, msg))
                .collect(),
        }
    })
}

/// Read the file at `path` and [`parse`] it.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_environment(path, None)
}

/// [`load`], for the environment `environment` (as [`parse_environment`] says).
pub fn load_environment(path: &Path, environment: Option<&str>) -> Result<Config, ConfigError> {
    load_with(path, &|name| std::env::var(name).ok(), true, environment)
}

fn load_with(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    resolve: bool,
    environment: Option<&str>,
) -> Result<Config, ConfigError> {
    let file_name = path.to_string_lossy();
    match std::fs::read_to_string(path) {
        Ok(src) => parse_as(&src, &file_name, env, resolve, environment),
        Err(err) => {
            let what = match err.kind() {
                io::ErrorKind::NotFound => {
                    "no such file; run `cutover init` to write a commented starter".to_owned()
                }
                io::ErrorKind::InvalidData => "it is not UTF-8 text".to_owned(),
                _ => err.to_string(),
            };
            Err(ConfigError {
                diagnostics: vec![Diagnostic {
                    file: file_name.into_owned(),
                    line: 0,
                    col: 0,
                    message: format!("cannot read the config file: {what}"),
                }],
            })
        }
    }
}

fn syntax_message(message: &str) -> String {
    let mut out = format!("invalid YAML: {message}");
    if message.contains("tab") {
        out.push_str("; indent with spaces, not tabs");
    }
    out
}

/// One mistake in a config file, at a 1-based line and column.
///
/// Displays as `file:line:col: message`. A `line` of 0 means the mistake is not at
/// a place in the file (it could not be read), and displays as `file: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

/// Everything wrong with a config file, in the order it appears in the file.
/// Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    /// One diagnostic per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
