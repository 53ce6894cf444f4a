//! Webhooks against a real HTTP receiver started by the test on 127.0.0.1: it sees
//! every event, in order, and checks the signature; a receiver that fails is retried,
//! one that is dead (a closed port) or hangs never holds up the caller and ends
//! recorded as failed after its retries. No assertion is about time: small backoffs
//! keep the tests short, and waits are on conditions with a deadline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use cutover_pipeline::{
    DeliveryPolicy, DeliveryResult, Notification, NotificationsReport, Notifier, RunFacts,
};
use cutover_spec::{
    NotificationKind, NotificationsSpec, Redacted, SecretSource, WebhookFormat, WebhookSpec,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// A real HTTP server on 127.0.0.1 with an OS-assigned port. By path: `/ok/...`
    /// answers 204, `/flaky/...` 503 twice then 200, `/missing` 404, `/hang` never.
    async fn start() -> (Receiver, SocketAddr) {
        let receiver = Receiver::default();
        let app = Router::new().fallback(answer).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, addr)
    }

    fn seen(&self, path: &str) -> Vec<Received> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

async fn answer(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_owned();
    let earlier = {
        let mut seen = receiver.seen.lock().unwrap();
        seen.push(Received {
            path: path.clone(),
            headers,
            body,
        });
        seen.iter().filter(|r| r.path == path).count() - 1
    };
    match path.split('/').nth(1) {
        Some("ok") => StatusCode::NO_CONTENT,
        Some("flaky") if earlier < 2 => StatusCode::SERVICE_UNAVAILABLE,
        Some("flaky") => StatusCode::OK,
        Some("hang") => std::future::pending().await,
        _ => StatusCode::NOT_FOUND,
    }
}

fn facts() -> RunFacts {
    RunFacts {
        app: "shop".into(),
        version: "v2".into(),
        previous_version: Some("v1".into()),
        run_id: "run-42".into(),
        outcome: None,
        reason: None,
        receipts_dir: PathBuf::from("/tmp/run-42"),
    }
}

/// One notification of each kind, in a run's order.
fn every_event() -> Vec<Notification> {
    NotificationKind::ALL
        .into_iter()
        .map(|kind| {
            let mut n = Notification::new(kind, &facts());
            if kind == NotificationKind::StageFinished {
                n.stage = Some("gates".into());
                n.verdict = Some("passed".into());
            }
            n
        })
        .collect()
}

fn hook(addr: SocketAddr, path: &str) -> WebhookSpec {
    WebhookSpec {
        url: format!("http://{addr}{path}"),
        format: WebhookFormat::Json,
        events: NotificationKind::ALL.to_vec(),
        secret: None,
    }
}

