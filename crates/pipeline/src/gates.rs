//! The quality gates (PREPARE): every gate of the config run at once, each in its
//! own process group with its own timeout, its output in `gates/<name>.log` of the
//! run's folder, then its report read and judged.
//!
//! ```no_run
//! # async fn example(config: &cutover_spec::Config, run_dir: &std::path::Path) {
//! let report = cutover_pipeline::gates::run(&config.gates, &cutover_pipeline::gates::GateContext {
//!     dir: run_dir,
//! })
//! .await;
//! std::fs::write(run_dir.join("gates.md"), report.to_markdown()).unwrap();
//! if !report.passed() {
//!     // stop the run before anything starts
//! }
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cutover_spec::{Gate, GateReport, ReportSource};
use serde::Serialize;

use crate::command::{self, Command, Exit, Output, shell_words};
use crate::reports::{self, Summary};

/// Where the gates of one run leave their output.
#[derive(Debug, Clone, Copy)]
pub struct GateContext<'a> {
    /// The run's folder: each gate's output goes to `gates/<name>.log` in it (and,
    /// when its report is read from stdout, its stdout to `gates/<name>.stdout`).
    pub dir: &'a Path,
}

/// What the gates found, gate by gate in the config's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatesReport {
    pub gates: Vec<GateResult>,
}

/// One gate's result and its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateResult {
    pub name: String,
    /// The argv it ran.
    pub run: Vec<String>,
    pub verdict: GateVerdict,
    pub exit: Exit,
    pub duration_ms: u64,
    /// Its output, relative to the run's folder.
    pub log: PathBuf,
    /// Its stdout, relative to the run's folder, when its report is read from it.
    pub stdout: Option<PathBuf>,
    /// The report it was configured with, and what it said.
    pub report: Option<ReportResult>,
    /// Why it did not pass, one line each; empty when it passed.
    pub problems: Vec<String>,
}

/// How a gate ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateVerdict {
    Passed,
    Failed,
    TimedOut,
    CouldNotStart,
}

impl GateVerdict {
    fn as_str(self) -> &'static str {
        match self {
            GateVerdict::Passed => "passed",
            GateVerdict::Failed => "failed",
            GateVerdict::TimedOut => "timed out",
            GateVerdict::CouldNotStart => "could not start",
        }
    }
}

/// A gate's report: where it was read from and what it said, or why it could not
/// be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportResult {
    /// `junit`, `lcov`, ...
    pub format: String,
    /// The file it was read from, or `stdout`.
    pub source: String,
    /// `None` when it could not be read (see `error`).
    pub summary: Option<Summary>,
    pub error: Option<String>,
}

/// Run every gate at once and judge each.
///
/// A gate passes when its command exits 0 within its timeout and its report (if
/// any) meets its limits. For `cargo_audit`, `npm_audit`, `sarif` and `gitleaks`
/// the report decides alone, since those tools exit non-zero on any finding,
/// whatever its severity; a JUnit or coverage gate needs both.
///
/// # Guarantees
/// Returns only once every gate has ended and nothing a gate started is left
/// running (see the `command` module). A report file not written during this run
/// (older than the gate's start) is not judged: the gate fails, saying so.
pub async fn run(gates: &[Gate], ctx: &GateContext<'_>) -> GatesReport {
    if gates.is_empty() {
        return GatesReport { gates: Vec::new() };
    }
    let logs = ctx.dir.join("gates");
    let made = std::fs::create_dir_all(&logs)
        .map_err(|e| format!("cannot create {}: {e}", logs.display()));
    let runs = gates
        .iter()
        .map(|gate| run_one(gate, ctx.dir, made.as_ref().err()));
    GatesReport {
        gates: futures_util::future::join_all(runs).await,
    }
}

