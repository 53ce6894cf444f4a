//! GitHub deployments against `FakeGitHub`, a fake of the two REST endpoints cutover
//! calls (GitHub itself cannot be reached from a test), built from their
//! documentation:
//!
//! - `POST /repos/{owner}/{repo}/deployments`: a JSON body with a string `ref`
//!   (required), `environment`, `auto_merge`, `required_contexts`, `description`,
//!   `payload`; answers `201 Created` with the deployment (`id`, `ref`,
//!   `environment`, ...), `422` when the body is invalid;
//! - `POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses`: `state` one
//!   of `error`, `failure`, `inactive`, `in_progress`, `queued`, `pending`,
//!   `success` (required), `description` of at most 140 characters, `log_url`,
//!   `environment`; answers `201 Created` with the status, `404` for an unknown
//!   deployment;
//! - both want `Accept: application/vnd.github+json`, `Authorization: Bearer
//!   <token>` (else `401 Bad credentials`), `X-GitHub-Api-Version: 2022-11-28` and a
//!   `User-Agent` (GitHub refuses requests without one, `403`).
//!
//! It records every call, and can answer `502` to the first calls to test retries.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use cutover_pipeline::{DeliveryPolicy, DeliveryResult, Notification, Notifier, RunFacts};
use cutover_spec::{GitHubSpec, NotificationKind, NotificationsSpec};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_test_token";

/// One call the fake answered.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    body: Value,
    status: u16,
}

#[derive(Clone, Default)]
struct FakeGitHub {
    calls: Arc<Mutex<Vec<Call>>>,
    /// Calls to answer 502 before behaving.
    fail_first: Arc<Mutex<usize>>,
    /// The ids of the deployments that exist.
    deployments: Arc<Mutex<Vec<u64>>>,
}

type Answer = (StatusCode, Json<Value>);

impl FakeGitHub {
    /// `existing`: deployments made before (by an earlier daemon, say).
    async fn start(fail_first: usize, existing: &[u64]) -> (FakeGitHub, SocketAddr) {
        let fake = FakeGitHub {
            fail_first: Arc::new(Mutex::new(fail_first)),
            deployments: Arc::new(Mutex::new(existing.to_vec())),
            ..FakeGitHub::default()
        };
        let app = Router::new()
            .route("/repos/{owner}/{repo}/deployments", post(create_deployment))
            .route(
                "/repos/{owner}/{repo}/deployments/{id}/statuses",
                post(create_status),
            )
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, addr)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn answer(&self, path: String, body: Value, (status, json): Answer) -> Answer {
        self.calls.lock().unwrap().push(Call {
            path,
            body,
            status: status.as_u16(),
        });
        (status, json)
    }

    /// The documented request headers, or GitHub's answer to their absence.
    fn check_headers(&self, headers: &HeaderMap) -> Result<(), Answer> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if header("user-agent").is_none_or(str::is_empty) {
            return Err(error(
                StatusCode::FORBIDDEN,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            ));
        }
        if header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return Err(error(StatusCode::UNAUTHORIZED, "Bad credentials"));
        }
        if header("accept") != Some("application/vnd.github+json") {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "expected Accept: application/vnd.github+json",
            ));
        }
        if header("x-github-api-version") != Some("2022-11-28") {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "expected X-GitHub-Api-Version: 2022-11-28",
            ));
        }
        if header("content-type") != Some("application/json") {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a JSON body",
            ));
        }
        let mut fail = self.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return Err(error(StatusCode::BAD_GATEWAY, "Server Error"));
        }
        Ok(())
    }
}

fn error(status: StatusCode, message: &str) -> Answer {
    (status, Json(json!({ "message": message })))
}

