//! Canary runs: weight shifted step by step, each step judged, and every way one
//! ends early (errors, no data, a crash, a person, a promote that comes too late or
//! too early), plus the fresh baseline and sticky sessions.

use std::collections::HashSet;
use std::time::Duration;

use cutover_api::{Event, Outcome, Phase, Role, RunKind};

use super::{
    CANARY, Harness, Starts, canary_paused_at_half, mentions, only_stable, rolling_back, share,
    traffic_at,
};
use crate::EngineError;
use crate::platform::ReleaseSpec;
use crate::traffic::Split;

/// v1 live, and v2 waiting at a 50% step that only `promote` ends.
async fn paused_at_half() -> (Harness, super::Following) {
    let h = Harness::new(&canary_paused_at_half());
    h.deploy("v1").await;
    let mut run = h.start("v2");
    run.until(traffic_at(5_000)).await;
    (h, run)
}

/// The canary's share in every split that has a canary.
fn canary_weights(splits: &[Split]) -> Vec<u16> {
    splits
        .iter()
        .filter(|s| s.get(Role::Canary).is_some())
        .map(|s| s.share_bp(Role::Canary))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn healthy_canary_walks_every_step_then_replaces_stable() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    let began = tokio::time::Instant::now();
    let mut run = h.start("v2");
    assert_eq!(run.started.kind, RunKind::Canary);
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    // Three steps of 30s, judged every 10s: no step can end before its pause.
    assert!(
        began.elapsed() >= Duration::from_secs(90),
        "{:?}",
        began.elapsed()
    );
    let weights = canary_weights(&h.fake.splits());
    for w in [1_000, 5_000, 10_000] {
        assert!(
            weights.contains(&w),
            "weight {w} never applied: {weights:?}"
        );
    }
    assert!(
        weights.windows(2).all(|w| w[0] <= w[1]),
        "weights went down: {weights:?}"
    );
    assert_eq!(only_stable(&h.fake.last_split()), Some("v2"));
    assert_eq!(h.fake.running(), HashSet::from(["v2".to_string()]));
    h.fake.assert_routed_away_before_stop("v1");
    let receipts = h.receipts(&end.run_id);
    assert!(receipts.join("deployment-log.md").exists());
    assert!(receipts.join("canary-analysis.md").exists());
    assert!(!receipts.join("rollback-log.md").exists());
}

#[tokio::test(start_paused = true)]
async fn erroring_canary_rolls_back_at_the_first_failed_window() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    h.fake.erroring("v2", Role::Canary, 0.05);
    let began = tokio::time::Instant::now();
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack));
    assert!(end.message.contains("error_rate 5.00%"), "{}", end.message);
    // The start and one 10s window: it did not wait for the step's pause to end.
    assert!(
        began.elapsed() < Duration::from_secs(12),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    h.fake.assert_routed_away_before_stop("v2");
    let rollback =
        std::fs::read_to_string(h.receipts(&end.run_id).join("rollback-log.md")).unwrap();
    assert!(rollback.contains("error_rate"), "{rollback}");
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(h.receipts(&end.run_id).join("run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(run["run"]["outcome"], "rolled_back");
}

#[tokio::test(start_paused = true)]
async fn a_canary_that_never_becomes_healthy_never_gets_traffic() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    h.fake.starts_as("v2", Starts::NeverHealthy);
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack));
    assert!(
        end.message.contains("never became healthy"),
        "{}",
        end.message
    );
    assert!(h.fake.splits().iter().all(|s| !mentions(s, "v2")));
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    h.fake.assert_orderly();
}

#[tokio::test(start_paused = true)]
async fn a_canary_that_breaks_mid_step_rolls_back_at_once() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    let mut run = h.start("v2");
    run.until(traffic_at(1_000)).await;
    h.fake
        .break_release("v2", "instance 0 (pid 1) exited: exit status: 101");
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack));
    assert!(end.message.contains("exited"), "{}", end.message);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    h.fake.assert_routed_away_before_stop("v2");
}

