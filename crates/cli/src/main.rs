//! The `cutover` binary: parse arguments, run the command, print the error chain,
//! exit with a code that says how it ended (see the README's exit-code table).

mod args;
mod client;
mod commands;
mod demo;
mod exit;
mod faults;
mod follow;
mod judge;
mod load;
mod logs;
mod rejudge;
mod sample_app;
mod watch;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

fn main() -> ExitCode {
    let args = match args::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => {
            let json = std::env::args_os().any(|a| a == "--json");
            return exit::bad_arguments(&err, json);
        }
    };
    let json = args.json();
    init_tracing(&args);
    match run(args) {
        Ok(code) => code,
        Err(err) => exit::report(&err, json),
    }
}

fn run(args: args::Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(commands::dispatch(args))
}

fn init_tracing(args: &args::Cli) {
    // The daemon logs at info by default; client commands only say what went wrong,
    // so their own output stays readable (and parseable with --json).
    let default = match args.command {
        args::Command::Serve(_) => "info",
        _ => "warn",
    };
    // `CUTOVER_LOG=debug` or `CUTOVER_LOG=info,cutover_proxy=trace`: a level, and
    // levels by module (no span or field filters, which would cost a regex engine
    // in every build); one that does not parse is said and ignored.
    let given = std::env::var("CUTOVER_LOG").ok();
    let fallback = || {
        default
            .parse::<Targets>()
            .expect("a level is a valid filter")
    };
    let (filter, refused) = match given.as_deref().map(str::parse::<Targets>) {
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (fallback(), Some(e)),
        None => (fallback(), None),
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(colour(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .init();
    if let (Some(text), Some(e)) = (&given, refused) {
        tracing::warn!("CUTOVER_LOG={text:?} is not a log filter ({e}); logging at {default}");
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set (<https://no-color.org>):
/// logs written to a file stay plain.
fn colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
