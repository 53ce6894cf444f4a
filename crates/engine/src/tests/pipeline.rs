//! The stages before the rollout: a scheduled time, the deployment windows, the
//! approvals quorum. Nothing starts and no traffic moves until they pass; a stage
//! that stops the run leaves the app as it was; a restarted daemon resumes the
//! stage it was in.

use std::sync::Arc;
use std::time::Duration;

use cutover_api::{DeployType, Event, Outcome, Phase, RunEvent, Stage, StageStatus, Verdict};
use cutover_store::Store;

use super::{CANARY, Fake, Harness, entered, on_own_runtime, only_stable, run_config};
use crate::EngineError;
use crate::pipeline::DeployOptions;

/// [`CANARY`] with a quorum of three out of four.
fn with_trio() -> String {
    format!("{CANARY}approvals:\n  required: 3\n  from: [alice, bob, carol, dana]\n  timeout: 2h\n")
}

/// [`CANARY`] frozen for this century, `allow` windows or not.
fn frozen() -> String {
    format!(
        "{CANARY}windows:\n  timezone: Europe/Berlin\n  freezes:\n    \
         - {{ from: 2000-01-01, until: 2099-12-31, reason: the long freeze }}\n"
    )
}

/// A harness whose app already serves v1 (deployed with the plain canary config).
async fn serving_v1(config: &str) -> Harness {
    let h = Harness::new(config);
    let plain = run_config(CANARY);
    let end = h
        .follow(|e, _| e.deploy("v1", DeployOptions::default(), plain))
        .end()
        .await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    h
}

/// v1 serving (deployed with the plain canary config), v2 waiting for the trio
/// with alice's approval counted; its run id.
async fn v2_approved_once(h: &Harness) -> String {
    let plain = run_config(CANARY);
    h.follow(|e, _| e.deploy("v1", DeployOptions::default(), plain))
        .end()
        .await;
    let mut run = h.start("v2");
    let id = run.started.run_id.clone();
    run.until(awaiting(0, 3)).await;
    h.engine
        .decide(&id, Verdict::Approve, "alice", None)
        .unwrap();
    run.until(awaiting(1, 3)).await;
    id
}

fn awaiting(approved: u32, required: u32) -> impl Fn(&RunEvent) -> bool {
    entered(Phase::AwaitingApproval { approved, required })
}

fn stage_ended(stage: Stage) -> impl Fn(&RunEvent) -> bool {
    move |e| {
        matches!(&e.event, Event::Stage { stage: s, status, .. }
            if *s == stage && status.is_done())
    }
}

fn receipt(h: &Harness, run_id: &str, name: &str) -> String {
    let path = h.receipts(run_id).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(start_paused = true)]
async fn three_approvals_reach_the_quorum_and_nothing_starts_before() {
    let h = serving_v1(&with_trio()).await;
    let mut run = h.start("v2");
    let id = run.started.run_id.clone();
    run.until(awaiting(0, 3)).await;
    // An hour of waiting: still nothing of v2, v1 serves alone.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(h.fake.starts("v2"), 0);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));

    h.engine
        .decide(&id, Verdict::Approve, "alice", Some("lgtm"))
        .unwrap();
    run.until(awaiting(1, 3)).await;
    // Refused, and nothing recorded: a stranger, a second word, a silent no.
    assert!(matches!(
        h.engine.decide(&id, Verdict::Approve, "mallory", None),
        Err(EngineError::NotAnApprover { .. })
    ));
    assert!(matches!(
        h.engine.decide(&id, Verdict::Reject, "alice", Some("wait")),
        Err(EngineError::AlreadyDecided { .. })
    ));
    assert!(matches!(
        h.engine.decide(&id, Verdict::Reject, "bob", Some("  ")),
        Err(EngineError::RejectionWithoutReason)
    ));
    assert!(matches!(
        h.engine.decide("nope", Verdict::Approve, "bob", None),
        Err(EngineError::NotActive { .. })
    ));
    assert_eq!(h.store.approvals(&id).unwrap().len(), 1);
    assert_eq!(h.fake.starts("v2"), 0);

    h.engine.decide(&id, Verdict::Approve, "bob", None).unwrap();
    run.until(awaiting(2, 3)).await;
    h.engine
        .decide(&id, Verdict::Approve, "dana", None)
        .unwrap();
    run.until(stage_ended(Stage::Approval)).await;
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    // Too late now: the run is over.
    assert!(matches!(
        h.engine.decide(&id, Verdict::Approve, "carol", None),
        Err(EngineError::NotActive { .. })
    ));

    let approval = receipt(&h, &id, "approval.md");
    for who in ["alice", "bob", "dana", "lgtm"] {
        assert!(approval.contains(who), "{who}: {approval}");
    }
    let decision = receipt(&h, &id, "deployment-decision.md");
    assert!(decision.contains("**Decision: promoted**"), "{decision}");
    assert!(
        decision.contains("| approval | **passed** |")
            && decision.contains("approved by alice, bob, dana"),
        "{decision}"
    );
    assert!(decision.contains("| deploy | **passed** |"), "{decision}");
    let json: serde_json::Value = serde_json::from_str(&receipt(&h, &id, "run.json")).unwrap();
    assert_eq!(json["decision"]["decision"], "promoted");
    assert_eq!(json["decision"]["stages"][0]["stage"], "approval");
    assert_eq!(json["approvals"][0]["by"], "alice");
}

