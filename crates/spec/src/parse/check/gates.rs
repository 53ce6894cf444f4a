//! `gates`: the quality gates run before a deploy, each a command with a timeout, a
//! working directory, its environment and maybe a report to read; and the argv of a
//! command, shared with the smoke tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Checker;
use crate::gates::{Gate, GateReport, ReportSource, SarifLevel, Severity};
use crate::parse::node::{Entry, Node, Value};
use crate::types::defaults;

pub(super) const GATE: &[&str] = &["name", "run", "timeout", "workdir", "env", "report"];
/// The report formats, each a key of `report` naming the file it is read from.
pub(super) const REPORT_FORMATS: &[&str] = &[
    "junit",
    "lcov",
    "cobertura",
    "cargo_audit",
    "npm_audit",
    "sarif",
    "gitleaks",
];
/// The limits a report may set, and the formats each applies to.
const REPORT_OPTIONS: &[(&str, &[&str])] = &[
    ("min_tests", &["junit"]),
    ("allow_flaky", &["junit"]),
    ("min_coverage", &["lcov", "cobertura"]),
    ("severity", &["cargo_audit", "npm_audit", "sarif"]),
];
/// Every field of `report`: the formats and the limits.
pub(super) const REPORT: &[&str] = &[
    "junit",
    "lcov",
    "cobertura",
    "cargo_audit",
    "npm_audit",
    "sarif",
    "gitleaks",
    "min_tests",
    "allow_flaky",
    "min_coverage",
    "severity",
];

const GATE_EXAMPLE: &str = "{ name: tests, run: [cargo, test] }";
const RUN_EXAMPLE: &str = r#"["cargo", "test"]"#;
const AUDIT_SEVERITIES: &[(&str, Severity)] = &[
    ("low", Severity::Low),
    ("medium", Severity::Medium),
    ("moderate", Severity::Medium),
    ("high", Severity::High),
    ("critical", Severity::Critical),
];
const SARIF_LEVELS: &[(&str, SarifLevel)] = &[
    ("note", SarifLevel::Note),
    ("warning", SarifLevel::Warning),
    ("error", SarifLevel::Error),
];

