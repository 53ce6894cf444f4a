//! `cutover logs VERSION`: what a version's instances wrote, from the daemon's
//! `GET /api/v1/logs/{version}`; with `--follow`, new lines as they come.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use futures_util::StreamExt;

use crate::args::LogsArgs;
use crate::client::Client;
use crate::exit;

pub async fn run(args: LogsArgs) -> anyhow::Result<ExitCode> {
    check_release(&args.version)?;
    let mut query = vec![format!("lines={}", args.lines)];
    if let Some(n) = args.instance {
        query.push(format!("instance={n}"));
    }
    if let Some(run) = &args.run {
        query.push(format!(
            "run={}",
            crate::watch::checked_run_id("--run", run)?
        ));
    }
    if args.follow {
        query.push("follow=true".to_owned());
    }
    let client = Client::locate(&args.client)?;
    // `+` (a fresh baseline's release) would read as a space in some servers' paths.
    let version = args.version.replace('+', "%2B");
    let mut body = client
        .stream(&format!("/api/v1/logs/{version}?{}", query.join("&")))
        .await?;
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = body.next().await {
        stdout
            .write_all(&chunk?)
            .and_then(|()| stdout.flush())
            .context("could not write to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A version, or a fresh baseline's release of one (`v1+baseline`).
fn check_release(name: &str) -> anyhow::Result<()> {
    let version = name.strip_suffix("+baseline").unwrap_or(name);
    if cutover_api::valid_version(version) {
        return Ok(());
    }
    Err(exit::usage(format!(
        "argument VERSION: `{name}` is not a valid version; use {} (or `<version>+baseline` \
         for a fresh baseline)",
        cutover_api::VERSION_RULE
    )))
}
