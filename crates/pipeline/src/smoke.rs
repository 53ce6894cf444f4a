//! The smoke tests (VALIDATE): the config's `smoke:` list run against one
//! environment, in order, every one of them even after a failure, so the receipt
//! shows everything that is wrong.
//!
//! HTTP checks go straight to the environment's base URL. Commands run like
//! gates (own process group, killed at their timeout, output in
//! `smoke/<n>-<name>.log` of the run's folder) with the environment's base URL in
//! `CUTOVER_URL` and its name in `CUTOVER_ENV`.
//!
//! ```no_run
//! # async fn example(config: &cutover_spec::Config, run_dir: &std::path::Path) {
//! use cutover_pipeline::smoke::{self, SmokeContext};
//! let report = smoke::run(&config.smoke, &SmokeContext {
//!     url: "http://127.0.0.1:8081",
//!     env: "staging",
//!     dir: run_dir,
//! })
//! .await;
//! std::fs::write(run_dir.join("smoke-test-results.md"), report.to_markdown()).unwrap();
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cutover_spec::{JsonScalar, SmokeCheck, SmokeCommand, SmokeTest};
use serde::Serialize;

use crate::command::{self, Command, Exit, Output, shell_words};
use crate::gates::{cell, humanize, took};
use crate::reports::one_line;

/// How long an HTTP check may take without a `max_latency` of its own (or with a
/// shorter one: the check then fails on its latency, not on a timeout).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment the smoke tests run against.
#[derive(Debug, Clone, Copy)]
pub struct SmokeContext<'a> {
    /// Its base URL, like `http://127.0.0.1:8081`; a check's `path` is appended.
    pub url: &'a str,
    /// Its name, like `staging`.
    pub env: &'a str,
    /// The run's folder: commands' output goes to `smoke/` in it.
    pub dir: &'a Path,
}

/// What the smoke tests found, in the config's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmokeReport {
    pub env: String,
    pub url: String,
    pub tests: Vec<SmokeTestResult>,
}

/// One smoke test's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmokeTestResult {
    /// `GET /ready` for an HTTP check; the command's `name` otherwise.
    pub name: String,
    pub passed: bool,
    pub duration_ms: u64,
    /// What the test was and what came of it.
    pub detail: SmokeDetail,
    /// Why it failed, one line each; empty when it passed.
    pub problems: Vec<String>,
}

/// The kind of a smoke test, with what it observed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SmokeDetail {
    Http {
        url: String,
        /// `None` when no answer came.
        status: Option<u16>,
    },
    Command {
        run: Vec<String>,
        exit: Exit,
        /// Its output, relative to the run's folder.
        log: PathBuf,
    },
}

/// Run every smoke test against the environment of `ctx`, in order.
///
/// # Guarantees
/// Every test runs, whatever the ones before it did; commands leave nothing
/// running (see the `command` module). Requests go only to `ctx.url`, never
/// through an HTTP proxy from the environment.
pub async fn run(tests: &[SmokeTest], ctx: &SmokeContext<'_>) -> SmokeReport {
    let client = reqwest::Client::builder().no_proxy().build();
    let mut results = Vec::with_capacity(tests.len());
    for (i, test) in tests.iter().enumerate() {
        let result = match (test, &client) {
            (SmokeTest::Http(check), Ok(client)) => http(client, check, ctx).await,
            (SmokeTest::Http(check), Err(e)) => SmokeTestResult {
                name: http_name(check),
                passed: false,
                duration_ms: 0,
                detail: SmokeDetail::Http {
                    url: url(ctx.url, &check.path),
                    status: None,
                },
                problems: vec![format!("cannot make an HTTP client: {e}")],
            },
            (SmokeTest::Command(cmd), _) => command(cmd, i, ctx).await,
        };
        tracing::info!(env = ctx.env, test = %result.name, passed = result.passed, "smoke test");
        results.push(result);
    }
    SmokeReport {
        env: ctx.env.to_owned(),
        url: ctx.url.to_owned(),
        tests: results,
    }
}

fn http_name(check: &SmokeCheck) -> String {
    format!("{} {}", check.method, check.path)
}

fn url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

