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
    for path in ["/api/v1/status", "/api/v1/runs", "/api/v1/config"] {
        let (status, challenge, body) = answer(env.api(Method::GET, path)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert!(challenge.is_some(), "{path}");
        let (status, _, _) = answer(env.api(Method::GET, path).bearer_auth(env.token())).await;
        assert_eq!(status, StatusCode::OK, "{path}");
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
async fn a_daemon_refuses_to_listen_beyond_loopback_with_open_reads() {
    let env = Env::new(Faults::none());
    let out = env.cutover(&["serve", "--api-listen", "0.0.0.0:0"]).await;
    out.code(2);
    assert!(out.stderr.contains("read_auth"), "{}", out.stderr);
    assert!(out.stderr.contains("loopback"), "{}", out.stderr);
    assert!(!env.state_dir().join("daemon.json").exists());
}
