//! `cutover judge --run ID`: a recorded run's analysis windows judged again with
//! the analysis settings in the config file as it is now, so a user can tune the
//! judge on real traffic before the next deploy. Reads the store directly: no
//! daemon needed, nothing written.

use std::path::Path;
use std::process::ExitCode;

use cutover_analysis::{Test, Verdict, WindowReport};
use cutover_engine::judging::{self, Replay};
use cutover_store::{MeasurementRecord, RunRecord, Store, StoreError};
use serde_json::json;

use crate::exit;

pub fn run(
    id: &str,
    config_file: &Path,
    environment: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    // The analysis settings and the store are all it needs: no secret.
    let config = cutover_spec::load_environment_without_secrets(config_file, environment)?;
    let db = config.state_dir.join("cutover.db");
    if !db.exists() {
        return Err(exit::usage(format!(
            "no store at {}: `{}` has recorded no runs there (is `state_dir` right?)",
            db.display(),
            config_file.display()
        )));
    }
    let store = Store::open(&db)?;
    let run = match store.run(id) {
        Ok(run) => run,
        Err(StoreError::NoSuchRun(_)) => {
            return Err(exit::usage(format!(
                "no run `{id}` in {}; `cutover history` lists the runs",
                db.display()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let measurements = store.measurements(id)?;
    if measurements.is_empty() {
        return Err(exit::usage(format!(
            "run `{id}` has no analysis windows to judge again (it was {})",
            describe_kind(&run)
        )));
    }
    let windows: Vec<(usize, &WindowReport)> =
        measurements.iter().map(|m| (m.step, &m.report)).collect();
    let replay = judging::replay(&config.analysis, &windows);
    let code = if replay.roll_back.is_some() {
        exit::ROLLED_BACK
    } else {
        exit::PROMOTED
    };
    if json {
        print_json(&run, &measurements, &replay, code);
    } else {
        print_text(&run, &measurements, &replay, config_file);
    }
    Ok(ExitCode::from(code))
}

fn describe_kind(run: &RunRecord) -> String {
    format!("a {} run of {}", run.kind.as_str(), run.version)
}

fn recorded_outcome(run: &RunRecord) -> String {
    match (&run.outcome, &run.reason) {
        (Some(outcome), Some(reason)) => format!("{}: {reason}", outcome.as_str()),
        (Some(outcome), None) => outcome.as_str().to_owned(),
        (None, _) => "still in progress".to_owned(),
    }
}

fn print_json(run: &RunRecord, measurements: &[MeasurementRecord], replay: &Replay, code: u8) {
    let windows: Vec<serde_json::Value> = measurements
        .iter()
        .zip(&replay.reports)
        .map(|(m, now)| {
            json!({
                "at_ms": m.at_ms,
                "step": m.step,
                "weight_bp": m.weight_bp,
                "recorded": m.report.verdict,
                "report": now,
            })
        })
        .collect();
    let roll_back = replay
        .roll_back
        .as_ref()
        .map(|(window, reason)| json!({ "window": window + 1, "reason": reason }));
    println!(
        "{}",
        json!({
            "run": run,
            "windows": windows,
            "roll_back": roll_back,
            "exit": code,
        })
    );
}

fn print_text(
    run: &RunRecord,
    measurements: &[MeasurementRecord],
    replay: &Replay,
    config_file: &Path,
) {
    println!(
        "run {} ({}): {}",
        run.id,
        describe_kind(run),
        recorded_outcome(run)
    );
    println!(
        "judged again with the analysis settings in {}:\n",
        config_file.display()
    );
    println!("  window  time      step  canary/baseline req  recorded → now  notes");
    for (i, (m, now)) in measurements.iter().zip(&replay.reports).enumerate() {
        let at = (m.at_ms - run.started_at_ms) as f64 / 1000.0;
        let notes: Vec<String> = now
            .metrics
            .iter()
            .filter(|r| r.verdict != Verdict::Pass && r.test != Test::MannWhitney)
            .filter_map(|r| r.explain())
            .collect();
        let mark = match &replay.roll_back {
            Some((window, _)) if *window == i => "  ← rolls back here",
            _ => "",
        };
        println!(
            "  {:>6}  {:>7.1}s  {:>4}  {:>9} / {:<9}  {:>8} → {:<12}  {}{mark}",
            i + 1,
            at,
            m.step + 1,
            now.canary.requests,
            now.stable.requests,
            m.report.verdict.to_string(),
            now.verdict.to_string(),
            notes.join("; ")
        );
    }
    match &replay.roll_back {
        Some((window, reason)) => println!(
            "\nwith these settings: rolled back at window {} — {reason}",
            window + 1
        ),
        None => println!(
            "\nwith these settings: no rollback in the {} recorded window(s)",
            measurements.len()
        ),
    }
}
