//! `deployment-decision.md` (every run's verdict, stage by stage, with the
//! evidence, so an agent greps one file) and `approval.md` (who decided, when
//! and why).

use std::fmt::Write as _;

use cutover_api::{ApprovalRecord, StageRecord, StageStatus, Verdict};
use cutover_store::RunRecord;
use serde::Serialize;

use super::{cell, elapsed, header, outcome_words};
use crate::events::format_ms;
use crate::pipeline::Pipeline;

/// The decision record, as `run.json` carries it.
#[derive(Debug, Serialize)]
pub struct DecisionRecord {
    /// `promoted`, `rolled_back`, `aborted`, `blocked`, `failed`; none while running.
    pub decision: Option<&'static str>,
    pub reason: Option<String>,
    pub deploy_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_window: Option<String>,
    /// The later environment's run this one is the staging of (`ENVIRONMENT/RUN-ID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staged_for: Option<String>,
    pub stages: Vec<StageRecord>,
}

impl DecisionRecord {
    pub fn new(run: &RunRecord, pipeline: &Pipeline) -> DecisionRecord {
        DecisionRecord {
            decision: run.outcome.map(|o| o.as_str()),
            reason: run.reason.clone(),
            deploy_type: pipeline.options.deploy_type.as_str(),
            override_window: pipeline.options.override_window.clone(),
            staged_for: pipeline.options.staged_for.clone(),
            stages: pipeline.stages.clone(),
        }
    }
}

pub(super) fn deployment_decision(
    run: &RunRecord,
    record: &DecisionRecord,
    files: &[&str],
) -> String {
    let mut out = String::new();
    header(&mut out, "Deployment decision", run);
    let _ = writeln!(
        out,
        "**Decision: {}**{}\n",
        outcome_words(run),
        run.reason
            .as_deref()
            .map_or_else(String::new, |r| format!(": {}", cell(r)))
    );
    let _ = writeln!(out, "Deploy type: {}.", record.deploy_type);
    if let Some(reason) = &record.override_window {
        let _ = writeln!(
            out,
            "The deployment windows were overridden: {}.",
            cell(reason)
        );
    }
    if let Some(run) = &record.staged_for {
        let _ = writeln!(
            out,
            "The staging of {}: that run has the gates, the windows and the approvals.",
            cell(run)
        );
    }
    out.push_str("\n## Stages\n\n| # | stage | verdict | began | took | evidence |\n|---|---|---|---|---|---|\n");
    let of = record.stages.len();
    for (i, s) in record.stages.iter().enumerate() {
        let began = s.started_at_ms.map_or_else(|| "-".to_owned(), format_ms);
        let took = match (s.started_at_ms, s.finished_at_ms) {
            (Some(a), Some(b)) => elapsed(a, b),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {}/{of} | {} | {} | {began} | {took} | {} |",
            i + 1,
            s.stage,
            verdict_words(s.status),
            cell(&s.summary)
        );
    }
    out.push_str("\n## Evidence\n\n");
    for f in files {
        let _ = writeln!(out, "- [{f}]({f})");
    }
    out
}

fn verdict_words(status: StageStatus) -> &'static str {
    match status {
        StageStatus::Passed => "**passed**",
        StageStatus::Failed => "**failed**",
        StageStatus::Skipped => "skipped",
        StageStatus::Running => "under way",
        StageStatus::Pending => "not begun",
    }
}

pub(super) fn approval(
    run: &RunRecord,
    stage: Option<&StageRecord>,
    decisions: &[ApprovalRecord],
) -> String {
    let mut out = String::new();
    header(&mut out, "Approval", run);
    if let Some(s) = stage {
        let _ = writeln!(
            out,
            "**{}**{}\n",
            s.status.as_str(),
            if s.summary.is_empty() {
                String::new()
            } else {
                format!(": {}", cell(&s.summary))
            }
        );
        if let Some(began) = s.started_at_ms {
            let _ = writeln!(out, "Waiting began {}.\n", format_ms(began));
        }
    }
    if decisions.is_empty() {
        out.push_str("Nobody decided.\n");
        return out;
    }
    out.push_str("| when | who | decision | why |\n|---|---|---|---|\n");
    for d in decisions {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            format_ms(d.at_ms),
            cell(&d.by),
            match d.verdict {
                Verdict::Approve => "approved",
                Verdict::Reject => "**rejected**",
            },
            cell(d.comment.as_deref().unwrap_or(""))
        );
    }
    out
}
