//! Hooks: the commands a config runs before the deploy, after a promotion and on a
//! rollback (the documents' `ROLLBACK_SCRIPT`), each given the run's facts in its
//! environment.
//!
//! A hook's commands run one after the other, each to its end; the first that fails
//! ends the hook and the rest are skipped (a later command may rely on an earlier
//! one). What a failure means is the caller's decision: a failing `before_deploy`
//! blocks the run, a failing `after_promotion` or `on_rollback` is only reported.

use std::path::PathBuf;

use cutover_spec::HookCommand;
use serde::{Deserialize, Serialize};

use crate::command::{CommandResult, CommandRun, run_command, shown_argv};

/// What a run is, for the commands it runs: put in their environment as
/// `CUTOVER_APP`, `CUTOVER_VERSION`, `CUTOVER_PREVIOUS_VERSION`, `CUTOVER_RUN_ID`,
/// `CUTOVER_OUTCOME`, `CUTOVER_REASON`, `CUTOVER_RECEIPTS_DIR` (and `CUTOVER_STAGE`,
/// the stage running them). A fact not known yet is an empty variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFacts {
    pub app: String,
    /// The version being deployed.
    pub version: String,
    /// The version serving before the run, if any.
    pub previous_version: Option<String>,
    pub run_id: String,
    /// How the run ended (`promoted`, `rolled_back`, ...), once it has.
    pub outcome: Option<String>,
    /// Why it ended so (a rollback's trigger, ...).
    pub reason: Option<String>,
    /// The run's receipts folder, where every command's output is written.
    pub receipts_dir: PathBuf,
}

impl RunFacts {
    /// The environment for a command run by `stage`.
    pub fn env(&self, stage: &str) -> Vec<(String, String)> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        [
            ("CUTOVER_APP", self.app.clone()),
            ("CUTOVER_VERSION", self.version.clone()),
            ("CUTOVER_PREVIOUS_VERSION", opt(&self.previous_version)),
            ("CUTOVER_RUN_ID", self.run_id.clone()),
            ("CUTOVER_OUTCOME", opt(&self.outcome)),
            ("CUTOVER_REASON", opt(&self.reason)),
            (
                "CUTOVER_RECEIPTS_DIR",
                self.receipts_dir.to_string_lossy().into_owned(),
            ),
            ("CUTOVER_STAGE", stage.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// Where in a run a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPoint {
    BeforeDeploy,
    AfterPromotion,
    OnRollback,
}

impl HookPoint {
    /// The name in `cutover.yaml`, in `CUTOVER_STAGE` and in the log files' names.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPoint::BeforeDeploy => "before_deploy",
            HookPoint::AfterPromotion => "after_promotion",
            HookPoint::OnRollback => "on_rollback",
        }
    }

    /// This point's commands in `hooks`.
    pub fn commands(self, hooks: &cutover_spec::HooksSpec) -> &[HookCommand] {
        match self {
            HookPoint::BeforeDeploy => &hooks.before_deploy,
            HookPoint::AfterPromotion => &hooks.after_promotion,
            HookPoint::OnRollback => &hooks.on_rollback,
        }
    }
}

/// What one hook did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookReport {
    pub point: HookPoint,
    /// The commands that ran, in order; only the last may have failed.
    pub ran: Vec<CommandResult>,
    /// The argv of each command not run because an earlier one failed.
    pub skipped: Vec<Vec<String>>,
}

impl HookReport {
    /// Every command ran and succeeded (true for a hook with no command).
    pub fn passed(&self) -> bool {
        self.skipped.is_empty() && self.ran.iter().all(CommandResult::succeeded)
    }

    /// The hook's section of `hooks.md`.
    pub fn to_markdown(&self) -> String {
        let verdict = if self.passed() { "passed" } else { "FAILED" };
        let mut out = format!("## Hook `{}`: {verdict}\n\n", self.point.as_str());
        if self.ran.is_empty() {
            out.push_str("No command configured.\n");
            return out;
        }
        for result in &self.ran {
            out.push_str(&result.to_markdown());
        }
        for argv in &self.skipped {
            out.push_str(&format!(
                "- `{}`: skipped, an earlier command failed\n",
                shown_argv(argv)
            ));
        }
        out
    }
}

/// Run the commands of the hook at `point`, in order, with `facts` in their
/// environment; each one's output goes to `hooks/<point>-<n>.log` in the receipts
/// folder.
///
/// # Guarantees
/// Never fails: every problem (a command missing, failing, timing out) is in the
/// report. The first failure ends the hook.
pub async fn run_hook(point: HookPoint, commands: &[HookCommand], facts: &RunFacts) -> HookReport {
    let env = facts.env(point.as_str());
    let mut report = HookReport {
        point,
        ran: Vec::new(),
        skipped: Vec::new(),
    };
    for (i, command) in commands.iter().enumerate() {
        if !report.passed() {
            report.skipped.push(command.run.clone());
            continue;
        }
        let log = format!("hooks/{}-{}.log", point.as_str(), i + 1);
        let result = run_command(CommandRun {
            argv: &command.run,
            workdir: &command.workdir,
            timeout: command.timeout,
            env: &env,
            receipts_dir: &facts.receipts_dir,
            log: &log,
        })
        .await;
        tracing::info!(
            hook = point.as_str(),
            argv = %shown_argv(&command.run),
            result = %result.summary(),
            "hook command ended"
        );
        report.ran.push(result);
    }
    report
}
