//! Every report reader on real files of its format, written by the real tools
//! (or taken from the tools' own test fixtures); `tests/data/README.md` says where
//! each file came from.

use std::path::PathBuf;

use cutover_pipeline::reports::{
    self, ReportError, Summary, cargo_audit, cobertura, gitleaks, junit, lcov, npm_audit, sarif,
};
use cutover_spec::{GateReport, Percent, ReportSource, SarifLevel, Severity};

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pct(p: f64) -> Percent {
    Percent::from_percent(p).unwrap()
}

fn source() -> ReportSource {
    ReportSource::Stdout
}

/// `read` then `judge`, as a gate does.
fn judge(report: &GateReport, file: &str) -> (Summary, Vec<String>) {
    let summary = reports::read(report, &data(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let problems = reports::judge(report, &summary);
    (summary, problems)
}

// ---- JUnit ----

#[test]
fn junit_from_nextest_with_a_retried_failure_and_a_flaky_test() {
    let s = junit::read(&data("nextest-junit.xml")).unwrap();
    assert_eq!(
        (s.tests, s.passed, s.failed, s.errored, s.skipped, s.flaky),
        (4, 3, 1, 0, 0, 1)
    );
    assert_eq!(s.failures.len(), 1);
    assert_eq!(s.failures[0].name, "ledger tests::overflow_is_reported");
    assert_eq!(s.failures[0].outcome, junit::TestOutcome::Failed);
    assert!(
        s.failures[0]
            .message
            .as_deref()
            .unwrap()
            .contains("panicked at src/lib.rs:21:9"),
        "{s:?}"
    );
    assert_eq!(s.flaky_tests[0].name, "ledger tests::flaky_first_try");

    let strict = GateReport::Junit {
        source: source(),
        min_tests: 1,
        allow_flaky: false,
    };
    let (_, problems) = judge(&strict, "nextest-junit.xml");
    assert_eq!(
        problems,
        [
            "1 test failed",
            "1 flaky test failed, then passed on a rerun (set `allow_flaky: true` to accept that)",
        ]
    );
}

#[test]
fn junit_from_pytest_with_an_error_and_a_skip() {
    let s = junit::read(&data("pytest-junit.xml")).unwrap();
    assert_eq!(
        (s.tests, s.passed, s.failed, s.errored, s.skipped, s.flaky),
        (6, 3, 1, 1, 1, 0)
    );
    assert_eq!(s.ran(), 5);
    let names: Vec<&str> = s.failures.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "test_prices test_shipping_wrong",
            "test_prices test_broken_fixture"
        ]
    );
    let report = GateReport::Junit {
        source: source(),
        min_tests: 10,
        allow_flaky: true,
    };
    let (summary, problems) = judge(&report, "pytest-junit.xml");
    assert_eq!(
        problems,
        [
            "1 test failed",
            "1 test errored",
            "5 tests ran, fewer than the 10 required (`min_tests`)",
        ]
    );
    assert_eq!(
        summary.headline(),
        "6 tests: 3 passed, 1 failed, 1 errored, 1 skipped"
    );
}

#[test]
fn junit_from_surefire_marks_reruns_that_passed_as_flaky() {
    let s = junit::read(&data("surefire-flaky.xml")).unwrap();
    assert_eq!(
        (s.tests, s.passed, s.failed, s.errored, s.flaky),
        (2, 2, 0, 0, 1)
    );
    assert_eq!(s.flaky_tests[0].name, "org.acme.FlakyTest testFlaky");
    let allowed = GateReport::Junit {
        source: source(),
        min_tests: 1,
        allow_flaky: true,
    };
    assert_eq!(
        judge(&allowed, "surefire-flaky.xml").1,
        Vec::<String>::new()
    );
}

#[test]
fn junit_nested_suites_count_every_case_once() {
    let xml = br#"<?xml version="1.0"?>
<testsuites>
  <testsuite name="outer" tests="3">
    <testsuite name="inner">
      <testcase name="a"/>
      <testcase name="b"><skipped/></testcase>
    </testsuite>
    <testcase name="c"><error message="boom"/></testcase>
  </testsuite>
</testsuites>"#;
    let s = junit::read(xml).unwrap();
    assert_eq!((s.tests, s.passed, s.skipped, s.errored), (3, 1, 1, 1));
    assert_eq!(s.failures[0].message.as_deref(), Some("boom"));
}

