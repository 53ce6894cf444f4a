//! Receipts: what a run leaves on disk, Markdown for people and JSON for machines,
//! in `<state>/runs/<run-id>/`. Rendered only from what the store recorded, so a
//! receipt never says more than the store can back up.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cutover_analysis::log_check::{Change, LogFinding, Per};
use cutover_analysis::{MetricResult, Verdict, Why};
use cutover_api::{Event, RunEvent};
use cutover_store::{MeasurementRecord, Outcome, RunRecord, Store, StoreError};
use serde::Serialize;

use crate::chart;
use crate::events::{format_bp, format_ms};
use crate::state::RunState;

mod decision;

pub use decision::DecisionRecord;

/// Why receipts could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The run's records could not be read.
    #[error("could not read the run from the store")]
    Store(#[from] StoreError),
    /// A file could not be written.
    #[error("could not write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// run.json could not be encoded.
    #[error("could not encode run.json")]
    Json(#[from] serde_json::Error),
}

/// Everything a run's receipts are made of; also the shape of `run.json`.
#[derive(Debug, Serialize)]
pub struct RunReceipt {
    pub run: RunRecord,
    pub events: Vec<RunEvent>,
    /// The config file the run used, as it read it.
    pub config: Option<String>,
    pub measurements: Vec<MeasurementRecord>,
    /// Each stage's verdict and evidence, and the final decision.
    pub decision: DecisionRecord,
    /// Who approved or rejected the run, when and why.
    pub approvals: Vec<cutover_api::ApprovalRecord>,
    /// The receipt files written beside run.json.
    pub files: Vec<String>,
}

impl RunReceipt {
    /// What the store holds of the run, with `files` as the receipts beside it.
    pub fn read(store: &Store, run_id: &str, files: Vec<String>) -> Result<RunReceipt, StoreError> {
        let run = store.run(run_id)?;
        let decision = DecisionRecord::new(&run, &pipeline_of(store, run_id));
        Ok(RunReceipt {
            events: store.events(run_id)?,
            config: store
                .run_config(run_id)?
                .as_deref()
                .and_then(crate::engine::recorded_config_text),
            measurements: store.measurements(run_id)?,
            decision,
            approvals: store.approvals(run_id)?,
            files,
            run,
        })
    }
}

/// The run's pipeline as its state records it; a state another version of
/// cutover wrote reads as none.
fn pipeline_of(store: &Store, run_id: &str) -> crate::pipeline::Pipeline {
    store
        .state::<RunState>(run_id)
        .ok()
        .flatten()
        .map(|s| s.pipeline)
        .unwrap_or_default()
}

/// Writes the run's receipts and returns their folder.
///
/// # Guarantees
/// Idempotent: writing again replaces the files with the same content plus
/// whatever the store learnt since.
pub fn write(store: &Store, runs_dir: &Path, run_id: &str) -> Result<PathBuf, ReceiptError> {
    let run = store.run(run_id)?;
    let recorded = store.run_config(run_id)?.unwrap_or_default();
    let config = crate::engine::RunConfig::recorded(&recorded);
    let events = store.events(run_id)?;
    let measurements = store.measurements(run_id)?;
    let approvals = store.approvals(run_id)?;
    let pipeline = pipeline_of(store, run_id);
    let dir = runs_dir.join(run_id);
    let io = |path: &Path, source| ReceiptError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;

    let mut files = vec![("deployment-log.md", deployment_log(&run, &events))];
    if !measurements.is_empty() {
        let analysis = config
            .as_ref()
            .map(|c| c.config.analysis.clone())
            .unwrap_or_default();
        files.push((
            "canary-analysis.md",
            canary_analysis(&run, &measurements, &analysis),
        ));
        files.push(("canary-analysis.svg", chart(&run, &measurements)));
    }
    if let Some(c) = &config {
        files.push(("config.yaml", c.text.clone()));
    }
    // A run ended before its rollout rolled nothing back: its decision record says why.
    if pipeline.deploying()
        && matches!(
            run.outcome,
            Some(Outcome::RolledBack | Outcome::Aborted | Outcome::Failed)
        )
    {
        files.push((
            "rollback-log.md",
            rollback_log(&run, &events, &measurements),
        ));
    }
    let approval_stage = pipeline
        .stages
        .iter()
        .find(|s| s.stage == cutover_api::Stage::Approval);
    if approval_stage.is_some() || !approvals.is_empty() {
        files.push((
            "approval.md",
            decision::approval(&run, approval_stage, &approvals),
        ));
    }
    let record = DecisionRecord::new(&run, &pipeline);
    // The stages' own receipts (gates.md, hook-on_rollback.md, ...) are in the
    // folder already, written when each stage ended.
    let mut evidence: Vec<String> = files.iter().map(|(n, _)| (*n).to_owned()).collect();
    evidence.extend(stage_receipts(&dir));
    evidence.push("run.json".into());
    evidence.sort();
    evidence.dedup();
    let evidence: Vec<&str> = evidence.iter().map(String::as_str).collect();
    let decision_md = decision::deployment_decision(&run, &record, &evidence);
    files.push(("deployment-decision.md", decision_md));
    for (name, text) in &files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    let receipt = RunReceipt {
        run,
        events,
        config: config.map(|c| c.text),
        measurements,
        decision: record,
        approvals,
        files: files.iter().map(|(n, _)| (*n).to_owned()).collect(),
    };
    let path = dir.join("run.json");
    std::fs::write(&path, serde_json::to_string_pretty(&receipt)?).map_err(|e| io(&path, e))?;
    Ok(dir)
}

/// The receipt files already in a run's folder (not its commands' logs, which are
/// in subfolders), but for the decision record itself.
fn stage_receipts(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "deployment-decision.md" && n != "run.json")
        .collect()
}

