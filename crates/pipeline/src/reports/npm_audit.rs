//! `npm audit --json` of npm 7 and later (`"auditReportVersion": 2`): the vulnerable
//! packages of a `package-lock.json`, each with the advisories (`via`) that make it
//! so, and `metadata.vulnerabilities`, the packages counted by severity.
//!
//! The gate judges the advisories: a package that is vulnerable only through
//! another one (`via: ["lodash"]`) adds no advisory of its own. npm's `moderate` is
//! [`Severity::Medium`]; `info` advisories never fail a gate.

use std::collections::{BTreeMap, BTreeSet};

use cutover_spec::Severity;
use serde::{Deserialize, Serialize};

use super::{ReportError, capped, count, count_of, more};

/// What `npm audit --json` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NpmAuditSummary {
    /// Vulnerable packages by npm's severity (`info`, `low`, `moderate`, `high`,
    /// `critical`), as `metadata.vulnerabilities` counts them.
    pub packages_by_severity: BTreeMap<String, u64>,
    /// Distinct advisories, all of them.
    pub advisories: u64,
    /// Advisories by severity; `info` ones are not here.
    pub by_severity: BTreeMap<Severity, u64>,
    /// The advisories, most severe first, at most [`super::MAX_LISTED`].
    pub findings: Vec<NpmAdvisory>,
}

/// One advisory against one package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NpmAdvisory {
    /// The advisory's `source` (a number in the registry's advisories).
    pub id: String,
    pub package: String,
    pub title: String,
    pub url: String,
    /// The vulnerable versions, e.g. `<4.17.19`.
    pub range: String,
    /// `None` for an `info` advisory.
    pub severity: Option<Severity>,
}

#[derive(Deserialize)]
struct Report {
    #[serde(rename = "auditReportVersion")]
    version: Option<u64>,
    #[serde(default)]
    vulnerabilities: BTreeMap<String, Vulnerable>,
    metadata: Option<Metadata>,
    error: Option<NpmError>,
    advisories: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct NpmError {
    #[serde(default)]
    summary: String,
}

#[derive(Deserialize)]
struct Metadata {
    vulnerabilities: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct Vulnerable {
    name: String,
    #[serde(default)]
    via: Vec<Via>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Via {
    Advisory(RawAdvisory),
    /// Vulnerable through another package, named here.
    Package(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct RawAdvisory {
    source: serde_json::Value,
    #[serde(default)]
    dependency: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    range: String,
    severity: String,
}

/// Read the output of `npm audit --json`.
///
/// # Errors
/// Not JSON, npm's error report, npm 6's older format, or advisories without a
/// severity npm knows; the message says which.
pub fn read(bytes: &[u8]) -> Result<NpmAuditSummary, ReportError> {
    let report: Report =
        serde_json::from_slice(bytes).map_err(|e| ReportError::json("`npm audit --json`", &e))?;
    if let Some(error) = report.error {
        return Err(ReportError::new(format!(
            "`npm audit` reported an error instead of a report: {}",
            error.summary
        )));
    }
    if report.version != Some(2) {
        let which = if report.advisories.is_some() {
            "npm 6's older format (`advisories`)".to_owned()
        } else {
            format!("`auditReportVersion` {:?}", report.version)
        };
        return Err(ReportError::new(format!(
            "not an `npm audit --json` report of npm 7 or later: it has {which}; \
             cutover reads `\"auditReportVersion\": 2`"
        )));
    }
    let mut seen = BTreeSet::new();
    let mut findings = Vec::new();
    for (key, vulnerable) in report.vulnerabilities {
        for via in vulnerable.via {
            let Via::Advisory(a) = via else { continue };
            let id = match &a.source {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let package = a.dependency.unwrap_or_else(|| vulnerable.name.clone());
            if !seen.insert((id.clone(), package.clone())) {
                continue;
            }
            let severity = match a.severity.as_str() {
                "info" => None,
                "low" => Some(Severity::Low),
                "moderate" => Some(Severity::Medium),
                "high" => Some(Severity::High),
                "critical" => Some(Severity::Critical),
                other => {
                    return Err(ReportError::new(format!(
                        "`npm audit --json`: `vulnerabilities.{key}.via` has an advisory {id} \
                         with severity {other:?} (npm's are info, low, moderate, high and \
                         critical)"
                    )));
                }
            };
            findings.push(NpmAdvisory {
                id,
                package,
                title: a.title,
                url: a.url,
                range: a.range,
                severity,
            });
        }
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.package.cmp(&b.package))
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut by_severity = BTreeMap::new();
    for severity in findings.iter().filter_map(|f| f.severity) {
        *by_severity.entry(severity).or_insert(0) += 1;
    }
    let packages_by_severity = report
        .metadata
        .map(|m| m.vulnerabilities)
        .unwrap_or_default();
    Ok(NpmAuditSummary {
        packages_by_severity,
        advisories: findings.len() as u64,
        by_severity,
        findings: capped(findings),
    })
}

impl NpmAuditSummary {
    pub(crate) fn problems(&self, threshold: Severity) -> Vec<String> {
        let failing: u64 = self
            .by_severity
            .iter()
            .filter(|(s, _)| **s >= threshold)
            .map(|(_, n)| n)
            .sum();
        if failing == 0 {
            return Vec::new();
        }
        vec![format!(
            "{} at or above `{threshold}`",
            count_of(failing, "advisory", "advisories")
        )]
    }

    pub(crate) fn headline(&self) -> String {
        let packages = self.packages_by_severity.get("total").copied().unwrap_or(0);
        if self.advisories == 0 {
            return "no vulnerabilities".to_owned();
        }
        let parts: Vec<String> = self
            .by_severity
            .iter()
            .rev()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        format!(
            "{} ({}) in {}",
            count_of(self.advisories, "advisory", "advisories"),
            parts.join(", "),
            count(packages, "vulnerable package")
        )
    }

    pub(crate) fn details(&self) -> Vec<String> {
        if self.findings.is_empty() {
            return Vec::new();
        }
        let mut lines = vec![format!(
            "- advisories{}:",
            more(self.advisories as usize, self.findings.len())
        )];
        lines.extend(self.findings.iter().map(|f| {
            let severity = f.severity.map_or("info".to_owned(), |s| s.to_string());
            format!(
                "  - `{}` {} ({severity}): {} <{}>",
                f.package, f.range, f.title, f.url
            )
        }));
        if let Some(total) = self.packages_by_severity.get("total") {
            lines.push(format!("- {} in all", count(*total, "vulnerable package")));
        }
        lines
    }
}
