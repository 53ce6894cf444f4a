//! The quality gates run before a deploy starts (`gates:`): commands, each maybe
//! with a report it writes that cutover reads and judges.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::types::Percent;

/// One quality gate: a command that must succeed, and maybe a report of its own
/// that must pass too.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// Unique among the gates; lowercase letters, digits, `-` and `_`, so it can name
    /// the gate's log file (`gates/<name>.log`).
    pub name: String,
    /// argv, never empty; no shell unless it says `sh -c`.
    pub run: Vec<String>,
    /// How long the gate may run before its process group is killed (default 10m).
    pub timeout: Duration,
    /// Working directory, resolved against the config file's directory (default that
    /// directory).
    pub workdir: PathBuf,
    /// Extra environment (default none).
    pub env: BTreeMap<String, String>,
    /// The report the command writes, read after it exits (default none: only the
    /// exit status counts).
    pub report: Option<GateReport>,
}

/// A report a gate's command writes, in one of the formats cutover reads, with the
/// limits it must meet.
#[derive(Debug, Clone, PartialEq)]
pub enum GateReport {
    /// JUnit XML (`junit: PATH`).
    Junit {
        source: ReportSource,
        /// At least this many tests must have run, skipped ones not counted (default 1:
        /// a report in which no test ran fails).
        min_tests: u64,
        /// A flaky test (failed, then passed on a rerun) does not fail the gate
        /// (default false: it does).
        allow_flaky: bool,
    },
    /// LCOV tracefile (`lcov: PATH`): line coverage must be at least `min_coverage`.
    Lcov {
        source: ReportSource,
        min_coverage: Percent,
    },
    /// Cobertura XML (`cobertura: PATH`): line coverage must be at least `min_coverage`.
    Cobertura {
        source: ReportSource,
        min_coverage: Percent,
    },
    /// `cargo audit --json` (`cargo_audit: PATH | stdout`): no vulnerability at or above
    /// `severity`.
    CargoAudit {
        source: ReportSource,
        severity: Severity,
    },
    /// `npm audit --json`, npm 7 or later (`npm_audit: PATH | stdout`): no advisory at or
    /// above `severity`.
    NpmAudit {
        source: ReportSource,
        severity: Severity,
    },
    /// SARIF 2.1.0 (`sarif: PATH | stdout`): no result at or above `severity`.
    Sarif {
        source: ReportSource,
        severity: SarifLevel,
    },
    /// A gitleaks JSON report (`gitleaks: PATH | stdout`): any finding fails.
    Gitleaks { source: ReportSource },
}

impl GateReport {
    /// The format's key in `cutover.yaml`: `junit`, `lcov`, ... `gitleaks`.
    pub fn format(&self) -> &'static str {
        match self {
            GateReport::Junit { .. } => "junit",
            GateReport::Lcov { .. } => "lcov",
            GateReport::Cobertura { .. } => "cobertura",
            GateReport::CargoAudit { .. } => "cargo_audit",
            GateReport::NpmAudit { .. } => "npm_audit",
            GateReport::Sarif { .. } => "sarif",
            GateReport::Gitleaks { .. } => "gitleaks",
        }
    }

    /// Where the report is read from.
    pub fn source(&self) -> &ReportSource {
        match self {
            GateReport::Junit { source, .. }
            | GateReport::Lcov { source, .. }
            | GateReport::Cobertura { source, .. }
            | GateReport::CargoAudit { source, .. }
            | GateReport::NpmAudit { source, .. }
            | GateReport::Sarif { source, .. }
            | GateReport::Gitleaks { source } => source,
        }
    }
}

/// Where a gate's report is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportSource {
    /// A file, resolved against the gate's `workdir`.
    File(PathBuf),
    /// What the command printed on stdout (YAML `stdout`; write `./stdout` for a file
    /// of that name).
    Stdout,
}

/// How severe a vulnerability is, lowest first (`low`, `medium`, `high`, `critical`;
/// npm's `moderate` is `medium`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The severity of a CVSS base score (0.0 to 10.0), by the bands of the CVSS
    /// v3.1 specification (a score of 0.0, "none", is counted as low).
    pub fn from_cvss_score(score: f64) -> Severity {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// As written in `cutover.yaml`: `low`, `medium`, `high` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SARIF result's level, lowest first (`note`, `warning`, `error`); SARIF's `none`
/// never fails a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SarifLevel {
    Note,
    Warning,
    Error,
}

impl SarifLevel {
    /// As SARIF and `cutover.yaml` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            SarifLevel::Note => "note",
            SarifLevel::Warning => "warning",
            SarifLevel::Error => "error",
        }
    }
}

impl fmt::Display for SarifLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