fn outcome_words(run: &RunRecord) -> &'static str {
    match run.outcome {
        Some(Outcome::Promoted) => "promoted",
        Some(Outcome::RolledBack) => "rolled back",
        Some(Outcome::Aborted) => "aborted",
        Some(Outcome::Blocked) => "blocked before any traffic moved",
        Some(Outcome::Failed) => "failed (internal error)",
        None => "in progress",
    }
}

fn elapsed(from_ms: i64, to_ms: i64) -> String {
    format!("{:.1}s", (to_ms - from_ms) as f64 / 1000.0)
}

/// Pipes would break a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn header(out: &mut String, title: &str, run: &RunRecord) {
    let _ = writeln!(out, "# {title}: {} {}\n", run.app, run.version);
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| run | `{}` |", run.id);
    let _ = writeln!(out, "| kind | {} |", run.kind.as_str());
    let _ = writeln!(
        out,
        "| from → to | {} → {} |",
        run.stable.as_deref().unwrap_or("(nothing)"),
        run.version
    );
    let _ = writeln!(out, "| started | {} |", format_ms(run.started_at_ms));
    if let Some(end) = run.finished_at_ms {
        let _ = writeln!(
            out,
            "| finished | {} ({}) |",
            format_ms(end),
            elapsed(run.started_at_ms, end)
        );
    }
    let _ = writeln!(out, "| outcome | **{}** |", outcome_words(run));
    if let Some(reason) = &run.reason {
        let _ = writeln!(out, "| why | {} |", cell(reason));
    }
    out.push('\n');
}

fn deployment_log(run: &RunRecord, events: &[RunEvent]) -> String {
    let mut out = String::new();
    header(&mut out, "Deployment log", run);
    out.push_str("## Timeline\n\n| time | since start | event | new version's share | what happened |\n|---|---|---|---|---|\n");
    for e in events {
        let _ = writeln!(
            out,
            "| {} | +{} | {} | {} | {} |",
            format_ms(e.at_ms),
            elapsed(run.started_at_ms, e.at_ms),
            e.event.kind(),
            e.weight_bp.map_or(String::new(), format_bp),
            cell(&e.message)
        );
    }
    out
}

