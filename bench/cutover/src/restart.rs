//! (c) The daemon SIGKILLed under load while a canary waits at 50% for
//! `promote`, then started again with the same config: how long the clients got
//! no answer, whether the run resumed where it was, with the same processes, and
//! whether it still ends promoted.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::daemon::{self, Daemon, Setup};
use crate::load::{Answer, Counts, Load, Record};
use crate::report::{Report, yes_no};
use crate::{LEAD, Options};

const DEADLINE: Duration = Duration::from_secs(30);

/// The canary's weight at the step, in basis points.
const HALF: u64 = 5000;

/// What happened around the kill, on the scenario's clock.
struct Findings {
    killed_at: Duration,
    /// From the kill to the new daemon's `daemon.json`.
    up: Duration,
    resumed: bool,
    pids_before: (Vec<u32>, Vec<u32>),
    pids_after: (Vec<u32>, Vec<u32>),
    outcome: String,
    notes: Vec<String>,
}

pub async fn run(setup: &Setup, options: &Options) -> anyhow::Result<Report> {
    let daemon = Daemon::start(setup).await?;
    daemon::deploy_with_cli(setup, "v1").await?;
    let clock = Instant::now();
    let load = Load::start(&daemon.proxy, options.rate, options.time_limit, clock)?;
    tokio::time::sleep(LEAD).await;
    let outcome = kill_and_restart(setup, daemon, clock).await;
    tokio::time::sleep(LEAD).await;
    let records = load.stop().await;
    options.keep(&records);

    let mut report = Report::new("(c) daemon SIGKILLed at a canary step, started again");
    report.load(&Counts::of(&records), false);
    let (restarted, f) = match outcome {
        Ok(o) => o,
        Err(e) => {
            report.expect("the scenario", format!("{e:#}"), "no error", false);
            return Ok(report);
        }
    };
    let stopped = restarted.stop().await;

    let after: Vec<&Record> = records.iter().filter(|r| r.sent >= f.killed_at).collect();
    match after.iter().find(|r| r.ok()) {
        Some(r) => report.info(
            "no-answer window (kill to first 2xx)",
            format!("{:.0} ms", (r.done - f.killed_at).as_secs_f64() * 1000.0),
        ),
        None => report.expect(
            "no-answer window (kill to first 2xx)",
            "no 2xx after the kill",
            "a 2xx",
            false,
        ),
    }
    // When they were sent, relative to the kill (negative: before it).
    let around = |r: &Record| (r.sent.as_secs_f64() - f.killed_at.as_secs_f64()) * 1000.0;
    let unanswered: Vec<f64> = records
        .iter()
        .filter(|r| matches!(r.answer, Answer::None { .. }))
        .map(around)
        .collect();
    report.info(
        "requests without answer",
        match (unanswered.first(), unanswered.last()) {
            (Some(first), Some(last)) => format!(
                "{} (sent {first:+.0} to {last:+.0} ms from the kill)",
                unanswered.len()
            ),
            _ => "0".to_owned(),
        },
    );
    let non_2xx_after: Vec<String> = after
        .iter()
        .filter_map(|r| match &r.answer {
            Answer::Http { status, .. } if !r.ok() => {
                Some(format!("{status} sent {:+.0} ms", around(r)))
            }
            _ => None,
        })
        .collect();
    report.info(
        "non-2xx answers after the kill",
        if non_2xx_after.is_empty() {
            "0".to_owned()
        } else {
            format!("{} ({})", non_2xx_after.len(), non_2xx_after.join(", "))
        },
    );
    report.info(
        "new daemon up (daemon.json written) after the kill",
        format!("{:.0} ms", f.up.as_secs_f64() * 1000.0),
    );
    report.expect(
        "resumed (same run, canary at 50%)",
        yes_no(f.resumed),
        "yes",
        f.resumed,
    );
    report.info("same pids", yes_no(f.pids_before == f.pids_after));
    report.expect(
        "run outcome",
        &f.outcome,
        "promoted",
        f.outcome == "promoted",
    );
    report.note(format!(
        "pids before the kill: v1 {:?}, v2 {:?}; after: v1 {:?}, v2 {:?}",
        f.pids_before.0, f.pids_before.1, f.pids_after.0, f.pids_after.1
    ));
    for n in f.notes {
        report.note(n);
    }
    if let Err(e) = stopped {
        report.expect("daemon stop", format!("{e:#}"), "clean", false);
    }
    Ok(report)
}

/// Everything from the canary at 50% to the run's end: the daemon running then,
/// and what was seen on the way.
async fn kill_and_restart(
    setup: &Setup,
    daemon: Daemon,
    clock: Instant,
) -> anyhow::Result<(Daemon, Findings)> {
    let started = daemon
        .api
        .post("/api/v1/deploy", json!({ "version": "v2" }))
        .await?;
    let run_id = started["run_id"]
        .as_str()
        .context("deploy answered no run_id")?
        .to_owned();
    let before = daemon
        .api
        .wait_for("a canary at 50%", DEADLINE, |_| {}, |s| at_half(s, &run_id))
        .await?;
    let pids_before = (daemon::pids(&before, "v1"), daemon::pids(&before, "v2"));
    // Load at 50% for a moment, so the kill hits a daemon busy proxying to both.
    tokio::time::sleep(LEAD).await;

    let killed_at = clock.elapsed();
    daemon.kill().await?;
    let daemon = Daemon::start(setup).await?;
    let up = clock.elapsed() - killed_at;

    // Resumed: the same run, at the same weight. Not resumed: the run is gone
    // (ended by the new daemon), or never back at 50% within the deadline.
    let after = daemon
        .api
        .wait_for(
            "the run resumed at 50%, or ended",
            DEADLINE,
            |_| {},
            |s| daemon::active_run_id(s) != Some(&run_id) || at_half(s, &run_id),
        )
        .await;
    let resumed = after.as_ref().is_ok_and(|s| at_half(s, &run_id));
    let mut notes = Vec::new();
    let pids_after = match &after {
        Ok(s) => (daemon::pids(s, "v1"), daemon::pids(s, "v2")),
        Err(e) => {
            notes.push(format!("after the restart: {e:#}"));
            (Vec::new(), Vec::new())
        }
    };
    if let Ok(s) = &after
        && !resumed
    {
        notes.push(format!("status after the restart: {s}"));
    }

    if resumed {
        // Serve at 50% under the new daemon for a moment, then finish the run.
        tokio::time::sleep(LEAD).await;
        daemon.api.post("/api/v1/promote", Value::Null).await?;
        daemon
            .api
            .wait_for(
                "the run's end",
                DEADLINE,
                |_| {},
                |s| daemon::active_run_id(s) != Some(&run_id),
            )
            .await?;
    }
    let run = daemon.api.run(&run_id).await?;
    let outcome = run["run"]["outcome"].as_str().unwrap_or("none").to_owned();
    if outcome != "promoted" {
        notes.push(format!("the run's reason: {}", run["run"]["reason"]));
    }
    Ok((
        daemon,
        Findings {
            killed_at,
            up,
            resumed,
            pids_before,
            pids_after,
            outcome,
            notes,
        },
    ))
}

/// The run `id` active with a canary at 50% with all its instances ready.
fn at_half(status: &Value, id: &str) -> bool {
    daemon::active_run_id(status) == Some(id)
        && daemon::backends(status, "canary").any(|b| {
            b["weight_bp"].as_u64() == Some(HALF)
                && b["ready_instances"].as_u64().is_some_and(|n| n > 0)
                && b["ready_instances"] == b["instances"]
        })
}
