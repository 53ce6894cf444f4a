//! The log check: a canary that logs an error template its baseline never logs
//! fails its windows with `new_errors: fail`, and is only warned about with `warn`;
//! either way the template is in the receipts.

use cutover_analysis::log_check::{Change, METRIC};
use cutover_analysis::{Verdict, Why};
use cutover_api::Outcome;

use super::{CANARY, Harness};

fn canary_with_logs(new_errors: &str) -> String {
    format!("{CANARY}  logs: {{ new_errors: {new_errors}, min_count: 3 }}\n")
}

/// v1 live and logging only an unrelated error; v2 also logs a new one, 4 times a
/// window with its values changing.
async fn v2_logging_a_new_error(new_errors: &str) -> (Harness, cutover_api::RunEvent) {
    let h = Harness::new(&canary_with_logs(new_errors));
    h.deploy("v1").await;
    h.fake
        .logs_each_window("v1", &["INFO served /", "ERROR cache miss for key 17"]);
    h.fake.logs_each_window(
        "v2",
        &[
            "INFO served /",
            "ERROR cache miss for key 3",
            "ERROR db timeout after 31ms on 10.0.0.7:5432",
            "ERROR db timeout after 5ms on 10.0.0.8:5432",
            "level=error msg=\"db timeout\" after=12ms",
            "ERROR db timeout after 250ms on 10.0.0.7:5432",
        ],
    );
    let end = h.deploy("v2").await;
    (h, end)
}

#[tokio::test(start_paused = true)]
async fn a_canary_logging_a_new_error_template_fails_its_window() {
    let (h, end) = v2_logging_a_new_error("fail").await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(end.message.contains("error template"), "{}", end.message);
    let windows = h.store.measurements(&end.run_id).unwrap();
    let first = &windows[0].report;
    assert_eq!(first.verdict, Verdict::Fail);
    let result = first.metrics.iter().find(|m| m.metric == METRIC).unwrap();
    assert_eq!(result.verdict, Verdict::Fail);
    // The cache miss is logged on both sides at the same rate: not a finding.
    let findings = first.log_findings();
    assert_eq!(findings.len(), 1, "{findings:?}");
    let finding = &findings[0];
    assert_eq!(finding.template, "ERROR db timeout after <*> on <*>");
    assert_eq!(finding.change, Change::New);
    assert_eq!((finding.canary, finding.baseline), (3, 0));
    let analysis =
        std::fs::read_to_string(h.receipts(&end.run_id).join("canary-analysis.md")).unwrap();
    assert!(
        analysis.contains(
            "| 1 | `ERROR db timeout after <*> on <*>` | new | 3 | 0 | `ERROR db timeout after 31ms on 10.0.0.7:5432` |"
        ),
        "{analysis}"
    );
}

#[tokio::test(start_paused = true)]
async fn with_warn_a_new_error_template_is_recorded_and_the_canary_promoted() {
    let (h, end) = v2_logging_a_new_error("warn").await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    let windows = h.store.measurements(&end.run_id).unwrap();
    let result = windows[0]
        .report
        .metrics
        .iter()
        .find(|m| m.metric == METRIC)
        .unwrap();
    assert_eq!(result.verdict, Verdict::Pass);
    assert!(matches!(
        result.why,
        Some(Why::LogErrors {
            templates: 1,
            fails: false
        })
    ));
    let analysis =
        std::fs::read_to_string(h.receipts(&end.run_id).join("canary-analysis.md")).unwrap();
    assert!(
        analysis.contains("ERROR db timeout after <*> on <*>"),
        "{analysis}"
    );
    assert!(analysis.contains("a warning only"), "{analysis}");
}
