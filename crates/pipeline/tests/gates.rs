//! The gate runner with real processes in a temporary directory: parallel gates,
//! exit statuses, timeouts that kill the whole process group, and reports read
//! from files and from stdout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use cutover_pipeline::Exit;
use cutover_pipeline::gates::{self, GateContext, GateVerdict, GatesReport};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The gates of a `cutover.yaml` in `dir` whose `gates:` list is `items`.
fn gates_of(dir: &Path, items: &str) -> Vec<cutover_spec::Gate> {
    let yaml = format!(
        "app: shop\nplatform:\n  local:\n    command: [\"./shop\", \"${{PORT}}\"]\ngates:\n{items}"
    );
    let file = dir.join("cutover.yaml");
    cutover_spec::parse(&yaml, &file.to_string_lossy())
        .unwrap_or_else(|e| panic!("{e}"))
        .gates
}

async fn run(dir: &Path, items: &str) -> GatesReport {
    let gates = gates_of(dir, items);
    let run_dir = dir.join("run");
    gates::run(&gates, &GateContext { dir: &run_dir }).await
}

fn gate<'r>(report: &'r GatesReport, name: &str) -> &'r gates::GateResult {
    report
        .gates
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no gate {name} in {report:#?}"))
}

fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join("run/gates").join(format!("{name}.log"))).unwrap()
}

#[tokio::test]
async fn every_gate_runs_and_each_gets_its_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    let report = run(
        tmp.path(),
        r#"  - { name: ok, run: [sh, -c, "echo out; echo err >&2; echo $CUTOVER_GATE $GREETING"], env: { GREETING: hi } }
  - { name: fails, run: [sh, -c, "echo going down; exit 3"] }
  - { name: missing, run: [./no-such-program] }
  - { name: nowhere, run: ["true"], workdir: no-such-dir }
"#,
    )
    .await;
    assert!(!report.passed());
    let verdicts: Vec<(&str, GateVerdict)> = report
        .gates
        .iter()
        .map(|g| (g.name.as_str(), g.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("ok", GateVerdict::Passed),
            ("fails", GateVerdict::Failed),
            ("missing", GateVerdict::CouldNotStart),
            ("nowhere", GateVerdict::CouldNotStart),
        ]
    );
    assert_eq!(log(tmp.path(), "ok"), "out\nerr\nok hi\n");
    assert_eq!(gate(&report, "ok").log, PathBuf::from("gates/ok.log"));
    let fails = gate(&report, "fails");
    assert_eq!(fails.exit, Exit::Code { code: 3 });
    assert_eq!(
        fails.problems,
        ["`sh -c 'echo going down; exit 3'` ended with exit 3"]
    );
    assert!(
        gate(&report, "missing").problems[0].starts_with("cannot run `./no-such-program`: "),
        "{report:#?}"
    );
    assert!(
        gate(&report, "nowhere").problems[0].ends_with("no-such-dir does not exist"),
        "{report:#?}"
    );

    let md = report.to_markdown();
    assert!(
        md.starts_with(
            "# Quality gates: FAILED\n\n3 of 4 gates did not pass: `fails`, `missing`, `nowhere`.\n"
        ),
        "{md}"
    );
    assert!(md.contains("| `fails` | **failed** | exit 3 |"), "{md}");
    assert!(md.contains("## `fails`: failed\n\n- command: `sh -c 'echo going down; exit 3'`\n- **`sh -c 'echo going down; exit 3'` ended with exit 3**\n- output: `gates/fails.log`"), "{md}");
    // Failed gates come before the passed one.
    assert!(
        md.find("## `nowhere`").unwrap() < md.find("## `ok`").unwrap(),
        "{md}"
    );

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["gates"][1]["verdict"], "failed");
    assert_eq!(
        json["gates"][1]["exit"],
        serde_json::json!({"kind": "code", "code": 3})
    );
}

#[tokio::test]
async fn gates_run_at_the_same_time() {
    // Each gate waits for the other's mark: run one after the other, they would
    // both time out.
    let tmp = tempfile::tempdir().unwrap();
    let wait_for = |mine: &str, theirs: &str| {
        format!(
            "[sh, -c, \"touch {mine}; i=0; while [ ! -e {theirs} ]; do i=$((i+1)); [ $i -gt 200 ] && exit 1; sleep 0.05; done\"]"
        )
    };
    let report = run(
        tmp.path(),
        &format!(
            "  - {{ name: a, run: {}, timeout: 30s }}\n  - {{ name: b, run: {}, timeout: 30s }}\n",
            wait_for("a.mark", "b.mark"),
            wait_for("b.mark", "a.mark")
        ),
    )
    .await;
    assert!(report.passed(), "{report:#?}");
}

