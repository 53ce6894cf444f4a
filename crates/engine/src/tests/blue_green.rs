//! Blue-green runs: green checked on preview traffic only, all traffic switched to
//! it in one step, blue kept for the way back until the post-promotion analysis is
//! over, and every way back switching in one step too.

use std::collections::HashSet;
use std::time::Duration;

use cutover_api::{Event, Outcome, Phase, Role, RunKind};
use tokio::time::Instant;

use super::{Harness, Op, mentions, only_stable, share};
use crate::traffic::Split;

/// Two smoke checks, no preview analysis, blue kept 30s after the switch.
const BLUE_GREEN: &str = r#"
app: shop
platform:
  local:
    command: ["true", "${PORT}"]
strategy:
  blue_green:
    smoke_checks:
      - path: /ready
      - path: /checkout
        method: POST
        status: 201
    scale_down_delay: 30s
analysis:
  interval: 10s
  min_requests: 20
  failure_limit: 1
  inconclusive_limit: 3
  metrics:
    error_rate: { max: 1% }
"#;

/// v1 live, and a blue-green run of v2 with `config`.
async fn blue_v1(config: &str) -> Harness {
    let h = Harness::new(config);
    let first = h.deploy("v1").await;
    assert_eq!(first.outcome, Some(Outcome::Promoted), "{}", first.message);
    h
}

/// The index of the split that switched all traffic from `from` to `to` in one
/// step: the split before it gave all of it to `from`, it gives all of it to `to`.
fn switch(splits: &[Split], from: &str, to: &str) -> usize {
    let before = splits
        .windows(2)
        .position(|w| share(&w[0], from) == 10_000 && share(&w[1], to) == 10_000)
        .unwrap_or_else(|| panic!("no switch from {from} to {to} in one step: {splits:#?}"));
    before + 1
}

/// Asserts that until the split at `until`, green is only ever a weight-0
/// preview.
fn assert_preview_only(splits: &[Split], green: &str, until: usize) {
    for split in &splits[..until] {
        for b in split.backends.iter().filter(|b| b.version == green) {
            assert_eq!((b.role, b.weight), (Role::Preview, 0), "{split:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn green_gets_only_preview_traffic_until_the_switch_then_all_of_it_at_once() {
    let h = blue_v1(BLUE_GREEN).await;
    let mut run = h.start("v2");
    assert_eq!(run.started.kind, RunKind::BlueGreen);
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);

    let splits = h.fake.splits();
    let at = switch(&splits, "v1", "v2");
    assert_preview_only(&splits, "v2", at);
    assert!(
        splits[..at].iter().any(|s| s.get(Role::Preview).is_some()),
        "green never had a preview route: {splits:#?}"
    );
    // Blue still runs and is still in the split (for pinned requests) after the switch.
    let switched = &splits[at];
    assert_eq!(switched.get(Role::Stable).map(|b| b.weight), Some(0));
    assert_eq!(share(switched, "v2"), 10_000);
    // Both smoke checks ran against the preview, before the switch.
    let log = h.fake.log();
    let probes: Vec<&Op> = log
        .iter()
        .filter(|op| matches!(op, Op::Probe { .. }))
        .collect();
    assert_eq!(
        probes,
        [
            &Op::Probe {
                path: "/ready".into(),
                role: Role::Preview
            },
            &Op::Probe {
                path: "/checkout".into(),
                role: Role::Preview
            }
        ]
    );
    let switch_op = log
        .iter()
        .position(|op| *op == Op::Apply(switched.clone()))
        .unwrap();
    assert!(log.iter().rposition(|op| matches!(op, Op::Probe { .. })) < Some(switch_op));
    // Blue ran on for the scale-down delay, then was drained and stopped.
    let switched_at = h.fake.when(|op| *op == Op::Apply(switched.clone()));
    let blue_stopped = h
        .fake
        .when(|op| matches!(op, Op::Stop { release, .. } if release == "v1"));
    assert!(
        blue_stopped - switched_at >= Duration::from_secs(30),
        "{:?}",
        blue_stopped - switched_at
    );
    assert_eq!(only_stable(&h.fake.last_split()), Some("v2"));
    assert_eq!(h.fake.running(), HashSet::from(["v2".to_string()]));
    h.fake.assert_routed_away_before_stop("v1");
}

#[tokio::test(start_paused = true)]
async fn failing_smoke_checks_never_move_production_traffic_and_roll_back() {
    let h = blue_v1(BLUE_GREEN).await;
    h.fake.failing_check("/checkout");
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(
        end.message.contains("smoke checks failed"),
        "{}",
        end.message
    );
    assert!(end.message.contains("/checkout"), "{}", end.message);
    let splits = h.fake.splits();
    assert!(splits.iter().all(|s| share(s, "v2") == 0), "{splits:#?}");
    assert_preview_only(&splits, "v2", splits.len());
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    h.fake.assert_routed_away_before_stop("v2");
}

#[tokio::test(start_paused = true)]
async fn without_auto_promote_green_waits_for_a_person_to_switch() {
    let h = blue_v1(&BLUE_GREEN.replace(
        "  blue_green:\n",
        "  blue_green:\n    auto_promote: false\n",
    ))
    .await;
    let mut run = h.start("v2");
    run.until(|e| {
        matches!(
            &e.event,
            Event::Phase {
                phase: Phase::AwaitingPromotion
            }
        )
    })
    .await;
    // Hours later: still waiting, green still only previewed.
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    assert_eq!(h.active_phase().await, Some(Phase::AwaitingPromotion));
    assert!(h.fake.splits().iter().all(|s| share(s, "v2") == 0));
    let promoted = Instant::now();
    h.engine.promote().unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    // Switched on the promote, then blue kept for the scale-down delay.
    assert!(promoted.elapsed() >= Duration::from_secs(30));
    let splits = h.fake.splits();
    let at = switch(&splits, "v1", "v2");
    assert_preview_only(&splits, "v2", at);
    assert!(h.fake.when(|op| *op == Op::Apply(splits[at].clone())) >= promoted);
    h.fake.assert_routed_away_before_stop("v1");
}

#[tokio::test(start_paused = true)]
async fn green_failing_after_the_switch_switches_back_to_blue_in_one_step() {
    let h = blue_v1(BLUE_GREEN).await;
    // Fine on preview traffic, failing under production traffic.
    h.fake.erroring("v2", Role::Canary, 0.2);
    let mut run = h.start("v2");
    run.until(|e| {
        matches!(
            &e.event,
            Event::Phase {
                phase: Phase::PostPromotion
            }
        )
    })
    .await;
    let switched = Instant::now();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(end.message.contains("switched back"), "{}", end.message);
    assert!(end.message.contains("error_rate 20.00%"), "{}", end.message);
    // At the first window after the switch.
    assert!(switched.elapsed() < Duration::from_secs(11));
    let splits = h.fake.splits();
    let there = switch(&splits, "v1", "v2");
    let back = switch(&splits, "v2", "v1");
    assert!(back > there);
    assert!(splits[there..back].iter().all(|s| share(s, "v2") == 10_000));
    assert_eq!(only_stable(&splits[back]), Some("v1"));
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    // Blue never stopped; green was routed away, drained and stopped.
    assert_eq!(h.fake.starts("v1"), 1);
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    h.fake.assert_routed_away_before_stop("v2");
}

#[tokio::test(start_paused = true)]
async fn rollback_after_the_switch_switches_back_at_once() {
    let h = blue_v1(BLUE_GREEN).await;
    let mut run = h.start("v2");
    run.until(|e| {
        matches!(
            &e.event,
            Event::Phase {
                phase: Phase::PostPromotion
            }
        )
    })
    .await;
    let back = h.engine.rollback(None, h.config.clone()).unwrap();
    // It is this run's way back, not a new run.
    assert_eq!(back.run_id, run.started.run_id);
    assert_eq!(back.version, "v1");
    assert_eq!(back.from.as_deref(), Some("v2"));
    let asked = Instant::now();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted), "{}", end.message);
    assert!(end.message.contains("cutover rollback"), "{}", end.message);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let splits = h.fake.splits();
    let back = switch(&splits, "v2", "v1");
    assert_eq!(only_stable(&splits[back]), Some("v1"));
    assert_eq!(h.fake.starts("v1"), 1);
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    h.fake.assert_routed_away_before_stop("v2");
    assert_eq!(h.store.runs("shop", 10).unwrap().len(), 2);
}