async fn run_one(gate: &Gate, dir: &Path, setup_error: Option<&String>) -> GateResult {
    let logs = dir.join("gates");
    let log = logs.join(format!("{}.log", gate.name));
    let reads_stdout = gate
        .report
        .as_ref()
        .is_some_and(|r| *r.source() == ReportSource::Stdout);
    let stdout = reads_stdout.then(|| logs.join(format!("{}.stdout", gate.name)));
    let output = match &stdout {
        Some(stdout) => Output::Split {
            stdout,
            stderr: &log,
        },
        None => Output::Combined(&log),
    };
    let started_at = SystemTime::now();
    let (exit, took) = match setup_error {
        Some(error) => (
            Exit::NotStarted {
                error: error.clone(),
            },
            Duration::ZERO,
        ),
        None => {
            let env = command::environment(&gate.env, &[("CUTOVER_GATE", &gate.name)]);
            let command = Command {
                argv: &gate.run,
                workdir: &gate.workdir,
                env,
                timeout: gate.timeout,
            };
            tracing::info!(gate = %gate.name, "running gate");
            command::run(&command, &output).await
        }
    };
    let ran = matches!(exit, Exit::Code { .. } | Exit::Signal { .. });
    let report = match &gate.report {
        Some(report) if ran => Some(read_report(report, stdout.as_deref(), started_at)),
        _ => None,
    };
    let (verdict, problems) = judge(gate, &exit, report.as_ref());
    tracing::info!(gate = %gate.name, verdict = verdict.as_str(), "gate ended");
    GateResult {
        name: gate.name.clone(),
        run: gate.run.clone(),
        verdict,
        exit,
        duration_ms: took.as_millis() as u64,
        log: command::relative(&log, dir),
        stdout: stdout.map(|s| command::relative(&s, dir)),
        report,
        problems,
    }
}

fn read_report(report: &GateReport, stdout: Option<&Path>, started_at: SystemTime) -> ReportResult {
    let (source, path) = match report.source() {
        ReportSource::File(path) => (path.display().to_string(), path.as_path()),
        ReportSource::Stdout => (
            "stdout".to_owned(),
            stdout.expect("stdout is captured when the report is read from it"),
        ),
    };
    let read = fresh_bytes(path, report.source(), started_at)
        .and_then(|bytes| reports::read(report, &bytes).map_err(|e| e.to_string()));
    let (summary, error) = match read {
        Ok(summary) => (Some(summary), None),
        Err(error) => (None, Some(error)),
    };
    ReportResult {
        format: report.format().to_owned(),
        source,
        summary,
        error,
    }
}

/// How much older than the gate's start a report may look and still count as
/// written by it: file systems stamp files from a coarse clock, a few milliseconds
/// behind the one [`SystemTime::now`] reads.
const FRESHNESS_SLACK: Duration = Duration::from_secs(2);

/// The report's bytes, if this run wrote it.
fn fresh_bytes(
    path: &Path,
    source: &ReportSource,
    started_at: SystemTime,
) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let modified = std::fs::metadata(path).and_then(|m| m.modified());
    match modified {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "the command did not write it ({shown} does not exist)"
            ));
        }
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
        Ok(modified)
            if modified + FRESHNESS_SLACK < started_at && *source != ReportSource::Stdout =>
        {
            return Err(format!(
                "{shown} was not written by this run (it is older than the gate's start)"
            ));
        }
        Ok(_) => {}
    }
    std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))
}

/// The gate's verdict, and why when it did not pass.
fn judge(gate: &Gate, exit: &Exit, report: Option<&ReportResult>) -> (GateVerdict, Vec<String>) {
    match exit {
        Exit::NotStarted { error } => return (GateVerdict::CouldNotStart, vec![error.clone()]),
        Exit::TimedOut => {
            return (
                GateVerdict::TimedOut,
                vec![format!(
                    "it ran past its timeout of {} and was killed",
                    humanize(gate.timeout)
                )],
            );
        }
        Exit::Code { .. } | Exit::Signal { .. } => {}
    }
    let mut problems = Vec::new();
    let report_decides = gate.report.as_ref().is_some_and(|r| {
        matches!(
            r,
            GateReport::CargoAudit { .. }
                | GateReport::NpmAudit { .. }
                | GateReport::Sarif { .. }
                | GateReport::Gitleaks { .. }
        )
    });
    let report_read = report.is_some_and(|r| r.summary.is_some());
    // Those tools exit non-zero on any finding: then their report decides alone.
    let exit_counts = !(report_decides && report_read && matches!(exit, Exit::Code { .. }));
    if exit_counts && !exit.success() {
        problems.push(format!(
            "{} ended with {}",
            shell_words(&gate.run),
            exit.describe()
        ));
    }
    if let (Some(config), Some(result)) = (&gate.report, report) {
        match (&result.summary, &result.error) {
            (Some(summary), _) => problems.extend(reports::judge(config, summary)),
            (None, Some(error)) => problems.push(format!(
                "its {} report ({}) could not be read: {error}",
                result.format, result.source
            )),
            (None, None) => {}
        }
    }
    let verdict = if problems.is_empty() {
        GateVerdict::Passed
    } else {
        GateVerdict::Failed
    };
    (verdict, problems)
}

