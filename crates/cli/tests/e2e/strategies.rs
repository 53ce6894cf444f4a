//! Blue-green, rolling, a crashing canary and the fresh canary baseline end to end: the real binary,
//! a real daemon, real sample-apps, real HTTP on 127.0.0.1. Every scenario runs
//! twice, on each platform: as local processes (`<scenario>::local`) and as Docker
//! containers (`<scenario>::docker`, skipped without a Docker daemon).

use crate::support::{Env, Faults, Platform, assert_no_failures, role};

/// Two tests per scenario `name(platform)`: `name::local` and `name::docker`.
macro_rules! on_each_platform {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::support::Platform;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                super::$name(Platform::Local).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn docker() {
                let test = concat!("strategies::", stringify!($name), "::docker");
                if let Some(platform) = Platform::docker(test).await {
                    super::$name(platform).await;
                }
            }
        }
    )*};
}

on_each_platform!(
    blue_green_switches_all_traffic_at_once_with_no_failed_request,
    a_post_promotion_failure_switches_back_to_blue_with_no_failed_request,
    a_failed_smoke_check_never_moves_production_traffic,
    without_auto_promote_blue_green_waits_for_promote,
    the_preview_address_sends_every_request_to_green_before_the_switch,
    rollback_while_blue_still_runs_is_an_instant_switch_back,
    a_rolling_update_keeps_every_instance_ready_and_rolls_back_batch_by_batch,
    a_fresh_baseline_runs_beside_the_canary_and_is_what_it_is_judged_against,
    a_canary_that_crashes_mid_step_is_rolled_back_with_its_exit_code_in_the_receipts,
);

async fn a_canary_that_crashes_mid_step_is_rolled_back_with_its_exit_code_in_the_receipts(
    platform: Platform,
) {
    // No window is ever judged: only the exit can end the step (a container's
    // failed requests could otherwise fail a window before its exit is known).
    let mut env = Env::on(platform, Faults::new("v2:crash-after=1500ms"))
        .with_steps("[{weight: 50%, pause: 30s}]")
        .with_analysis(
            "  interval: 500ms\n  min_requests: 1000000\n  failure_limit: 1\n  inconclusive_limit: 100000",
        );
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    let out = env.deploy("v2").await;
    out.code(3);
    assert!(out.stdout.contains("exited"), "{}", out.stdout);
    load.stop().await;
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
    // The sample app's crash, exit code 101, as the process or the container said.
    let receipts = env.last_receipts().await;
    let rollback = std::fs::read_to_string(receipts.join("rollback-log.md")).unwrap();
    let why = rollback
        .lines()
        .find(|l| l.starts_with("| why |"))
        .unwrap_or_else(|| panic!("no why: {rollback}"));
    assert!(
        why.contains(") exited: exit status: 101") || why.contains(") exited: exit code 101"),
        "{why}"
    );
}

const BLUE_GREEN: &str =
    "  blue_green:\n    scale_down_delay: 2s\n    smoke_checks:\n      - { path: /healthz }";

