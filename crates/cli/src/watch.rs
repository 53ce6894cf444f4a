//! Watching: `cutover watch [RUN]` follows one run to its end as `deploy` does, and
//! `cutover status --watch` redraws the status whenever it changes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cutover_api::{RunRecord, Status};
use serde::Deserialize;

use crate::args::WatchArgs;
use crate::client::{Client, Refused};
use crate::{exit, follow};

/// How often `status --watch` asks the daemon.
const STATUS_EVERY: Duration = Duration::from_millis(500);

/// The part of `GET /api/v1/runs/{id}` a watch needs.
#[derive(Deserialize)]
struct RunDetail {
    run: RunRecord,
}

/// `cutover watch [RUN]`: the same heading, progress, last lines and exit code as
/// the `deploy` that started the run. A finished run is replayed to its outcome.
pub async fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let client = Client::locate(&args.client)?;
    let json = args.client.config.json;
    let run_id = match &args.run {
        Some(id) => checked_run_id("RUN", id)?,
        None => in_progress(&client).await?,
    };
    let detail: RunDetail = client.get(&format!("/api/v1/runs/{run_id}")).await?;
    let run = detail.run;
    if !json {
        println!("{}", follow::heading(&run.id, run.kind, &run.version));
    }
    let receipts = receipts_dir(&args, &run.id);
    follow::to_outcome(&client, &run.id, json, receipts.as_deref()).await
}

/// A run id as `cutover history` shows them, named on the command line by
/// `argument`; anything else could not name one, and is refused before any
/// daemon is asked.
pub(crate) fn checked_run_id(argument: &str, id: &str) -> anyhow::Result<String> {
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
    if valid {
        Ok(id.to_owned())
    } else {
        Err(exit::usage(format!(
            "argument {argument}: `{id}` is not a run id; ids are letters, digits and `-_.+`, \
             as `cutover history --json` lists them"
        )))
    }
}

/// The run in progress, or a refusal that says there is none (exit 2).
async fn in_progress(client: &Client) -> anyhow::Result<String> {
    let status: Status = client.get("/api/v1/status").await?;
    match status.active_run {
        Some(run) => Ok(run.run_id),
        None => Err(Refused {
            code: "no_active_run".into(),
            message: "no rollout in progress to watch; name a past run with `cutover watch RUN` \
                      (see `cutover history`)"
                .into(),
            status: 409,
        }
        .into()),
    }
}

/// Where the daemon of the config writes the run's receipts; unknown when the
/// daemon was named with `--api` (the config may not be its own).
fn receipts_dir(args: &WatchArgs, run_id: &str) -> Option<PathBuf> {
    if args.client.api.is_some() {
        return None;
    }
    let config = args.client.config.locate().ok()?;
    Some(config.state_dir.join("runs").join(run_id))
}

/// `cutover status --watch`: the status again each time it changes, until Ctrl-C.
/// On a terminal it is redrawn in place; otherwise (a pipe, a log file) each new
/// one follows the last after a blank line, and with `json` each is one line.
///
/// # Errors
/// When the daemon stops answering (exit 1).
pub async fn status(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let redraw = !json && std::io::stdout().is_terminal();
    let mut shown: Option<String> = None;
    loop {
        let status: Status = client.get("/api/v1/status").await?;
        let text = if json {
            format!("{}\n", serde_json::to_string(&status)?)
        } else {
            crate::commands::status_text(&status)
        };
        if shown.as_deref() != Some(text.as_str()) {
            let mut out = std::io::stdout().lock();
            if redraw {
                // Cursor home, clear the screen: the new status in place of the old.
                write!(out, "\x1b[H\x1b[2J")?;
            } else if shown.is_some() && !json {
                writeln!(out)?;
            }
            write!(out, "{text}")?;
            out.flush()?;
            shown = Some(text);
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(STATUS_EVERY) => {}
        }
    }
}
