//! Windows a metrics source could not measure: inconclusive, with the source's
//! fault in the report and the receipts, never a pass; in a row, they roll the
//! canary back by the rule for inconclusive windows.

use cutover_analysis::{SourceFault, Verdict};
use cutover_api::{Event, Outcome, Role};

use super::{CANARY, Harness, only_stable};

#[tokio::test(start_paused = true)]
async fn a_source_timing_out_makes_each_window_inconclusive_and_rolls_back_at_the_limit() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    h.fake.unmeasured(
        "v2",
        Role::Canary,
        SourceFault::Timeout { timeout_ms: 5000 },
    );
    let mut run = h.start("v2");
    let first = run
        .until(|e| matches!(e.event, Event::Analysis { .. }))
        .await;
    let Event::Analysis { report, .. } = &first.event else {
        unreachable!("matched above")
    };
    assert_eq!(report.verdict, Verdict::Inconclusive);
    let error = report.source_error.as_ref().expect("the fault is recorded");
    assert_eq!(error.fault, SourceFault::Timeout { timeout_ms: 5000 });
    assert_eq!(
        (error.version.as_str(), error.role.as_str()),
        ("v2", "canary")
    );
    assert!(
        first.message.contains("no answer within 5000 ms"),
        "{}",
        first.message
    );

    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(
        end.message.contains("inconclusive 3 windows in a row")
            && end.message.contains("not measured")
            && end
                .message
                .contains("analysis.source.fake.queries.requests"),
        "{}",
        end.message
    );
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    let measured = h.store.measurements(&end.run_id).unwrap();
    assert_eq!(measured.len(), 3);
    assert!(measured.iter().all(|m| m.report.source_error.is_some()));
    let receipts = h.receipts(&end.run_id);
    let analysis = std::fs::read_to_string(receipts.join("canary-analysis.md")).unwrap();
    assert!(analysis.contains("not measured: analysis.source.fake.queries.requests for v2 (canary): no answer within 5000 ms"), "{analysis}");
    let run_json = std::fs::read_to_string(receipts.join("run.json")).unwrap();
    assert!(run_json.contains(r#""kind": "timeout""#), "{run_json}");
}

#[tokio::test(start_paused = true)]
async fn an_unmeasured_baseline_never_lets_a_healthy_canary_pass() {
    let h = Harness::new(CANARY);
    h.deploy("v1").await;
    h.fake.unmeasured(
        "v1",
        Role::Stable,
        SourceFault::Unreachable {
            message: "connection refused".into(),
        },
    );
    let end = h.deploy("v2").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(
        end.message.contains("unreachable: connection refused"),
        "{}",
        end.message
    );
    let measured = h.store.measurements(&end.run_id).unwrap();
    assert!(
        measured
            .iter()
            .all(|m| m.report.verdict == Verdict::Inconclusive)
    );
}
