//! The canary, and what every strategy shares: promotion, rollback, abort, a busy
//! app, bad config, SIGTERM, and the demo.

use crate::support::{Env, Faults, assert_no_failures};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_canary_is_promoted_and_takes_all_traffic() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    let out = env.deploy("v2").await;
    out.code(0);
    assert!(out.stdout.contains("v2 is live"), "{}", out.stdout);
    let tally = load.stop().await;
    assert!(
        tally.get("v2").is_some_and(|n| n.0 > 0),
        "the canary never got traffic: {tally:?}"
    );
    assert_no_failures(&tally, &["v1", "v2"]);
    assert_eq!(env.served_by(20).await, vec!["v2"; 20]);
    let run = env.last_run_json().await;
    assert_eq!(run["run"]["outcome"], "promoted");
    assert!(
        !run["measurements"].as_array().unwrap().is_empty(),
        "promoted without analysis: {run}"
    );
    // The event stream of a finished run replays it and ends, for any client.
    let events = env.run_events(run["run"]["id"].as_str().unwrap()).await;
    let last = events.last().unwrap();
    assert_eq!(last["outcome"], "promoted", "{events:?}");
    assert_eq!(last["kind"], "outcome");
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "events missing or repeated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erroring_canary_is_rolled_back_and_receipts_name_the_metric() {
    let mut env = Env::new(Faults::new("v2:error-rate=0.5"));
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    let out = env.deploy("v2").await;
    out.code(3);
    assert!(out.stdout.contains("error_rate"), "{}", out.stdout);
    assert_no_failures(&load.stop().await, &["v1"]);
    assert_eq!(env.served_by(20).await, vec!["v1"; 20]);
    let receipts = env.last_receipts().await;
    let rollback = std::fs::read_to_string(receipts.join("rollback-log.md")).unwrap();
    assert!(rollback.contains("error_rate"), "{rollback}");
    let analysis = std::fs::read_to_string(receipts.join("canary-analysis.md")).unwrap();
    assert!(analysis.contains("FAIL"), "{analysis}");
    assert!(analysis.contains("(canary-analysis.svg)"), "{analysis}");
    let chart = std::fs::read_to_string(receipts.join("canary-analysis.svg")).unwrap();
    assert!(
        chart.contains("<polyline") && chart.contains("rolled back"),
        "{chart}"
    );
    assert!(receipts.join("deployment-log.md").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_canary_judged_on_mirrored_copies_is_rolled_back_before_serving_anyone() {
    let mut env = Env::new(Faults::new("v2:error-rate=0.5"))
        .with_steps("[{weight: 0%, mirror: 50%, pause: 30s}, {weight: 100%, pause: 1s}]");
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    let out = env.deploy("v2").await;
    out.code(3);
    assert!(out.stdout.contains("error_rate"), "{}", out.stdout);
    let tally = load.stop().await;
    // Not one client request was answered by v2, nor saw its errors.
    assert!(!tally.contains_key("v2"), "a client got v2: {tally:?}");
    assert!(tally.get("v1").is_some_and(|n| n.0 > 0), "{tally:?}");
    assert_no_failures(&tally, &["v1"]);
    // What was judged were v2's answers to the copies.
    let run = env.last_run_json().await;
    let copies: u64 = run["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["report"]["canary"]["requests"].as_u64().unwrap())
        .sum();
    assert!(copies > 0, "no mirrored request was judged: {run}");
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_never_becomes_healthy_never_gets_traffic() {
    let mut env = Env::new(Faults::new("v2:fail-health"));
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    let out = env.deploy("v2").await;
    out.code(3);
    assert!(
        out.stdout.contains("never became healthy"),
        "{}",
        out.stdout
    );
    let tally = load.stop().await;
    assert!(
        !tally.contains_key("v2"),
        "traffic reached the unhealthy version: {tally:?}"
    );
    assert!(tally.get("v1").is_some_and(|n| n.0 > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_sends_traffic_back_and_the_waiting_deploy_exits_5() {
    let (env, load, waiting) = Env::canary_paused_at_half().await;
    env.cutover(&["abort"]).await.code(0);
    let out = waiting.await.unwrap();
    out.code(5);
    assert!(out.stdout.contains("aborted"), "{}", out.stdout);
    assert_no_failures(&load.stop().await, &["v1", "v2"]);
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_concurrent_deploy_is_refused_and_promote_finishes_the_first() {
    let (env, load, waiting) = Env::canary_paused_at_half().await;
    let refused = env.deploy("v3").await;
    refused.code(4);
    assert!(
        refused.stderr.contains("already in progress"),
        "{}",
        refused.stderr
    );
    env.cutover(&["promote"]).await.code(0);
    waiting.await.unwrap().code(0);
    assert_eq!(env.served_by(10).await, vec!["v2"; 10]);
    // And back again, fast, without analysis.
    env.cutover(&["rollback"]).await.code(0);
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
    // Not one request failed through the promotion and the rollback.
    assert_no_failures(&load.stop().await, &["v1", "v2"]);
    let history = env.cutover(&["history", "--json"]).await;
    history.code(0);
    let runs: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let kinds: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["rollback", "canary", "initial"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_exits_2_with_line_and_column_and_starts_nothing() {
    let env = Env::new(Faults::none());
    std::fs::write(
        &env.config,
        "app: shop\nplatform:\n  local:\n    command: [\"x\", \"${PORT}\"]\nhealth:\n  healthy_treshold: 2\n",
    )
    .unwrap();
    let out = env.cutover(&["validate"]).await;
    out.code(2);
    assert!(out.stderr.contains("cutover.yaml:6:3:"), "{}", out.stderr);
    assert!(out.stderr.contains("healthy_threshold"), "{}", out.stderr);
    let serve = env.cutover(&["serve"]).await;
    serve.code(2);
    assert!(
        !env.state_dir().exists(),
        "serve with a bad config created state"
    );
    let deploy = env.cutover(&["deploy", "v1"]).await;
    deploy.code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_daemon_and_leaves_no_child_processes() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    env.deploy("v1").await.code(0);
    let children = env.daemon_descendants();
    assert!(
        children.len() >= 2,
        "expected the two instances of v1 as children: {children:?}"
    );
    let status = env.stop_daemon().await;
    assert!(status.success(), "{status}");
    crate::support::wait_until_gone(&children).await;
    // A new daemon on the same state restores v1 from the store.
    env.serve().await;
    assert_eq!(env.served_by(5).await, vec!["v1"; 5]);
    let status_json = env.cutover(&["status", "--json"]).await;
    status_json.code(0);
    let status: serde_json::Value = serde_json::from_str(&status_json.stdout).unwrap();
    assert_eq!(status["stable"], "v1");
}

/// The README's first command: the whole story, end to end, as a user runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_promotes_v2_and_rolls_back_v3() {
    let env = Env::new(Faults::none());
    let dir = env.config.with_file_name("demo");
    let out = env
        .cutover(&["demo", "--json", "--dir", dir.to_str().unwrap()])
        .await;
    out.code(0);
    let summary: serde_json::Value = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["kind"] == "summary")
        .unwrap_or_else(|| panic!("no summary line: {}", out.stdout));
    assert_eq!(summary["as_expected"], true, "{summary}");
    let outcomes: Vec<&str> = summary["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["promoted", "promoted", "rolled_back"]);
    let v3 = std::path::PathBuf::from(summary["runs"][2]["receipts"].as_str().unwrap());
    let rollback = std::fs::read_to_string(v3.join("rollback-log.md")).unwrap();
    assert!(rollback.contains("error_rate"), "{rollback}");
    // The demo's daemon stopped and took its processes with it.
    assert!(!dir.join(".cutover").join("daemon.json").exists());
}