#[test]
fn junit_errors_say_where() {
    let err = |xml: &[u8]| junit::read(xml).unwrap_err().message;
    assert_eq!(
        err(b"<coverage line-rate=\"1\"/>"),
        "JUnit XML line 1, column 1: the root element is <coverage>; a JUnit report starts \
         with <testsuites> or <testsuite>"
    );
    assert_eq!(
        err(b"<testsuite>\n  <testcase classname=\"x\"/>\n</testsuite>"),
        "JUnit XML line 2, column 3: <testcase> has no `name` attribute"
    );
    assert!(
        err(b"<testsuite>\n<testcase name=\"a\">\n</testsuite>")
            .starts_with("not valid JUnit XML: line 3"),
        "{}",
        err(b"<testsuite>\n<testcase name=\"a\">\n</testsuite>")
    );
    assert_eq!(err(b""), "not a JUnit report: the file has no XML element");
}

// ---- coverage ----

#[test]
fn lcov_from_coverage_py() {
    let s = lcov::read(&data("coverage-py.lcov")).unwrap();
    assert_eq!((s.lines_valid, s.lines_covered, s.files), (28, 24, 3));
    assert!((s.line_rate - 24.0 / 28.0).abs() < 1e-12);
    let lowest: Vec<(&str, u64, u64)> = s
        .lowest
        .iter()
        .map(|f| (f.file.as_str(), f.lines_covered, f.lines_valid))
        .collect();
    assert_eq!(
        lowest,
        [("shop/prices.py", 11, 13), ("test_prices.py", 13, 15)]
    );

    let report = |min| GateReport::Lcov {
        source: source(),
        min_coverage: pct(min),
    };
    assert_eq!(
        judge(&report(85.0), "coverage-py.lcov").1,
        Vec::<String>::new()
    );
    assert_eq!(
        judge(&report(90.0), "coverage-py.lcov").1,
        ["line coverage 85.7% is below the 90% required (`min_coverage`)"]
    );
}

#[test]
fn lcov_without_totals_counts_its_da_lines() {
    let s = lcov::read(b"TN:\nSF:src/a.rs\nDA:1,1\nDA:2,0\nDA:3,5\nend_of_record\n").unwrap();
    assert_eq!((s.lines_valid, s.lines_covered), (3, 2));
}

#[test]
fn lcov_errors_say_which_line() {
    let err = |text: &[u8]| lcov::read(text).unwrap_err().message;
    assert_eq!(
        err(b"SF:a.rs\nDA:one,1\nend_of_record\n"),
        "LCOV line 2: `DA:one,1`: expected `DA:<line>,<hits>`"
    );
    assert_eq!(
        err(b"DA:1,1\n"),
        "LCOV line 1: `DA:1,1`: outside a record: an `SF:` line must come first"
    );
    assert_eq!(
        err(b"<?xml version=\"1.0\"?>\n"),
        "not an LCOV tracefile: it has no `SF:` record"
    );
}

#[test]
fn cobertura_from_coverage_py() {
    let s = cobertura::read(&data("coverage-py-cobertura.xml")).unwrap();
    assert_eq!((s.lines_valid, s.lines_covered, s.files), (28, 24, 3));
    assert_eq!(s.lowest[0].file, "shop/prices.py");
    assert_eq!(
        (s.lowest[0].lines_covered, s.lowest[0].lines_valid),
        (11, 13)
    );
    let report = GateReport::Cobertura {
        source: source(),
        min_coverage: pct(86.0),
    };
    let (summary, problems) = judge(&report, "coverage-py-cobertura.xml");
    assert_eq!(
        problems,
        ["line coverage 85.7% is below the 86% required (`min_coverage`)"]
    );
    assert_eq!(
        summary.headline(),
        "85.7% line coverage (24 of 28 lines, 3 files)"
    );
}

