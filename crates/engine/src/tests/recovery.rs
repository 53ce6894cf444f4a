//! A daemon restarted under a run: what the killed daemon started is adopted, not
//! started again, and the run carries on from its record; what cannot be adopted
//! sends the run back to stable, saying what.
//!
//! The killed daemon runs on a runtime of its own, on a thread of its own, and is
//! killed by dropping that runtime: its tasks vanish wherever they were, as with
//! SIGKILL, while the fake world keeps what it started running.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cutover_api::{Outcome, Phase, RunKind};
use cutover_store::{NewRun, Store};
use tokio::time::Instant;

use super::{
    CANARY, Fake, Harness, Op, canary_paused_at_half, mentions, on_own_runtime, only_stable,
    traffic_at,
};
use crate::state::{Plan, RunState};
use crate::traffic::Split;

/// Runs `script` on a daemon over `store` and `fake`'s world, then kills that
/// daemon.
fn then_killed<T, F>(
    store: &Arc<Store>,
    fake: &Fake,
    config: &str,
    script: impl FnOnce(Harness) -> F + Send + 'static,
) -> T
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    let (store, fake, config) = (store.clone(), fake.clone(), config.to_owned());
    let daemon = on_own_runtime(move || async move {
        let h = Harness::over(store, fake.clone(), &config);
        let out = script(h.clone()).await;
        fake.kill_daemon();
        out
    });
    daemon
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// What the killed daemon left: the run in progress, and the split it applied last.
struct Left {
    run_id: String,
    split: Split,
}

/// v1 live, v2 at its paused 50% step; then the daemon is killed.
fn killed_at_the_paused_step(store: &Arc<Store>, fake: &Fake) -> Left {
    then_killed(store, fake, &canary_paused_at_half(), |h| async move {
        h.deploy("v1").await;
        let mut run = h.start("v2");
        run.until(traffic_at(5_000)).await;
        Left {
            run_id: run.started.run_id,
            split: h.fake.last_split(),
        }
    })
}