fn canary_analysis(
    run: &RunRecord,
    measurements: &[MeasurementRecord],
    a: &cutover_spec::AnalysisSpec,
) -> String {
    let mut out = String::new();
    header(&mut out, "Canary analysis", run);
    let _ = writeln!(
        out,
        "Each window is {} long. A window with fewer than {} canary requests is inconclusive; \
         {} failed window(s) roll back; {} inconclusive windows in a row roll back.",
        humantime::format_duration(a.interval),
        a.min_requests,
        a.failure_limit,
        a.inconclusive_limit
    );
    match &a.sequential {
        Some(s) => {
            let _ = writeln!(
                out,
                "Sequential tests (anytime-valid, looked at after every window; a rejection rolls \
                 back at once): errors {}, slow requests {}, false-alarm chance over the run at \
                 most {}.",
                if s.errors { "on" } else { "off" },
                s.latency_quantile.map_or_else(
                    || "off".to_owned(),
                    |q| format!("above the baseline's {q} quantile")
                ),
                s.alpha
            );
        }
        None => out.push_str("Sequential tests: off.\n"),
    }
    match &a.comparison {
        Some(c) => {
            let _ = writeln!(
                out,
                "At each step's end, the Mann-Whitney U test of the step's latencies: the step fails \
                 when the canary's are higher at {} confidence and its median more than {} above \
                 the baseline's (at least {} requests a side).",
                c.confidence, c.tolerance, c.min_samples
            );
        }
        None => out.push_str("Step-end comparison: off.\n"),
    }
    let _ = writeln!(out, "Metrics from: {}.", source_words(&a.source));
    out.push_str("\n![canary against baseline, window by window](canary-analysis.svg)\n");
    if let Some(last) = measurements.last() {
        out.push_str(
            "\n## Where each metric ended\n\n\
             | metric | test | baseline | canary | effect | statistic | p-value | limit | verdict |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for metric in &last.report.metrics {
            let _ = writeln!(
                out,
                "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} |",
                metric.metric,
                metric
                    .threshold_ms
                    .map_or_else(String::new, |t| format!(" (> {t:.1}ms)")),
                metric.test,
                metric.format(metric.baseline),
                metric.format(metric.canary),
                number(metric.effect, |e| format!("{e:.2}x")),
                number(metric.statistic, |s| format!("{s:.2}")),
                number(metric.p_value, |p| format!("{p:.3}")),
                cell(&metric.format_limit()),
                verdict(metric)
            );
        }
    }
    log_templates(&mut out, measurements, a.logs.as_ref());
    out.push_str(
        "\n## Windows\n\n\
         | window | time | step | share | requests (canary / baseline) | error rate | p95 | verdict | notes |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for (i, m) in measurements.iter().enumerate() {
        let r = &m.report;
        let pair = |c: Option<String>, b: Option<String>| {
            format!(
                "{} / {}",
                c.unwrap_or_else(|| "-".into()),
                b.unwrap_or_else(|| "-".into())
            )
        };
        let rate =
            |s: &cutover_analysis::Sample| s.error_rate().map(|e| format!("{:.2}%", e * 100.0));
        let p95 = |s: &cutover_analysis::Sample| {
            s.p95.map(|d| format!("{:.1}ms", d.as_secs_f64() * 1000.0))
        };
        let unmeasured = r.source_error.iter().map(|e| format!("not measured: {e}"));
        let notes: Vec<String> = unmeasured
            .chain(
                r.metrics
                    .iter()
                    .filter(|m| {
                        m.verdict != Verdict::Pass || matches!(m.why, Some(Why::LogErrors { .. }))
                    })
                    .filter_map(|m| {
                        m.explain()
                            .map(|why| format!("{} {}: {why}", m.test, m.metric))
                    }),
            )
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} / {} | {} | {} | {} | {} |",
            i + 1,
            format_ms(m.at_ms),
            m.step + 1,
            format_bp(m.weight_bp),
            r.canary.requests,
            r.stable.requests,
            pair(rate(&r.canary), rate(&r.stable)),
            pair(p95(&r.canary), p95(&r.stable)),
            r.verdict,
            cell(&notes.join("; "))
        );
    }
    let counts = |v: Verdict| {
        measurements
            .iter()
            .filter(|m| m.report.verdict == v)
            .count()
    };
    let _ = writeln!(
        out,
        "\n{} window(s): {} pass, {} fail, {} inconclusive.",
        measurements.len(),
        counts(Verdict::Pass),
        counts(Verdict::Fail),
        counts(Verdict::Inconclusive)
    );
    out
}

/// The log check: its settings, and the error templates the canary logged that
/// are new or more frequent, as of each step's last window, with an example line.
fn log_templates(
    out: &mut String,
    measurements: &[MeasurementRecord],
    check: Option<&cutover_spec::LogCheckSpec>,
) {
    let Some(check) = check else {
        out.push_str("\nLog check: off.\n");
        return;
    };
    let action = match check.new_errors {
        cutover_spec::LogAction::Fail => "fails the window",
        cutover_spec::LogAction::Warn => "is a warning (the window is not failed)",
        cutover_spec::LogAction::Off => "is listed here only",
    };
    let _ = writeln!(
        out,
        "\n## Log templates\n\n\
         Error-level lines of both sides grouped into templates (Drain); a template the \
         canary logged at least {} times in a step is a finding when its baseline never \
         logged it, or logged it more than {}x less often per request (per line when a side \
         served no requests). A finding {action}.\n",
        check.min_count, check.rate_factor
    );
    let mut last_of_step: Vec<(usize, &[LogFinding])> = Vec::new();
    for m in measurements {
        match last_of_step.last_mut() {
            Some((step, findings)) if *step == m.step => *findings = m.report.log_findings(),
            _ => last_of_step.push((m.step, m.report.log_findings())),
        }
    }
    let rows: Vec<(usize, &LogFinding)> = last_of_step
        .iter()
        .flat_map(|(step, findings)| findings.iter().map(move |f| (*step, f)))
        .collect();
    if rows.is_empty() {
        out.push_str("No error template new or more frequent in the canary.\n");
        return;
    }
    out.push_str(
        "| step | template | change | canary lines | baseline lines | example |\n\
         |---|---|---|---|---|---|\n",
    );
    for (step, f) in rows {
        let change = match f.change {
            Change::New => "new".to_owned(),
            Change::Rose { factor } => format!(
                "{factor:.1}x per {}",
                if f.per == Per::Request {
                    "request"
                } else {
                    "line"
                }
            ),
        };
        let _ = writeln!(
            out,
            "| {} | `{}` | {change} | {} | {} | `{}` |",
            step + 1,
            cell(&f.template).replace('`', "'"),
            f.canary,
            f.baseline,
            cell(&f.example).replace('`', "'")
        );
    }
}