async fn http(
    client: &reqwest::Client,
    check: &SmokeCheck,
    ctx: &SmokeContext<'_>,
) -> SmokeTestResult {
    let target = url(ctx.url, &check.path);
    let started = Instant::now();
    let answer = request(client, check, &target).await;
    let latency = started.elapsed();
    let (status, problems) = match answer {
        Ok((status, body)) => (Some(status), judge(check, status, &body, latency)),
        Err(problem) => (None, vec![problem]),
    };
    SmokeTestResult {
        name: http_name(check),
        passed: problems.is_empty(),
        duration_ms: latency.as_millis() as u64,
        detail: SmokeDetail::Http {
            url: target,
            status,
        },
        problems,
    }
}

/// The answer's status and whole body.
async fn request(
    client: &reqwest::Client,
    check: &SmokeCheck,
    target: &str,
) -> Result<(u16, Vec<u8>), String> {
    let method = reqwest::Method::from_bytes(check.method.as_bytes())
        .map_err(|e| format!("invalid method {}: {e}", check.method))?;
    let timeout = check
        .max_latency
        .map_or(HTTP_TIMEOUT, |l| l.max(HTTP_TIMEOUT));
    let mut request = client.request(method, target).timeout(timeout);
    for (name, value) in &check.headers {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("no answer from {target}: {}", error_chain(&e)))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("the answer from {target} broke off: {}", error_chain(&e)))?;
    Ok((status, body.to_vec()))
}

/// reqwest's error with its causes, which say what actually failed (refused,
/// timed out).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Why an answer fails `check`, one line each; empty when it passes.
///
/// Pure, so that any prober can use it (the blue-green switch's probes through
/// the proxy too).
pub fn judge(check: &SmokeCheck, status: u16, body: &[u8], latency: Duration) -> Vec<String> {
    let mut problems = Vec::new();
    if status != check.status {
        problems.push(format!("status {status}, expected {}", check.status));
    }
    if let Some(text) = &check.body_contains
        && !String::from_utf8_lossy(body).contains(text.as_str())
    {
        problems.push(format!("the body does not contain {text:?}"));
    }
    if !check.json.is_empty() {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(doc) => {
                for (path, expected) in &check.json {
                    if let Some(problem) = json_field(&doc, path, expected) {
                        problems.push(problem);
                    }
                }
            }
            Err(e) => problems.push(format!(
                "the body is not JSON ({e}), so its fields cannot be checked: {}",
                one_line(&String::from_utf8_lossy(body), 80)
            )),
        }
    }
    if let Some(max) = check.max_latency
        && latency > max
    {
        problems.push(format!(
            "answered in {} ms, more than the {} ms allowed",
            latency.as_millis(),
            max.as_millis()
        ));
    }
    problems
}