#[tokio::test(start_paused = true)]
async fn abort_returns_to_stable_and_records_who_asked() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    let mut run = h.start("v2");
    run.until(traffic_at(1_000)).await;
    h.engine.abort("a test").unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted));
    assert!(end.message.contains("a test"), "{}", end.message);
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    h.fake.assert_routed_away_before_stop("v2");
    assert!(matches!(
        h.engine.abort("again"),
        Err(EngineError::NoActiveRun)
    ));
}

#[tokio::test(start_paused = true)]
async fn no_canary_traffic_is_inconclusive_and_never_promoted() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    h.fake.idle("v2", Role::Canary);
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack));
    assert!(end.message.contains("inconclusive"), "{}", end.message);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
}

#[tokio::test(start_paused = true)]
async fn until_promoted_waits_for_a_person() {
    let (h, mut run) = paused_at_half().await;
    // An hour at the paused step: still waiting.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(
        matches!(
            h.active_phase().await,
            Some(Phase::Step {
                step: 2,
                weight_bp: 5_000,
                ..
            })
        ),
        "{:?}",
        h.active_phase().await
    );
    h.engine.promote().unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v2"));
    h.fake.assert_routed_away_before_stop("v1");
}

#[tokio::test(start_paused = true)]
async fn abort_while_starting_stops_at_once_without_waiting_for_health() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    let mut run = h.start("v2");
    // The fake takes 500ms to start; abort before that.
    h.engine.abort("a test").unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted));
    assert!(
        end.message.contains("while v2 was starting"),
        "{}",
        end.message
    );
    assert!(h.fake.splits().iter().all(|s| !mentions(s, "v2")));
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    h.fake.assert_orderly();
}

#[tokio::test(start_paused = true)]
async fn requests_after_the_run_has_decided_are_refused_as_too_late() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    h.fake.erroring("v2", Role::Canary, 0.5);
    let mut run = h.start("v2");
    run.until(rolling_back).await;
    // Decided to roll back, still finishing: neither promote nor abort applies.
    for refused in [h.engine.promote(), h.engine.abort("a test")] {
        match refused {
            Err(EngineError::TooLate { run_id }) => assert_eq!(run_id, run.started.run_id),
            Err(EngineError::NoActiveRun) => {} // it may already have finished
            other => panic!("expected TooLate, got {other:?}"),
        }
    }
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack));
}

#[tokio::test(start_paused = true)]
async fn an_abort_accepted_with_a_promote_is_honoured() {
    let (h, mut run) = paused_at_half().await;
    // Both accepted before the driver looks: the promote decides, the abort vetoes.
    h.engine.promote().unwrap();
    h.engine.abort("a test").unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted), "{}", end.message);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    h.fake.assert_routed_away_before_stop("v2");
}

#[tokio::test(start_paused = true)]
async fn a_canary_promoted_while_starting_is_still_checked_before_it_gets_traffic() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    h.fake.starts_as("v2", Starts::DiesRightAfterStart);
    let mut run = h.start("v2");
    h.engine.promote().unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(end.message.contains("exited"), "{}", end.message);
    assert!(
        h.fake.splits().iter().all(|s| share(s, "v2") == 0),
        "the broken canary got traffic: {:#?}",
        h.fake.splits()
    );
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
}

#[tokio::test(start_paused = true)]
async fn sticky_cookie_is_set_in_every_split_of_a_sticky_canary() {
    let h = Harness::new(&CANARY.replace("  canary:\n", "  canary:\n    sticky: cookie\n"));
    h.deploy("v1").await;
    assert!(h.fake.splits().iter().all(|s| s.sticky_cookie.is_none()));
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    let canary: Vec<Split> = h
        .fake
        .splits()
        .into_iter()
        .filter(|s| share(s, "v2") > 0 && mentions(s, "v1"))
        .collect();
    assert!(!canary.is_empty());
    for split in canary {
        assert_eq!(split.sticky_cookie.as_deref(), Some("cutover-shop"));
    }

    // Without `sticky`, no split ever has one.
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    h.deploy("v2").await;
    assert!(h.fake.splits().iter().all(|s| s.sticky_cookie.is_none()));
}

