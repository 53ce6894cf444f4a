use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::{Gate, GateReport, ReportSource, SarifLevel, Severity};

/// `MINIMAL` with `gates:` set to `items` (its first line is line 5), in
/// `deploy/cutover.yaml`.
fn gates(items: &str) -> Result<Vec<Gate>, Vec<String>> {
    let src = format!("{MINIMAL}gates:\n{items}");
    match parse(&src, "deploy/cutover.yaml") {
        Ok(c) => Ok(c.gates),
        Err(e) => Err(e.diagnostics.iter().map(ToString::to_string).collect()),
    }
}

#[test]
fn no_gates_by_default() {
    assert_eq!(ok(MINIMAL).gates, []);
    assert_eq!(gates(""), Ok(vec![]));
}

#[test]
fn a_gate_gets_its_defaults() {
    let got = gates("  - { name: tests, run: [cargo, test] }\n").unwrap();
    assert_eq!(
        got,
        [Gate {
            name: "tests".into(),
            run: vec!["cargo".into(), "test".into()],
            timeout: defaults::GATE_TIMEOUT,
            workdir: PathBuf::from("deploy"),
            env: BTreeMap::new(),
            report: None,
        }]
    );
    assert_eq!(defaults::GATE_TIMEOUT, secs(600));
}

#[test]
fn every_report_format() {
    let src = r#"  - name: unit
    run: [cargo, nextest, run, --profile, ci]
    timeout: 15m
    workdir: ../app
    env: { RUST_LOG: "${NOT_A_PLACEHOLDER}" }
    report: { junit: target/nextest/ci/junit.xml, min_tests: 10, allow_flaky: true }
  - { name: lcov, run: [x], report: { lcov: coverage.lcov, min_coverage: 80% } }
  - { name: cobertura, run: [x], report: { cobertura: /abs/coverage.xml, min_coverage: 72.5% } }
  - { name: cargo-audit, run: [cargo, audit, --json], report: { cargo_audit: stdout, severity: high } }
  - { name: npm_audit, run: [npm, audit, --json], report: { npm_audit: audit.json, severity: moderate } }
  - { name: semgrep, run: [semgrep, --sarif], report: { sarif: stdout, severity: error } }
  - { name: semgrep-defaults, run: [x], report: { sarif: out.sarif } }
  - { name: audit-defaults, run: [x], report: { cargo_audit: ./stdout } }
  - { name: secrets, run: [gitleaks, detect], report: { gitleaks: leaks.json } }
"#;
    let got = gates(src).unwrap_or_else(|e| panic!("{e:#?}"));
    let reports: Vec<GateReport> = got.iter().map(|g| g.report.clone().unwrap()).collect();
    let file = |p: &str| ReportSource::File(PathBuf::from(p));
    assert_eq!(
        reports,
        [
            GateReport::Junit {
                source: file("deploy/../app/target/nextest/ci/junit.xml"),
                min_tests: 10,
                allow_flaky: true,
            },
            GateReport::Lcov {
                source: file("deploy/coverage.lcov"),
                min_coverage: pct(80.0),
            },
            GateReport::Cobertura {
                source: file("/abs/coverage.xml"),
                min_coverage: pct(72.5),
            },
            GateReport::CargoAudit {
                source: ReportSource::Stdout,
                severity: Severity::High,
            },
            GateReport::NpmAudit {
                source: file("deploy/audit.json"),
                severity: Severity::Medium,
            },
            GateReport::Sarif {
                source: ReportSource::Stdout,
                severity: SarifLevel::Error,
            },
            GateReport::Sarif {
                source: file("deploy/out.sarif"),
                severity: SarifLevel::Warning,
            },
            GateReport::CargoAudit {
                source: file("deploy/stdout"),
                severity: Severity::Low,
            },
            GateReport::Gitleaks {
                source: file("deploy/leaks.json"),
            },
        ]
    );
    let unit = &got[0];
    assert_eq!(unit.timeout, secs(900));
    assert_eq!(unit.workdir, PathBuf::from("deploy/../app"));
    // A gate's environment is passed as written: there are no placeholders in it.
    assert_eq!(unit.env["RUST_LOG"], "${NOT_A_PLACEHOLDER}");
    assert_eq!(reports[0].format(), "junit");
    assert_eq!(reports[3].source(), &ReportSource::Stdout);
}