/// Why the field at `path` of `doc` is not `expected`, if it is not.
fn json_field(doc: &serde_json::Value, path: &str, expected: &JsonScalar) -> Option<String> {
    let mut here = doc;
    for (depth, key) in path.split('.').enumerate() {
        let next = match here {
            serde_json::Value::Object(map) => map.get(key),
            serde_json::Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        let Some(next) = next else {
            let parent = path.split('.').take(depth).collect::<Vec<_>>().join(".");
            let parent = if parent.is_empty() {
                "the body".to_owned()
            } else {
                format!("`{parent}`")
            };
            return Some(format!(
                "JSON field `{path}` is missing ({parent} is {})",
                kind(here)
            ));
        };
        here = next;
    }
    let equal = match (expected, here) {
        (JsonScalar::Null, serde_json::Value::Null) => true,
        (JsonScalar::Bool(b), serde_json::Value::Bool(got)) => b == got,
        (JsonScalar::Number(n), serde_json::Value::Number(got)) => got.as_f64() == Some(*n),
        (JsonScalar::String(s), serde_json::Value::String(got)) => s == got,
        _ => false,
    };
    (!equal).then(|| {
        format!(
            "JSON field `{path}` is {}, expected {}",
            one_line(&here.to_string(), 80),
            shown(expected)
        )
    })
}

/// What a JSON value is, for "is missing" messages.
fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// An expected value as JSON writes it.
fn shown(expected: &JsonScalar) -> String {
    match expected {
        JsonScalar::Null => "null".to_owned(),
        JsonScalar::Bool(b) => b.to_string(),
        JsonScalar::Number(n) => {
            serde_json::Number::from_f64(*n).map_or_else(|| n.to_string(), |n| n.to_string())
        }
        JsonScalar::String(s) => serde_json::Value::String(s.clone()).to_string(),
    }
}

async fn command(cmd: &SmokeCommand, index: usize, ctx: &SmokeContext<'_>) -> SmokeTestResult {
    let logs = ctx.dir.join("smoke");
    let log = logs.join(format!("{}-{}.log", index + 1, file_name(&cmd.name)));
    let (exit, took) = match std::fs::create_dir_all(&logs) {
        Ok(()) => {
            let env = command::environment(
                &cmd.env,
                &[("CUTOVER_URL", ctx.url), ("CUTOVER_ENV", ctx.env)],
            );
            let run = Command {
                argv: &cmd.run,
                workdir: &cmd.workdir,
                env,
                timeout: cmd.timeout,
            };
            command::run(&run, &Output::Combined(&log)).await
        }
        Err(e) => (
            Exit::NotStarted {
                error: format!("cannot create {}: {e}", logs.display()),
            },
            Duration::ZERO,
        ),
    };
    let problems = match &exit {
        Exit::Code { code: 0 } => Vec::new(),
        Exit::TimedOut => vec![format!(
            "it ran past its timeout of {} and was killed",
            humanize(cmd.timeout)
        )],
        Exit::NotStarted { error } => vec![error.clone()],
        other => vec![format!(
            "{} ended with {}",
            shell_words(&cmd.run),
            other.describe()
        )],
    };
    SmokeTestResult {
        name: cmd.name.clone(),
        passed: problems.is_empty(),
        duration_ms: took.as_millis() as u64,
        detail: SmokeDetail::Command {
            run: cmd.run.clone(),
            exit,
            log: command::relative(&log, ctx.dir),
        },
        problems,
    }
}

/// A name made safe for a file name: `npm run test:smoke` -> `npm-run-test-smoke`.
fn file_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(40).collect();
    if out.is_empty() {
        "command".to_owned()
    } else {
        out
    }
}

impl SmokeReport {
    /// Every smoke test passed (also when there are none).
    pub fn passed(&self) -> bool {
        self.tests.iter().all(|t| t.passed)
    }

    /// `smoke-test-results.md`: the verdict, a table of every test, then why each
    /// failed one failed.
    pub fn to_markdown(&self) -> String {
        let failed: Vec<&SmokeTestResult> = self.tests.iter().filter(|t| !t.passed).collect();
        let mut out = if self.passed() {
            format!("# Smoke tests on {}: passed\n\n", self.env)
        } else {
            format!("# Smoke tests on {}: FAILED\n\n", self.env)
        };
        out.push_str(&format!(
            "{} against {}: {} passed, {} failed.\n",
            crate::reports::count(self.tests.len() as u64, "test"),
            self.url,
            self.tests.len() - failed.len(),
            failed.len()
        ));
        if self.tests.is_empty() {
            return out;
        }
        out.push_str("\n| test | result | answer | took |\n| --- | --- | --- | --- |\n");
        for t in &self.tests {
            let answer = match &t.detail {
                SmokeDetail::Http {
                    status: Some(status),
                    ..
                } => format!("status {status}"),
                SmokeDetail::Http { status: None, .. } => "no answer".to_owned(),
                SmokeDetail::Command { exit, .. } => exit.describe(),
            };
            let result = if t.passed { "passed" } else { "**failed**" };
            out.push_str(&format!(
                "| `{}` | {result} | {answer} | {} |\n",
                cell(&t.name),
                took(t.duration_ms)
            ));
        }
        for t in failed {
            out.push_str(&format!("\n## `{}`: failed\n\n", t.name));
            match &t.detail {
                SmokeDetail::Http { url, .. } => out.push_str(&format!("- request: {url}\n")),
                SmokeDetail::Command { run, log, .. } => out.push_str(&format!(
                    "- command: {}\n- output: `{}`\n",
                    shell_words(run),
                    log.display()
                )),
            }
            for problem in &t.problems {
                out.push_str(&format!("- **{problem}**\n"));
            }
        }
        out
    }
}