/// A canary judged against a fresh baseline, on a rule relative to it only, its
/// steps 20s each.
fn fresh_baseline() -> String {
    CANARY
        .replace("  canary:\n", "  canary:\n    baseline: fresh\n")
        .replace("pause: 30s", "pause: 20s")
        .replace("max: 1%", "max_over_stable: 1%")
}

/// The fresh baseline's release for the stable version `v1`.
fn baseline_of_v1() -> String {
    crate::canary::baseline_release(&ReleaseSpec {
        name: "v1".into(),
        version: "v1".into(),
        instances: 1,
    })
    .name
}

/// The baseline numbers of every analysis window of a run, as judged.
fn judged_baselines(h: &Harness, run_id: &str) -> Vec<(u64, u64)> {
    h.store
        .events(run_id)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Analysis { report, .. } => Some((report.stable.requests, report.stable.errors)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_fresh_baseline_not_the_warm_stable_is_what_the_canary_is_judged_against() {
    let h = Harness::new(&fresh_baseline());
    let baseline = baseline_of_v1();
    h.deploy("v1").await;
    // Fresh instances (canary and baseline alike) fail 3% of requests, the stable
    // version's warm ones none: against the stable, 3% is over stable + 1%.
    h.fake.erroring("v2", Role::Canary, 0.03);
    h.fake.erroring("v1", Role::Baseline, 0.03);
    let mut run = h.start("v2");
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    assert_eq!(h.fake.starts(&baseline), 1);
    // Every window was judged against the baseline's 3% (carried over at 100%,
    // where it gets no traffic), never the stable's 0%.
    let judged = judged_baselines(&h, &end.run_id);
    assert!(judged.len() >= 6, "{judged:?}");
    assert!(judged.iter().all(|&b| b == (200, 6)), "{judged:?}");
    // The baseline gets the canary's weight, taken from the stable's.
    for split in h.fake.splits() {
        if let (Some(canary), Some(base)) = (split.get(Role::Canary), split.get(Role::Baseline))
            && canary.weight <= 5_000
        {
            assert_eq!(base.weight, canary.weight, "{split:?}");
            assert_eq!(base.version, "v1");
        }
    }
    assert!(
        h.fake
            .splits()
            .iter()
            .any(|s| s.get(Role::Baseline).is_some_and(|b| b.weight == 1_000))
    );
    assert_eq!(only_stable(&h.fake.last_split()), Some("v2"));
    assert_eq!(h.fake.running(), HashSet::from(["v2".to_string()]));
    h.fake.assert_routed_away_before_stop(&baseline);
    h.fake.assert_routed_away_before_stop("v1");
}

#[tokio::test(start_paused = true)]
async fn a_canary_worse_than_its_fresh_baseline_fails_though_the_stable_is_as_bad() {
    let h = Harness::new(&fresh_baseline());
    let baseline = baseline_of_v1();
    h.deploy("v1").await;
    // The stable version fails 3% too, so against it the canary would pass; the
    // fresh baseline fails none.
    h.fake.erroring("v2", Role::Canary, 0.03);
    h.fake.erroring("v1", Role::Stable, 0.03);
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(end.message.contains("error_rate 3.00%"), "{}", end.message);
    assert_eq!(judged_baselines(&h, &end.run_id), [(200, 0)]);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    h.fake.assert_routed_away_before_stop(&baseline);
    h.fake.assert_routed_away_before_stop("v2");
}

/// Regression: the baseline's start was queued behind the canary's, and ran after
/// the canary had failed and the run had decided, leaving it running, unowned.
#[tokio::test(start_paused = true)]
async fn a_canary_that_never_becomes_healthy_leaves_no_fresh_baseline_behind() {
    let h = Harness::new(&fresh_baseline());
    h.deploy("v1").await;
    h.fake.starts_as("v2", Starts::NeverHealthy);
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    assert_eq!(h.fake.starts("v1+baseline"), 0, "{:?}", h.fake.log());
    h.fake.assert_orderly();
}

/// Regression: the last split of a sticky run kept its cookie, pinning clients
/// into the next run.
#[tokio::test(start_paused = true)]
async fn a_sticky_run_ends_with_no_cookie_whatever_its_outcome() {
    let h = Harness::new(&CANARY.replace("  canary:\n", "  canary:\n    sticky: cookie\n"));
    h.deploy("v1").await;
    assert_eq!(h.deploy("v2").await.outcome, Some(Outcome::Promoted));
    assert_eq!(h.fake.splits().last().unwrap().sticky_cookie, None);
    h.fake.erroring("v3", Role::Canary, 0.5);
    assert_eq!(h.deploy("v3").await.outcome, Some(Outcome::RolledBack));
    assert_eq!(h.fake.splits().last().unwrap().sticky_cookie, None);
}

#[tokio::test(start_paused = true)]
async fn a_canary_under_the_limit_but_worse_than_stable_is_caught_by_the_sequential_test() {
    let h = Harness::new(&CANARY.replace("max: 1%", "max: 10%"));
    h.deploy("v1").await;
    h.fake.erroring("v2", Role::Canary, 0.04);
    let began = tokio::time::Instant::now();
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(
        end.message.contains("sequential test") && end.message.contains("4.00% vs 0.00%"),
        "{}",
        end.message
    );
    // The second window of the first step: no limit failed, and the step's 30 s
    // pause did not have to end.
    assert!(
        began.elapsed() < Duration::from_secs(25),
        "{:?}",
        began.elapsed()
    );
    let measurements = h.store.measurements(&end.run_id).unwrap();
    assert_eq!(measurements.len(), 2, "{measurements:#?}");
    let receipts = h.receipts(&end.run_id);
    let analysis = std::fs::read_to_string(receipts.join("canary-analysis.md")).unwrap();
    assert!(
        analysis.contains("| error_rate | sequential |"),
        "{analysis}"
    );
    let chart = std::fs::read_to_string(receipts.join("canary-analysis.svg")).unwrap();
    assert!(
        chart.contains("<polyline") && chart.contains("rolled back"),
        "{chart}"
    );
}

/// Each window's step and the sequential error test's p-value in it.
fn error_test_p_values(h: &Harness, run_id: &str) -> Vec<(usize, f64)> {
    h.store
        .measurements(run_id)
        .unwrap()
        .iter()
        .filter_map(|m| {
            let test = m.report.metrics.iter().find(|r| {
                r.test == cutover_analysis::Test::Sequential && r.metric == "error_rate"
            })?;
            Some((m.step, test.p_value?))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_sequential_tests_go_on_from_step_to_step() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    // Twice the stable's errors, at the limit: evidence that builds up slowly.
    h.fake.erroring("v2", Role::Canary, 0.01);
    h.fake.erroring("v1", Role::Stable, 0.005);
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    let p_values = error_test_p_values(&h, &end.run_id);
    let steps: HashSet<usize> = p_values.iter().map(|(step, _)| *step).collect();
    assert_eq!(steps.len(), 3, "{p_values:?}");
    // One test for the whole run: its anytime-valid p-value never goes back up at
    // a new step, as a test started afresh would.
    assert!(
        p_values.windows(2).all(|w| w[1].1 <= w[0].1),
        "{p_values:?}"
    );
    assert!(p_values.last().unwrap().1 < 1.0, "{p_values:?}");
}

/// [`CANARY`] starting with a step that sends v2 nothing but mirrors 20% of the
/// stable's requests to it.
fn canary_shadowed_first() -> String {
    CANARY.replace(
        "      - weight: 10%\n        pause: 30s\n",
        "      - weight: 0%\n        mirror: 20%\n        pause: 30s\n",
    )
}

#[tokio::test(start_paused = true)]
async fn a_step_with_a_mirror_copies_the_stable_s_requests_to_the_canary_and_judges_those() {
    let h = Harness::new(&canary_shadowed_first());
    h.deploy("v1").await;
    let end = h.deploy("v2").await;
    // Judged on its canary role at 0%, the first step would have had no data.
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    let first_step: Vec<u64> = h
        .store
        .events(&end.run_id)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Analysis {
                step: 0, report, ..
            } => Some(report.canary.requests),
            _ => None,
        })
        .collect();
    assert!(
        !first_step.is_empty() && first_step.iter().all(|&n| n > 0),
        "the shadow's windows: {first_step:?}"
    );
    let splits = h.fake.splits();
    let shadowed: Vec<&Split> = splits.iter().filter(|s| s.mirror.is_some()).collect();
    assert!(!shadowed.is_empty(), "no split mirrored: {splits:#?}");
    for split in &shadowed {
        let mirror = split.mirror.as_ref().unwrap();
        assert_eq!((mirror.version.as_str(), mirror.share_bp), ("v2", 2_000));
        let canary = split.get(Role::Canary).expect("the canary's route");
        assert_eq!(
            mirror.instances, canary.instances,
            "the canary's ready instances"
        );
        assert_eq!(
            split.share_bp(Role::Canary),
            0,
            "a mirror step sends v2 no client"
        );
    }
    // The next step stops mirroring and gives the canary its weight.
    let after = splits
        .iter()
        .find(|s| s.share_bp(Role::Canary) == 5_000)
        .expect("the 50% step");
    assert_eq!(after.mirror, None);
    h.fake.assert_routed_away_before_stop("v1");
}

#[tokio::test(start_paused = true)]
async fn a_shadow_that_errors_is_rolled_back_before_the_canary_serves_anyone() {
    let h = Harness::new(&canary_shadowed_first());
    h.deploy("v1").await;
    h.fake.erroring("v2", Role::Shadow, 0.05);
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(end.message.contains("error_rate 5.00%"), "{}", end.message);
    let splits = h.fake.splits();
    assert!(splits.iter().any(|s| s.mirror.is_some()), "{splits:#?}");
    assert!(
        splits.iter().all(|s| s.share_bp(Role::Canary) == 0),
        "the canary got clients: {splits:#?}"
    );
    assert_eq!(h.fake.last_split().mirror, None);
    // Copies count as routing: v2 was drained of them before it stopped.
    h.fake.assert_routed_away_before_stop("v2");
}

#[tokio::test(start_paused = true)]
async fn the_sequential_tests_go_on_from_a_shadow_step_to_the_canary_steps() {
    let h = Harness::new(&canary_shadowed_first().replace("max: 1%", "max: 10%"));
    h.deploy("v1").await;
    // Some evidence against v2 from its copies, not enough to reject; then none.
    h.fake.erroring("v2", Role::Shadow, 0.02);
    h.fake.erroring("v2", Role::Canary, 0.005);
    h.fake.erroring("v1", Role::Stable, 0.005);
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    let p_values = error_test_p_values(&h, &end.run_id);
    assert!(p_values.iter().any(|(step, _)| *step == 0), "{p_values:?}");
    assert!(p_values.iter().any(|(step, _)| *step == 1), "{p_values:?}");
    // The shadow's evidence is the canary's too: one test, whose p-value never
    // goes back up when the copies give way to real traffic.
    assert!(p_values.last().unwrap().1 < 0.5, "{p_values:?}");
    assert!(
        p_values.windows(2).all(|w| w[1].1 <= w[0].1),
        "{p_values:?}"
    );
}