async fn create_deployment(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Answer {
    let path = format!("/repos/{owner}/{repo}/deployments");
    let answer = fake.check_headers(&headers).and_then(|()| {
        let valid = body["ref"].is_string()
            && body["environment"].is_string()
            && body["auto_merge"] == json!(false)
            && body["required_contexts"] == json!([])
            && body["description"].is_string()
            && body["payload"].is_object();
        if !valid {
            return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"));
        }
        let id = {
            let mut deployments = fake.deployments.lock().unwrap();
            let id = 1000 + deployments.len() as u64;
            deployments.push(id);
            id
        };
        Ok((
            StatusCode::CREATED,
            Json(json!({
                "id": id,
                "url": format!("https://api.github.com/repos/{owner}/{repo}/deployments/{id}"),
                "ref": body["ref"],
                "sha": "a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d",
                "task": "deploy",
                "environment": body["environment"],
                "description": body["description"],
                "payload": body["payload"],
            })),
        ))
    });
    fake.answer(path, body, answer.unwrap_or_else(|e| e))
}

async fn create_status(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Answer {
    let path = format!("/repos/{owner}/{repo}/deployments/{id}/statuses");
    let answer = fake.check_headers(&headers).and_then(|()| {
        if !fake.deployments.lock().unwrap().contains(&id) {
            return Err(error(StatusCode::NOT_FOUND, "Not Found"));
        }
        let states = [
            "error",
            "failure",
            "inactive",
            "in_progress",
            "queued",
            "pending",
            "success",
        ];
        let valid = body["state"].as_str().is_some_and(|s| states.contains(&s))
            && body["description"]
                .as_str()
                .is_none_or(|d| d.chars().count() <= 140);
        if !valid {
            return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"));
        }
        Ok((
            StatusCode::CREATED,
            Json(json!({ "id": 1, "state": body["state"], "description": body["description"] })),
        ))
    });
    fake.answer(path, body, answer.unwrap_or_else(|e| e))
}

fn spec(addr: SocketAddr) -> NotificationsSpec {
    NotificationsSpec {
        webhooks: Vec::new(),
        github: Some(GitHubSpec {
            owner: "acme".into(),
            repo: "shop".into(),
            token_env: "GH_TOKEN".into(),
            api_url: format!("http://{addr}"),
            environment: "production".into(),
        }),
    }
}

fn token(name: &str) -> Option<String> {
    (name == "GH_TOKEN").then(|| TOKEN.to_owned())
}

fn policy() -> DeliveryPolicy {
    DeliveryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        attempt_timeout: Duration::from_secs(5),
        total: Duration::from_secs(20),
    }
}

fn facts() -> RunFacts {
    RunFacts {
        app: "shop".into(),
        version: "v2.1.0".into(),
        previous_version: Some("v2.0.3".into()),
        run_id: "run-9".into(),
        outcome: None,
        reason: None,
        receipts_dir: PathBuf::from("/tmp/run-9"),
    }
}

fn event(kind: NotificationKind) -> Notification {
    let mut n = Notification::new(kind, &facts());
    n.log_url = Some("http://127.0.0.1:7070/runs/run-9".into());
    n
}

fn paths_and_states(fake: &FakeGitHub) -> Vec<(String, Value)> {
    fake.calls()
        .into_iter()
        .map(|c| (c.path, c.body["state"].clone()))
        .collect()
}

#[tokio::test]
async fn a_promoted_run_creates_a_deployment_in_progress_then_success() {
    let (fake, addr) = FakeGitHub::start(0, &[]).await;
    let notifier = Notifier::start(&spec(addr), policy(), &token, None);
    notifier.notify(event(NotificationKind::RunStarted));
    // Not a deployment status: not sent to GitHub.
    notifier.notify(event(NotificationKind::WaitingForApproval));
    notifier.notify(event(NotificationKind::Promoted));
    let report = notifier.finish(Duration::from_secs(30)).await;

    assert_eq!(
        paths_and_states(&fake),
        [
            ("/repos/acme/shop/deployments".to_owned(), Value::Null),
            (
                "/repos/acme/shop/deployments/1000/statuses".to_owned(),
                json!("in_progress")
            ),
            (
                "/repos/acme/shop/deployments/1000/statuses".to_owned(),
                json!("success")
            ),
        ]
    );
    let calls = fake.calls();
    assert!(calls.iter().all(|c| c.status == 201), "{calls:#?}");
    let created = &calls[0].body;
    assert_eq!(created["ref"], "v2.1.0");
    assert_eq!(created["environment"], "production");
    assert_eq!(created["auto_merge"], false);
    assert_eq!(created["required_contexts"], json!([]));
    assert_eq!(created["payload"]["run_id"], "run-9");
    let success = &calls[2].body;
    assert_eq!(success["log_url"], "http://127.0.0.1:7070/runs/run-9");
    assert_eq!(
        success["description"],
        "shop v2.1.0: promoted, replacing v2.0.3"
    );
    assert_eq!(success["environment"], "production");

    assert_eq!(report.github_deployment, Some(1000));
    assert_eq!(report.deliveries.len(), 2);
    assert!(
        report
            .deliveries
            .iter()
            .all(|d| d.result == DeliveryResult::Delivered)
    );
    let whats: Vec<&str> = report.deliveries[0]
        .requests
        .iter()
        .map(|r| r.what.as_str())
        .collect();
    assert_eq!(whats, ["create deployment", "status in_progress"]);
    assert!(report.to_markdown().contains("GitHub deployment: 1000"));
}

#[tokio::test]
async fn a_rolled_back_or_blocked_run_ends_in_failure() {
    let (fake, addr) = FakeGitHub::start(0, &[]).await;
    let notifier = Notifier::start(&spec(addr), policy(), &token, None);
    notifier.notify(event(NotificationKind::RunStarted));
    let mut rolled_back = event(NotificationKind::RolledBack);
    rolled_back.reason = Some("error rate 9% > 5%".into());
    notifier.notify(rolled_back);
    let _ = notifier.finish(Duration::from_secs(30)).await;
    let calls = fake.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2].body["state"], "failure");
    assert_eq!(
        calls[2].body["description"],
        "shop v2.1.0: rolled back to v2.0.3 (error rate 9% > 5%)"
    );

    // A run blocked by a gate ends at a stage with its outcome set.
    let (fake, addr) = FakeGitHub::start(0, &[]).await;
    let notifier = Notifier::start(&spec(addr), policy(), &token, None);
    notifier.notify(event(NotificationKind::RunStarted));
    let mut blocked = event(NotificationKind::StageFinished);
    blocked.stage = Some("gates".into());
    blocked.verdict = Some("failed".into());
    blocked.outcome = Some("blocked".into());
    notifier.notify(blocked);
    let _ = notifier.finish(Duration::from_secs(30)).await;
    assert_eq!(fake.calls()[2].body["state"], "failure");
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let (fake, addr) = FakeGitHub::start(2, &[]).await;
    let notifier = Notifier::start(&spec(addr), policy(), &token, None);
    notifier.notify(event(NotificationKind::RunStarted));
    let report = notifier.finish(Duration::from_secs(30)).await;
    let statuses: Vec<u16> = fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [502, 502, 201, 201]);
    let d = &report.deliveries[0];
    assert_eq!(d.result, DeliveryResult::Delivered);
    let tries: Vec<Option<u16>> = d.requests[0].attempts.iter().map(|a| a.status).collect();
    assert_eq!(tries, [Some(502), Some(502), Some(201)]);
}