/// `250 ms`, `12.3 s`.
pub(crate) fn took(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// Text for a Markdown table cell: a `|` would end the cell.
pub(crate) fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `10m`, `90s`, `1.5s`.
pub(crate) fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 || secs == 0 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

impl GatesReport {
    /// Every gate passed (also when there are none).
    pub fn passed(&self) -> bool {
        self.gates.iter().all(|g| g.verdict == GateVerdict::Passed)
    }

    /// The gates that did not pass.
    pub fn failed(&self) -> impl Iterator<Item = &GateResult> {
        self.gates
            .iter()
            .filter(|g| g.verdict != GateVerdict::Passed)
    }

    /// `gates.md`: the verdict, a table of every gate, then each gate's evidence,
    /// the ones that did not pass first.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let failed: Vec<String> = self.failed().map(|g| format!("`{}`", g.name)).collect();
        if self.passed() {
            out.push_str("# Quality gates: passed\n\n");
            out.push_str(&format!(
                "{} passed.\n",
                reports::count(self.gates.len() as u64, "gate")
            ));
        } else {
            out.push_str("# Quality gates: FAILED\n\n");
            out.push_str(&format!(
                "{} of {} did not pass: {}.\n",
                failed.len(),
                reports::count(self.gates.len() as u64, "gate"),
                failed.join(", ")
            ));
        }
        if self.gates.is_empty() {
            return out;
        }
        out.push_str(
            "\n| gate | result | exit | took | evidence |\n| --- | --- | --- | --- | --- |\n",
        );
        for g in &self.gates {
            let evidence = match &g.report {
                Some(ReportResult {
                    summary: Some(s), ..
                }) => s.headline(),
                Some(ReportResult { error: Some(_), .. }) => "report unreadable".to_owned(),
                _ => String::new(),
            };
            let result = match g.verdict {
                GateVerdict::Passed => "passed".to_owned(),
                other => format!("**{}**", other.as_str()),
            };
            out.push_str(&format!(
                "| `{}` | {result} | {} | {} | {} |\n",
                g.name,
                g.exit.describe(),
                took(g.duration_ms),
                cell(&evidence),
            ));
        }
        let order = self.failed().chain(
            self.gates
                .iter()
                .filter(|g| g.verdict == GateVerdict::Passed),
        );
        for g in order {
            out.push('\n');
            out.push_str(&g.to_markdown());
        }
        out
    }
}

impl GateResult {
    fn to_markdown(&self) -> String {
        let mut lines = vec![
            format!("## `{}`: {}", self.name, self.verdict.as_str()),
            String::new(),
            format!("- command: {}", shell_words(&self.run)),
        ];
        for problem in &self.problems {
            lines.push(format!("- **{problem}**"));
        }
        if let Some(report) = &self.report {
            match &report.summary {
                Some(summary) => {
                    lines.push(format!(
                        "- report: {} from `{}`: {}",
                        report.format,
                        report.source,
                        summary.headline()
                    ));
                    lines.extend(summary.details());
                }
                None => lines.push(format!(
                    "- report: {} from `{}`, unreadable",
                    report.format, report.source
                )),
            }
        }
        lines.push(format!("- output: `{}`", self.log.display()));
        if let Some(stdout) = &self.stdout {
            lines.push(format!("- stdout: `{}`", stdout.display()));
        }
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}