/// Small waits, so that a test with retries stays short.
fn quick() -> DeliveryPolicy {
    DeliveryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        attempt_timeout: Duration::from_secs(5),
        total: Duration::from_secs(20),
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Recompute the signature as a receiver would, with the `hmac` crate directly.
fn verify(received: &Received, secret: &str) {
    let timestamp = received.headers["x-cutover-timestamp"].to_str().unwrap();
    assert!(
        timestamp.parse::<u64>().unwrap() > 1_600_000_000,
        "{timestamp}"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        received.headers["x-cutover-signature"].to_str().unwrap(),
        format!("sha256={hex}")
    );
}

fn results(report: &NotificationsReport, target_contains: &str) -> Vec<DeliveryResult> {
    report
        .deliveries
        .iter()
        .filter(|d| d.target.contains(target_contains))
        .map(|d| d.result.clone())
        .collect()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_receiver_sees_every_event_in_order_signed() {
    let (receiver, addr) = Receiver::start().await;
    let spec = NotificationsSpec {
        webhooks: vec![
            WebhookSpec {
                secret: Some(SecretSource::Literal(Redacted::new("literal-key"))),
                ..hook(addr, "/ok/json")
            },
            WebhookSpec {
                format: WebhookFormat::Slack,
                secret: Some(SecretSource::Env("HOOK_SECRET".into())),
                ..hook(addr, "/ok/slack")
            },
            WebhookSpec {
                events: vec![NotificationKind::Promoted, NotificationKind::RolledBack],
                ..hook(addr, "/ok/some")
            },
        ],
        github: None,
    };
    let env = |name: &str| (name == "HOOK_SECRET").then(|| "key-from-env".to_owned());
    let notifier = Notifier::start(&spec, quick(), &env, None);
    let sent = every_event();
    for n in sent.clone() {
        notifier.notify(n);
    }
    let report = notifier.finish(Duration::from_secs(30)).await;

    let json = receiver.seen("/ok/json");
    assert_eq!(json.len(), 5, "{json:#?}");
    for (got, sent) in json.iter().zip(&sent) {
        verify(got, "literal-key");
        assert_eq!(got.headers["content-type"], "application/json");
        assert!(
            got.headers["user-agent"]
                .to_str()
                .unwrap()
                .starts_with("cutover/")
        );
        let body: Notification = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(&body, sent);
    }
    let slack = receiver.seen("/ok/slack");
    assert_eq!(slack.len(), 5);
    for (got, sent) in slack.iter().zip(&sent) {
        verify(got, "key-from-env");
        let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(body["text"], sent.headline());
        assert_eq!(body["blocks"][0]["type"], "section");
    }
    let some = receiver.seen("/ok/some");
    let kinds: Vec<String> = some
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["event"].to_string())
        .collect();
    assert_eq!(kinds, ["\"promoted\"", "\"rolled_back\""]);
    // Unsigned when no secret is configured.
    assert!(!some[0].headers.contains_key("x-cutover-signature"));

    assert_eq!(report.deliveries.len(), 12);
    assert_eq!(report.counts(), BTreeMap::from([("delivered", 12)]));
    assert!(report.deliveries.iter().all(|d| d.requests.len() == 1
        && d.requests[0].attempts.len() == 1
        && d.requests[0].attempts[0].status == Some(204)));
    let md = report.to_markdown();
    assert!(
        md.contains(&format!(
            "| webhook http://{addr}/… | promoted | delivered | POST: 204 |"
        )),
        "{md}"
    );
}

#[tokio::test]
async fn a_failing_receiver_is_retried_and_a_refusal_is_final() {
    let (receiver, addr) = Receiver::start().await;
    let spec = NotificationsSpec {
        webhooks: vec![hook(addr, "/flaky"), hook(addr, "/missing")],
        github: None,
    };
    let notifier = Notifier::start(&spec, quick(), &no_env, None);
    notifier.notify(Notification::new(NotificationKind::Promoted, &facts()));
    let report = notifier.finish(Duration::from_secs(30)).await;

    assert_eq!(receiver.seen("/flaky").len(), 3);
    let flaky = &report.deliveries[0];
    assert_eq!(flaky.result, DeliveryResult::Delivered);
    let statuses: Vec<Option<u16>> = flaky.requests[0]
        .attempts
        .iter()
        .map(|a| a.status)
        .collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(200)]);

    // 404 is not going to change: one attempt.
    assert_eq!(receiver.seen("/missing").len(), 1);
    assert_eq!(
        report.deliveries[1].result,
        DeliveryResult::Failed {
            error: "answered 404".into()
        }
    );
}