/// The splits applied from the log index `from` on.
fn splits_since(fake: &Fake, from: usize) -> Vec<Split> {
    fake.log()[from..]
        .iter()
        .filter_map(|op| match op {
            Op::Apply(split) => Some(split.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_run_killed_at_an_until_promoted_pause_is_adopted_and_resumed() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fake = Fake::default();
    let left = killed_at_the_paused_step(&store, &fake);
    assert_eq!(fake.running().len(), 2, "{:?}", fake.running());
    let restarted = fake.log().len();

    let h = Harness::over(store, fake.clone(), CANARY);
    let mut run = h.follow_resumed(&left.run_id);
    h.engine.recover().await.unwrap();
    // Adopted, not started again, and nothing stopped as left over.
    for release in ["v1", "v2"] {
        assert_eq!(fake.starts(release), 1, "{release}");
        assert_eq!(fake.adoptions(release), 1, "{release}");
    }
    assert!(
        !fake.log()[restarted..]
            .iter()
            .any(|op| matches!(op, Op::Spawn { .. } | Op::Stop { .. })),
        "{:#?}",
        &fake.log()[restarted..]
    );
    run.until(traffic_at(5_000)).await;
    assert_eq!(splits_since(&fake, restarted), [left.split]);
    let status = h.engine.status().await;
    let active = status.active_run.expect("the run goes on");
    assert_eq!(active.run_id, left.run_id);
    assert_eq!(active.kind, RunKind::Canary);
    assert!(
        matches!(active.phase, Phase::Step { step: 2, .. }),
        "{:?}",
        active.phase
    );
    // Still paused until a person says so, on the restarted daemon.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(h.active_phase().await.is_some());
    assert_eq!(h.engine.promote().unwrap(), left.run_id);
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    assert_eq!(only_stable(&fake.last_split()), Some("v2"));
    assert_eq!(fake.starts("v2"), 1);
    fake.assert_routed_away_before_stop("v1");
}

#[tokio::test(start_paused = true)]
async fn a_pause_resumes_with_the_time_it_had_left() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fake = Fake::default();
    // A 60s second step, killed after two of its 10s windows.
    let config = CANARY.replacen(
        "weight: 50%\n        pause: 30s",
        "weight: 50%\n        pause: 60s",
        1,
    );
    let run_id = then_killed(&store, &fake, &config, |h| async move {
        h.deploy("v1").await;
        let mut run = h.start("v2");
        run.until(|e| matches!(e.event, cutover_api::Event::Analysis { step: 1, .. }))
            .await;
        run.until(|e| matches!(e.event, cutover_api::Event::Analysis { step: 1, .. }))
            .await;
        run.started.run_id
    });
    let state: RunState = store.state(&run_id).unwrap().unwrap();
    match &state.plan {
        Plan::Canary(c) => assert_eq!((c.step, c.elapsed_ms), (1, 20_000)),
        other => panic!("{other:?}"),
    }

    let h = Harness::over(store, fake.clone(), &config);
    let mut run = h.follow_resumed(&run_id);
    let restarted = Instant::now();
    h.engine.recover().await.unwrap();
    run.until(traffic_at(10_000)).await;
    // 40s left of the step's 60s: neither started over nor skipped.
    let took = restarted.elapsed();
    assert!(
        took >= Duration::from_secs(40) && took < Duration::from_secs(50),
        "{took:?}"
    );
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    assert_eq!(fake.starts("v2"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_canary_that_cannot_be_adopted_reverts_the_run_to_stable_and_says_why() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fake = Fake::default();
    let left = killed_at_the_paused_step(&store, &fake);
    fake.vanish("v2");
    let restarted = fake.log().len();

    let h = Harness::over(store.clone(), fake.clone(), CANARY);
    h.engine.recover().await.unwrap();
    let run = store.run(&left.run_id).unwrap();
    assert_eq!(run.outcome, Some(Outcome::Aborted));
    let reason = run.reason.unwrap();
    assert!(reason.contains("v2"), "{reason}");
    assert!(reason.contains("could not be adopted"), "{reason}");
    assert!(reason.contains("reverted to v1"), "{reason}");
    assert!(h.engine.status().await.active_run.is_none());
    // The stable version was adopted, not started again, and serves alone.
    assert_eq!(fake.starts("v1"), 1);
    assert_eq!(fake.adoptions("v1"), 1);
    let splits = splits_since(&fake, restarted);
    assert!(!splits.is_empty());
    assert!(splits.iter().all(|s| !mentions(s, "v2")), "{splits:#?}");
    assert_eq!(only_stable(&fake.last_split()), Some("v1"));
    assert!(fake.running().contains("v1"));
    // The app is free for the next run.
    assert_eq!(h.deploy("v3").await.outcome, Some(Outcome::Promoted));
}

#[tokio::test(start_paused = true)]
async fn a_run_recorded_before_typed_state_is_settled_as_aborted_and_stable_restored() {
    let old = Harness::new(CANARY);
    old.deploy("v1").await;
    // What a daemon from before typed state left when killed mid-canary: a run
    // with its config but no state.
    old.store
        .insert_run(&NewRun {
            id: "interrupted".into(),
            app: "shop".into(),
            version: "v2".into(),
            stable: Some("v1".into()),
            kind: RunKind::Canary,
            started_at_ms: 1,
            config: serde_json::json!({ "path": "cutover.yaml", "text": CANARY }).to_string(),
        })
        .unwrap();
    // A new daemon on a machine where nothing of the old one survived.
    let fresh = Fake::default();
    let h = Harness::over(old.store.clone(), fresh.clone(), CANARY);
    h.engine.recover().await.unwrap();
    let run = h.store.run("interrupted").unwrap();
    assert_eq!(run.outcome, Some(Outcome::Aborted));
    let reason = run.reason.unwrap();
    assert!(reason.contains("daemon stopped"), "{reason}");
    assert!(reason.contains("could not be read back"), "{reason}");
    assert!(h.engine.status().await.active_run.is_none());
    // Nothing of v1 was left to adopt: it was started again, and serves.
    assert_eq!(fresh.starts("v1"), 1);
    assert_eq!(fresh.starts("v2"), 0);
    assert_eq!(only_stable(&fresh.last_split()), Some("v1"));
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_s_log_check_goes_on_and_rolls_back_a_canary_logging_a_new_error() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fake = Fake::default();
    let config = format!(
        "{}  logs: {{ new_errors: fail, min_count: 3 }}\n",
        canary_paused_at_half()
    );
    let run_id = then_killed(&store, &fake, &config, |h| async move {
        h.deploy("v1").await;
        let mut run = h.start("v2");
        run.until(traffic_at(5_000)).await;
        run.started.run_id
    });
    // Only from now on, on the restarted daemon, does the canary log a new error.
    fake.logs_each_window(
        "v2",
        &[
            "ERROR db timeout after 31ms on 10.0.0.7:5432",
            "ERROR db timeout after 5ms on 10.0.0.8:5432",
            "ERROR db timeout after 250ms on 10.0.0.7:5432",
        ],
    );

    let h = Harness::over(store, fake.clone(), &config);
    let mut run = h.follow_resumed(&run_id);
    h.engine.recover().await.unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(end.message.contains("error template"), "{}", end.message);
    assert_eq!(fake.starts("v2"), 1, "adopted, not started again");
    let analysis = std::fs::read_to_string(h.receipts(&run_id).join("canary-analysis.md")).unwrap();
    assert!(
        analysis.contains("`ERROR db timeout after <*> on <*>` | new | 3 | 0 |"),
        "{analysis}"
    );
}
