//! The daemon's HTTP API as any client sees it: its token, what it refuses and why.

use std::os::unix::fs::PermissionsExt as _;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Env, Faults};

/// The status, the `WWW-Authenticate` header and the JSON body of an answer.
async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Option<String>, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_made_on_first_start_with_mode_0600_and_kept_across_restarts() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    let path = env.state_dir().join("token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{path:?} has mode {mode:o}");
    let token = env.token();
    assert!(
        token.len() >= 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    env.stop_daemon().await;
    env.serve().await;
    assert_eq!(env.token(), token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_without_the_right_token_is_refused_and_changes_nothing() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    let deploy = || {
        env.api(Method::POST, "/api/v1/deploy")
            .json(&json!({"version": "v1"}))
    };

    let (status, challenge, body) = answer(deploy()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "unauthorized");
    assert!(challenge.unwrap().starts_with("Bearer"));
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("token"), "{message}");
    assert!(message.contains(".cutover/token"), "{message}");

    let (status, challenge, body) = answer(deploy().bearer_auth("0".repeat(64))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "unauthorized");
    assert!(challenge.unwrap().contains("invalid_token"));
    for verb in ["promote", "abort", "rollback"] {
        let (status, _, body) = answer(
            env.api(Method::POST, &format!("/api/v1/{verb}"))
                .bearer_auth("wrong"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{verb}: {body}");
    }
    // Nothing started; reads stay open on loopback.
    let (status, _, runs) = answer(env.api(Method::GET, "/api/v1/runs")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(runs, json!([]));

    let (status, _, started) = answer(deploy().bearer_auth(env.token())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["version"], "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_read_auth_reads_need_the_token_too_and_the_cli_sends_it() {
    let mut env = Env::new(Faults::none()).with_sections("api:\n  read_auth: true\n");
    env.serve().await;
    for path in [
        "/api/v1/status",
        "/api/v1/runs",
        "/api/v1/config",
        "/api/v1/apps",
        "/api/v1/events",
        "/metrics",
    ] {
        let (status, challenge, body) = answer(env.api(Method::GET, path)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert!(challenge.is_some(), "{path}");
        let response = env
            .api(Method::GET, path)
            .bearer_auth(env.token())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    // The CLI finds the token in the state directory, or takes CUTOVER_TOKEN.
    env.deploy("v1").await.code(0);
    env.cutover(&["status"]).await.code(0);
    let token = env.token();
    env.cutover_with(&["history"], &[("CUTOVER_TOKEN", &token)])
        .await
        .code(0);
    let refused = env
        .cutover_with(&["status"], &[("CUTOVER_TOKEN", "not-the-token")])
        .await;
    refused.code(2);
    assert!(
        refused.stderr.contains("CUTOVER_TOKEN") && refused.stderr.contains("token"),
        "{}",
        refused.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_read_naming_another_host_is_refused_as_dns_rebinding() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    let rebound = || {
        env.api(Method::GET, "/api/v1/runs")
            .header("host", "evil.example:80")
    };
    let (status, _, body) = answer(rebound()).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{body}");
    assert_eq!(body["code"], "host_not_allowed");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("127.0.0.1") && message.contains("localhost"),
        "{message}"
    );
    let (status, _, body) = answer(rebound().bearer_auth(env.token())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = answer(
        env.api(Method::GET, "/api/v1/runs")
            .header("host", "localhost"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The head of the first request a listener on loopback is sent, answered with
/// a 503 so the CLI ends.
async fn first_request_head(listener: tokio::net::TcpListener) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the CLI closed the connection mid-request");
        head.extend_from_slice(&chunk[..n]);
    }
    let body = r#"{"error":"not a daemon","code":"internal"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(answer.as_bytes()).await.unwrap();
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_api_naming_another_host_the_cli_sends_only_cutover_token() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = elsewhere.local_addr().unwrap().to_string();
    let seen = tokio::spawn(first_request_head(elsewhere));
    env.cutover(&["status", "--api", &address]).await;
    let head = seen.await.unwrap();
    assert!(!head.contains("authorization"), "{head}");

    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = elsewhere.local_addr().unwrap().to_string();
    let seen = tokio::spawn(first_request_head(elsewhere));
    env.cutover_with(
        &["status", "--api", &address],
        &[("CUTOVER_TOKEN", "given")],
    )
    .await;
    let head = seen.await.unwrap();
    assert!(head.contains("authorization: bearer given"), "{head}");

    // The local daemon's own address still gets its token file: a change goes
    // past the guard (to "nothing to promote", not 401).
    let local = env.api_url("");
    let out = env.cutover(&["promote", "--api", &local]).await;
    out.code(2);
    assert!(!out.stderr.contains("token"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_refuses_to_listen_beyond_loopback_with_open_reads() {
    let env = Env::new(Faults::none());
    let out = env.cutover(&["serve", "--api-listen", "0.0.0.0:0"]).await;
    out.code(2);
    assert!(out.stderr.contains("read_auth"), "{}", out.stderr);
    assert!(out.stderr.contains("loopback"), "{}", out.stderr);
    assert!(!env.state_dir().join("daemon.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_body_field_gets_422_naming_it_and_changes_nothing() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    let post = |path: &str, body: &str| {
        env.api(Method::POST, path)
            .bearer_auth(env.token())
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    for (path, body, field, code) in [
        (
            "/api/v1/deploy",
            r#"{"version": 2}"#,
            "version",
            "invalid_field",
        ),
        ("/api/v1/deploy", r#"{}"#, "version", "invalid_field"),
        (
            "/api/v1/deploy",
            r#"{"version": "v1", "force": true}"#,
            "force",
            "invalid_field",
        ),
        (
            "/api/v1/deploy",
            r#"{"version": "v 1"}"#,
            "version",
            "invalid_version",
        ),
        (
            "/api/v1/rollback",
            r#"{"to": ["v1"]}"#,
            "to",
            "invalid_field",
        ),
        (
            "/api/v1/rollback",
            r#"{"to": "../v1"}"#,
            "to",
            "invalid_field",
        ),
    ] {
        let (status, _, refusal) = answer(post(path, body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {refusal}"
        );
        assert_eq!(refusal["code"], code, "{body}: {refusal}");
        assert_eq!(refusal["field"], field, "{body}: {refusal}");
        let message = refusal["error"].as_str().unwrap();
        assert!(message.contains(&format!("`{field}`")), "{message}");
    }
    let (status, _, refusal) = answer(post("/api/v1/deploy", "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refusal}");
    assert_eq!(refusal["code"], "bad_body");
    let (_, _, runs) = answer(env.api(Method::GET, "/api/v1/runs")).await;
    assert_eq!(runs, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_its_runs_measurements_and_receipts() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    env.deploy("v2").await.code(0);
    load.stop().await;

    let served = env.api_get("/api/v1/openapi.json").await;
    let committed: Value =
        serde_json::from_str(include_str!("../../../../docs/openapi.json")).unwrap();
    assert_eq!(served, committed);

    let apps = env.api_get("/api/v1/apps").await;
    assert_eq!(
        apps,
        json!([{"app": "e2e", "live": "v2", "previous": ["v1"], "active_run": null}])
    );
    let runs = env.api_get("/api/v1/runs").await;
    let id = runs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(runs[0]["version"], "v2");

    let measurements = env
        .api_get(&format!("/api/v1/runs/{id}/measurements"))
        .await;
    let windows = measurements.as_array().unwrap();
    assert!(!windows.is_empty(), "{measurements}");
    assert!(
        windows
            .iter()
            .all(|m| m["report"].is_object() && m["at_ms"].is_i64())
    );
    let detail = env.api_get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(detail["measurements"], measurements);

    // Receipts are written as the run ends.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let receipts = loop {
        let receipts = env.api_get(&format!("/api/v1/runs/{id}/receipts")).await;
        if receipts
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "run.json")
        {
            break receipts;
        }
        assert!(tokio::time::Instant::now() < deadline, "{receipts}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let names: Vec<&str> = receipts
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for name in [
        "deployment-log.md",
        "canary-analysis.md",
        "config.yaml",
        "run.json",
    ] {
        assert!(names.contains(&name), "{receipts}");
    }
    for (name, content_type) in [
        ("deployment-log.md", "text/markdown; charset=utf-8"),
        ("run.json", "application/json"),
        ("config.yaml", "application/yaml"),
    ] {
        let listed = receipts
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap();
        assert_eq!(listed["content_type"], content_type);
        let response = env
            .api(Method::GET, &format!("/api/v1/runs/{id}/receipts/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(response.headers()["content-type"], content_type);
        let body = response.bytes().await.unwrap();
        assert_eq!(Some(body.len() as u64), listed["bytes"].as_u64(), "{name}");
        let on_disk = std::fs::read(env.state_dir().join("runs").join(&id).join(name)).unwrap();
        assert_eq!(body, on_disk, "{name}");
    }

    // Only names in the list; nothing outside the run's folder.
    for path in [
        format!("/api/v1/runs/{id}/receipts/..%2F..%2Fcutover.db"),
        format!("/api/v1/runs/{id}/receipts/..%2F..%2Ftoken"),
        format!("/api/v1/runs/{id}/receipts/nothing.md"),
    ] {
        let (status, _, body) = answer(env.api(Method::GET, &path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["code"], "no_such_receipt", "{path}");
    }
    for path in [
        "/api/v1/runs/..%2F..%2F/receipts/token",
        "/api/v1/runs/no-such-run/receipts",
        "/api/v1/runs/no-such-run/measurements",
    ] {
        let (status, _, body) = answer(env.api(Method::GET, path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["code"], "no_such_run", "{path}");
    }
}

/// The value of the one sample of `text` whose line starts with `series`.
fn sample(text: &str, series: &str) -> f64 {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .collect();
    assert_eq!(lines.len(), 1, "{series} in:\n{text}");
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_in_prometheus_text_format_pass_promtool() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    env.deploy("v2").await.code(0);
    let tally = load.stop().await;

    let response = env.api(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let app = r#"app="e2e""#;
    assert_eq!(
        sample(
            &text,
            &format!(r#"cutover_runs_total{{{app},kind="canary",outcome="promoted"}}"#)
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"cutover_runs_total{{{app},kind="initial",outcome="promoted"}}"#)
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"cutover_run_duration_seconds_count{{{app},kind="canary",outcome="promoted"}}"#
            )
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"cutover_weight_ratio{{{app},version="v2",role="stable"}}"#)
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"cutover_instances{{{app},version="v2",role="stable",state="ready"}}"#)
        ),
        2.0
    );
    let ready = text
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                r#"cutover_instance_ready{{{app},version="v2",role="stable",address="127.0.0.1:"#
            ))
        })
        .count();
    assert_eq!(ready, 2, "{text}");
    assert!(
        sample(
            &text,
            &format!(r#"cutover_step_duration_seconds_count{{{app},stage="step"}}"#)
        ) >= 2.0
    );
    // Every request of the load went through the proxy and is counted there.
    let canary_2xx = sample(
        &text,
        &format!(r#"cutover_proxy_requests_total{{{app},version="v2",role="canary",class="2xx"}}"#),
    );
    assert!(canary_2xx > 0.0, "{text}");
    let served: u64 = tally.values().map(|t| t.0).sum();
    let counted: f64 = text
        .lines()
        .filter(|l| l.starts_with("cutover_proxy_requests_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(counted >= served as f64, "{counted} < {served}");
    let count = sample(
        &text,
        &format!(r#"cutover_proxy_latency_seconds_count{{{app},version="v2",role="canary"}}"#),
    );
    let inf = sample(
        &text,
        &format!(
            r#"cutover_proxy_latency_seconds_bucket{{{app},version="v2",role="canary",le="+Inf"}}"#
        ),
    );
    assert_eq!(count, inf);
    assert!(count >= canary_2xx);

    check_with_promtool(&text).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_copies_a_mirror_sent_and_pass_promtool() {
    let mut env = Env::new(Faults::none())
        .with_steps("[{weight: 0%, mirror: 100%, pause: 2s}, {weight: 100%, pause: 1s}]");
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    env.deploy("v2").await.code(0);
    let tally = load.stop().await;
    assert!(tally.get("v1").is_some_and(|n| n.0 > 0), "{tally:?}");

    let response = env.api(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    // The mirror is gone with its step; what it did is still counted.
    let series = |result: &str| {
        format!(r#"cutover_mirror_requests_total{{app="e2e",version="v2",result="{result}"}}"#)
    };
    assert!(sample(&text, &series("mirrored")) > 0.0, "{text}");
    assert_eq!(sample(&text, &series("skipped_too_large")), 0.0, "{text}");
    sample(&text, &series("skipped_full"));
    check_with_promtool(&text).await;
}

/// `promtool check metrics` on the exposition, if promtool is installed (Debian's
/// `prometheus` package; `.ci/run` installs it).
async fn check_with_promtool(text: &str) {
    use tokio::io::AsyncWriteExt as _;
    let child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "SKIPPED: promtool check metrics (promtool not found: {e}); \
                 install it with `apt-get install prometheus`"
            );
            return;
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- the metrics\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
