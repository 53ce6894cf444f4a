//! SARIF 2.1.0, the format of semgrep, CodeQL, Trivy, Bandit, ESLint's formatter
//! and most static analysers: runs of results, each with a level and locations.
//!
//! A result's level is its own `level`, else its rule's
//! `defaultConfiguration.level`, else `warning`, as SARIF 2.1.0 section 3.27.10
//! says; a result whose `kind` is not `fail` (a pass, or something for review) has
//! level `none`. Suppressed results (a suppression not `rejected`) are counted
//! apart and never fail a gate. A `security-severity` property (GitHub's
//! convention, a CVSS-like score) is kept as evidence.

use std::collections::BTreeMap;

use cutover_spec::SarifLevel;
use serde::{Deserialize, Serialize};

use super::{ReportError, capped, count, more, one_line};

/// What a SARIF log reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SarifSummary {
    /// The tools that ran (`runs[].tool.driver.name`).
    pub tools: Vec<String>,
    /// Results that are not suppressed, all of them.
    pub results: u64,
    /// Those results by level; level `none` ones are not here.
    pub by_level: BTreeMap<SarifLevel, u64>,
    /// Suppressed results, which never fail a gate.
    pub suppressed: u64,
    /// The results that are not suppressed, most severe first, at most
    /// [`super::MAX_LISTED`].
    pub findings: Vec<SarifFinding>,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SarifFinding {
    pub rule: String,
    /// `None` is SARIF's level `none`.
    pub level: Option<SarifLevel>,
    /// The rule's or the result's `security-severity`, if it has one.
    pub security_severity: Option<f64>,
    /// The first location's file (`artifactLocation.uri`), if any.
    pub file: Option<String>,
    pub line: Option<u64>,
    pub message: String,
}

#[derive(Deserialize)]
struct Log {
    version: String,
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    tool: Tool,
    #[serde(default)]
    results: Option<Vec<RawResult>>,
}

#[derive(Deserialize)]
struct Tool {
    driver: Component,
    #[serde(default)]
    extensions: Vec<Component>,
}

#[derive(Deserialize)]
struct Component {
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    id: String,
    #[serde(rename = "defaultConfiguration")]
    default_configuration: Option<Configuration>,
    properties: Option<Properties>,
}

#[derive(Deserialize)]
struct Configuration {
    level: Option<String>,
}

#[derive(Deserialize)]
struct Properties {
    #[serde(rename = "security-severity")]
    security_severity: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawResult {
    #[serde(rename = "ruleId")]
    rule_id: Option<String>,
    #[serde(rename = "ruleIndex")]
    rule_index: Option<usize>,
    rule: Option<RuleReference>,
    level: Option<String>,
    kind: Option<String>,
    message: Message,
    #[serde(default)]
    locations: Vec<Location>,
    #[serde(default)]
    suppressions: Vec<Suppression>,
    properties: Option<Properties>,
}

#[derive(Deserialize)]
struct RuleReference {
    id: Option<String>,
    index: Option<usize>,
}

#[derive(Deserialize)]
struct Message {
    text: Option<String>,
    id: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(rename = "physicalLocation")]
    physical: Option<PhysicalLocation>,
}

#[derive(Deserialize)]
struct PhysicalLocation {
    #[serde(rename = "artifactLocation")]
    artifact: Option<ArtifactLocation>,
    region: Option<Region>,
}

#[derive(Deserialize)]
struct ArtifactLocation {
    uri: Option<String>,
}

#[derive(Deserialize)]
struct Region {
    #[serde(rename = "startLine")]
    start_line: Option<u64>,
}

#[derive(Deserialize)]
struct Suppression {
    status: Option<String>,
}

/// Read a SARIF 2.1.0 log.
///
/// # Errors
/// Not JSON, not SARIF (no `version` and `runs`), another SARIF version, or a
/// level SARIF does not define; the message says where.
pub fn read(bytes: &[u8]) -> Result<SarifSummary, ReportError> {
    let log: Log = serde_json::from_slice(bytes).map_err(|e| ReportError::json("SARIF", &e))?;
    if log.version != "2.1.0" {
        return Err(ReportError::new(format!(
            "SARIF version {:?}: cutover reads SARIF 2.1.0",
            log.version
        )));
    }
    let mut summary = SarifSummary {
        tools: Vec::new(),
        results: 0,
        by_level: BTreeMap::new(),
        suppressed: 0,
        findings: Vec::new(),
    };
    for (r, run) in log.runs.into_iter().enumerate() {
        summary.tools.push(run.tool.driver.name.clone());
        for (i, result) in run.results.unwrap_or_default().into_iter().enumerate() {
            let place = format!("runs[{r}].results[{i}]");
            let finding = finding(&run.tool, result, &place)?;
            let Some(finding) = finding else {
                summary.suppressed += 1;
                continue;
            };
            summary.results += 1;
            if let Some(level) = finding.level {
                *summary.by_level.entry(level).or_insert(0) += 1;
            }
            summary.findings.push(finding);
        }
    }
    summary.findings.sort_by(|a, b| {
        b.level
            .cmp(&a.level)
            .then_with(|| a.file.cmp(&b.file))
            .then_with(|| a.line.cmp(&b.line))
    });
    summary.findings = capped(summary.findings);
    Ok(summary)
}

