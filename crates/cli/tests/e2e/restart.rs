//! A daemon killed outright (SIGKILL, as the OOM killer would) and started again:
//! it adopts the instances that kept running and resumes the run from its record.

use tokio::task::JoinHandle;

use crate::support::{Env, Faults, Output, assert_no_failures, role};

/// v1 deployed on a daemon of its own, and `cutover deploy v2` at the 50% step
/// that only `cutover promote` ends: that deploy, and the run's id.
async fn v2_paused_at_half(env: &mut Env) -> (JoinHandle<Output>, String) {
    env.serve().await;
    env.deploy("v1").await.code(0);
    let waiting = env.deploy_in_background("v2");
    env.wait_for_weight("50%").await;
    let status = env.api_get("/api/v1/status").await;
    let run_id = status["active_run"]["run_id"].as_str().unwrap().to_owned();
    (waiting, run_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_at_a_pause_resumes_after_a_restart_without_restarting_its_versions() {
    let mut env = Env::new(Faults::none()).with_steps("[{weight: 50%, pause: until-promoted}]");
    let (waiting, run_id) = v2_paused_at_half(&mut env).await;
    let v1 = env.pids_of("v1");
    let v2 = env.pids_of("v2");
    assert_eq!((v1.len(), v2.len()), (2, 2), "{v1:?} {v2:?}");

    env.kill_daemon().await;
    // The deploy that followed it lost its stream; the run is not lost.
    waiting.await.unwrap().code(1);
    env.serve().await;

    // Same run, same step, same weight, the same processes serving.
    let status = env
        .wait_for_status("the run resumed at 50%", |s| {
            s["active_run"]["run_id"] == run_id.as_str()
                && role(s, "canary")
                    .is_some_and(|b| b["weight_bp"] == 5000 && b["ready_instances"] == 2)
        })
        .await;
    assert_eq!(status["active_run"]["phase"]["stage"], "step", "{status}");
    assert_eq!(env.pids_of("v1"), v1, "v1 was restarted");
    assert_eq!(env.pids_of("v2"), v2, "v2 was restarted");
    let load = env.load();
    let served = env.served_by(40).await;
    assert!(
        served.iter().any(|v| v == "v1") && served.iter().any(|v| v == "v2"),
        "{served:?}"
    );

    env.cutover(&["promote"]).await.code(0);
    env.wait_for_status("the run finished", |s| s["active_run"].is_null())
        .await;
    let run = env.api_get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["run"]["outcome"], "promoted", "{run}");
    assert_eq!(env.served_by(10).await, vec!["v2"; 10]);
    assert_no_failures(&load.stop().await, &["v1", "v2"]);
    // v1 was stopped by the new daemon, the processes it adopted.
    crate::support::wait_until_gone(&v1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_while_idle_keeps_serving_the_same_processes_after_a_restart() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    env.deploy("v1").await.code(0);
    let v1 = env.pids_of("v1");
    env.kill_daemon().await;
    env.serve().await;
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
    assert_eq!(env.pids_of("v1"), v1, "v1 was restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumed_after_a_restart_goes_on_with_its_log_check_and_rolls_back_new_errors() {
    // v2 logs an error for every `GET /`; with no load before the restart it logs
    // none, and an inconclusive window never ends the run: only the log check, on
    // the restarted daemon, can roll it back.
    let mut env = Env::new(Faults::new("v2:log-errors"))
        .with_steps("[{weight: 50%, pause: until-promoted}]")
        .with_analysis(
            "  interval: 500ms\n  min_requests: 5\n  failure_limit: 1\n  inconclusive_limit: 100000",
        )
        .with_more_analysis("  logs: { new_errors: fail, min_count: 3 }");
    let (waiting, run_id) = v2_paused_at_half(&mut env).await;
    let v2 = env.pids_of("v2");

    env.kill_daemon().await;
    waiting.await.unwrap().code(1);
    env.serve().await;
    env.wait_for_status("the run resumed at 50%", |s| {
        s["active_run"]["run_id"] == run_id.as_str()
            && role(s, "canary").is_some_and(|b| b["weight_bp"] == 5000)
    })
    .await;
    assert_eq!(env.pids_of("v2"), v2, "v2 was adopted, not restarted");
    let load = env.load();
    env.wait_for_status("the run ended", |s| s["active_run"].is_null())
        .await;
    load.stop().await;
    let run = env.api_get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["run"]["outcome"], "rolled_back", "{run}");
    crate::logs::new_error_row(&env.last_receipts().await);
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
}