#[test]
fn gate_mistakes_point_at_the_place() {
    assert_eq!(
        gates("  - { name: Unit Tests, run: cargo test, timeout: 0s }\n").unwrap_err(),
        [
            "deploy/cutover.yaml:6:13: `name` must be 1-63 characters of lowercase letters, digits, \
             `-` and `_` (like `unit-tests`; it names the gate's log file), got `Unit Tests`",
            "deploy/cutover.yaml:6:30: `run` must be a list of strings (the argv; no shell splits \
             it, write [\"sh\", \"-c\", \"...\"] for one), like [\"cargo\", \"test\"], got `cargo \
             test`; did you mean [\"cargo\", \"test\"]?",
            "deploy/cutover.yaml:6:51: `timeout` must be longer than 0s, got `0s`",
        ]
    );
    assert_eq!(
        gates("  - { run: [] }\n  - tests\n").unwrap_err(),
        [
            "deploy/cutover.yaml:6:5: `gates[0]` is missing the required field `name` (what the \
             gate is called, e.g. `tests`)",
            "deploy/cutover.yaml:6:12: `run` must not be empty: give at least the program to run, \
             like [\"cargo\", \"test\"]",
            "deploy/cutover.yaml:7:5: `gates[1]` must be a mapping like `{ name: tests, run: \
             [cargo, test] }`, got `tests`",
        ]
    );
    assert_eq!(
        gates("  - { name: a, run: [x] }\n  - { name: a, run: [y] }\n").unwrap_err(),
        [
            "deploy/cutover.yaml:7:13: duplicate gate name `a`: it is already used on line 6; each \
          gate needs a name of its own (it names the gate's log file)"
        ]
    );
    assert_eq!(
        gates("  - { name: a, run: [x], comand: [y] }\n").unwrap_err(),
        [
            "deploy/cutover.yaml:6:26: unknown field `comand` in `gates[0]` (valid: name, run, \
          timeout, workdir, env, report)"
        ]
    );
}

#[test]
fn report_mistakes_say_what_would_be_valid() {
    let report = |r: &str| gates(&format!("  - name: a\n    run: [x]\n    report: {r}\n"));
    assert_eq!(
        report("{ min_tests: 3 }").unwrap_err(),
        [
            "deploy/cutover.yaml:8:5: `gates[0].report` must name its format and file, like \
          `{ junit: target/junit.xml }` (formats: junit, lcov, cobertura, cargo_audit, npm_audit, \
          sarif, gitleaks)"
        ]
    );
    assert_eq!(
        report("{ junit: a.xml, lcov: b.lcov }").unwrap_err(),
        [
            "deploy/cutover.yaml:8:29: `gates[0].report` must name exactly one format, got `junit` \
          and `lcov`; give each report a gate of its own"
        ]
    );
    assert_eq!(
        report("{ junitxml: a.xml }").unwrap_err(),
        [
            "deploy/cutover.yaml:8:15: unknown field `junitxml` in `gates[0].report`; did you mean \
          `junit`? (valid: junit, lcov, cobertura, cargo_audit, npm_audit, sarif, gitleaks, \
          min_tests, allow_flaky, min_coverage, severity)"
        ]
    );
    assert_eq!(
        report("{ lcov: a.lcov }").unwrap_err(),
        [
            "deploy/cutover.yaml:8:15: `gates[0].report` is missing the required field \
          `min_coverage` (the least line coverage that passes, e.g. `80%`)"
        ]
    );
    assert_eq!(
        report("{ lcov: a.lcov, min_coverage: 0.8, min_tests: 2 }").unwrap_err(),
        [
            "deploy/cutover.yaml:8:43: `min_coverage` must be a percentage like `10%`, got the \
             bare number `0.8`; write it as `0.8%`, or `80%` if you meant a fraction of 1",
            "deploy/cutover.yaml:8:48: `min_tests` applies to junit reports, not to `lcov`",
        ]
    );
    assert_eq!(
        report("{ gitleaks: l.json, severity: high }").unwrap_err(),
        ["deploy/cutover.yaml:8:33: gitleaks has no `severity`: any finding fails the gate"]
    );
    assert_eq!(
        report("{ npm_audit: stdout, severity: severe }").unwrap_err(),
        [
            "deploy/cutover.yaml:8:44: `severity` must be `low`, `medium`, `moderate`, `high` or \
          `critical`, got `severe`"
        ]
    );
    assert_eq!(
        report("{ sarif: stdout, severity: errors }").unwrap_err(),
        [
            "deploy/cutover.yaml:8:40: `severity` must be `note`, `warning` or `error`, got \
          `errors`; did you mean `error`?"
        ]
    );
    assert_eq!(
        report("{ junit: '' }").unwrap_err(),
        [
            "deploy/cutover.yaml:8:22: `junit` must be the report's file (relative to the gate's \
          `workdir`) or `stdout`, got an empty string"
        ]
    );
}
