//! The driver of `bench/cutover.sh`: one scenario per run, against the real
//! `cutover serve`, with open-loop load through its proxy. It prints what it
//! measured and writes the same as a Markdown section; see `bench/README.md`.
//!
//! ```text
//! cutover-bench blue-green|rolling|restart --cutover BIN --config FILE
//!     --state-dir DIR --log FILE --markdown FILE [--records CSV]
//!     [--rate N] [--flips N] [--time-limit SECS]
//! ```
//!
//! Exit codes: 0 every expectation held, 3 one did not, 1 the scenario could not run.

mod blue_green;
mod daemon;
mod load;
mod report;
mod restart;
mod rolling;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

/// Load before the first action and after the last, so both ends are measured.
pub const LEAD: Duration = Duration::from_secs(1);

pub struct Options {
    /// Requests per second.
    pub rate: u32,
    /// Blue-green flips.
    pub flips: u32,
    /// The load stops by itself after this; the scenario aims to end well before.
    pub time_limit: Duration,
    /// Where every request's record goes, as CSV.
    pub records: Option<PathBuf>,
}

impl Options {
    /// Writes the records where `--records` says, if it does.
    pub fn keep(&self, records: &[load::Record]) {
        if let Some(path) = &self.records
            && let Err(e) = load::write_csv(path, records)
        {
            eprintln!("[bench] cannot write {}: {e}", path.display());
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("[bench] error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let scenario = args
        .next()
        .context("usage: cutover-bench SCENARIO --cutover BIN ...")?;
    let mut cutover = None;
    let mut config = None;
    let mut state_dir = None;
    let mut log = None;
    let mut markdown = None;
    let mut options = Options {
        rate: 200,
        flips: 50,
        time_limit: Duration::from_secs(110),
        records: None,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u32>()
                .with_context(|| format!("{flag} {value}: not a number"))
        };
        match flag.as_str() {
            "--cutover" => cutover = Some(PathBuf::from(&value)),
            "--config" => config = Some(PathBuf::from(&value)),
            "--state-dir" => state_dir = Some(PathBuf::from(&value)),
            "--log" => log = Some(PathBuf::from(&value)),
            "--markdown" => markdown = Some(PathBuf::from(&value)),
            "--records" => options.records = Some(PathBuf::from(&value)),
            "--rate" => options.rate = number()?.max(1),
            "--flips" => options.flips = number()?,
            "--time-limit" => options.time_limit = Duration::from_secs(number()?.into()),
            _ => bail!("unknown option {flag}"),
        }
    }
    let setup = daemon::Setup {
        cutover: cutover.context("--cutover BIN is needed")?,
        config: config.context("--config FILE is needed")?,
        state_dir: state_dir.context("--state-dir DIR is needed")?,
        log: log.context("--log FILE is needed")?,
    };
    let markdown = markdown.context("--markdown FILE is needed")?;

    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(async {
        match scenario.as_str() {
            "blue-green" => blue_green::run(&setup, &options).await,
            "rolling" => rolling::run(&setup, &options).await,
            "restart" => restart::run(&setup, &options).await,
            other => bail!("unknown scenario {other}: blue-green, rolling or restart"),
        }
    })?;
    print!("{}", report.text());
    std::fs::write(&markdown, report.markdown())
        .with_context(|| format!("cannot write {}", markdown.display()))?;
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
