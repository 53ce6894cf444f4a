//! One function per subcommand.

use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use cutover_api::{
    ApprovalRequest, DeployRequest, DeployType, RollbackRequest, RunKind, RunRecord, RunStarted,
    Status, Steered, Verdict, format_bp, format_ms,
};
use serde_json::{Value, json};

use crate::args::{
    ClientArgs, Command, ConfigArgs, DecideArgs, DeployArgs, DeployKind, FollowArgs, HistoryArgs,
    InitArgs, RollbackArgs, ServeArgs, StatusArgs,
};
use crate::client::{Client, Refused};
use crate::follow;
use crate::{demo, exit, faults, sample_app};

pub async fn dispatch(command: crate::args::Cli) -> anyhow::Result<ExitCode> {
    match command.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Deploy(args) => deploy(args).await,
        Command::Promote(args) => control(args, "promote").await,
        Command::Abort(args) => control(args, "abort").await,
        Command::Approve(args) => decide(args, Verdict::Approve).await,
        Command::Reject(args) => decide(args, Verdict::Reject).await,
        Command::Rollback(args) => rollback(args).await,
        Command::Watch(args) => crate::watch::run(args).await,
        Command::Status(args) => status(args).await,
        Command::History(args) => history(args).await,
        Command::Logs(args) => crate::logs::run(args).await,
        Command::Judge(args) => crate::judge::run(args),
        Command::Validate(args) => validate(args).await,
        Command::Init(args) => init(args),
        Command::Completions(args) => {
            let mut command = crate::args::Cli::command();
            clap_complete::generate(args.shell, &mut command, "cutover", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(crate::args::Cli::command())
                .render(&mut std::io::stdout())
                .context("could not write the manual page")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::SampleApp(mut args) => {
            if let Ok(spec) = std::env::var(faults::VAR) {
                faults::apply(&mut args, &spec)?;
            }
            sample_app::run(args).await.map(|()| ExitCode::SUCCESS)
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = run_config(&args.config)?;
    let daemon = cutover_server::Daemon::start(config, args.api_listen)
        .await
        .map_err(|e| {
            if e.is_config_error() {
                exit::usage(e.to_string())
            } else {
                e.into()
            }
        })?;
    eprintln!(
        "cutover: serving {} on http://{}; dashboard and API on http://{}/; stop with Ctrl-C",
        daemon.engine().config().config.app,
        daemon.proxy_addr(),
        daemon.api_addr()
    );
    daemon.run_until_signal().await;
    Ok(ExitCode::SUCCESS)
}

/// The config file, read and validated, with the text it was read from.
fn run_config(args: &ConfigArgs) -> anyhow::Result<cutover_server::RunConfig> {
    let file = &args.file;
    let text = std::fs::read_to_string(file).map_err(|e| {
        exit::usage(format!(
            "{}: could not read it: {e}; run `cutover init` to write a commented starter",
            file.display()
        ))
    })?;
    let config =
        cutover_spec::parse_environment(&text, &file.to_string_lossy(), args.env.as_deref())?;
    Ok(cutover_server::RunConfig {
        config,
        path: file.to_owned(),
        text,
    })
}

/// A version named on the command line, checked before any daemon is asked.
fn check_version(argument: &str, version: &str) -> anyhow::Result<()> {
    if cutover_api::valid_version(version) {
        return Ok(());
    }
    Err(exit::usage(format!(
        "argument {argument}: `{version}` is not a valid version; use {}",
        cutover_api::VERSION_RULE
    )))
}

async fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    check_version("VERSION", &args.version)?;
    let request = deploy_request(&args)?;
    let client = Client::locate(&args.follow.client)?;
    let started = client.post::<RunStarted>("/api/v1/deploy", &request).await;
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

/// What `deploy` asks the daemon for: the type, the time and the override checked
/// here, so a mistake is a usage error before the daemon is asked.
fn deploy_request(args: &DeployArgs) -> anyhow::Result<DeployRequest> {
    let deploy_type = match (args.deploy_type, &args.at) {
        (DeployKind::Scheduled, None) => {
            return Err(exit::usage(
                "`--type scheduled` needs `--at TIME` (like `--at 2026-12-02T18:00:00Z` or `--at +30m`)",
            ));
        }
        (DeployKind::Hotfix, Some(_)) => {
            return Err(exit::usage(
                "a hotfix goes now: `--at` is for `--type scheduled`",
            ));
        }
        (DeployKind::Hotfix, None) => DeployType::Hotfix,
        (DeployKind::Standard, None) => DeployType::Standard,
        (_, Some(_)) => DeployType::Scheduled,
    };
    let at = args.at.as_deref().map(absolute_time).transpose()?;
    let override_window = if args.override_window {
        match args.reason.as_deref().map(str::trim) {
            Some(reason) if !reason.is_empty() => Some(reason.to_owned()),
            _ => {
                return Err(exit::usage(
                    "`--override-window` needs a `--reason` that says why",
                ));
            }
        }
    } else {
        None
    };
    Ok(DeployRequest {
        version: args.version.clone(),
        deploy_type,
        at,
        override_window,
        staged_for: None,
    })
}

/// `--at`: an RFC 3339 time as given, or `+30m` from now, as an RFC 3339 time.
fn absolute_time(text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    if let Some(delay) = text.strip_prefix('+') {
        let delay = humantime::parse_duration(delay.trim()).map_err(|e| {
            exit::usage(format!(
                "`--at {text}`: `{delay}` is not a delay like `30m` or `2h`: {e}"
            ))
        })?;
        let at = std::time::SystemTime::now() + delay;
        return Ok(humantime::format_rfc3339_seconds(at).to_string());
    }
    match text.parse::<jiff::Timestamp>() {
        Ok(at) if at > jiff::Timestamp::now() => Ok(at.to_string()),
        Ok(at) => Err(exit::usage(format!("`--at {text}` is in the past ({at})"))),
        Err(e) => Err(exit::usage(format!(
            "`--at {text}` is not a time: use RFC 3339 with an offset (`2026-12-02T18:00:00Z`, \
             `2026-12-02T19:00:00+01:00`) or a delay from now (`+30m`): {e}"
        ))),
    }
}

/// `approve` and `reject`: the run in progress, unless one is named.
async fn decide(args: DecideArgs, verdict: Verdict) -> anyhow::Result<ExitCode> {
    let client = Client::locate(&args.client)?;
    let run_id = match args.run {
        Some(run) => run,
        None => {
            let status: Status = client.get("/api/v1/status").await?;
            match status.active_run {
                Some(active) => active.run_id,
                None => {
                    return Err(exit::with_code(
                        exit::USAGE,
                        "no run is in progress, so there is nothing to decide on",
                    ));
                }
            }
        }
    };
    let body = ApprovalRequest {
        by: args.by,
        comment: args.comment,
    };
    let answer: Steered = client
        .post(
            &format!("/api/v1/runs/{run_id}/{}", verdict.as_str()),
            &body,
        )
        .await?;
    if args.client.config.json {
        println!("{}", serde_json::to_string(&answer)?);
    } else {
        let done = match verdict {
            Verdict::Approve => "approved",
            Verdict::Reject => "rejected",
        };
        println!("{done} run {} as {}", answer.run_id, body.by);
    }
    Ok(ExitCode::SUCCESS)
}

async fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    if let Some(to) = &args.to {
        check_version("--to", to)?;
    }
    let client = Client::locate(&args.follow.client)?;
    let started = client
        .post::<RunStarted>("/api/v1/rollback", &RollbackRequest { to: args.to })
        .await?;
    if !args.follow.client.config.json {
        println!(
            "rolling back from {} to {}",
            started.from.as_deref().unwrap_or("nothing"),
            started.version
        );
    }
    if started.kind == RunKind::BlueGreen {
        // Blue still ran: the blue-green run switches back at once and ends; that
        // ending is this rollback's success.
        let code = finish(&client, started, &args.follow).await?;
        return Ok(if code == ExitCode::from(exit::ABORTED) {
            ExitCode::SUCCESS
        } else {
            code
        });
    }
    finish(&client, started, &args.follow).await
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
            "{}",
            follow::heading(&started.run_id, started.kind, &started.version)
        );
    }
    if args.no_wait {
        if json {
            println!("{}", serde_json::to_string(&started)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    follow::to_outcome(client, &started.run_id, json, Some(&started.receipts)).await
}

async fn control(args: ClientArgs, verb: &str) -> anyhow::Result<ExitCode> {
    let client = Client::locate(&args)?;
    let answer: Steered = client.post(&format!("/api/v1/{verb}"), &json!({})).await?;
    if args.config.json {
        println!("{}", serde_json::to_string(&answer)?);
    } else {
        println!("{verb} requested for run {}", answer.run_id);
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = Client::locate(&args.client)?;
    if args.watch {
        return crate::watch::status(&client, args.client.config.json).await;
    }
    let status: Status = client.get("/api/v1/status").await?;
    if args.client.config.json {
        println!("{}", serde_json::to_string(&status)?);
    } else {
        print!("{}", status_text(&status));
    }
    Ok(ExitCode::SUCCESS)
}

/// The status for people, one line per backend, rollout and version's traffic.
pub fn status_text(status: &Status) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    match &status.environment {
        Some(env) => line(format!("app      {} ({env})", status.app)),
        None => line(format!("app      {}", status.app)),
    }
    line(format!("proxy    http://{}", status.proxy));
    if status.backends.is_empty() {
        line("stable   none serving".into());
    }
    for b in &status.backends {
        let release = if b.release == b.version {
            String::new()
        } else {
            format!(" ({})", b.release)
        };
        line(format!(
            "{:<8} {}{release}: {} of traffic, {}/{} instance(s) ready{}",
            b.role.as_str(),
            b.version,
            format_bp(b.weight_bp),
            b.ready_instances,
            b.instances,
            b.first_problem
                .as_ref()
                .map_or(String::new(), |p| format!("; first problem: {p}"))
        ));
    }
    match &status.active_run {
        Some(run) => line(format!(
            "rollout  {} ({} of {}): {}",
            run.run_id,
            run.kind.as_str(),
            run.version,
            run.phase
        )),
        None => line("rollout  none in progress".into()),
    }
    for t in &status.traffic {
        line(format!(
            "traffic  {}: {} requests, {} 5xx since the daemon started",
            t.version, t.requests, t.errors_5xx
        ));
    }
    out
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
            "{}  {:<10} {:<8} {:<12} {:>8}  {}",
            format_ms(r.started_at_ms),
            r.kind.as_str(),
            r.version,
            r.outcome.map_or("in progress", |o| o.as_str()),
            took,
            r.reason.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn validate(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    match args.load() {
        Ok(config) => {
            // Against a running daemon: what its next run would take up.
            let check = match cutover_server::DaemonInfo::read(&config.state_dir) {
                Some(info) => Client::new(&info.api.to_string(), &config.state_dir)?
                    .get::<cutover_api::ConfigCheck>("/api/v1/config")
                    .await
                    .ok(),
                None => None,
            };
            let restart = check.as_ref().is_some_and(|c| !c.restart_needed.is_empty());
            let queries = cutover_server::check_queries(&config).await;
            if let cutover_server::QueryCheck::Refused { url, refused } = &queries {
                return Ok(refused_queries(&args, url, refused));
            }
            if args.json {
                println!(
                    "{}",
                    json!({ "valid": true, "file": args.file, "app": config.app, "daemon": check,
                            "queries": queries_json(&queries) })
                );
            } else {
                println!("{}: valid (app {})", args.file.display(), config.app);
                match &queries {
                    cutover_server::QueryCheck::Accepted { url, queries } => {
                        println!("Prometheus at {url} accepted all {queries} PromQL queries");
                    }
                    cutover_server::QueryCheck::Unreachable { url, reason } => println!(
                        "could not check the PromQL queries against Prometheus at {url} ({reason}); \
                         they are tried at the first analysis window"
                    ),
                    _ => {}
                }
                if let Some(check) = &check {
                    if restart {
                        println!(
                            "the running daemon cannot take up: {}; restart it to use them",
                            check.restart_needed.join(", ")
                        );
                    } else if check.changes.is_empty() {
                        println!("the running daemon's next run uses it as the last one did");
                    } else {
                        println!(
                            "the running daemon's next run uses it, with changes in: {}",
                            check.changes.join(", ")
                        );
                    }
                }
            }
            Ok(ExitCode::from(if restart {
                exit::USAGE
            } else {
                exit::PROMOTED
            }))
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

/// The PromQL check, for `validate --json`.
fn queries_json(check: &cutover_server::QueryCheck) -> Value {
    match check {
        cutover_server::QueryCheck::NotChecked { source } => {
            json!({ "checked": false, "source": source })
        }
        cutover_server::QueryCheck::Accepted { url, queries } => {
            json!({ "checked": true, "url": url, "accepted": queries })
        }
        cutover_server::QueryCheck::Unreachable { url, reason } => {
            json!({ "checked": false, "url": url, "unreachable": reason })
        }
        cutover_server::QueryCheck::Refused { url, refused } => {
            let refused: Vec<Value> = refused
                .iter()
                .map(|(field, message)| json!({ "field": field, "message": message }))
                .collect();
            json!({ "checked": true, "url": url, "refused": refused })
        }
    }
}

/// Queries the server refused: each with its config field and the server's
/// words, exit 2, as any other mistake in the config.
fn refused_queries(args: &ConfigArgs, url: &str, refused: &[(String, String)]) -> ExitCode {
    if args.json {
        let check = cutover_server::QueryCheck::Refused {
            url: url.to_owned(),
            refused: refused.to_vec(),
        };
        println!(
            "{}",
            json!({ "valid": false, "file": args.file, "queries": queries_json(&check) })
        );
    } else {
        for (field, message) in refused {
            eprintln!(
                "{}: `{field}`: Prometheus at {url} refused the query: {message}",
                args.file.display()
            );
        }
    }
    ExitCode::from(exit::USAGE)
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