#[tokio::test(start_paused = true)]
async fn one_rejection_blocks_the_run_before_anything_starts() {
    let h = serving_v1(&with_trio()).await;
    let mut run = h.start("v2");
    let id = run.started.run_id.clone();
    run.until(awaiting(0, 3)).await;
    h.engine
        .decide(&id, Verdict::Approve, "alice", None)
        .unwrap();
    h.engine
        .decide(
            &id,
            Verdict::Reject,
            "carol",
            Some("the migration is not reviewed"),
        )
        .unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Blocked), "{}", end.message);
    assert!(
        end.message
            .contains("rejected by carol: the migration is not reviewed"),
        "{}",
        end.message
    );
    assert_eq!(h.fake.starts("v2"), 0);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    let decision = receipt(&h, &id, "deployment-decision.md");
    assert!(decision.contains("| approval | **failed** |"), "{decision}");
    assert!(
        !h.receipts(&id).join("rollback-log.md").exists(),
        "nothing was rolled back"
    );
    assert!(decision.contains("| deploy | skipped |"), "{decision}");
}

#[tokio::test(start_paused = true)]
async fn no_quorum_within_the_timeout_aborts_the_run() {
    let h = serving_v1(&with_trio()).await;
    let mut run = h.start("v2");
    let id = run.started.run_id.clone();
    run.until(awaiting(0, 3)).await;
    h.engine.decide(&id, Verdict::Approve, "bob", None).unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted), "{}", end.message);
    assert!(
        end.message
            .contains("timed out after 2h waiting for approval: 1 of 3 approvals (bob)"),
        "{}",
        end.message
    );
    assert_eq!(h.fake.starts("v2"), 0);
}

#[tokio::test(start_paused = true)]
async fn an_abort_while_waiting_ends_the_run_and_a_promote_is_said_to_do_nothing() {
    let h = serving_v1(&with_trio()).await;
    let mut run = h.start("v2");
    run.until(awaiting(0, 3)).await;
    h.engine.promote().unwrap();
    run.until(|e| matches!(e.event, Event::Warning) && e.message.contains("does nothing"))
        .await;
    h.engine.abort("a person (cutover abort)").unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted), "{}", end.message);
    assert!(
        end.message
            .contains("while waiting for approval; nothing was started"),
        "{}",
        end.message
    );
    assert_eq!(h.fake.starts("v2"), 0);
}

#[tokio::test(start_paused = true)]
async fn the_hotfix_quorum_is_its_own() {
    let config = format!(
        "{CANARY}approvals:\n  required: 3\n  from: [alice, bob, carol]\n  hotfix: {{ from: [oncall] }}\n"
    );
    let h = serving_v1(&config).await;
    let hotfix = DeployOptions {
        deploy_type: DeployType::Hotfix,
        ..DeployOptions::default()
    };
    let mut run = h.follow(|e, c| e.deploy("v2", hotfix, c));
    let id = run.started.run_id.clone();
    run.until(awaiting(0, 1)).await;
    assert!(matches!(
        h.engine.decide(&id, Verdict::Approve, "alice", None),
        Err(EngineError::NotAnApprover { .. })
    ));
    h.engine
        .decide(&id, Verdict::Approve, "oncall", None)
        .unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
}