async fn blue_green_switches_all_traffic_at_once_with_no_failed_request(platform: Platform) {
    let mut env = Env::on(platform, Faults::none()).with_strategy(BLUE_GREEN);
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load_without_pause();
    let out = env.deploy("v2").await;
    out.code(0);
    assert!(out.stdout.contains("v2 is live"), "{}", out.stdout);
    assert_no_failures(&load.stop().await, &["v1", "v2"]);
    assert_eq!(env.served_by(20).await, vec!["v2"; 20]);
    let run = env.last_run_json().await;
    assert_eq!(run["run"]["kind"], "blue_green");
    let kinds: Vec<&str> = run["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"smoke"), "{kinds:?}");
    // Green's share went from nothing to everything in one change.
    let shares: Vec<u64> = run["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "traffic")
        .map(|e| e["weight_bp"].as_u64().unwrap())
        .collect();
    assert!(
        shares.iter().all(|&s| s == 0 || s == 10_000),
        "green had a partial share: {shares:?}"
    );
}

async fn a_post_promotion_failure_switches_back_to_blue_with_no_failed_request(platform: Platform) {
    // v2 answers, but slowly: the post-promotion analysis fails it on latency.
    let mut env = Env::on(platform, Faults::new("v2:latency-ms=150"))
        .with_strategy("  blue_green:\n    scale_down_delay: 30s")
        .with_metrics("    latency_p99: { max: 100ms }");
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load_without_pause();
    let out = env.deploy("v2").await;
    out.code(3);
    assert!(
        out.stdout.contains("post-promotion analysis failed"),
        "{}",
        out.stdout
    );
    let tally = load.stop().await;
    assert!(tally.get("v2").is_some_and(|t| t.0 > 0), "{tally:?}");
    assert_no_failures(&tally, &["v1", "v2"]);
    assert_eq!(env.served_by(20).await, vec!["v1"; 20]);
}

async fn a_failed_smoke_check_never_moves_production_traffic(platform: Platform) {
    // `/` answers with the version: a check that wants "v1" fails on v2.
    let mut env = Env::on(platform, Faults::none()).with_strategy(
        "  blue_green:\n    smoke_checks:\n      - { path: /, body_contains: \"v1\" }",
    );
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    let out = env.deploy("v2").await;
    out.code(3);
    assert!(out.stdout.contains("smoke checks failed"), "{}", out.stdout);
    let tally = load.stop().await;
    assert!(
        !tally.contains_key("v2"),
        "production traffic reached v2: {tally:?}"
    );
    assert_no_failures(&tally, &["v1"]);
    let receipts = env.last_receipts().await;
    let rollback = std::fs::read_to_string(receipts.join("rollback-log.md")).unwrap();
    assert!(rollback.contains("body does not contain"), "{rollback}");
}

async fn without_auto_promote_blue_green_waits_for_promote(platform: Platform) {
    let mut env = Env::on(platform, Faults::none())
        .with_strategy("  blue_green:\n    auto_promote: false\n    scale_down_delay: 0s");
    env.serve().await;
    env.deploy("v1").await.code(0);
    let waiting = env.deploy_in_background("v2");
    env.wait_for_stage("awaiting_promotion").await;
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
    // Green is there for pinned requests only.
    let status = env.api_get("/api/v1/status").await;
    assert_eq!(role(&status, "preview").unwrap()["version"], "v2");
    env.cutover(&["promote"]).await.code(0);
    waiting.await.unwrap().code(0);
    assert_eq!(env.served_by(10).await, vec!["v2"; 10]);
}

async fn the_preview_address_sends_every_request_to_green_before_the_switch(platform: Platform) {
    let mut env = Env::on(platform, Faults::none()).with_strategy(
        "  blue_green:\n    auto_promote: false\n    preview_listen: 127.0.0.1:0\n    scale_down_delay: 0s",
    );
    env.serve().await;
    env.deploy("v1").await.code(0);
    let status = env.api_get("/api/v1/status").await;
    let preview = status["preview"].as_str().unwrap().to_owned();
    let waiting = env.deploy_in_background("v2");
    env.wait_for_stage("awaiting_promotion").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..10 {
        let r = http.get(format!("http://{preview}/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-cutover-version"], "v2");
    }
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
    env.cutover(&["promote"]).await.code(0);
    waiting.await.unwrap().code(0);
    // No preview any more: the preview address has nothing to send to.
    let r = http.get(format!("http://{preview}/")).send().await.unwrap();
    assert_eq!(r.status(), 503);
}

async fn rollback_while_blue_still_runs_is_an_instant_switch_back(platform: Platform) {
    let mut env =
        Env::on(platform, Faults::none()).with_strategy("  blue_green:\n    scale_down_delay: 60s");
    env.serve().await;
    env.deploy("v1").await.code(0);
    let waiting = env.deploy_in_background("v2");
    env.wait_for_stage("post_promotion").await;
    assert_eq!(env.served_by(5).await, vec!["v2"; 5]);
    let load = env.load();
    let out = env.cutover(&["rollback"]).await;
    out.code(0);
    assert!(out.stdout.contains("to v1"), "{}", out.stdout);
    waiting.await.unwrap().code(5);
    assert_no_failures(&load.stop().await, &["v1", "v2"]);
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
}

const ROLLING: &str = "  rolling:\n    max_surge: 1\n    max_unavailable: 0\n    pause: 1s";

/// Polls the daemon's status while `run` goes on and returns the fewest ready
/// instances of the app seen at any poll, and how many polls there were.
async fn fewest_ready_while(
    env: &Env,
    run: tokio::task::JoinHandle<crate::support::Output>,
) -> (u64, u32, crate::support::Output) {
    let mut fewest = u64::MAX;
    let mut polls = 0;
    while !run.is_finished() {
        let status = env.api_get("/api/v1/status").await;
        let ready: u64 = status["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["ready_instances"].as_u64().unwrap())
            .sum();
        fewest = fewest.min(ready);
        polls += 1;
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    (fewest, polls, run.await.unwrap())
}

async fn a_rolling_update_keeps_every_instance_ready_and_rolls_back_batch_by_batch(
    platform: Platform,
) {
    let mut env = Env::on(platform, Faults::new("v3:error-rate=0.5"))
        .with_instances(4)
        .with_strategy(ROLLING);
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    let (fewest, polls, out) = fewest_ready_while(&env, env.deploy_in_background("v2")).await;
    out.code(0);
    assert!(polls > 10, "the daemon was polled only {polls} times");
    assert!(
        fewest >= 4,
        "only {fewest} instances were ready at one point"
    );
    let run = env.last_run_json().await;
    let batches = run["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "scaled")
        .count();
    assert!(batches >= 4, "{batches} batches: {run}");
    assert_eq!(env.served_by(20).await, vec!["v2"; 20]);
    assert_no_failures(&load.stop().await, &["v1", "v2"]);

    // v3 fails its first batch's analysis and goes back the same way.
    let (fewest, _, out) = fewest_ready_while(&env, env.deploy_in_background("v3")).await;
    out.code(3);
    assert!(
        out.stdout.contains("rolling back batch by batch"),
        "{}",
        out.stdout
    );
    assert!(fewest >= 4, "only {fewest} instances were ready going back");
    assert_eq!(env.served_by(20).await, vec!["v2"; 20]);
    let status = env.api_get("/api/v1/status").await;
    assert_eq!(role(&status, "stable").unwrap()["ready_instances"], 4);
}

async fn a_fresh_baseline_runs_beside_the_canary_and_is_what_it_is_judged_against(
    platform: Platform,
) {
    let mut env = Env::on(platform, Faults::none()).with_strategy(
        "  canary:\n    baseline: fresh\n    steps: [{weight: 25%, pause: until-promoted}]",
    );
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    let waiting = env.deploy_in_background("v2");
    let status = env
        .wait_for_status("a baseline beside the canary", |s| {
            role(s, "baseline").is_some_and(|b| b["weight_bp"] == 2500)
                && role(s, "canary").is_some_and(|b| b["weight_bp"] == 2500)
        })
        .await;
    assert_eq!(role(&status, "baseline").unwrap()["version"], "v1");
    assert_eq!(role(&status, "baseline").unwrap()["release"], "v1+baseline");
    let run_id = status["active_run"]["run_id"].as_str().unwrap().to_owned();
    // A few judged windows, then promote.
    let measurements = loop {
        let run = env.api_get(&format!("/api/v1/runs/{run_id}")).await;
        let m = run["measurements"].as_array().unwrap().clone();
        if m.len() >= 10 {
            break m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    env.cutover(&["promote"]).await.code(0);
    waiting.await.unwrap().code(0);
    // Judged against the baseline (a 25% share like the canary's), not against
    // the stable version (50%, twice the canary's).
    let sum = |side: &str| -> u64 {
        measurements
            .iter()
            .map(|m| m["report"][side]["requests"].as_u64().unwrap())
            .sum()
    };
    let (baseline, canary) = (sum("stable"), sum("canary"));
    assert!(canary > 40, "{measurements:?}");
    let ratio = baseline as f64 / canary as f64;
    assert!(
        (0.6..1.6).contains(&ratio),
        "baseline {baseline} requests vs canary {canary}: not the baseline's numbers"
    );
    assert_no_failures(&load.stop().await, &["v1", "v2"]);
    let status = env.api_get("/api/v1/status").await;
    assert!(role(&status, "baseline").is_none(), "{status}");
    let receipts = env.last_receipts().await;
    let log = std::fs::read_to_string(receipts.join("deployment-log.md")).unwrap();
    assert!(log.contains("v1+baseline stopped"), "{log}");
    assert!(log.contains("against a fresh baseline"), "{log}");
}