#[tokio::test]
async fn a_gate_past_its_timeout_is_killed_with_everything_it_started() {
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let report = run(
        tmp.path(),
        "  - { name: hangs, run: [sh, -c, \"sleep 300 & echo $! > child.pid; wait\"], timeout: 1s }\n",
    )
    .await;
    let hangs = gate(&report, "hangs");
    assert_eq!(hangs.verdict, GateVerdict::TimedOut);
    assert_eq!(hangs.exit, Exit::TimedOut);
    assert_eq!(
        hangs.problems,
        ["it ran past its timeout of 1s and was killed"]
    );
    // Well before `sleep 300` would have ended on its own.
    assert!(started.elapsed() < Duration::from_secs(120));
    let pid: i32 = std::fs::read_to_string(tmp.path().join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until_gone(pid);
    assert!(
        report
            .to_markdown()
            .contains("| `hangs` | **timed out** | timed out |")
    );
}

/// Waits, with a deadline, until `pid` is gone or a zombie (killed, not yet
/// reaped by init).
fn wait_until_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        let gone = match &stat {
            Err(_) => true,
            Ok(s) => s
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        };
        if gone {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} still runs: {stat:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn reports_decide_with_their_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("out")).unwrap();
    let data = data_dir();
    let data = data.display();
    let report = run(
        tmp.path(),
        &format!(
            r#"  - name: tests
    run: [cp, "{data}/nextest-junit.xml", junit.xml]
    report: {{ junit: junit.xml, allow_flaky: true }}
  - name: coverage
    run: [cp, "{data}/coverage-py.lcov", out/coverage.lcov]
    workdir: .
    report: {{ lcov: out/coverage.lcov, min_coverage: 80% }}
  - name: npm
    run: [sh, -c, "cat '{data}/npm-audit-vulnerable.json'; exit 1"]
    report: {{ npm_audit: stdout, severity: critical }}
  - name: cargo
    run: [sh, -c, "cat '{data}/cargo-audit-warnings.json'; exit 1"]
    report: {{ cargo_audit: stdout, severity: high }}
  - name: no-report
    run: ["true"]
    report: {{ sarif: never-written.sarif }}
"#
        ),
    )
    .await;
    let verdicts: Vec<(&str, GateVerdict)> = report
        .gates
        .iter()
        .map(|g| (g.name.as_str(), g.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("tests", GateVerdict::Failed),
            ("coverage", GateVerdict::Passed),
            ("npm", GateVerdict::Failed),
            // Exit 1 with only warnings: the audit's report decides, and passes.
            ("cargo", GateVerdict::Passed),
            ("no-report", GateVerdict::Failed),
        ]
    );
    assert_eq!(gate(&report, "tests").problems, ["1 test failed"]);
    assert_eq!(
        gate(&report, "npm").problems,
        ["1 advisory at or above `critical`"]
    );
    assert_eq!(
        gate(&report, "npm").stdout,
        Some(PathBuf::from("gates/npm.stdout"))
    );
    let no_report = &gate(&report, "no-report").problems[0];
    assert!(
        no_report.starts_with("its sarif report (")
            && no_report.contains("never-written.sarif does not exist"),
        "{no_report}"
    );

    let md = report.to_markdown();
    assert!(md.contains("| `tests` | **failed** | exit 0 |"), "{md}");
    assert!(
        md.contains("4 tests: 3 passed, 1 failed, 1 flaky |"),
        "{md}"
    );
    assert!(md.contains("  - `ledger tests::overflow_is_reported` (failed): thread 'tests::overflow_is_reported'"), "{md}");
    assert!(
        md.contains("- **1 advisory at or above `critical`**"),
        "{md}"
    );
    assert!(md.contains("  - `handlebars` "), "{md}");
}

#[tokio::test]
async fn a_report_left_by_an_earlier_run_is_not_judged() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("coverage.lcov");
    std::fs::copy(data_dir().join("coverage-py.lcov"), &old).unwrap();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let report = run(
        tmp.path(),
        "  - { name: stale, run: [\"true\"], report: { lcov: coverage.lcov, min_coverage: 10% } }\n",
    )
    .await;
    let stale = gate(&report, "stale");
    assert_eq!(stale.verdict, GateVerdict::Failed);
    assert!(
        stale.problems[0].ends_with(
            "coverage.lcov was not written by this run (it is older than the gate's start)"
        ),
        "{:?}",
        stale.problems
    );
}

#[tokio::test]
async fn no_gates_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let report = gates::run(&[], &GateContext { dir: tmp.path() }).await;
    assert!(report.passed());
    assert_eq!(
        report.to_markdown(),
        "# Quality gates: passed\n\n0 gates passed.\n"
    );
}
