//! Following a run to its end: a progress bar on a terminal, plain lines otherwise,
//! JSON lines with `--json`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use cutover_analysis::Verdict;
use cutover_api::{Event, RunEvent, RunKind, format_bp};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::Client;
use crate::exit;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Json,
    Bar,
    Plain,
}

impl Style {
    pub fn pick(json: bool) -> Style {
        if json {
            Style::Json
        } else if std::io::stderr().is_terminal() {
            Style::Bar
        } else {
            Style::Plain
        }
    }
}

/// The line that names a run before its progress: `run ID (canary of v2)`.
pub fn heading(run_id: &str, kind: RunKind, version: &str) -> String {
    format!("run {run_id} ({} of {version})", kind.as_str())
}

/// Follows a run to its end, says how it ended and where its receipts are (unless
/// `json`), and returns the exit code of its outcome: what `deploy` and `watch` do.
pub async fn to_outcome(
    client: &Client,
    run_id: &str,
    json: bool,
    receipts: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let end = follow(client, run_id, Style::pick(json)).await?;
    let outcome = end.outcome.context("the final event carries no outcome")?;
    if !json {
        println!("{}", end.message);
        if let Some(receipts) = receipts {
            println!("receipts: {}", receipts.display());
        }
    }
    Ok(ExitCode::from(exit::for_outcome(outcome)))
}

/// Streams the run's events until the final one and returns it.
///
/// # Errors
/// When the stream ends without a final event (the daemon went away).
pub async fn follow(client: &Client, run_id: &str, style: Style) -> anyhow::Result<RunEvent> {
    let mut events = std::pin::pin!(client.events(run_id).await?);
    let bar = (style == Style::Bar).then(|| {
        let bar = ProgressBar::new(100);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {prefix}new version {bar:30} {pos:>3}%  {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let mut first_at = None;
    while let Some(event) = events.next().await {
        let event = event?;
        let since = (event.at_ms - *first_at.get_or_insert(event.at_ms)) as f64 / 1000.0;
        match (style, &bar) {
            (Style::Json, _) => println!("{}", serde_json::to_string(&event)?),
            (_, Some(bar)) => {
                if let Some(bp) = event.weight_bp {
                    bar.set_position(u64::from(bp / 100));
                }
                if let Event::Stage {
                    stage, index, of, ..
                } = &event.event
                {
                    // The stage and its place in the whole pipeline.
                    bar.set_prefix(format!("stage {index}/{of} {stage} · "));
                }
                bar.set_message(event.message.clone());
                // Passing windows only update the bar.
                let passing = matches!(&event.event,
                    Event::Analysis { report, .. } if report.verdict == Verdict::Pass);
                if !passing {
                    bar.println(line(since, &event));
                }
            }
            _ => println!("{}", line(since, &event)),
        }
        if event.is_final() {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            return Ok(event);
        }
    }
    if let Some(bar) = &bar {
        bar.abandon();
    }
    Err(anyhow!(
        "the daemon closed the event stream of run {run_id} before it ended; see `cutover status`"
    ))
}

/// One event as a line for people.
pub fn line(since_s: f64, event: &RunEvent) -> String {
    let weight = event
        .weight_bp
        .map_or(String::new(), |bp| format!(" [{}]", format_bp(bp)));
    format!(
        "{:>+7.1}s {:<8}{weight} {}",
        since_s,
        event.event.kind(),
        event.message
    )
}
