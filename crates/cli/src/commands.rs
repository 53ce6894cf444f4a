//! One function per subcommand.

use std::process::ExitCode;

use anyhow::Context;
use cutover_engine::RunStarted;
use cutover_store::RunRecord;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::args::{
    ClientArgs, Command, ConfigArgs, DeployArgs, FollowArgs, HistoryArgs, InitArgs, ServeArgs,
};
use crate::client::{Client, Refused};
use crate::follow::{self, Style};
use crate::{demo, exit, faults, sample_app};

pub async fn dispatch(command: crate::args::Cli) -> anyhow::Result<ExitCode> {
    match command.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Deploy(args) => deploy(args).await,
        Command::Promote(args) => control(args, "promote").await,
        Command::Abort(args) => control(args, "abort").await,
        Command::Rollback(args) => rollback(args).await,
        Command::Status(args) => status(args).await,
        Command::History(args) => history(args).await,
        Command::Validate(args) => validate(args),
        Command::Init(args) => init(args),
        Command::SampleApp(mut args) => {
            if let Ok(spec) = std::env::var(faults::VAR) {
                faults::apply(&mut args, &spec)?;
            }
            sample_app::run(args).await.map(|()| ExitCode::SUCCESS)
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = cutover_spec::load(&args.config.file)?;
    let daemon = cutover_server::Daemon::start(config, args.api_listen).await?;
    eprintln!(
        "cutover: serving {} on http://{} (API http://{}); stop with Ctrl-C",
        daemon.engine().config().app,
        daemon.proxy_addr(),
        daemon.api_addr()
    );
    daemon.run_until_signal().await;
    Ok(ExitCode::SUCCESS)
}

async fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let client = Client::locate(&args.follow.client)?;
    let started = client
        .post::<RunStarted>("/api/v1/deploy", &json!({ "version": args.version }))
        .await;
    let started = match started {
        Ok(s) => s,
        // Deploying what already serves changes nothing and is what a re-run CI job
        // asks for: say so and succeed.
        Err(e)
            if e.downcast_ref::<Refused>()
                .is_some_and(|r| r.code == "already_serving") =>
        {
            if args.follow.client.config.json {
                println!(
                    "{}",
                    json!({ "kind": "already_serving", "version": args.version, "message": format!("{e}"), "outcome": "promoted" })
                );
            } else {
                println!("{e}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e),
    };
    finish(&client, started, &args.follow).await
}

async fn rollback(args: FollowArgs) -> anyhow::Result<ExitCode> {
    let client = Client::locate(&args.client)?;
    let started = client
        .post::<RunStarted>("/api/v1/rollback", &json!({}))
        .await?;
    finish(&client, started, &args).await
}

/// Follows a started run (unless `--no-wait`) and turns its outcome into the exit code.
async fn finish(
    client: &Client,
    started: RunStarted,
    args: &FollowArgs,
) -> anyhow::Result<ExitCode> {
    let json = args.client.config.json;
    if !json {
        println!(
            "run {} ({} of {})",
            started.run_id,
            started.kind.as_str(),
            started.version
        );
    }
    if args.no_wait {
        if json {
            println!("{}", serde_json::to_string(&started)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let end = follow::follow(client, &started.run_id, Style::pick(json)).await?;
    let outcome = end.outcome.context("the final event carries no outcome")?;
    if !json {
        println!("{}", end.message);
        println!("receipts: {}", started.receipts.display());
    }
    Ok(ExitCode::from(exit::for_outcome(outcome)))
}

async fn control(args: ClientArgs, verb: &str) -> anyhow::Result<ExitCode> {
    let client = Client::locate(&args)?;
    let answer: Value = client.post(&format!("/api/v1/{verb}"), &json!({})).await?;
    if args.config.json {
        println!("{answer}");
    } else {
        println!(
            "{verb} requested for run {}",
            answer["run_id"].as_str().unwrap_or("?")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
struct VersionLine {
    version: String,
    ready_instances: usize,
    first_problem: Option<String>,
}

async fn status(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let client = Client::locate(&args)?;
    let status: Value = client.get("/api/v1/status").await?;
    if args.config.json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("app      {}", status["app"].as_str().unwrap_or("?"));
    println!(
        "proxy    http://{}",
        status["proxy"].as_str().unwrap_or("?")
    );
    let describe = |v: &Value| match VersionLine::deserialize(v) {
        Ok(l) => format!(
            "{} ({} ready instance(s){})",
            l.version,
            l.ready_instances,
            l.first_problem
                .map_or(String::new(), |p| format!("; first problem: {p}"))
        ),
        Err(_) => "none".into(),
    };
    println!("stable   {}", describe(&status["stable"]));
    if !status["canary"].is_null() {
        println!(
            "canary   {} at {}",
            describe(&status["canary"]),
            status["canary_weight"].as_str().unwrap_or("?")
        );
    }
    match status["active_run"].as_object() {
        Some(run) => println!(
            "rollout  {} of {}: {}",
            run["run_id"].as_str().unwrap_or("?"),
            run["version"].as_str().unwrap_or("?"),
            run["phase"].as_str().unwrap_or("?")
        ),
        None => println!("rollout  none in progress"),
    }
    for t in status["traffic"].as_array().into_iter().flatten() {
        println!(
            "traffic  {}: {} requests, {} 5xx since the daemon started",
            t["version"].as_str().unwrap_or("?"),
            t["requests"],
            t["errors_5xx"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn history(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let client = Client::locate(&args.client)?;
    let runs: Vec<RunRecord> = client
        .get(&format!("/api/v1/runs?limit={}", args.limit))
        .await?;
    if args.client.config.json {
        println!("{}", serde_json::to_string(&runs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs yet");
    }
    for r in runs {
        let took = r.finished_at_ms.map_or("running".into(), |f| {
            format!("{:.1}s", (f - r.started_at_ms) as f64 / 1000.0)
        });
        println!(
            "{}  {:<8} {:<8} {:<12} {:>8}  {}",
            cutover_engine::events::format_ms(r.started_at_ms),
            r.kind.as_str(),
            r.version,
            r.outcome.map_or("in progress", |o| o.as_str()),
            took,
            r.reason.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    match cutover_spec::load(&args.file) {
        Ok(config) => {
            if args.json {
                println!(
                    "{}",
                    json!({ "valid": true, "file": args.file, "app": config.app })
                );
            } else {
                println!("{}: valid (app {})", args.file.display(), config.app);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if args.json => {
            let diagnostics: Vec<Value> = e
                .diagnostics
                .iter()
                .map(|d| json!({ "file": d.file, "line": d.line, "col": d.col, "message": d.message }))
                .collect();
            println!(
                "{}",
                json!({ "valid": false, "file": args.file, "diagnostics": diagnostics })
            );
            Ok(ExitCode::from(exit::USAGE))
        }
        Err(e) => {
            // One line per mistake, nothing else, so editors can jump to each.
            eprint!("{e}");
            if !e.to_string().ends_with('\n') {
                eprintln!();
            }
            Ok(ExitCode::from(exit::USAGE))
        }
    }
}

fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    if args.file.exists() && !args.force {
        return Err(exit::usage(format!(
            "{} already exists; pass --force to overwrite it",
            args.file.display()
        )));
    }
    std::fs::write(&args.file, cutover_spec::STARTER)
        .with_context(|| format!("could not write {}", args.file.display()))?;
    println!(
        "wrote {}; edit `command`, then run `cutover validate -f {}`",
        args.file.display(),
        args.file.display()
    );
    Ok(ExitCode::SUCCESS)
}
