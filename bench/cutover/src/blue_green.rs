//! (a) Blue-green flips under load: v1 -> v2 -> v1 ... each one deploy, wait for
//! `awaiting_promotion`, promote, wait for the run to end; the switch latency is
//! from the promote call to the first request answered by the new version.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use tokio::time::Instant;

use crate::daemon::{self, Daemon, Setup};
use crate::load::{Load, Record, quantile};
use crate::report::Report;
use crate::{LEAD, Options};

/// The longest one flip may take, start to end.
const FLIP_DEADLINE: Duration = Duration::from_secs(30);

/// One flip, on the scenario's clock.
struct Flip {
    to: String,
    from: String,
    /// Just before the promote call was sent, and once its answer was in.
    promote_sent: Duration,
    promote_answered: Duration,
}

pub async fn run(setup: &Setup, options: &Options) -> anyhow::Result<Report> {
    let daemon = Daemon::start(setup).await?;
    daemon::deploy_with_cli(setup, "v1").await?;
    let clock = Instant::now();
    let load = Load::start(&daemon.proxy, options.rate, options.time_limit, clock)?;
    tokio::time::sleep(LEAD).await;

    let mut flips = Vec::new();
    let mut problems = Vec::new();
    let mut current = "v1".to_owned();
    let end_by = Instant::now() + options.time_limit - 2 * LEAD;
    for i in 0..options.flips {
        if Instant::now() > end_by {
            problems.push(format!(
                "stopped after {i} flips: the time limit of {:?} was reached",
                options.time_limit
            ));
            break;
        }
        let next = if current == "v1" { "v2" } else { "v1" };
        match flip(&daemon, clock, &current, next).await {
            Ok(f) => flips.push(f),
            Err(e) => {
                problems.push(format!("flip {} to {next}: {e:#}", i + 1));
                break;
            }
        }
        current = next.to_owned();
    }
    tokio::time::sleep(LEAD).await;
    let records = load.stop().await;
    options.keep(&records);
    if let Err(e) = daemon.stop().await {
        problems.push(format!("{e:#}"));
    }

    let mut report = Report::new("(a) blue-green flips under load");
    report.load(&crate::load::Counts::of(&records), true);
    let latencies: Vec<Option<f64>> = flips
        .iter()
        .enumerate()
        .map(|(i, f)| switch_latency_ms(&records, f, flips.get(i + 1)))
        .collect();
    let measured: Vec<f64> = {
        let mut v: Vec<f64> = latencies.iter().flatten().copied().collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let unmeasured = latencies.iter().filter(|l| l.is_none()).count();
    report.expect(
        "flips (promoted)",
        flips.len(),
        &format!("{}", options.flips),
        flips.len() == options.flips as usize,
    );
    report.info(
        "switch latency median / max",
        format!(
            "{:.1} / {:.1} ms",
            quantile(&measured, 0.5),
            measured.last().copied().unwrap_or(0.0)
        ),
    );
    report.expect(
        "flips with no answer from the new version",
        unmeasured,
        "0",
        unmeasured == 0,
    );
    let promote_ms: Vec<f64> = {
        let mut v: Vec<f64> = flips
            .iter()
            .map(|f| (f.promote_answered - f.promote_sent).as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    report.info(
        "promote call median / max",
        format!(
            "{:.1} / {:.1} ms",
            quantile(&promote_ms, 0.5),
            promote_ms.last().copied().unwrap_or(0.0)
        ),
    );
    let late_old: usize = flips
        .iter()
        .enumerate()
        .map(|(i, f)| old_after_promote(&records, f, flips.get(i + 1)))
        .sum();
    report.info(
        "old-version answers to requests sent after promote returned",
        late_old,
    );
    let list: Vec<String> = latencies
        .iter()
        .map(|l| l.map_or("-".into(), |ms| format!("{ms:.1}")))
        .collect();
    report.note(format!("switch latency per flip, ms: {}", list.join(" ")));
    for p in problems {
        report.expect("problem", p, "none", false);
    }
    Ok(report)
}

/// deploy, awaiting_promotion, promote, run over (and promoted).
async fn flip(daemon: &Daemon, clock: Instant, from: &str, to: &str) -> anyhow::Result<Flip> {
    let api = &daemon.api;
    let started = api.post("/api/v1/deploy", json!({ "version": to })).await?;
    let run_id = started["run_id"]
        .as_str()
        .context("deploy answered no run_id")?
        .to_owned();
    api.wait_for(
        "stage awaiting_promotion",
        FLIP_DEADLINE,
        |_| {},
        |s| {
            daemon::active_run_id(s) == Some(&run_id)
                && daemon::stage(s) == Some("awaiting_promotion")
        },
    )
    .await?;
    let promote_sent = clock.elapsed();
    api.post("/api/v1/promote", serde_json::Value::Null).await?;
    let promote_answered = clock.elapsed();
    api.wait_for(
        "the run's end",
        FLIP_DEADLINE,
        |_| {},
        |s| daemon::active_run_id(s) != Some(&run_id),
    )
    .await?;
    let run = api.run(&run_id).await?;
    if run["run"]["outcome"] != "promoted" {
        bail!(
            "run {run_id} ended {} ({})",
            run["run"]["outcome"],
            run["run"]["reason"]
        );
    }
    Ok(Flip {
        to: to.to_owned(),
        from: from.to_owned(),
        promote_sent,
        promote_answered,
    })
}

/// From the promote call to the first answer by the new version, before the
/// next flip's promote (by then the other version is the new one).
fn switch_latency_ms(records: &[Record], f: &Flip, next: Option<&Flip>) -> Option<f64> {
    let until = next.map_or(Duration::MAX, |n| n.promote_sent);
    records
        .iter()
        .filter(|r| r.done >= f.promote_sent && r.done < until)
        .filter(|r| r.ok() && r.version() == Some(f.to.as_str()))
        .map(|r| r.done)
        .min()
        .map(|done| (done - f.promote_sent).as_secs_f64() * 1000.0)
}

/// Requests sent once the promote call had returned that blue still answered.
fn old_after_promote(records: &[Record], f: &Flip, next: Option<&Flip>) -> usize {
    let until = next.map_or(Duration::MAX, |n| n.promote_sent);
    records
        .iter()
        .filter(|r| r.sent >= f.promote_answered && r.sent < until)
        .filter(|r| r.version() == Some(f.from.as_str()))
        .count()
}