/// Where the windows' numbers came from, with the endpoint as written in the
/// config (a `${env:NAME}` stays a placeholder).
fn source_words(source: &cutover_spec::MetricSource) -> String {
    use cutover_spec::MetricSource as S;
    match source {
        S::Builtin => "the built-in proxy (exact windows)".to_owned(),
        S::Prometheus(p) => format!(
            "Prometheus at {} (PromQL, instant queries at each window's end)",
            p.url
        ),
        S::Web(_) => "a JSON web endpoint per metric".to_owned(),
        S::Command(_) => "a command per metric".to_owned(),
        S::Datadog(d) => format!("Datadog's metrics query API at {}", d.api_url),
    }
}

fn number(value: Option<f64>, show: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), show)
}

fn verdict(metric: &MetricResult) -> String {
    match (metric.explain(), metric.verdict) {
        (Some(why), Verdict::Fail | Verdict::Inconclusive) => {
            format!("**{}**: {}", metric.verdict, cell(&why))
        }
        _ => metric.verdict.to_string(),
    }
}

/// The chart's points: each window's error rate and p95 on both sides.
fn chart(run: &RunRecord, measurements: &[MeasurementRecord]) -> String {
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let points: Vec<chart::Point> = measurements
        .iter()
        .map(|m| chart::Point {
            at_s: (m.at_ms - run.started_at_ms) as f64 / 1000.0,
            step: m.step,
            canary_error_rate: m.report.canary.error_rate(),
            baseline_error_rate: m.report.stable.error_rate(),
            canary_p95_ms: ms(m.report.canary.p95),
            baseline_p95_ms: ms(m.report.stable.p95),
        })
        .collect();
    chart::render(&points, outcome_words(run))
}

fn rollback_log(
    run: &RunRecord,
    events: &[RunEvent],
    measurements: &[MeasurementRecord],
) -> String {
    let mut out = String::new();
    header(&mut out, "Rollback log", run);
    let _ = writeln!(
        out,
        "## Trigger\n\n{}\n",
        run.reason.as_deref().unwrap_or("(not recorded)")
    );
    out.push_str("## Evidence\n\n");
    let failing: Vec<_> = measurements
        .iter()
        .filter(|m| m.report.verdict == Verdict::Fail)
        .collect();
    let evidence = events.iter().filter(|e| {
        matches!(
            e.event,
            Event::Unhealthy { .. }
                | Event::StartFailed { .. }
                | Event::Smoke { .. }
                | Event::Command { .. }
        )
    });
    if failing.is_empty() {
        out.push_str("No analysis window failed. Health, smoke checks and commands recorded:\n\n");
        for e in evidence {
            let _ = writeln!(out, "- {} {}", format_ms(e.at_ms), e.message);
        }
        if let Some(last) = measurements.last() {
            let _ = writeln!(
                out,
                "\nLast window ({}): {}, canary {} requests, stable {} requests.",
                format_ms(last.at_ms),
                last.report.verdict,
                last.report.canary.requests,
                last.report.stable.requests
            );
        }
    } else {
        out.push_str(
            "| time | weight | metric | test | baseline | canary | limit | why |\n|---|---|---|---|---|---|---|---|\n",
        );
        for m in failing {
            for f in m.report.failures() {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    format_ms(m.at_ms),
                    format_bp(m.weight_bp),
                    f.metric,
                    f.test,
                    f.format(f.baseline),
                    f.format(f.canary),
                    cell(&f.format_limit()),
                    cell(&f.explain().unwrap_or_default())
                );
            }
        }
    }
    out.push_str("\n## Steps taken\n\n");
    let start = events
        .iter()
        .position(|e| matches!(e.event, Event::RollingBack { .. }))
        .unwrap_or(events.len().saturating_sub(1));
    for e in &events[start..] {
        let _ = writeln!(out, "1. {} {}", format_ms(e.at_ms), e.message);
    }
    if let (Some(first), Some(last)) = (events.get(start), events.last()) {
        let _ = writeln!(
            out,
            "\nRollback took {} ms from the decision to the last step; the run took {} in all.",
            last.at_ms - first.at_ms,
            elapsed(run.started_at_ms, last.at_ms)
        );
    }
    out
}
