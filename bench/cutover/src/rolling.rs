//! (b) A rolling update of 4 instances under load, v1 to v2 (promoted), then v3
//! aborted once 2 of its instances are ready, so it goes back batch by batch; the
//! fewest ready instances of the app is watched all along.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::daemon::{self, Api, Daemon, Setup};
use crate::load::{Counts, Load};
use crate::report::Report;
use crate::{LEAD, Options};

/// The longest one run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// The instances the config asks for: the fewest the app may have ready.
const INSTANCES: u64 = 4;

/// Ready instances over every status polled.
#[derive(Default)]
struct Watch {
    fewest: Option<(u64, String)>,
    polls: u32,
}

impl Watch {
    fn see(&mut self, status: &Value) {
        self.polls += 1;
        let ready = daemon::ready(status);
        if self.fewest.as_ref().is_none_or(|(f, _)| ready < *f) {
            self.fewest = Some((ready, summary(status)));
        }
    }
}

/// `v1 stable 3/3, v2 canary 1/2 (batch 2/4)`, for the note on the fewest.
fn summary(status: &Value) -> String {
    let backends: Vec<String> = status["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            format!(
                "{} {} {}/{} ready",
                b["version"].as_str().unwrap_or("?"),
                b["role"].as_str().unwrap_or("?"),
                b["ready_instances"],
                b["instances"]
            )
        })
        .collect();
    let phase = &status["active_run"]["phase"];
    let at = match phase["stage"].as_str() {
        Some("batch") => format!(" (batch {}/{})", phase["batch"], phase["of"]),
        Some(stage) => format!(" ({stage})"),
        None => String::new(),
    };
    format!("{}{at}", backends.join(", "))
}

pub async fn run(setup: &Setup, options: &Options) -> anyhow::Result<Report> {
    let daemon = Daemon::start(setup).await?;
    daemon::deploy_with_cli(setup, "v1").await?;
    let clock = Instant::now();
    let load = Load::start(&daemon.proxy, options.rate, options.time_limit, clock)?;
    tokio::time::sleep(LEAD).await;
    let mut watch = Watch::default();
    let result = both_runs(&daemon.api, &mut watch).await;
    tokio::time::sleep(LEAD).await;
    let records = load.stop().await;
    options.keep(&records);
    let stopped = daemon.stop().await;

    let mut report = Report::new("(b) rolling update of 4 instances under load");
    report.load(&Counts::of(&records), true);
    match &watch.fewest {
        Some((fewest, at)) => {
            report.expect(
                "fewest ready instances",
                fewest,
                &format!(">= {INSTANCES}"),
                *fewest >= INSTANCES,
            );
            report.note(format!(
                "fewest ready over {} polls, 20 ms apart, first seen at: {at}",
                watch.polls
            ));
        }
        None => report.expect("fewest ready instances", "never polled", ">= 4", false),
    }
    match result {
        Ok(runs) => {
            report.expect(
                "v1 -> v2: outcome, batches",
                format!("{}, {} batches", runs.v2.outcome, runs.v2.forward),
                "promoted",
                runs.v2.outcome == "promoted",
            );
            report.expect(
                "v3 aborted: outcome, batches",
                format!(
                    "{}, {} forward then {} back",
                    runs.v3.outcome, runs.v3.forward, runs.v3.back
                ),
                "aborted",
                runs.v3.outcome == "aborted",
            );
            report.expect(
                "afterwards: stable, ready",
                format!("{}, {} ready", runs.stable_after, runs.ready_after),
                "v2, 4 ready",
                runs.stable_after == "v2" && runs.ready_after == INSTANCES,
            );
        }
        Err(e) => report.expect("the runs", format!("{e:#}"), "no error", false),
    }
    if let Err(e) = stopped {
        report.expect("daemon stop", format!("{e:#}"), "clean", false);
    }
    Ok(report)
}

struct Runs {
    v2: Batches,
    v3: Batches,
    stable_after: String,
    ready_after: u64,
}

/// How a rolling run went, from its events.
struct Batches {
    outcome: String,
    /// Batches started going forward.
    forward: usize,
    /// Batches taken back.
    back: usize,
}

async fn both_runs(api: &Api, watch: &mut Watch) -> anyhow::Result<Runs> {
    let v2 = deploy(api, "v2").await?;
    let ended = |id: &str| {
        let id = id.to_owned();
        move |s: &Value| daemon::active_run_id(s) != Some(id.as_str())
    };
    api.wait_for(
        "v2's run to end",
        RUN_DEADLINE,
        |s| watch.see(s),
        ended(&v2),
    )
    .await?;
    let v2 = batches(api, &v2).await?;

    let v3 = deploy(api, "v3").await?;
    api.wait_for(
        "a canary with 2 ready instances",
        RUN_DEADLINE,
        |s| watch.see(s),
        |s| {
            daemon::backends(s, "canary")
                .any(|b| b["ready_instances"].as_u64().is_some_and(|n| n >= 2))
        },
    )
    .await?;
    api.post("/api/v1/abort", Value::Null).await?;
    api.wait_for(
        "v3's run to end",
        RUN_DEADLINE,
        |s| watch.see(s),
        ended(&v3),
    )
    .await?;
    let v3 = batches(api, &v3).await?;
    let status = api.status().await?;
    watch.see(&status);
    Ok(Runs {
        v2,
        v3,
        stable_after: status["stable"].as_str().unwrap_or("none").to_owned(),
        ready_after: daemon::ready(&status),
    })
}

async fn deploy(api: &Api, version: &str) -> anyhow::Result<String> {
    let started = api
        .post("/api/v1/deploy", json!({ "version": version }))
        .await?;
    Ok(started["run_id"]
        .as_str()
        .context("deploy answered no run_id")?
        .to_owned())
}

async fn batches(api: &Api, id: &str) -> anyhow::Result<Batches> {
    let run = api.run(id).await?;
    let Some(events) = run["events"].as_array() else {
        bail!("run {id} has no events: {run}");
    };
    // A batch's phase is noted twice (started, then analysed): count batch numbers.
    let mut forward: Vec<u64> = events
        .iter()
        .filter(|e| e["kind"] == "phase" && e["phase"]["stage"] == "batch")
        .filter_map(|e| e["phase"]["batch"].as_u64())
        .collect();
    forward.dedup();
    // Going back, a batch is an old instance added, then a new one removed: count
    // the removals (the new version's count going down).
    let mut back = 0;
    let mut new_instances = None;
    let mut going_back = false;
    for e in events {
        going_back |= e["kind"] == "rolling_back";
        if e["kind"] == "scaled" {
            let n = e["instances"].as_u64();
            if going_back && n < new_instances {
                back += 1;
            }
            new_instances = n;
        }
    }
    Ok(Batches {
        outcome: run["run"]["outcome"].as_str().unwrap_or("none").to_owned(),
        forward: forward.len(),
        back,
    })
}