#[tokio::test(start_paused = true)]
async fn a_closed_window_blocks_unless_overridden_with_a_reason() {
    let h = serving_v1(&frozen()).await;
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::Blocked), "{}", end.message);
    assert!(end.message.contains("the long freeze"), "{}", end.message);
    assert!(end.message.contains("--override-window"), "{}", end.message);
    assert_eq!(h.fake.starts("v2"), 0);

    let overridden = DeployOptions {
        override_window: Some("fixing the outage".into()),
        ..DeployOptions::default()
    };
    let mut run = h.follow(|e, c| e.deploy("v2", overridden, c));
    let id = run.started.run_id.clone();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    let decision = receipt(&h, &id, "deployment-decision.md");
    assert!(
        decision.contains("overridden: fixing the outage"),
        "{decision}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_deploy_waits_for_its_time() {
    let h = serving_v1(CANARY).await;
    let at_ms = crate::events::now_ms() + 3_600_000;
    let scheduled = DeployOptions {
        deploy_type: DeployType::Scheduled,
        at_ms: Some(at_ms),
        ..DeployOptions::default()
    };
    let mut run = h.follow(|e, c| e.deploy("v2", scheduled, c));
    run.until(entered(Phase::Scheduled { at_ms })).await;
    tokio::time::sleep(Duration::from_secs(3500)).await;
    assert_eq!(h.fake.starts("v2"), 0, "not before its time");
    run.until(stage_ended(Stage::Schedule)).await;
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    assert_eq!(h.fake.starts("v2"), 1);

    // A time without the type, or the type without a time, is refused.
    for options in [
        DeployOptions {
            at_ms: Some(at_ms),
            ..DeployOptions::default()
        },
        DeployOptions {
            deploy_type: DeployType::Scheduled,
            ..DeployOptions::default()
        },
    ] {
        assert!(matches!(
            h.engine.deploy("v3", options, h.config.clone()),
            Err(EngineError::InvalidSchedule(_))
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn a_daemon_restarted_while_waiting_for_approval_resumes_the_wait() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fake = Fake::default();
    let config = with_trio();
    let (s, f, c) = (store.clone(), fake.clone(), config.clone());
    let run_id = on_own_runtime(move || async move {
        let h = Harness::over(s, f.clone(), &c);
        let id = v2_approved_once(&h).await;
        f.kill_daemon();
        id
    })
    .join()
    .unwrap();

    let h = Harness::over(store, fake.clone(), &config);
    let mut run = h.follow_resumed(&run_id);
    h.engine.recover().await.unwrap();
    assert!(
        matches!(
            h.active_phase().await,
            Some(Phase::AwaitingApproval {
                approved: 1,
                required: 3
            })
        ),
        "{:?}",
        h.active_phase().await
    );
    h.engine
        .decide(&run_id, Verdict::Approve, "bob", None)
        .unwrap();
    h.engine
        .decide(&run_id, Verdict::Approve, "carol", None)
        .unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    assert_eq!(fake.starts("v2"), 1);
    // alice's approval was announced once, by the first daemon.
    let announced = h
        .store
        .events(&run_id)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(&e.event, Event::Approval { by, .. } if by == "alice"))
        .count();
    assert_eq!(announced, 1);
    let state: crate::state::RunState = h.store.state(&run_id).unwrap().unwrap();
    let approval = &state.pipeline.stages[0];
    assert_eq!(
        (approval.stage, approval.status),
        (Stage::Approval, StageStatus::Passed)
    );
}

#[tokio::test(start_paused = true)]
async fn a_daemon_stopped_in_order_suspends_a_wait_for_approval_and_the_next_resumes_it() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fake = Fake::default();
    let config = with_trio();
    let h = Harness::over(store.clone(), fake.clone(), &config);
    let run_id = v2_approved_once(&h).await;
    // SIGTERM: the daemon shuts down in order; the run is not ended.
    h.engine.shutdown().await;
    let record = h.store.run(&run_id).unwrap();
    assert_eq!(record.outcome, None, "suspended, not finished: {record:?}");

    let h = Harness::over(store, fake.clone(), &config);
    let mut run = h.follow_resumed(&run_id);
    h.engine.recover().await.unwrap();
    h.engine
        .decide(&run_id, Verdict::Approve, "bob", None)
        .unwrap();
    h.engine
        .decide(&run_id, Verdict::Approve, "carol", None)
        .unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    assert_eq!(fake.starts("v2"), 1);
}

/// [`CANARY`] in production, after a staging environment of its own.
fn after_staging() -> String {
    format!("{CANARY}environments:\n  staging:\n    listen: 127.0.0.1:9080\n  production:\n")
}

fn staging_says(deploying: &str) -> impl Fn(&RunEvent) -> bool {
    let deploying = deploying.to_owned();
    move |e| {
        matches!(&e.event, Event::Stage { stage: Stage::Staging, status: StageStatus::Running, summary, .. }
            if summary.contains(&deploying))
    }
}

#[tokio::test(start_paused = true)]
async fn a_deploy_waits_for_staging_and_goes_on_once_it_promoted_there() {
    let h = serving_v1(&after_staging()).await;
    let mut run = h.start("v2");
    let id = run.started.run_id.clone();
    run.until(staging_says("its run staging-")).await;
    // v1 came in with the plain config; v2 goes through staging, for this run.
    assert_eq!(
        h.fake.staged_deploys(),
        [("v2".to_owned(), format!("production/{id}"))]
    );
    // Staging takes its time: nothing of v2 here meanwhile.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(h.fake.starts("v2"), 0);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));

    h.fake.staging_ends(Outcome::Promoted, "every step passed");
    run.until(stage_ended(Stage::Staging)).await;
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    let decision = receipt(&h, &id, "deployment-decision.md");
    assert!(
        decision.contains("v2 promoted in `staging` (its run staging-1)"),
        "{decision}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deploy_that_failed_in_staging_never_reaches_production() {
    let h = Harness::new(&after_staging());
    h.fake
        .staging_ends(Outcome::RolledBack, "error rate 12% > 1%");
    let end = h.start("v2").end().await;
    assert_eq!(end.outcome, Some(Outcome::Blocked), "{}", end.message);
    assert!(
        end.message.contains(
            "the deploy to `staging` ended rolled_back: error rate 12% > 1% (its run staging-1); \
             nothing was started in `production`"
        ),
        "{}",
        end.message
    );
    assert_eq!(h.fake.starts("v2"), 0);
    assert!(h.fake.running().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_daemon_restarted_during_staging_watches_the_same_run_there() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fake = Fake::default();
    let config = after_staging();
    let (s, f, c) = (store.clone(), fake.clone(), config.clone());
    let run_id = on_own_runtime(move || async move {
        let h = Harness::over(s, f.clone(), &c);
        let mut run = h.start("v2");
        run.until(staging_says("its run staging-1")).await;
        f.kill_daemon();
        run.started.run_id
    })
    .join()
    .unwrap();

    let h = Harness::over(store, fake.clone(), &config);
    let mut run = h.follow_resumed(&run_id);
    h.engine.recover().await.unwrap();
    run.until(staging_says("its run staging-1")).await;
    fake.staging_ends(Outcome::Promoted, "every step passed");
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    // One deploy asked of staging, not a second one by the new daemon.
    assert_eq!(fake.staged_deploys().len(), 1);
    assert_eq!(fake.starts("v2"), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn smoke_tests_against_a_staging_that_cannot_be_found_block_the_deploy() {
    let config = after_staging().replace(
        "  staging:\n",
        "  staging:\n    smoke: [{ path: /ready }]\n",
    );
    let h = Harness::new(&config);
    h.fake.staging_ends(Outcome::Promoted, "every step passed");
    let end = h.start("v2").end().await;
    assert_eq!(end.outcome, Some(Outcome::Blocked), "{}", end.message);
    assert!(
        end.message.contains(
            "could not find where `staging` serves, to smoke test it: the fake `staging` serves no HTTP"
        ),
        "{}",
        end.message
    );
    assert_eq!(h.fake.starts("v2"), 0);
}