/// [`BLUE_GREEN`] without smoke checks, with 20s of preview analysis and a rule
/// with both an absolute and a relative limit.
fn with_preview_analysis() -> String {
    BLUE_GREEN
        .replace(
            "    smoke_checks:\n      - path: /ready\n      - path: /checkout\n        method: POST\n        status: 201\n",
            "    preview_analysis: 20s\n",
        )
        .replace("max: 1%", "max: 5%, max_over_stable: 1%")
}

#[tokio::test(start_paused = true)]
async fn preview_analysis_judges_green_on_absolute_limits_only() {
    let h = blue_v1(&with_preview_analysis()).await;
    // Over blue + 1%, under 5%: only the absolute limit applies before the switch.
    h.fake.erroring("v2", Role::Preview, 0.03);
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    let preview: Vec<_> = h
        .store
        .measurements(&end.run_id)
        .unwrap()
        .into_iter()
        .filter(|m| m.weight_bp == 0)
        .collect();
    assert_eq!(preview.len(), 2, "{preview:#?}");
    for m in &preview {
        let r = &m.report;
        assert_eq!(r.verdict, cutover_analysis::Verdict::Pass, "{r:?}");
        assert_eq!((r.canary.requests, r.canary.errors), (200, 6));
        assert_eq!(r.stable.requests, 0, "judged against nothing: {r:?}");
        let limits: Vec<String> = r.metrics.iter().map(|m| m.format_limit()).collect();
        assert_eq!(limits, ["<= 5.00%"]);
    }
    let splits = h.fake.splits();
    let at = switch(&splits, "v1", "v2");
    assert_preview_only(&splits, "v2", at);
}

#[tokio::test(start_paused = true)]
async fn failing_preview_analysis_never_moves_production_traffic() {
    let h = blue_v1(&with_preview_analysis()).await;
    h.fake.erroring("v2", Role::Preview, 0.1);
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(
        end.message.contains("preview analysis failed"),
        "{}",
        end.message
    );
    let splits = h.fake.splits();
    assert!(splits.iter().all(|s| share(s, "v2") == 0), "{splits:#?}");
    assert!(splits.iter().any(|s| mentions(s, "v2")));
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    h.fake.assert_routed_away_before_stop("v2");
}
