//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::sample_app::SampleAppArgs;

/// Safe releases with nobody watching: canary rollouts on your own machine, with
/// automatic analysis and rollback.
#[derive(Debug, Parser)]
#[command(name = "cutover", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole story in a temp dir: v1 deployed, v2 promoted, v3 rolled back.
    Demo(DemoArgs),
    /// Run the daemon: proxy, engine and API for the app in cutover.yaml.
    Serve(ServeArgs),
    /// Roll out a version through the configured pipeline and follow it to the end
    /// (exit 0 promoted, 3 rolled back, 4 blocked, 5 aborted or timed out).
    Deploy(DeployArgs),
    /// Approve a run waiting for approval (the one in progress, or RUN).
    Approve(DecideArgs),
    /// Reject a run waiting for approval: it ends, blocked, before anything starts.
    Reject(DecideArgs),
    /// Skip the remaining canary steps and promote now.
    Promote(ClientArgs),
    /// Stop the running rollout and send all traffic back to stable.
    Abort(ClientArgs),
    /// Go back to the previously promoted version (or `--to` one), fast and without analysis.
    Rollback(RollbackArgs),
    /// Follow a rollout (the one in progress, or RUN) to its end, as `deploy` does.
    Watch(WatchArgs),
    /// Show what serves now and any rollout in progress.
    Status(StatusArgs),
    /// List past runs, newest first.
    History(HistoryArgs),
    /// Print what a version's instances wrote to stdout and stderr (`--follow`: and go on).
    Logs(LogsArgs),
    /// Judge a canary's samples against a baseline's, offline (Mann-Whitney U).
    Judge(JudgeArgs),
    /// Check cutover.yaml and report every mistake as file:line:col.
    Validate(ConfigArgs),
    /// Write a commented starter cutover.yaml.
    Init(InitArgs),
    /// A small HTTP service for demos and tests.
    SampleApp(SampleAppArgs),
    /// Print a shell completion script: `source <(cutover completions bash)`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff): `cutover man > cutover.1`.
    Man,
}

impl Cli {
    /// Whether the command was asked for JSON (`--json`), so its errors are JSON too.
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Demo(a) => a.json,
            Command::Serve(a) => a.config.json,
            Command::Deploy(a) => a.follow.client.config.json,
            Command::Promote(a) | Command::Abort(a) => a.config.json,
            Command::Approve(a) | Command::Reject(a) => a.client.config.json,
            Command::Rollback(a) => a.follow.client.config.json,
            Command::Watch(a) => a.client.config.json,
            Command::Status(a) => a.client.config.json,
            Command::History(a) => a.client.config.json,
            Command::Logs(a) => a.client.config.json,
            Command::Judge(a) => a.json,
            Command::Validate(a) => a.json,
            Command::Init(_) | Command::SampleApp(_) | Command::Completions(_) | Command::Man => {
                false
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The configuration file.
    #[arg(
        short = 'f',
        long = "file",
        env = "CUTOVER_CONFIG",
        default_value = "cutover.yaml"
    )]
    pub file: PathBuf,
    /// The environment, when the file defines `environments` (default: the last one).
    #[arg(long = "env", env = "CUTOVER_ENV", value_name = "NAME")]
    pub env: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl ConfigArgs {
    /// The file's config for `--env`, with its `${env:NAME}` secrets.
    pub fn load(&self) -> Result<cutover_spec::Config, cutover_spec::ConfigError> {
        cutover_spec::load_environment(&self.file, self.env.as_deref())
    }

    /// The file's config for `--env`, to find its daemon (secrets left as written).
    pub fn locate(&self) -> Result<cutover_spec::Config, cutover_spec::ConfigError> {
        cutover_spec::load_environment_without_secrets(&self.file, self.env.as_deref())
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Where the API listens; port 0 picks a free one (written to <state_dir>/daemon.json).
    #[arg(long, env = "CUTOVER_API_LISTEN", default_value = "127.0.0.1:0")]
    pub api_listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The daemon's API address (host:port); by default read from <state_dir>/daemon.json.
    #[arg(long, env = "CUTOVER_API")]
    pub api: Option<String>,
}

#[derive(Debug, Args)]
pub struct FollowArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Return as soon as the run has started instead of following it.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The version to roll out; replaces ${VERSION} in the command.
    pub version: String,
    /// The kind of deploy: `hotfix` needs the hotfix approvals quorum; `scheduled`
    /// waits for `--at`.
    #[arg(long = "type", value_enum, default_value_t = DeployKind::Standard)]
    pub deploy_type: DeployKind,
    /// When a scheduled deploy begins: an RFC 3339 time (`2026-12-02T18:00:00Z`)
    /// or a delay from now (`+30m`, `+2h`). Implies `--type scheduled`.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Deploy outside the configured deployment windows, or in a freeze; needs `--reason`.
    #[arg(long, requires = "reason")]
    pub override_window: bool,
    /// Why the windows are overridden (recorded with the run).
    #[arg(long, requires = "override_window", value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub follow: FollowArgs,
}

