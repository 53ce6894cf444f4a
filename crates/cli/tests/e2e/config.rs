//! The config as each run finds it, rollbacks that go where they say, and bad
//! input refused before anything changes.

use crate::support::{Env, Faults, assert_no_failures, canary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_run_uses_the_config_as_it_is_when_the_run_starts() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    env.deploy("v1").await.code(0);
    // Edited while the daemon runs: the next run takes it up.
    env.change_strategy("  blue_green:\n    scale_down_delay: 0s");
    let validate = env.cutover(&["validate"]).await;
    validate.code(0);
    assert!(validate.stdout.contains("strategy"), "{}", validate.stdout);
    env.deploy("v2").await.code(0);
    let run = env.last_run_json().await;
    assert_eq!(run["run"]["kind"], "blue_green");
    assert!(
        run["config"].as_str().unwrap().contains("blue_green"),
        "{run}"
    );
    let receipts = env.last_receipts().await;
    assert!(receipts.join("config.yaml").exists());

    // A mistake is refused with its place, and nothing changes.
    env.change_strategy("  canary:\n    steps: [{weight: 150%}]");
    let out = env.deploy("v3").await;
    out.code(2);
    assert!(out.stderr.contains("cutover.yaml:"), "{}", out.stderr);
    assert_eq!(env.served_by(5).await, vec!["v2"; 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_that_needs_a_restart_is_refused_with_that_said() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    env.deploy("v1").await.code(0);
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace("listen: 127.0.0.1:0", "listen: 127.0.0.1:1"),
    )
    .unwrap();
    let validate = env.cutover(&["validate"]).await;
    validate.code(2);
    assert!(validate.stdout.contains("restart"), "{}", validate.stdout);
    let out = env.deploy("v2").await;
    out.code(2);
    assert!(out.stderr.contains("restart"), "{}", out.stderr);
    assert!(out.stderr.contains("`listen`"), "{}", out.stderr);
    assert_eq!(env.served_by(5).await, vec!["v1"; 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_names_its_target_goes_further_back_when_repeated_and_takes_to() {
    let mut env = Env::new(Faults::none()).with_strategy(&canary("[{weight: 100%, pause: 500ms}]"));
    env.serve().await;
    env.deploy("v1").await.code(0);
    // Traffic for the canaries to be judged on.
    let load = env.load();
    for v in ["v2", "v3"] {
        env.deploy(v).await.code(0);
    }
    let out = env.cutover(&["rollback"]).await;
    out.code(0);
    assert!(out.stdout.contains("from v3 to v2"), "{}", out.stdout);
    assert_eq!(env.served_by(5).await, vec!["v2"; 5]);
    // Again: further back, not forth to v3.
    let out = env.cutover(&["rollback"]).await;
    out.code(0);
    assert!(out.stdout.contains("from v2 to v1"), "{}", out.stdout);
    assert_eq!(env.served_by(5).await, vec!["v1"; 5]);
    let out = env.cutover(&["rollback", "--to", "v3"]).await;
    out.code(0);
    assert_eq!(env.served_by(5).await, vec!["v3"; 5]);
    let out = env.cutover(&["rollback", "--to", "v9"]).await;
    out.code(2);
    assert!(out.stderr.contains("never promoted"), "{}", out.stderr);
    assert_no_failures(&load.stop().await, &["v1", "v2", "v3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_name_is_refused_by_the_cli_even_with_no_daemon() {
    let env = Env::new(Faults::none());
    for args in [["deploy", "../etc"], ["rollback", "--to=v 1"]] {
        let out = env.cutover(&args).await;
        out.code(2);
        assert!(out.stderr.contains("not a valid version"), "{}", out.stderr);
        assert!(!out.stderr.contains("no cutover daemon"), "{}", out.stderr);
    }
}
