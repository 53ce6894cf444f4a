//! The smoke runner against a real HTTP server on 127.0.0.1 (an axum app started
//! by each test on a port the OS picks), and commands that are told its URL.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use cutover_pipeline::Exit;
use cutover_pipeline::smoke::{self, SmokeContext, SmokeDetail, SmokeReport};

/// The environment under test: `/ready`, a JSON status, an echo of a header, an
/// order endpoint and a slow page.
async fn start_server() -> String {
    let app = Router::new()
        .route("/ready", get(|| async { "ok" }))
        .route(
            "/api/status",
            get(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"status":"degraded","version":2,"data":{"items":[{"id":7,"name":"tea"}]},"maintenance":false}"#,
                )
            }),
        )
        .route(
            "/whoami",
            get(|headers: HeaderMap| async move {
                match headers.get("x-smoke-token") {
                    Some(token) if token == "s3cret" => (StatusCode::OK, "hello, smoke test"),
                    _ => (StatusCode::UNAUTHORIZED, "who are you?"),
                }
            }),
        )
        .route("/orders", post(|| async { (StatusCode::CREATED, "order created") }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "finally"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// The smoke tests of a `cutover.yaml` in `dir` whose `smoke:` list is `items`.
fn smoke_of(dir: &Path, items: &str) -> Vec<cutover_spec::SmokeTest> {
    let yaml = format!(
        "app: shop\nplatform:\n  local:\n    command: [\"./shop\", \"${{PORT}}\"]\nsmoke:\n{items}"
    );
    cutover_spec::parse(&yaml, &dir.join("cutover.yaml").to_string_lossy())
        .unwrap_or_else(|e| panic!("{e}"))
        .smoke
}

async fn run(dir: &Path, url: &str, items: &str) -> SmokeReport {
    let tests = smoke_of(dir, items);
    let run_dir = dir.join("run");
    smoke::run(
        &tests,
        &SmokeContext {
            url,
            env: "staging",
            dir: &run_dir,
        },
    )
    .await
}

fn problems<'r>(report: &'r SmokeReport, name: &str) -> &'r [String] {
    &report
        .tests
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no test {name} in {report:#?}"))
        .problems
}

#[tokio::test]
async fn http_checks_pass_and_fail_on_what_they_check() {
    let tmp = tempfile::tempdir().unwrap();
    let url = start_server().await;
    let report = run(
        tmp.path(),
        &url,
        r#"  - { path: /ready, body_contains: ok }
  - path: /api/status
    json: { version: 2.0, "data.items.0.id": 7, maintenance: false, "data.items.0.name": tea }
  - path: /api/status
    json: { status: ok, "data.items.1.id": 8, "data.items.0.name.first": x, version: "2" }
  - { path: /whoami, headers: { X-Smoke-Token: s3cret }, body_contains: hello }
  - { method: POST, path: /orders, status: 201 }
  - { path: /whoami, status: 200 }
  - { path: /ready, json: { status: ok } }
  - { path: /slow, max_latency: 100ms }
"#,
    )
    .await;
    let verdicts: Vec<(&str, bool)> = report
        .tests
        .iter()
        .map(|t| (t.name.as_str(), t.passed))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("GET /ready", true),
            ("GET /api/status", true),
            ("GET /api/status", false),
            ("GET /whoami", true),
            ("POST /orders", true),
            ("GET /whoami", false),
            ("GET /ready", false),
            ("GET /slow", false),
        ]
    );
    assert_eq!(
        report.tests[2].problems,
        [
            "JSON field `data.items.0.name.first` is missing (`data.items.0.name` is a string)",
            "JSON field `data.items.1.id` is missing (`data.items` is a list)",
            "JSON field `status` is \"degraded\", expected \"ok\"",
            "JSON field `version` is 2, expected \"2\"",
        ]
    );
    assert_eq!(report.tests[5].problems, ["status 401, expected 200"]);
    assert_eq!(
        report.tests[6].problems,
        [
            "the body is not JSON (expected value at line 1 column 1), so its fields cannot be checked: ok"
        ]
    );
    let slow = &report.tests[7].problems;
    assert!(
        slow.len() == 1 && slow[0].ends_with("ms, more than the 100 ms allowed"),
        "{slow:?}"
    );
    assert_eq!(
        report.tests[0].detail,
        SmokeDetail::Http {
            url: format!("{url}/ready"),
            status: Some(200)
        }
    );
    assert!(!report.passed());

    let md = report.to_markdown();
    assert!(
        md.starts_with(&format!(
            "# Smoke tests on staging: FAILED\n\n8 tests against {url}: 4 passed, 4 failed.\n"
        )),
        "{md}"
    );
    assert!(
        md.contains("| `GET /whoami` | **failed** | status 401 |"),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "## `GET /api/status`: failed\n\n- request: {url}/api/status\n- **JSON field `data.items.0.name.first` is missing"
        )),
        "{md}"
    );
    assert!(
        md.contains("- **JSON field `status` is \"degraded\", expected \"ok\"**"),
        "{md}"
    );
}