/// The finding `result` makes, or `None` when it is suppressed.
fn finding(
    tool: &Tool,
    result: RawResult,
    place: &str,
) -> Result<Option<SarifFinding>, ReportError> {
    let suppressed = result
        .suppressions
        .iter()
        .any(|s| s.status.as_deref() != Some("rejected"));
    if suppressed {
        return Ok(None);
    }
    let reference = result.rule.as_ref();
    let rule_id = result
        .rule_id
        .clone()
        .or_else(|| reference.and_then(|r| r.id.clone()));
    let index = result
        .rule_index
        .or_else(|| reference.and_then(|r| r.index));
    let rule = index.and_then(|i| tool.driver.rules.get(i)).or_else(|| {
        let id = rule_id.as_deref()?;
        std::iter::once(&tool.driver)
            .chain(&tool.extensions)
            .flat_map(|c| &c.rules)
            .find(|r| r.id == id)
    });
    let fails = result.kind.as_deref().is_none_or(|k| k == "fail");
    let level_text = result
        .level
        .clone()
        .or_else(|| rule.and_then(|r| r.default_configuration.as_ref()?.level.clone()))
        .unwrap_or_else(|| "warning".to_owned());
    let level = match level_text.as_str() {
        _ if !fails => None,
        "none" => None,
        "note" => Some(SarifLevel::Note),
        "warning" => Some(SarifLevel::Warning),
        "error" => Some(SarifLevel::Error),
        other => {
            return Err(ReportError::new(format!(
                "SARIF: `{place}` has level {other:?} (SARIF's levels are none, note, warning \
                 and error)"
            )));
        }
    };
    let security_severity = result
        .properties
        .as_ref()
        .and_then(score)
        .or_else(|| rule.and_then(|r| r.properties.as_ref()).and_then(score));
    let physical = result.locations.first().and_then(|l| l.physical.as_ref());
    Ok(Some(SarifFinding {
        rule: rule_id
            .or_else(|| rule.map(|r| r.id.clone()))
            .unwrap_or_else(|| "(no rule)".to_owned()),
        level,
        security_severity,
        file: physical.and_then(|p| p.artifact.as_ref()?.uri.clone()),
        line: physical.and_then(|p| p.region.as_ref()?.start_line),
        message: result
            .message
            .text
            .or(result.message.id)
            .unwrap_or_default(),
    }))
}

/// `security-severity`, written as a string (`"8.6"`) or a number.
fn score(properties: &Properties) -> Option<f64> {
    match properties.security_severity.as_ref()? {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

impl SarifSummary {
    pub(crate) fn problems(&self, threshold: SarifLevel) -> Vec<String> {
        let failing: u64 = self
            .by_level
            .iter()
            .filter(|(l, _)| **l >= threshold)
            .map(|(_, n)| n)
            .sum();
        if failing == 0 {
            return Vec::new();
        }
        vec![format!(
            "{} at level `{threshold}` or above",
            count(failing, "result")
        )]
    }

    pub(crate) fn headline(&self) -> String {
        let mut line = if self.results == 0 {
            "no results".to_owned()
        } else {
            let parts: Vec<String> = self
                .by_level
                .iter()
                .rev()
                .map(|(l, n)| format!("{n} {l}"))
                .collect();
            format!("{} ({})", count(self.results, "result"), parts.join(", "))
        };
        if self.suppressed > 0 {
            line.push_str(&format!(", {} suppressed", self.suppressed));
        }
        if !self.tools.is_empty() {
            line.push_str(&format!(" from {}", self.tools.join(", ")));
        }
        line
    }

    pub(crate) fn details(&self) -> Vec<String> {
        if self.findings.is_empty() {
            return Vec::new();
        }
        let mut lines = vec![format!(
            "- results{}:",
            more(self.results as usize, self.findings.len())
        )];
        lines.extend(self.findings.iter().map(|f| {
            let place = match (&f.file, f.line) {
                (Some(file), Some(line)) => format!("`{file}:{line}`"),
                (Some(file), None) => format!("`{file}`"),
                _ => "(no location)".to_owned(),
            };
            let level = f.level.map_or("none".to_owned(), |l| l.to_string());
            let security = f
                .security_severity
                .map(|s| format!(", security-severity {s:.1}"))
                .unwrap_or_default();
            format!(
                "  - {place} {} ({level}{security}): {}",
                f.rule,
                one_line(&f.message, 200)
            )
        }));
        lines
    }
}