/// `--type` of `cutover deploy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeployKind {
    Standard,
    Hotfix,
    Scheduled,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The run (default: the one in progress).
    pub run: Option<String>,
    /// Who decides: one of the names in the config's `approvals.from`.
    #[arg(long = "as", value_name = "NAME")]
    pub by: String,
    /// Why (required to reject).
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The promoted version to go back to (default: the one promoted before the
    /// version serving now; so a second rollback goes further back, not forth).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    #[command(flatten)]
    pub follow: FollowArgs,
}

#[derive(Debug, Args)]
pub struct JudgeArgs {
    /// A recorded run to judge again, window by window, with the analysis
    /// settings in the config file as it is now.
    #[arg(long, value_name = "ID", conflicts_with_all = ["baseline", "canary"])]
    pub run: Option<String>,
    /// The configuration file whose `analysis` settings judge `--run` again.
    #[arg(
        short = 'f',
        long = "file",
        env = "CUTOVER_CONFIG",
        default_value = "cutover.yaml"
    )]
    pub file: PathBuf,
    /// With `--run`: the environment the run was in, when the file defines
    /// `environments` (default: the last one); otherwise unused.
    #[arg(long = "env", env = "CUTOVER_ENV", value_name = "NAME")]
    pub env: Option<String>,
    /// The baseline's values: one number per line, or JSON lines.
    #[arg(long, value_name = "FILE", required_unless_present = "run")]
    pub baseline: Option<PathBuf>,
    /// The canary's values, in the same form.
    #[arg(long, value_name = "FILE", required_unless_present = "run")]
    pub canary: Option<PathBuf>,
    /// The metric's name (the field read from JSON objects).
    #[arg(long, default_value = "value")]
    pub metric: String,
    /// Which way the metric gets worse.
    #[arg(long, value_enum, default_value = "higher-is-bad")]
    pub direction: DirectionArg,
    /// Confidence of the test, between 0 and 1.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Drift allowed before a significant difference fails: `10%` of the
    /// baseline's median, or an amount in the metric's unit.
    #[arg(long, default_value = "0%")]
    pub tolerance: String,
    /// Values needed on each side; fewer is no data (exit 2).
    #[arg(long, default_value_t = 10)]
    pub min_samples: usize,
    /// `mann-whitney`: one fixed-sample comparison of the two sets.
    /// `sequential`: the values in file order, fed window by window to the
    /// engine's anytime-valid test on the share slower than the baseline's
    /// `--quantile` (higher is bad); says where it would have rejected.
    #[arg(long, value_enum, default_value = "mann-whitney")]
    pub test: TestArg,
    /// Sequential: the quantile of the baseline a value counts as slow above.
    #[arg(long, default_value_t = 0.95)]
    pub quantile: f64,
    /// Sequential: the false-alarm bound over every look.
    #[arg(long, default_value_t = 0.01)]
    pub alpha: f64,
    /// Sequential: canary values per window (the baseline's in proportion).
    #[arg(long, default_value_t = 50)]
    pub window: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestArg {
    MannWhitney,
    Sequential,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DirectionArg {
    HigherIsBad,
    LowerIsBad,
    Either,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The run to follow (default: the one in progress); a finished run is replayed.
    pub run: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Keep going: redraw the status whenever it changes (with --json, one object
    /// per change), until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// How many runs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The version whose output to print (or a fresh baseline's release, `v1+baseline`).
    pub version: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Keep printing new lines as they are written (across rotations), until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// Only this instance (default: every one, each line prefixed with `[n] `).
    #[arg(long, value_name = "N")]
    pub instance: Option<u32>,
    /// The run that started the instances (default: the files written to last).
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// How many of the last lines of each instance to print first.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub lines: usize,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write it.
    #[arg(short = 'f', long = "file", default_value = "cutover.yaml")]
    pub file: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's folder here instead of a new temp dir.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print events as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks argument definitions only when a command is built; a clash (like
    /// `deploy VERSION` against a propagated `--version`) would otherwise surface as
    /// a panic at run time.
    #[test]
    fn argument_definitions_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