#[tokio::test]
async fn a_dead_or_hanging_webhook_never_holds_up_the_caller_and_is_recorded_failed() {
    let (receiver, addr) = Receiver::start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
        // Dropped here: nothing listens on that port any more.
    };
    let spec = NotificationsSpec {
        webhooks: vec![
            hook(closed, "/dead"),
            hook(addr, "/hang"),
            hook(addr, "/ok/alive"),
        ],
        github: None,
    };
    // A hanging attempt is given up after 300ms, so that the test stays short.
    let impatient = DeliveryPolicy {
        attempt_timeout: Duration::from_millis(300),
        ..quick()
    };
    let notifier = Notifier::start(&spec, impatient, &no_env, None);
    for n in every_event() {
        notifier.notify(n);
    }
    // notify() has returned for every event while the hanging receiver holds its
    // first request: the caller went on, and the healthy webhook got everything.
    wait_until("the hanging receiver holds a request", || {
        !receiver.seen("/hang").is_empty()
    })
    .await;
    wait_until("the healthy webhook got every event", || {
        receiver.seen("/ok/alive").len() >= 5
    })
    .await;
    let midway = notifier.report();
    assert!(
        results(&midway, &addr.to_string())
            .iter()
            .take(5)
            .any(|r| *r == DeliveryResult::Pending),
        "{midway:#?}"
    );

    let report = notifier.finish(Duration::from_secs(60)).await;
    for (target, error) in [
        (closed.to_string(), "cannot connect"),
        (addr.to_string(), "timed out"),
    ] {
        let failed: Vec<_> = report
            .deliveries
            .iter()
            .filter(|d| {
                d.target.contains(&target) && !matches!(d.result, DeliveryResult::Delivered)
            })
            .collect();
        assert_eq!(failed.len(), 5, "{target}: {report:#?}");
        for d in failed {
            match &d.result {
                DeliveryResult::Failed { error: e } => {
                    assert!(e.contains(error) && e.contains("after 3 attempts"), "{e}")
                }
                other => panic!("expected failed, got {other:?}"),
            }
            assert_eq!(d.requests[0].attempts.len(), 3);
            assert!(
                d.requests[0]
                    .attempts
                    .iter()
                    .all(|a| a.status.is_none() && a.error.is_some())
            );
        }
    }
    assert_eq!(report.counts()["delivered"], 5);
    assert_eq!(report.counts()["failed"], 10);
    let md = report.to_markdown();
    assert!(md.contains("FAILED: cannot connect"), "{md}");
}

#[tokio::test]
async fn what_is_still_pending_when_the_grace_runs_out_is_recorded_not_sent() {
    let (receiver, addr) = Receiver::start().await;
    let spec = NotificationsSpec {
        webhooks: vec![hook(addr, "/hang")],
        github: None,
    };
    let patient = DeliveryPolicy {
        attempt_timeout: Duration::from_secs(600),
        total: Duration::from_secs(600),
        ..quick()
    };
    let notifier = Notifier::start(&spec, patient, &no_env, None);
    notifier.notify(Notification::new(NotificationKind::RunStarted, &facts()));
    notifier.notify(Notification::new(NotificationKind::RolledBack, &facts()));
    wait_until("the receiver holds the first request", || {
        !receiver.seen("/hang").is_empty()
    })
    .await;
    let report = notifier.finish(Duration::from_millis(50)).await;
    assert_eq!(report.deliveries.len(), 2);
    for d in &report.deliveries {
        match &d.result {
            DeliveryResult::NotSent { reason } => {
                assert!(
                    reason.starts_with("still pending when the run's 50ms"),
                    "{reason}"
                )
            }
            other => panic!("expected not sent, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_missing_secret_is_never_sent_unsigned() {
    let (receiver, addr) = Receiver::start().await;
    let spec = NotificationsSpec {
        webhooks: vec![WebhookSpec {
            secret: Some(SecretSource::Env("UNSET_SECRET".into())),
            ..hook(addr, "/ok/unsigned")
        }],
        github: None,
    };
    let notifier = Notifier::start(&spec, quick(), &no_env, None);
    notifier.notify(Notification::new(NotificationKind::Promoted, &facts()));
    let report = notifier.finish(Duration::from_secs(30)).await;
    assert!(receiver.seen("/ok/unsigned").is_empty());
    match &report.deliveries[0].result {
        DeliveryResult::Failed { error } => {
            assert!(error.contains("`secret_env: UNSET_SECRET`"), "{error}");
            assert!(error.contains("never sent unsigned"), "{error}");
        }
        other => panic!("expected failed, got {other:?}"),
    }
}
