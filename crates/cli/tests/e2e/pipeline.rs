//! The stages before the rollout, through the real CLI: approvals given by
//! `cutover approve` and `cutover reject`, a wait for approval that outlives the
//! daemon, the deployment windows and their override, a scheduled deploy.

use crate::support::{Env, Faults, Load, assert_no_failures};

const TRIO: &str = "approvals:\n  required: 3\n  from: [alice, bob, carol, dana]\n";

/// v1 serving under steady load (so a rollout has traffic to judge), deployed
/// before any pipeline was configured; then `sections`.
async fn serving_v1(sections: &str) -> (Env, Load) {
    serving_v1_with(Faults::none(), sections).await
}

async fn serving_v1_with(faults: Faults, sections: &str) -> (Env, Load) {
    let mut env = Env::new(faults);
    env.serve().await;
    env.deploy("v1").await.code(0);
    env.change_sections(sections);
    let load = env.load();
    (env, load)
}

fn approved(status: &serde_json::Value, n: u64) -> bool {
    status["active_run"]["phase"]["stage"] == "awaiting_approval"
        && status["active_run"]["phase"]["approved"] == n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_approve_calls_reach_the_quorum_and_a_stranger_is_refused() {
    let (env, load) = serving_v1(TRIO).await;
    let deploy = env.deploy_in_background("v2");
    env.wait_for_status("waiting for approval", |s| approved(s, 0))
        .await;
    assert!(
        env.pids_of("v2").is_empty(),
        "nothing starts before the quorum"
    );

    let stranger = env.cutover(&["approve", "--as", "mallory"]).await;
    stranger.code(2);
    assert!(
        stranger.stderr.contains(
            "mallory may not decide on this run: the approvers are alice, bob, carol, dana"
        ),
        "{}",
        stranger.stderr
    );
    env.cutover(&["approve", "--as", "alice", "--comment", "tests are green"])
        .await
        .code(0);
    let twice = env.cutover(&["approve", "--as", "alice"]).await;
    twice.code(2);
    assert!(
        twice.stderr.contains("alice already decided"),
        "{}",
        twice.stderr
    );
    env.wait_for_status("one approval counted", |s| approved(s, 1))
        .await;
    env.cutover(&["approve", "--as", "bob"]).await.code(0);
    env.cutover(&["approve", "--as", "dana", "--json"])
        .await
        .code(0);

    let out = deploy.await.unwrap();
    out.code(0);
    assert!(
        out.stdout.contains("approved by alice, bob, dana"),
        "{}",
        out.stdout
    );
    let receipts = env.last_receipts().await;
    let approval = std::fs::read_to_string(receipts.join("approval.md")).unwrap();
    assert!(approval.contains("tests are green"), "{approval}");
    let decision = std::fs::read_to_string(receipts.join("deployment-decision.md")).unwrap();
    assert!(decision.contains("**Decision: promoted**"), "{decision}");
    assert_eq!(env.served_by(5).await, vec!["v2"; 5]);
    assert_no_failures(&load.stop().await, &["v1", "v2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_blocks_the_deploy_with_exit_4_and_v1_keeps_serving() {
    let (env, _load) = serving_v1(TRIO).await;
    let deploy = env.deploy_in_background("v2");
    env.wait_for_status("waiting for approval", |s| approved(s, 0))
        .await;
    let silent = env.cutover(&["reject", "--as", "carol"]).await;
    silent.code(2);
    assert!(
        silent.stderr.contains("a rejection needs a comment"),
        "{}",
        silent.stderr
    );
    env.cutover(&[
        "reject",
        "--as",
        "carol",
        "--comment",
        "not during the sale",
    ])
    .await
    .code(0);
    let out = deploy.await.unwrap();
    out.code(4);
    assert!(
        out.stdout
            .contains("rejected by carol: not during the sale"),
        "{}",
        out.stdout
    );
    assert_eq!(env.served_by(5).await, vec!["v1"; 5]);
    let run = env.last_run_json().await;
    assert_eq!(run["decision"]["decision"], "blocked", "{run}");
    assert_eq!(run["approvals"][0]["verdict"], "reject", "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_quorum_within_the_timeout_aborts_the_deploy_with_exit_5() {
    let (env, _load) =
        serving_v1("approvals:\n  required: 2\n  from: [alice, bob]\n  timeout: 5s\n").await;
    let deploy = env.deploy_in_background("v2");
    env.wait_for_status("waiting for approval", |s| approved(s, 0))
        .await;
    env.cutover(&["approve", "--as", "alice"]).await.code(0);
    let out = deploy.await.unwrap();
    out.code(5);
    assert!(
        out.stdout
            .contains("timed out after 5s waiting for approval: 1 of 2 approvals (alice)"),
        "{}",
        out.stdout
    );
    assert!(env.pids_of("v2").is_empty(), "nothing started");
    assert_eq!(env.served_by(3).await, vec!["v1"; 3]);
    let run = env.last_run_json().await;
    assert_eq!(run["decision"]["decision"], "aborted", "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_approval_outlives_a_killed_daemon() {
    let (mut env, load) = serving_v1(TRIO).await;
    drop(load);
    let deploy = env.deploy_in_background("v2");
    let status = env
        .wait_for_status("waiting for approval", |s| approved(s, 0))
        .await;
    let run_id = status["active_run"]["run_id"].as_str().unwrap().to_owned();
    env.cutover(&["approve", "--as", "alice"]).await.code(0);
    env.wait_for_status("one approval counted", |s| approved(s, 1))
        .await;
    env.kill_daemon().await;
    deploy.await.unwrap().code(1);
    env.serve().await;

    env.wait_for_status("the wait resumed", |s| {
        s["active_run"]["run_id"] == run_id.as_str() && approved(s, 1)
    })
    .await;
    // The restarted daemon's proxy listens on a port of its own.
    let _load = env.load();
    env.cutover(&["approve", &run_id, "--as", "bob"])
        .await
        .code(0);
    env.cutover(&["approve", "--as", "carol"]).await.code(0);
    let out = env.cutover(&["watch", &run_id]).await;
    out.code(0);
    assert_eq!(env.served_by(5).await, vec!["v2"; 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_blocks_the_deploy_unless_overridden_with_a_reason() {
    let (env, _load) = serving_v1(
        "windows:\n  timezone: UTC\n  freezes:\n    - { from: 2000-01-01, until: 2099-12-31, reason: code freeze }\n",
    )
    .await;
    let out = env.deploy("v2").await;
    out.code(4);
    assert!(out.stdout.contains("code freeze"), "{}", out.stdout);
    assert!(env.pids_of("v2").is_empty());

    let no_reason = env.cutover(&["deploy", "v2", "--override-window"]).await;
    no_reason.code(2);
    let out = env
        .cutover(&[
            "deploy",
            "v2",
            "--override-window",
            "--reason",
            "the outage fix",
        ])
        .await;
    out.code(0);
    let decision =
        std::fs::read_to_string(env.last_receipts().await.join("deployment-decision.md")).unwrap();
    assert!(
        decision.contains("overridden: the outage fix"),
        "{decision}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_deploy_waits_for_its_time_then_rolls_out() {
    let (env, _load) = serving_v1("").await;
    let bad = env.cutover(&["deploy", "v2", "--type", "scheduled"]).await;
    bad.code(2);
    let past = env
        .cutover(&["deploy", "v2", "--at", "2001-01-01T00:00:00Z"])
        .await;
    past.code(2);
    assert!(past.stderr.contains("is in the past"), "{}", past.stderr);

    let deploy = env.cutover_in_background(&["deploy", "v2", "--at", "+3s"]);
    let status = env
        .wait_for_status("scheduled", |s| {
            s["active_run"]["phase"]["stage"] == "scheduled"
        })
        .await;
    assert!(status["active_run"]["phase"]["at_ms"].is_i64(), "{status}");
    assert!(
        env.pids_of("v2").is_empty(),
        "nothing starts before its time"
    );
    let out = deploy.await.unwrap();
    out.code(0);
    let run = env.last_run_json().await;
    assert_eq!(run["decision"]["deploy_type"], "scheduled", "{run}");
    assert_eq!(run["decision"]["stages"][0]["stage"], "schedule", "{run}");
    assert_eq!(run["decision"]["stages"][0]["status"], "passed", "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gate_blocks_the_deploy_before_anything_starts() {
    let (env, _load) = serving_v1(
        "gates:\n  - { name: unit, run: [\"sh\", \"-c\", \"echo 3 tests failed; exit 1\"] }\n  \
         - { name: lint, run: [\"true\"] }\n",
    )
    .await;
    let out = env.deploy("v2").await;
    out.code(4);
    assert!(out.stdout.contains("gate `unit` failed"), "{}", out.stdout);
    assert!(
        env.pids_of("v2").is_empty(),
        "nothing starts after a failed gate"
    );
    assert_eq!(env.served_by(5).await, vec!["v1"; 5]);
    let receipts = env.last_receipts().await;
    let log = std::fs::read_to_string(receipts.join("gates/unit.log")).unwrap();
    assert!(log.contains("3 tests failed"), "{log}");
    let gates = std::fs::read_to_string(receipts.join("gates.md")).unwrap();
    assert!(gates.contains("unit") && gates.contains("lint"), "{gates}");
    let decision = std::fs::read_to_string(receipts.join("deployment-decision.md")).unwrap();
    assert!(decision.contains("| gates | **failed** |"), "{decision}");
    assert!(decision.contains("| deploy | skipped |"), "{decision}");
    assert!(decision.contains("[gates.md](gates.md)"), "{decision}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_runs_the_migrations_down_and_the_rollback_hook() {
    let (env, _load) = serving_v1_with(
        Faults::new("v2:error-rate=0.6"),
        r#"migrations:
  up: { run: ["sh", "-c", "echo up >> migrations.txt"] }
  down: { run: ["sh", "-c", "echo down >> migrations.txt"] }
  reversible: true
hooks:
  after_promotion:
    - { run: ["sh", "-c", "echo promoted > promoted.txt"] }
  on_rollback:
    - { run: ["sh", "-c", "echo \"$CUTOVER_OUTCOME $CUTOVER_VERSION $CUTOVER_PREVIOUS_VERSION\" > rolled-back.txt"] }
"#,
    )
    .await;
    let dir = env.config.parent().unwrap().to_owned();
    let out = env.deploy("v2").await;
    out.code(3);
    assert_eq!(
        std::fs::read_to_string(dir.join("migrations.txt")).unwrap(),
        "up\ndown\n",
        "up before the rollout, down after it went back"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("rolled-back.txt")).unwrap(),
        "rolled_back v2 v1\n"
    );
    assert!(
        !dir.join("promoted.txt").exists(),
        "no promotion, no after_promotion hook"
    );
    let receipts = env.last_receipts().await;
    for file in [
        "migration-up.md",
        "migration-down.md",
        "hook-on_rollback.md",
    ] {
        assert!(receipts.join(file).is_file(), "{file}");
    }
    let decision = std::fs::read_to_string(receipts.join("deployment-decision.md")).unwrap();
    for row in [
        "| migrate | **passed** |",
        "| deploy | **failed** |",
        "| after_promotion | skipped |",
        "| migrate_down | **passed** |",
        "| on_rollback | **passed** |",
        "not needed: the new version did not go live",
    ] {
        assert!(decision.contains(row), "{row}: {decision}");
    }
    // The skipped stage is announced like the others.
    assert!(
        out.stdout
            .contains("after_promotion skipped: not needed: the new version did not go live"),
        "{}",
        out.stdout
    );
}

/// A webhook receiver on 127.0.0.1: every request's headers and body, in order.
struct Receiver {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    loop {
                        let mut head = String::new();
                        let mut length = 0usize;
                        loop {
                            let mut line = String::new();
                            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap_or(0);
                            }
                            head.push_str(&line);
                        }
                        let mut body = vec![0; length];
                        if stream.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        record
                            .lock()
                            .unwrap()
                            .push((head, String::from_utf8_lossy(&body).into_owned()));
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if stream.get_mut().write_all(ok).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver { url, seen }
    }

    /// Waits (bounded) until a request with this event arrived; all so far.
    async fn until_event(&self, event: &str) -> Vec<(String, String)> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let seen = self.seen.lock().unwrap().clone();
            if seen
                .iter()
                .any(|(_, body)| body.contains(&format!("\"event\":\"{event}\"")))
            {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {event} within 30s: {seen:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_hears_every_event_signed_and_a_dead_one_holds_nothing_up() {
    use hmac::{Hmac, Mac};
    let receiver = Receiver::start().await;
    // A port nothing listens on: every attempt is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let sections = format!(
        "notifications:\n  webhooks:\n    - {{ url: \"{dead_url}\" }}\n    \
         - {{ url: \"{}\", secret: s3cret }}\n",
        receiver.url
    );
    let (env, _load) = serving_v1(&sections).await;
    env.deploy("v2").await.code(0);
    let seen = receiver.until_event("promoted").await;
    let events: Vec<String> = seen
        .iter()
        .map(|(_, body)| {
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            json["event"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        events.first().map(String::as_str),
        Some("run_started"),
        "{events:?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("promoted"),
        "{events:?}"
    );
    assert!(events.iter().any(|e| e == "stage_finished"), "{events:?}");
    for (head, body) in &seen {
        let timestamp = header(head, "x-cutover-timestamp").expect("timestamped");
        let signature = header(head, "x-cutover-signature").expect("signed");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(format!("{timestamp}.{body}").as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(signature, format!("sha256={hex}"), "{head}");
    }
}

/// Staging (one instance, its own daemon, judged on fewer requests: it has little
/// traffic) before production, and the smoke tests run against staging: an HTTP
/// check with a latency budget that v3 (slowed down by its faults) misses, and a
/// command that is told where staging is.
const STAGING_FIRST: &str = r#"environments:
  staging:
    platform: { local: { instances: 1 } }
    analysis: { min_requests: 1 }
  production:
smoke:
  - { path: /, status: 200, body_contains: hello from, max_latency: 450ms }
  - { name: knows-the-url, run: [sh, -c, 'test "$CUTOVER_ENV" = staging && test -n "$CUTOVER_URL"'] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_goes_through_staging_and_a_failed_smoke_test_leaves_production_untouched() {
    let mut production = Env::new(Faults::new("v3:latency-ms=900")).in_environment("production");
    production.change_sections(STAGING_FIRST);
    let mut staging = production.sibling("staging");
    staging.serve().await;
    production.serve().await;

    // v2 goes to staging first, is smoke tested there, then to production.
    let out = production.deploy("v2").await;
    out.code(0);
    assert_eq!(staging.served_by(3).await, vec!["v2"; 3]);
    assert_eq!(production.served_by(3).await, vec!["v2"; 3]);
    let receipts = production.last_receipts().await;
    let smoke = std::fs::read_to_string(receipts.join("smoke-test-results.md")).unwrap();
    assert!(
        smoke.starts_with("# Smoke tests on staging: passed"),
        "{smoke}"
    );
    let decision = std::fs::read_to_string(receipts.join("deployment-decision.md")).unwrap();
    assert!(decision.contains("v2 promoted in `staging`"), "{decision}");
    assert!(decision.contains("smoke-test-results.md"), "{decision}");
    // Staging's own run left the gates and approvals to production's, and says so.
    let staged = staging.last_run_json().await;
    let stages: Vec<&str> = staged["decision"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["deploy"], "{staged}");
    let staged_for = staged["decision"]["staged_for"]
        .as_str()
        .unwrap_or_default();
    assert!(staged_for.starts_with("production/"), "{staged}");
    let refused = staging
        .api(reqwest::Method::POST, "/api/v1/deploy")
        .bearer_auth(staging.token())
        .json(&serde_json::json!({ "version": "v9", "staged_for": "production" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["field"], "staged_for", "{body}");
    // Skipping the gates, windows and approvals takes the later daemon's token:
    // not a well-formed claim alone, and never for the last environment.
    for (env, claim) in [
        (&staging, "production/20261202T101500Z-v9"),
        (&production, "staging/x"),
    ] {
        let refused = env
            .api(reqwest::Method::POST, "/api/v1/deploy")
            .bearer_auth(env.token())
            .json(&serde_json::json!({ "version": "v9", "staged_for": claim }))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{claim}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "not_staged", "{body}");
    }
    assert!(staging.pids_of("v9").is_empty());

    // v3 passes staging's canary, but not the smoke tests: production never
    // starts it, and serves v2 to the last request.
    let staging_load = staging.load();
    let load = production.load();
    let out = production.deploy("v3").await;
    out.code(4);
    assert!(
        out.stdout
            .contains("1 of 2 smoke test(s) failed on `staging`"),
        "{}",
        out.stdout
    );
    assert_eq!(staging.served_by(3).await, vec!["v3"; 3]);
    assert_eq!(production.served_by(5).await, vec!["v2"; 5]);
    let production_pids = production.daemon_descendants();
    assert!(
        production
            .pids_of("v3")
            .iter()
            .all(|p| !production_pids.contains(p)),
        "production started v3"
    );
    let receipts = production.last_receipts().await;
    let smoke = std::fs::read_to_string(receipts.join("smoke-test-results.md")).unwrap();
    assert!(
        smoke.starts_with("# Smoke tests on staging: FAILED"),
        "{smoke}"
    );
    assert!(smoke.contains("more than the 450 ms allowed"), "{smoke}");
    let run = production.last_run_json().await;
    assert_eq!(run["decision"]["decision"], "blocked", "{run}");
    assert_no_failures(&load.stop().await, &["v2"]);
    staging_load.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_whose_staging_has_no_daemon_is_blocked_and_says_how_to_start_one() {
    let mut production = Env::new(Faults::none()).in_environment("production");
    production.change_sections(STAGING_FIRST);
    production.serve().await;
    let out = production.deploy("v2").await;
    out.code(4);
    assert!(
        out.stdout
            .contains("could not deploy v2 to `staging`: no daemon serves it")
            && out
                .stdout
                .contains("start one with `cutover serve --env staging`"),
        "{}",
        out.stdout
    );
    assert!(production.pids_of("v2").is_empty(), "nothing started");
    let status = production.cutover(&["status"]).await;
    status.code(0);
    assert!(
        status.stdout.starts_with("app      e2e (production)\n"),
        "{}",
        status.stdout
    );
    // An environment the config does not define is a usage error.
    let unknown = production.cutover(&["status", "--env", "prod"]).await;
    unknown.code(2);
    assert!(
        unknown
            .stderr
            .contains("there is no environment `prod`: the config defines staging, production"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_is_blocked_while_staging_is_busy_with_a_run_of_its_own() {
    let sections = STAGING_FIRST.replace(
        "    analysis: { min_requests: 1 }\n",
        "    analysis: { min_requests: 1 }\n    strategy: { canary: { steps: [{ weight: 50%, pause: until-promoted }] } }\n",
    );
    let mut production = Env::new(Faults::none()).in_environment("production");
    production.change_sections(&sections);
    let mut staging = production.sibling("staging");
    staging.serve().await;
    production.serve().await;
    staging.deploy("v1").await.code(0);
    // Someone deploys v2 to staging by hand; its canary waits for a promote.
    let by_hand = staging.deploy_in_background("v2");
    staging.wait_for_weight("50%").await;

    let out = production.deploy("v2").await;
    out.code(4);
    assert!(
        out.stdout
            .contains("could not deploy v2 to `staging`: its daemon refused (409 Conflict)"),
        "{}",
        out.stdout
    );
    assert!(
        production
            .pids_of("v2")
            .iter()
            .all(|p| !production.daemon_descendants().contains(p))
    );
    // Staging's own run is left alone.
    staging.cutover(&["promote"]).await.code(0);
    by_hand.await.unwrap().code(0);
}