#[tokio::test]
async fn a_refused_token_fails_once_and_the_later_statuses_say_why() {
    let (fake, addr) = FakeGitHub::start(0, &[]).await;
    let wrong = |_: &str| Some("not-the-token".to_owned());
    let notifier = Notifier::start(&spec(addr), policy(), &wrong, None);
    notifier.notify(event(NotificationKind::RunStarted));
    notifier.notify(event(NotificationKind::Promoted));
    let report = notifier.finish(Duration::from_secs(30)).await;
    // 401 is final: one call.
    assert_eq!(fake.calls().len(), 1);
    assert_eq!(fake.calls()[0].status, 401);
    assert_eq!(
        report.deliveries[0].result,
        DeliveryResult::Failed {
            error: "GitHub answered 401: Bad credentials".into()
        }
    );
    assert_eq!(
        report.deliveries[1].result,
        DeliveryResult::Failed {
            error: "no deployment to update: creating it had failed".into()
        }
    );
    assert_eq!(report.github_deployment, None);

    // No token in the environment: nothing is called.
    let (fake, addr) = FakeGitHub::start(0, &[]).await;
    let notifier = Notifier::start(&spec(addr), policy(), &|_| None, None);
    notifier.notify(event(NotificationKind::RunStarted));
    let report = notifier.finish(Duration::from_secs(30)).await;
    assert!(fake.calls().is_empty());
    match &report.deliveries[0].result {
        DeliveryResult::Failed { error } => {
            assert!(error.contains("`token_env: GH_TOKEN`"), "{error}")
        }
        other => panic!("expected failed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_resumed_run_keeps_its_deployment() {
    let (fake, addr) = FakeGitHub::start(0, &[77]).await;
    let notifier = Notifier::start(&spec(addr), policy(), &token, Some(77));
    notifier.notify(event(NotificationKind::Promoted));
    let report = notifier.finish(Duration::from_secs(30)).await;
    assert_eq!(
        paths_and_states(&fake),
        [(
            "/repos/acme/shop/deployments/77/statuses".to_owned(),
            json!("success")
        )]
    );
    assert_eq!(report.github_deployment, Some(77));
}
