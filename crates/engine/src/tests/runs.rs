//! What every run shares, whatever the strategy: a first deploy, a rollback, the
//! requests that are refused, a platform that fails, shutting down.

use std::collections::HashSet;

use cutover_api::{Outcome, RunKind};

use super::{CANARY, Harness, Starts, mentions, only_stable, traffic_at};
use crate::EngineError;

#[tokio::test(start_paused = true)]
async fn first_deploy_starts_and_serves_without_a_canary() {
    let h = Harness::new(CANARY);
    let mut run = h.start("v1");
    assert_eq!(run.started.kind, RunKind::Initial);
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    assert!(h.store.measurements(&end.run_id).unwrap().is_empty());
    assert_eq!(h.store.promoted_versions("shop", 5).unwrap(), vec!["v1"]);
    h.fake.assert_orderly();
}

#[tokio::test(start_paused = true)]
async fn a_second_deploy_is_refused_while_one_runs() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    let first = h
        .engine
        .deploy("v2", Default::default(), h.config.clone())
        .unwrap();
    match h.engine.deploy("v3", Default::default(), h.config.clone()) {
        Err(EngineError::Busy { run_id, version }) => {
            assert_eq!(run_id, first.run_id);
            assert_eq!(version, "v2");
        }
        other => panic!("expected Busy, got {:?}", other.map(|r| r.run_id)),
    }
    h.engine.abort("test").unwrap();
    h.engine.wait_idle().await;
    assert_eq!(h.fake.starts("v3"), 0);
}

#[tokio::test(start_paused = true)]
async fn bad_version_names_are_refused_before_anything_starts() {
    let h = Harness::new(CANARY);
    for bad in ["../etc", "", "v1+baseline"] {
        assert!(
            matches!(
                h.engine.deploy(bad, Default::default(), h.config.clone()),
                Err(EngineError::InvalidVersion(_))
            ),
            "{bad:?}"
        );
    }
    assert!(h.fake.log().is_empty(), "{:?}", h.fake.log());
    h.deploy("v1").await;
    assert!(matches!(
        h.engine.deploy("v1", Default::default(), h.config.clone()),
        Err(EngineError::AlreadyServing(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn rollback_goes_to_the_previous_promoted_version_without_analysis() {
    let h = Harness::new(CANARY);
    assert!(matches!(
        h.engine.rollback(None, h.config.clone()),
        Err(EngineError::NothingToRollBack)
    ));
    h.deploy("v1").await;
    h.deploy("v2").await;
    let mut run = h.follow(|e, config| e.rollback(None, config));
    assert_eq!(run.started.version, "v1");
    assert_eq!(run.started.kind, RunKind::Rollback);
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    assert!(
        h.store
            .measurements(&run.started.run_id)
            .unwrap()
            .is_empty()
    );
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    h.fake.assert_routed_away_before_stop("v2");
}

#[tokio::test(start_paused = true)]
async fn a_rollback_target_that_dies_right_after_start_never_replaces_stable() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    h.deploy("v2").await;
    h.fake.starts_as("v1", Starts::DiesRightAfterStart);
    let mut run = h.follow(|e, config| e.rollback(None, config));
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(end.message.contains("exited"), "{}", end.message);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v2"));
    assert_eq!(h.fake.running(), HashSet::from(["v2".to_string()]));
    h.fake.assert_orderly();
}

#[tokio::test(start_paused = true)]
async fn a_panicking_platform_fails_the_run_and_frees_the_app() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    h.fake.starts_as("v2", Starts::Panics);
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::Failed));
    assert!(end.message.contains("panicked"), "{}", end.message);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    assert_eq!(
        h.store.run(&end.run_id).unwrap().outcome,
        Some(Outcome::Failed)
    );
    // The app is free again.
    let next = h.deploy("v3").await;
    assert_eq!(next.outcome, Some(Outcome::Promoted), "{}", next.message);
    h.fake.assert_orderly();
}

#[tokio::test(start_paused = true)]
async fn a_run_that_fails_internally_still_notifies_how_it_ended() {
    // A webhook on a port nothing listens on: every delivery fails, and the run's
    // `notifications.md` lists what was sent.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "{CANARY}notifications:\n  webhooks:\n    - {{ url: \"http://127.0.0.1:{port}/hook\" }}\n"
    );
    let h = Harness::new(&config);
    h.deploy("v1").await;
    h.fake.starts_as("v2", Starts::Panics);
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::Failed));
    let report = h.receipts(&end.run_id).join("notifications.md");
    // Written once the deliveries have given up (paused time: at once).
    let mut text = String::new();
    for _ in 0..600 {
        text = std::fs::read_to_string(&report).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let events: Vec<&str> = text
        .lines()
        .filter_map(|line| line.split('|').nth(2))
        .map(str::trim)
        .collect();
    assert!(
        events.contains(&"run_started") && events.contains(&"rolled_back"),
        "the failure is told as the end of the run: {text}"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_aborts_the_run_refuses_new_ones_and_stop_serving_stops_everything() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    let mut run = h.start("v2");
    run.until(traffic_at(1_000)).await;
    h.engine.shutdown().await;
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted), "{}", end.message);
    assert!(matches!(
        h.engine.deploy("v3", Default::default(), h.config.clone()),
        Err(EngineError::ShuttingDown)
    ));
    // Stable still serves until told to stop.
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    h.engine.stop_serving().await;
    assert!(h.fake.running().is_empty(), "{:?}", h.fake.running());
    assert!(!mentions(&h.fake.last_split(), "v1"));
    h.fake.assert_routed_away_before_stop("v1");
    h.fake.assert_routed_away_before_stop("v2");
}