impl Checker<'_> {
    pub(super) fn gates(&mut self, e: &Entry) -> Option<Vec<Gate>> {
        let items = self.list(e, GATE_EXAMPLE)?;
        let mut gates: Vec<Gate> = Vec::with_capacity(items.len());
        // By name: the line it was first given on.
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let path = format!("gates[{i}]");
            let Some(gate) = item.and_then(|item| self.gate(item, &path)) else {
                ok = false;
                continue;
            };
            let item = item.expect("a gate comes from a mapping");
            let line = item.get("name").map_or(item.pos.line, |n| n.value.pos.line);
            if let Some(first) = names.get(&gate.name) {
                let at = item.get("name").map_or(item.pos, |n| n.value.pos);
                self.error(
                    at,
                    format!(
                        "duplicate gate name `{}`: it is already used on line {first}; \
                         each gate needs a name of its own (it names the gate's log file)",
                        gate.name
                    ),
                );
                ok = false;
                continue;
            }
            names.insert(gate.name.clone(), line);
            gates.push(gate);
        }
        ok.then_some(gates)
    }

    /// The items of the list `e`, each a mapping or `None` where it is not (reported);
    /// `None` when `e` is not a list at all. A list left empty (`gates:`) has no items.
    pub(super) fn list<'n>(
        &mut self,
        e: &'n Entry,
        example: &str,
    ) -> Option<Vec<Option<&'n Node>>> {
        let items = match &e.value.value {
            Value::Seq(items) => items,
            Value::Null => return Some(Vec::new()),
            _ => {
                self.error(
                    Self::at(e),
                    format!(
                        "`{}` must be a list like `- {example}`, got {}",
                        e.key,
                        e.value.describe()
                    ),
                );
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if matches!(item.value, Value::Map(_)) {
                out.push(Some(item));
            } else {
                out.push(None);
                self.error(
                    item.pos,
                    format!(
                        "`{}[{i}]` must be a mapping like `{example}`, got {}",
                        e.key,
                        item.describe()
                    ),
                );
            }
        }
        Some(out)
    }

    fn gate(&mut self, item: &Node, path: &str) -> Option<Gate> {
        let f = self.fields(item, path, GATE)?;
        let name = self.require(
            &f,
            path,
            item.pos,
            "name",
            "what the gate is called, e.g. `tests`",
        );
        let name = name.and_then(|e| self.gate_name(e));
        let run = self.require(
            &f,
            path,
            item.pos,
            "run",
            &format!("the argv to run, e.g. {RUN_EXAMPLE}"),
        );
        let run = run.and_then(|e| self.argv(e));
        let timeout = self.optional(
            &f,
            "timeout",
            defaults::GATE_TIMEOUT,
            Self::positive_duration,
        );
        let workdir = match f.get("workdir") {
            Some(e) => self.path(e),
            None => Some(self.resolve(Path::new(defaults::WORKDIR))),
        };
        let env = self.optional(&f, "env", BTreeMap::new(), |c, e| c.env(e, false));
        let report = match (f.get("report"), &workdir) {
            (Some(e), Some(workdir)) => {
                self.report(e, &format!("{path}.report"), workdir).map(Some)
            }
            (Some(_), None) => None,
            (None, _) => Some(None),
        };
        Some(Gate {
            name: name?,
            run: run?,
            timeout: timeout?,
            workdir: workdir?,
            env: env?,
            report: report?,
        })
    }

    fn gate_name(&mut self, e: &Entry) -> Option<String> {
        let text = e.value.scalar_text();
        if let Some(name) = &text
            && valid_gate_name(name)
        {
            return Some(name.clone());
        }
        self.error(
            Self::at(e),
            format!(
                "`name` must be 1-{} characters of lowercase letters, digits, `-` and `_` \
                 (like `unit-tests`; it names the gate's log file), got {}",
                defaults::GATE_NAME_MAX_LEN,
                e.value.describe()
            ),
        );
        None
    }

    /// A command's argv (`run`): a non-empty list of strings, taken as written (no
    /// shell splits or expands it).
    pub(super) fn argv(&mut self, e: &Entry) -> Option<Vec<String>> {
        let key = &e.key;
        let items = match &e.value.value {
            Value::Seq(items) if !items.is_empty() => items,
            Value::Seq(_) | Value::Null => {
                self.error(
                    Self::at(e),
                    format!(
                        "`{key}` must not be empty: give at least the program to run, like {RUN_EXAMPLE}"
                    ),
                );
                return None;
            }
            other => {
                let mut message = format!(
                    "`{key}` must be a list of strings (the argv; no shell splits it, write \
                     [\"sh\", \"-c\", \"...\"] for one), like {RUN_EXAMPLE}, got {}",
                    e.value.describe()
                );
                if let Value::Str(s) = other
                    && !s.contains(['"', '\'', '\\', '|', '&', ';', '>', '<', '$'])
                    && !s.trim().is_empty()
                {
                    let words: Vec<String> =
                        s.split_whitespace().map(|w| format!("\"{w}\"")).collect();
                    message.push_str(&format!("; did you mean [{}]?", words.join(", ")));
                }
                self.error(Self::at(e), message);
                return None;
            }
        };
        let mut argv = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item.scalar_text() {
                Some(arg) if i == 0 && arg.trim().is_empty() => {
                    self.error(
                        item.pos,
                        format!("`{key}[0]` must name the program to run, got an empty string"),
                    );
                    ok = false;
                }
                Some(arg) => argv.push(arg),
                None => {
                    self.error(
                        item.pos,
                        format!("`{key}[{i}]` must be a string, got {}", item.describe()),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(argv)
    }

    fn report(&mut self, e: &Entry, path: &str, workdir: &Path) -> Option<GateReport> {
        let f = self.fields(&e.value, path, REPORT)?;
        let named: Vec<&Entry> = f
            .entries
            .iter()
            .copied()
            .filter(|e| REPORT_FORMATS.contains(&e.key.as_str()))
            .collect();
        let format = match named.as_slice() {
            [one] => *one,
            [] => {
                if !f.unknown.is_empty() {
                    // A misspelt format was reported as an unknown field.
                    return None;
                }
                self.error(
                    e.key_pos,
                    format!(
                        "`{path}` must name its format and file, like `{{ junit: target/junit.xml }}` \
                         (formats: {})",
                        REPORT_FORMATS.join(", ")
                    ),
                );
                return None;
            }
            [first, second, ..] => {
                self.error(
                    second.key_pos,
                    format!(
                        "`{path}` must name exactly one format, got `{}` and `{}`; \
                         give each report a gate of its own",
                        first.key, second.key
                    ),
                );
                return None;
            }
        };
        let kind = format.key.as_str();
        let mut ok = true;
        for (option, formats) in REPORT_OPTIONS {
            if let Some(o) = f.get(option)
                && !formats.contains(&kind)
            {
                let message = if kind == "gitleaks" && *option == "severity" {
                    "gitleaks has no `severity`: any finding fails the gate".to_owned()
                } else {
                    format!(
                        "`{option}` applies to {} reports, not to `{kind}`",
                        formats.join(" and ")
                    )
                };
                self.error(o.key_pos, message);
                ok = false;
            }
        }
        let source = self.report_source(format, workdir);
        let report = match kind {
            "junit" => {
                let min_tests =
                    self.optional(&f, "min_tests", defaults::JUNIT_MIN_TESTS, |c, e| {
                        c.whole(e, 0, u64::MAX)
                    });
                let allow_flaky = self.optional(&f, "allow_flaky", false, Self::boolean);
                GateReport::Junit {
                    source: source?,
                    min_tests: min_tests?,
                    allow_flaky: allow_flaky?,
                }
            }
            "lcov" | "cobertura" => {
                let min = self.require(
                    &f,
                    path,
                    format.key_pos,
                    "min_coverage",
                    "the least line coverage that passes, e.g. `80%`",
                );
                let min_coverage = min.and_then(|e| self.percent(e));
                let (source, min_coverage) = (source?, min_coverage?);
                if kind == "lcov" {
                    GateReport::Lcov {
                        source,
                        min_coverage,
                    }
                } else {
                    GateReport::Cobertura {
                        source,
                        min_coverage,
                    }
                }
            }
            "cargo_audit" | "npm_audit" => {
                let severity = self.optional(&f, "severity", defaults::AUDIT_SEVERITY, |c, e| {
                    c.keyword(e, AUDIT_SEVERITIES)
                });
                let (source, severity) = (source?, severity?);
                if kind == "cargo_audit" {
                    GateReport::CargoAudit { source, severity }
                } else {
                    GateReport::NpmAudit { source, severity }
                }
            }
            "sarif" => {
                let severity = self.optional(&f, "severity", defaults::SARIF_SEVERITY, |c, e| {
                    c.keyword(e, SARIF_LEVELS)
                });
                GateReport::Sarif {
                    source: source?,
                    severity: severity?,
                }
            }
            "gitleaks" => GateReport::Gitleaks { source: source? },
            _ => unreachable!("only formats are kept"),
        };
        ok.then_some(report)
    }

    /// `stdout`, or a file resolved against the gate's working directory.
    fn report_source(&mut self, e: &Entry, workdir: &Path) -> Option<ReportSource> {
        match e.value.scalar_text() {
            Some(p) if p.trim() == "stdout" => Some(ReportSource::Stdout),
            Some(p) if !p.trim().is_empty() => Some(ReportSource::File(clean_join(workdir, &p))),
            _ => {
                self.error(
                    Self::at(e),
                    format!(
                        "`{}` must be the report's file (relative to the gate's `workdir`) or \
                         `stdout`, got {}",
                        e.key,
                        e.value.describe()
                    ),
                );
                None
            }
        }
    }
}

/// `p` under `dir` (unless absolute), without `.` components.
fn clean_join(dir: &Path, p: &str) -> PathBuf {
    let joined = dir.join(p.trim());
    joined
        .components()
        .filter(|c| *c != std::path::Component::CurDir)
        .collect()
}

fn valid_gate_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= defaults::GATE_NAME_MAX_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}
