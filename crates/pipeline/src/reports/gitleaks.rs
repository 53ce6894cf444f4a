//! gitleaks' JSON report (`gitleaks detect --report-format json --report-path ...`):
//! a list of leaked secrets; any one fails the gate.
//!
//! The summary never holds the secret: a finding's `Redacted` and `Match` fields are
//! not even read, so nothing of them can reach a receipt. (The gate's log is what
//! gitleaks printed; run it with `--redact` to keep secrets out of that too.)

use serde::{Deserialize, Serialize};

use super::{ReportError, capped, count, more};

/// What gitleaks found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitleaksSummary {
    /// Leaks found, all of them.
    pub leaks: u64,
    /// The leaks, at most [`super::MAX_LISTED`], without their secrets.
    pub findings: Vec<Leak>,
}

/// Where one secret leaked, and by which rule; never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leak {
    pub rule: String,
    pub description: String,
    pub file: String,
    pub line: u64,
    /// The commit it is in, when gitleaks scanned git history.
    pub commit: Option<String>,
}

/// Only what may be shown: `Redacted` and `Match` are left out on purpose.
#[derive(Deserialize)]
struct RawLeak {
    #[serde(rename = "RuleID")]
    rule: String,
    #[serde(rename = "Description", default)]
    description: String,
    #[serde(rename = "File")]
    file: String,
    #[serde(rename = "StartLine", default)]
    line: u64,
    #[serde(rename = "Commit", default)]
    commit: String,
}

/// Read a gitleaks JSON report.
///
/// # Errors
/// Not JSON, or not a list of findings with `RuleID` and `File`; serde_json's
/// message says where.
pub fn read(bytes: &[u8]) -> Result<GitleaksSummary, ReportError> {
    let raw: Vec<RawLeak> =
        serde_json::from_slice(bytes).map_err(|e| ReportError::json("gitleaks JSON", &e))?;
    let findings: Vec<Leak> = raw
        .into_iter()
        .map(|l| Leak {
            rule: l.rule,
            description: l.description,
            file: l.file,
            line: l.line,
            commit: (!l.commit.is_empty()).then_some(l.commit),
        })
        .collect();
    Ok(GitleaksSummary {
        leaks: findings.len() as u64,
        findings: capped(findings),
    })
}

impl GitleaksSummary {
    pub(crate) fn problems(&self) -> Vec<String> {
        if self.leaks == 0 {
            return Vec::new();
        }
        vec![format!("{} found", count(self.leaks, "leaked secret"))]
    }

    pub(crate) fn headline(&self) -> String {
        match self.leaks {
            0 => "no leaks".to_owned(),
            n => count(n, "leaked secret"),
        }
    }

    pub(crate) fn details(&self) -> Vec<String> {
        if self.findings.is_empty() {
            return Vec::new();
        }
        let mut lines = vec![format!(
            "- leaks (secrets not shown){}:",
            more(self.leaks as usize, self.findings.len())
        )];
        lines.extend(self.findings.iter().map(|l| {
            let commit = l
                .commit
                .as_deref()
                .map(|c| format!(" in commit {}", c.chars().take(12).collect::<String>()))
                .unwrap_or_default();
            let description = if l.description.is_empty() {
                String::new()
            } else {
                format!(": {}", l.description)
            };
            format!(
                "  - `{}:{}` {}{commit}{description}",
                l.file, l.line, l.rule
            )
        }));
        lines
    }
}
