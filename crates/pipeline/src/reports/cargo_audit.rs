//! `cargo audit --json`: the vulnerabilities RustSec knows of in a `Cargo.lock`.
//!
//! RustSec advisories carry a CVSS vector, not a severity; the severity is that of
//! the vector's base score. An advisory without a CVSS v3 vector (none given, or
//! CVSS 4.0) has no known severity and fails the gate at any threshold: not knowing
//! how bad a vulnerability is does not make it harmless. Warnings (unmaintained,
//! unsound, yanked) are counted but never fail the gate.

use std::collections::BTreeMap;

use cutover_spec::Severity;
use serde::{Deserialize, Serialize};

use super::{ReportError, capped, count, count_of, cvss, more};

/// What `cargo audit --json` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CargoAuditSummary {
    /// Vulnerabilities found, all of them.
    pub vulnerabilities: u64,
    /// Vulnerabilities by severity; those without a CVSS v3 score are not here.
    pub by_severity: BTreeMap<Severity, u64>,
    /// The vulnerabilities, most severe first, at most [`super::MAX_LISTED`].
    pub findings: Vec<Advisory>,
    /// Warnings by kind (`unmaintained`, `unsound`, `yanked`); they do not fail a gate.
    pub warnings: BTreeMap<String, u64>,
}

/// One vulnerable package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advisory {
    /// `RUSTSEC-2020-0071`.
    pub id: String,
    pub package: String,
    pub version: String,
    pub title: String,
    /// From the CVSS vector; `None` without a CVSS v3 vector.
    pub severity: Option<Severity>,
    pub cvss_score: Option<f64>,
}

#[derive(Deserialize)]
struct Report {
    vulnerabilities: Vulnerabilities,
    #[serde(default)]
    warnings: BTreeMap<String, Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct Vulnerabilities {
    list: Vec<Vulnerability>,
}

#[derive(Deserialize)]
struct Vulnerability {
    advisory: RawAdvisory,
    package: Package,
}

#[derive(Deserialize)]
struct RawAdvisory {
    id: String,
    #[serde(default)]
    title: String,
    cvss: Option<String>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
}

/// Read the output of `cargo audit --json`.
///
/// # Errors
/// Not JSON, or JSON without `vulnerabilities.list` and its advisories' ids and
/// packages; serde_json's message says where.
pub fn read(bytes: &[u8]) -> Result<CargoAuditSummary, ReportError> {
    let report: Report =
        serde_json::from_slice(bytes).map_err(|e| ReportError::json("`cargo audit --json`", &e))?;
    let mut findings: Vec<Advisory> = report
        .vulnerabilities
        .list
        .into_iter()
        .map(|v| {
            let cvss_score = v.advisory.cvss.as_deref().and_then(cvss::base_score);
            Advisory {
                id: v.advisory.id,
                package: v.package.name,
                version: v.package.version,
                title: v.advisory.title,
                severity: cvss_score.map(Severity::from_cvss_score),
                cvss_score,
            }
        })
        .collect();
    // Unknown severity first: it fails at any threshold.
    findings.sort_by(|a, b| {
        let rank = |s: Option<Severity>| s.map_or(u8::MAX, |s| s as u8);
        rank(b.severity)
            .cmp(&rank(a.severity))
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut by_severity = BTreeMap::new();
    for severity in findings.iter().filter_map(|f| f.severity) {
        *by_severity.entry(severity).or_insert(0) += 1;
    }
    let warnings = report
        .warnings
        .into_iter()
        .filter(|(_, list)| !list.is_empty())
        .map(|(kind, list)| (kind, list.len() as u64))
        .collect();
    Ok(CargoAuditSummary {
        vulnerabilities: findings.len() as u64,
        by_severity,
        findings: capped(findings),
        warnings,
    })
}

impl CargoAuditSummary {
    /// The vulnerabilities that fail at `threshold`: at or above it, or of unknown
    /// severity.
    fn failing(&self, threshold: Severity) -> u64 {
        let known: u64 = self
            .by_severity
            .iter()
            .filter(|(s, _)| **s >= threshold)
            .map(|(_, n)| n)
            .sum();
        let unknown = self.vulnerabilities - self.by_severity.values().sum::<u64>();
        known + unknown
    }

    pub(crate) fn problems(&self, threshold: Severity) -> Vec<String> {
        match self.failing(threshold) {
            0 => Vec::new(),
            n => vec![format!(
                "{} at or above `{threshold}` (or of unknown severity)",
                count_of(n, "vulnerability", "vulnerabilities")
            )],
        }
    }

    pub(crate) fn headline(&self) -> String {
        let mut line = if self.vulnerabilities == 0 {
            "no vulnerabilities".to_owned()
        } else {
            let parts: Vec<String> = self
                .by_severity
                .iter()
                .rev()
                .map(|(s, n)| format!("{n} {s}"))
                .collect();
            let unknown = self.vulnerabilities - self.by_severity.values().sum::<u64>();
            let mut parts = parts;
            if unknown > 0 {
                parts.push(format!("{unknown} of unknown severity"));
            }
            format!(
                "{} ({})",
                count_of(self.vulnerabilities, "vulnerability", "vulnerabilities"),
                parts.join(", ")
            )
        };
        let warnings: u64 = self.warnings.values().sum();
        if warnings > 0 {
            line.push_str(&format!(", {}", count(warnings, "warning")));
        }
        line
    }

    pub(crate) fn details(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.findings.is_empty() {
            lines.push(format!(
                "- vulnerabilities{}:",
                more(self.vulnerabilities as usize, self.findings.len())
            ));
            lines.extend(self.findings.iter().map(|f| {
                let severity = match (f.severity, f.cvss_score) {
                    (Some(s), Some(score)) => format!("{s}, CVSS {score:.1}"),
                    _ => "unknown severity".to_owned(),
                };
                format!(
                    "  - {} `{}` {} ({severity}): {}",
                    f.id, f.package, f.version, f.title
                )
            }));
        }
        if !self.warnings.is_empty() {
            let kinds: Vec<String> = self
                .warnings
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            lines.push(format!("- warnings (not failing): {}", kinds.join(", ")));
        }
        lines
    }
}
