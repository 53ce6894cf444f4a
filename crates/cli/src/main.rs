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
mod rejudge;
mod sample_app;
mod watch;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

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
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Colour only on a terminal, and never with `NO_COLOR` set (<https://no-color.org>):
/// logs written to a file stay plain.
fn colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
