//! The stages before the rollout, through the real CLI: approvals given by
//! `cutover approve` and `cutover reject`, a wait for approval that outlives the
//! daemon, the deployment windows and their override, a scheduled deploy.

use crate::support::{Env, Faults, Load, assert_no_failures};

const TRIO: &str = "approvals:\n  required: 3\n  from: [alice, bob, carol, dana]\n";

/// v1 serving under steady load (so a rollout has traffic to judge), deployed
/// before any pipeline was configured; then `sections`.
async fn serving_v1(sections: &str) -> (Env, Load) {
    let mut env = Env::new(Faults::none());
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
