//! Readers for the reports quality tools write, one module per format: pure
//! functions from the report's bytes to a typed summary, or an error that says
//! what is wrong and where (`line 3, column 7`, or the JSON field).
//!
//! A summary holds numbers and findings, never a verdict; [`judge`] compares it with
//! the limits the gate's config sets. Finding lists are capped at [`MAX_LISTED`],
//! with the full counts kept beside them.

pub mod cargo_audit;
pub mod cobertura;
mod cvss;
pub mod gitleaks;
pub mod junit;
pub mod lcov;
pub mod npm_audit;
pub mod sarif;
mod xml;

use cutover_spec::GateReport;
use serde::Serialize;

/// The most findings (failed tests, files, advisories, results) a summary lists.
pub const MAX_LISTED: usize = 50;

/// What one report said, by format.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum Summary {
    Junit(junit::JunitSummary),
    Lcov(lcov::CoverageSummary),
    Cobertura(lcov::CoverageSummary),
    CargoAudit(cargo_audit::CargoAuditSummary),
    NpmAudit(npm_audit::NpmAuditSummary),
    Sarif(sarif::SarifSummary),
    Gitleaks(gitleaks::GitleaksSummary),
}

/// A report that could not be read: what is wrong, and where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReportError {
    /// What is wrong and where, e.g. `line 4, column 9: <testcase> has no name`.
    pub message: String,
}

impl ReportError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ReportError {
            message: message.into(),
        }
    }

    /// A JSON report that does not parse or does not have the expected shape;
    /// serde_json's message says where.
    pub(crate) fn json(format: &str, err: &serde_json::Error) -> Self {
        ReportError::new(format!("not a valid {format} report: {err}"))
    }
}

/// Read `bytes` as the format `report` names.
///
/// # Errors
/// The bytes are not a report of that format, or one this reader does not
/// understand; the error says where.
pub fn read(report: &GateReport, bytes: &[u8]) -> Result<Summary, ReportError> {
    Ok(match report {
        GateReport::Junit { .. } => Summary::Junit(junit::read(bytes)?),
        GateReport::Lcov { .. } => Summary::Lcov(lcov::read(bytes)?),
        GateReport::Cobertura { .. } => Summary::Cobertura(cobertura::read(bytes)?),
        GateReport::CargoAudit { .. } => Summary::CargoAudit(cargo_audit::read(bytes)?),
        GateReport::NpmAudit { .. } => Summary::NpmAudit(npm_audit::read(bytes)?),
        GateReport::Sarif { .. } => Summary::Sarif(sarif::read(bytes)?),
        GateReport::Gitleaks { .. } => Summary::Gitleaks(gitleaks::read(bytes)?),
    })
}

/// Why `summary` fails the limits of `report`, one line each; empty when it passes.
pub fn judge(report: &GateReport, summary: &Summary) -> Vec<String> {
    match (report, summary) {
        (
            GateReport::Junit {
                min_tests,
                allow_flaky,
                ..
            },
            Summary::Junit(s),
        ) => s.problems(*min_tests, *allow_flaky),
        (GateReport::Lcov { min_coverage, .. }, Summary::Lcov(s))
        | (GateReport::Cobertura { min_coverage, .. }, Summary::Cobertura(s)) => {
            s.problems(*min_coverage)
        }
        (GateReport::CargoAudit { severity, .. }, Summary::CargoAudit(s)) => s.problems(*severity),
        (GateReport::NpmAudit { severity, .. }, Summary::NpmAudit(s)) => s.problems(*severity),
        (GateReport::Sarif { severity, .. }, Summary::Sarif(s)) => s.problems(*severity),
        (GateReport::Gitleaks { .. }, Summary::Gitleaks(s)) => s.problems(),
        (report, summary) => vec![format!(
            "a {} report was judged against {} limits",
            summary.format(),
            report.format()
        )],
    }
}

impl Summary {
    /// The format's key in `cutover.yaml`.
    pub fn format(&self) -> &'static str {
        match self {
            Summary::Junit(_) => "junit",
            Summary::Lcov(_) => "lcov",
            Summary::Cobertura(_) => "cobertura",
            Summary::CargoAudit(_) => "cargo_audit",
            Summary::NpmAudit(_) => "npm_audit",
            Summary::Sarif(_) => "sarif",
            Summary::Gitleaks(_) => "gitleaks",
        }
    }

    /// One line for a table: `4 tests: 3 passed, 1 failed`, `85.7% of 28 lines`.
    pub fn headline(&self) -> String {
        match self {
            Summary::Junit(s) => s.headline(),
            Summary::Lcov(s) | Summary::Cobertura(s) => s.headline(),
            Summary::CargoAudit(s) => s.headline(),
            Summary::NpmAudit(s) => s.headline(),
            Summary::Sarif(s) => s.headline(),
            Summary::Gitleaks(s) => s.headline(),
        }
    }

    /// The evidence as Markdown list items, each line starting with `- `.
    pub fn details(&self) -> Vec<String> {
        match self {
            Summary::Junit(s) => s.details(),
            Summary::Lcov(s) | Summary::Cobertura(s) => s.details(),
            Summary::CargoAudit(s) => s.details(),
            Summary::NpmAudit(s) => s.details(),
            Summary::Sarif(s) => s.details(),
            Summary::Gitleaks(s) => s.details(),
        }
    }
}

/// `items` cut to [`MAX_LISTED`].
pub(crate) fn capped<T>(mut items: Vec<T>) -> Vec<T> {
    items.truncate(MAX_LISTED);
    items
}

/// `" (and N more)"` when a list of `total` shows only `shown`.
pub(crate) fn more(total: usize, shown: usize) -> String {
    if total > shown {
        format!(" (and {} more)", total - shown)
    } else {
        String::new()
    }
}

/// Text for one Markdown line: newlines become spaces, and it is cut to `max`
/// characters.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max {
        flat.to_owned()
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// `1 test`, `3 tests`.
pub(crate) fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `1 vulnerability`, `3 vulnerabilities`: [`count`] with an irregular plural.
pub(crate) fn count_of(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}
