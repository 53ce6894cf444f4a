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

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Cli::parse();
    init_tracing(&args);
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit::code_for(&err)
        }
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
        .with_writer(std::io::stderr)
        .init();
}