#[test]
fn cobertura_with_only_a_line_rate() {
    let s = cobertura::read(br#"<coverage line-rate="0.5" branch-rate="0"><packages/></coverage>"#)
        .unwrap();
    assert_eq!(s.line_rate, 0.5);
    assert_eq!(
        cobertura::read(b"<coverage line-rate=\"most\"/>")
            .unwrap_err()
            .message,
        "Cobertura XML line 1, column 1: <coverage> has `line-rate=\"most\"`, which is not a number"
    );
}

// ---- audits ----

#[test]
fn cargo_audit_severities_come_from_the_cvss_vectors() {
    let s = cargo_audit::read(&data("cargo-audit-vulnerable.json")).unwrap();
    assert_eq!(s.vulnerabilities, 6);
    assert_eq!(
        s.by_severity,
        [(Severity::Medium, 2), (Severity::Critical, 4)].into()
    );
    assert_eq!(
        s.warnings,
        [("unsound".to_owned(), 2), ("yanked".to_owned(), 1)].into()
    );
    let first = &s.findings[0];
    assert_eq!(first.severity, Some(Severity::Critical));
    let time = s.findings.iter().find(|f| f.package == "time").unwrap();
    assert_eq!(
        (time.id.as_str(), time.version.as_str(), time.cvss_score),
        ("RUSTSEC-2020-0071", "0.1.40", Some(6.2))
    );
    assert_eq!(time.severity, Some(Severity::Medium));

    let at = |severity| GateReport::CargoAudit {
        source: source(),
        severity,
    };
    assert_eq!(
        judge(&at(Severity::High), "cargo-audit-vulnerable.json").1,
        ["4 vulnerabilities at or above `high` (or of unknown severity)"]
    );
    assert_eq!(
        judge(&at(Severity::Low), "cargo-audit-vulnerable.json").1,
        ["6 vulnerabilities at or above `low` (or of unknown severity)"]
    );
    // Warnings alone never fail.
    let (summary, problems) = judge(&at(Severity::Low), "cargo-audit-warnings.json");
    assert_eq!(problems, Vec::<String>::new());
    assert_eq!(summary.headline(), "no vulnerabilities, 1 warning");
    assert_eq!(
        judge(&at(Severity::Low), "cargo-audit-clean.json").1,
        Vec::<String>::new()
    );
}

#[test]
fn cargo_audit_without_a_cvss_score_fails_at_any_threshold() {
    let json = br#"{"vulnerabilities":{"found":true,"count":1,"list":[{"advisory":{"id":"RUSTSEC-2099-0001","title":"t","cvss":null},"package":{"name":"p","version":"1.0.0"}}]},"warnings":{}}"#;
    let s = cargo_audit::read(json).unwrap();
    assert_eq!(s.findings[0].severity, None);
    let report = GateReport::CargoAudit {
        source: source(),
        severity: Severity::Critical,
    };
    assert_eq!(
        reports::judge(&report, &Summary::CargoAudit(s)),
        ["1 vulnerability at or above `critical` (or of unknown severity)"]
    );
    let err = cargo_audit::read(b"{\"vulnerabilities\": {}}").unwrap_err();
    assert_eq!(
        err.message,
        "not a valid `cargo audit --json` report: missing field `list` at line 1 column 22"
    );
}

#[test]
fn npm_audit_judges_advisories_by_severity() {
    let s = npm_audit::read(&data("npm-audit-vulnerable.json")).unwrap();
    assert_eq!(s.advisories, 13);
    assert_eq!(
        s.by_severity,
        [
            (Severity::Low, 3),
            (Severity::Medium, 1),
            (Severity::High, 8),
            (Severity::Critical, 1)
        ]
        .into()
    );
    assert_eq!(s.packages_by_severity["total"], 40);
    assert_eq!(s.packages_by_severity["critical"], 3);
    assert_eq!(s.findings[0].severity, Some(Severity::Critical));
    assert_eq!(s.findings[0].package, "handlebars");

    let at = |severity| GateReport::NpmAudit {
        source: source(),
        severity,
    };
    assert_eq!(
        judge(&at(Severity::Critical), "npm-audit-vulnerable.json").1,
        ["1 advisory at or above `critical`"]
    );
    assert_eq!(
        judge(&at(Severity::Medium), "npm-audit-vulnerable.json").1,
        ["10 advisories at or above `medium`"]
    );
    let (summary, problems) = judge(&at(Severity::Low), "npm-audit-clean.json");
    assert_eq!(problems, Vec::<String>::new());
    assert_eq!(summary.headline(), "no vulnerabilities");
}

#[test]
fn npm_audit_refuses_what_it_cannot_judge() {
    let err = |json: &[u8]| npm_audit::read(json).unwrap_err().message;
    assert_eq!(
        err(br#"{"error":{"code":"ENOLOCK","summary":"This command requires an existing lockfile.","detail":""}}"#),
        "`npm audit` reported an error instead of a report: This command requires an existing lockfile."
    );
    assert_eq!(
        err(br#"{"actions":[],"advisories":{},"metadata":{"vulnerabilities":{}}}"#),
        "not an `npm audit --json` report of npm 7 or later: it has npm 6's older format \
         (`advisories`); cutover reads `\"auditReportVersion\": 2`"
    );
}

// ---- SARIF ----

#[test]
fn sarif_from_semgrep_takes_levels_from_the_rules() {
    let s = sarif::read(&data("semgrep.sarif")).unwrap();
    assert_eq!(s.tools, ["Semgrep OSS"]);
    assert_eq!(s.results, 4);
    assert_eq!(
        s.by_level,
        [
            (SarifLevel::Note, 1),
            (SarifLevel::Warning, 1),
            (SarifLevel::Error, 2)
        ]
        .into()
    );
    let places: Vec<(String, SarifLevel)> = s
        .findings
        .iter()
        .map(|f| {
            (
                format!(
                    "{}:{} {}",
                    f.file.as_deref().unwrap(),
                    f.line.unwrap(),
                    f.rule
                ),
                f.level.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        places,
        [
            (
                "app.py:6 subprocess-shell-true".to_owned(),
                SarifLevel::Error
            ),
            ("app.py:15 eval-use".to_owned(), SarifLevel::Error),
            (
                "app.py:10 insecure-hash-md5".to_owned(),
                SarifLevel::Warning
            ),
            ("app.py:14 useless-eqeq".to_owned(), SarifLevel::Note),
        ]
    );
    assert_eq!(s.findings[0].security_severity, Some(8.6));

    let at = |severity| GateReport::Sarif {
        source: source(),
        severity,
    };
    assert_eq!(
        judge(&at(SarifLevel::Warning), "semgrep.sarif").1,
        ["3 results at level `warning` or above"]
    );
    assert_eq!(
        judge(&at(SarifLevel::Error), "semgrep.sarif").1,
        ["2 results at level `error` or above"]
    );
    assert_eq!(
        judge(&at(SarifLevel::Note), "semgrep-clean.sarif").1,
        Vec::<String>::new()
    );
}

#[test]
fn sarif_suppressed_results_and_other_kinds_do_not_fail() {
    let log = br#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"t","rules":[{"id":"r","defaultConfiguration":{"level":"error"}}]}},
      "results":[
        {"ruleId":"r","message":{"text":"kept"},"suppressions":[{"kind":"inSource"}]},
        {"ruleId":"r","kind":"pass","message":{"text":"passed"}},
        {"ruleId":"r","message":{"text":"real"},"locations":[{"physicalLocation":{"artifactLocation":{"uri":"src/a.rs"},"region":{"startLine":3}}}]}
      ]}]}"#;
    let s = sarif::read(log).unwrap();
    assert_eq!((s.results, s.suppressed), (2, 1));
    assert_eq!(s.by_level, [(SarifLevel::Error, 1)].into());
    assert_eq!(s.findings[0].file.as_deref(), Some("src/a.rs"));
    let err = sarif::read(br#"{"version":"2.0.0","runs":[]}"#).unwrap_err();
    assert_eq!(
        err.message,
        "SARIF version \"2.0.0\": cutover reads SARIF 2.1.0"
    );
    let err = sarif::read(br#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"t"}},"results":[{"level":"fatal","message":{"text":"x"}}]}]}"#).unwrap_err();
    assert_eq!(
        err.message,
        "SARIF: `runs[0].results[0]` has level \"fatal\" (SARIF's levels are none, note, warning and error)"
    );
}

// ---- gitleaks ----

#[test]
fn gitleaks_any_leak_fails_and_no_secret_is_kept() {
    let report = GateReport::Gitleaks { source: source() };
    let (summary, problems) = judge(&report, "gitleaks-report.json");
    assert_eq!(problems, ["1 leaked secret found"]);
    let Summary::Gitleaks(s) = &summary else {
        panic!("{summary:?}")
    };
    assert_eq!(
        (
            s.findings[0].file.as_str(),
            s.findings[0].line,
            s.findings[0].rule.as_str()
        ),
        ("auth.py", 1, "test-rule")
    );
    // Neither the secret nor the line it was on reaches the receipt, in JSON or Markdown.
    let everything = format!(
        "{}\n{}",
        serde_json::to_string(&summary).unwrap(),
        summary.details().join("\n")
    );
    assert!(!everything.contains("a secret"), "{everything}");
    assert!(
        !everything.contains("line containing secret"),
        "{everything}"
    );
    assert!(everything.contains("auth.py:1"), "{everything}");

    assert_eq!(
        judge(&report, "gitleaks-empty.json").1,
        Vec::<String>::new()
    );
    let err: ReportError = gitleaks::read(b"{\"leaks\": 0}").unwrap_err();
    assert_eq!(
        err.message,
        "not a valid gitleaks JSON report: invalid type: map, expected a sequence at line 1 column 0"
    );
}