#[tokio::test]
async fn a_closed_port_is_no_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{closed}");
    let report = run(tmp.path(), &url, "  - { path: /ready }\n").await;
    let test = &report.tests[0];
    assert!(!test.passed);
    assert_eq!(
        test.detail,
        SmokeDetail::Http {
            url: format!("{url}/ready"),
            status: None
        }
    );
    assert!(
        test.problems[0].starts_with(&format!("no answer from {url}/ready: ")),
        "{:?}",
        test.problems
    );
    assert!(
        report
            .to_markdown()
            .contains("| `GET /ready` | **failed** | no answer |")
    );
}

fn have_python() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn commands_get_the_environment_url_and_name() {
    if !have_python() {
        eprintln!(
            "SKIPPED: commands_get_the_environment_url_and_name needs python3 (.ci/run installs it)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let url = start_server().await;
    // A user's own smoke suite: fetches the environment's URL it is given.
    let suite = r#"
import os, sys, urllib.request
url, env = os.environ["CUTOVER_URL"], os.environ["CUTOVER_ENV"]
body = urllib.request.urlopen(url + "/ready").read().decode()
print(f"{env}: /ready said {body}")
sys.exit(0 if body == "ok" and env == "staging" else 1)
"#;
    std::fs::write(tmp.path().join("suite.py"), suite).unwrap();
    let report = run(
        tmp.path(),
        &url,
        r#"  - { name: "my suite", run: [python3, suite.py] }
  - { run: [sh, -c, "echo nothing at $CUTOVER_URL/missing; exit 2"] }
  - { name: forever, run: [sleep, "300"], timeout: 1s }
"#,
    )
    .await;
    let verdicts: Vec<(&str, bool)> = report
        .tests
        .iter()
        .map(|t| (t.name.as_str(), t.passed))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("my suite", true),
            ("sh -c echo nothing at $CUTOVER_URL/missing; exit 2", false),
            ("forever", false),
        ]
    );
    let log =
        |name: &str| std::fs::read_to_string(tmp.path().join("run/smoke").join(name)).unwrap();
    assert_eq!(log("1-my-suite.log"), "staging: /ready said ok\n");
    assert_eq!(
        log("2-sh-c-echo-nothing-at-cutover_url-missing.log"),
        format!("nothing at {url}/missing\n")
    );
    assert_eq!(
        problems(
            &report,
            "sh -c echo nothing at $CUTOVER_URL/missing; exit 2"
        ),
        ["`sh -c 'echo nothing at $CUTOVER_URL/missing; exit 2'` ended with exit 2"]
    );
    assert_eq!(
        problems(&report, "forever"),
        ["it ran past its timeout of 1s and was killed"]
    );
    let SmokeDetail::Command { exit, log, .. } = &report.tests[0].detail else {
        panic!("{report:#?}")
    };
    assert_eq!(
        (exit, log),
        (
            &Exit::Code { code: 0 },
            &PathBuf::from("smoke/1-my-suite.log")
        )
    );

    let md = report.to_markdown();
    assert!(
        md.contains("| `forever` | **failed** | timed out |"),
        "{md}"
    );
    assert!(
        md.contains("## `forever`: failed\n\n- command: `sleep 300`\n- output: `smoke/3-forever.log`\n- **it ran past its timeout of 1s and was killed**"),
        "{md}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["tests"][0]["detail"]["kind"], "command");
    assert_eq!(json["env"], "staging");
}

#[tokio::test]
async fn no_smoke_tests_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let report = smoke::run(
        &[],
        &SmokeContext {
            url: "http://127.0.0.1:9",
            env: "staging",
            dir: tmp.path(),
        },
    )
    .await;
    assert!(report.passed());
    assert_eq!(
        report.to_markdown(),
        "# Smoke tests on staging: passed\n\n0 tests against http://127.0.0.1:9: 0 passed, 0 failed.\n"
    );
}
