//! The stages around a rollout, as records: which stages a run has, how each went,
//! and the approvals people gave.

use serde::{Deserialize, Serialize};

/// What kind of deploy a person asked for (`cutover deploy --type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeployType {
    /// The whole pipeline as configured.
    #[default]
    Standard,
    /// An urgent fix: it needs the hotfix quorum (`approvals.hotfix`).
    Hotfix,
    /// Waits until a given time (`--at`), then goes on as a standard deploy.
    Scheduled,
}

impl DeployType {
    /// Every type with the word the CLI and API spell it with.
    pub const ALL: [(&'static str, DeployType); 3] = [
        ("standard", DeployType::Standard),
        ("hotfix", DeployType::Hotfix),
        ("scheduled", DeployType::Scheduled),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeployType::Standard => "standard",
            DeployType::Hotfix => "hotfix",
            DeployType::Scheduled => "scheduled",
        }
    }
}

/// A stage of a run's pipeline. The stable tag is its `snake_case` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The quality gates (and the migrations' up, down, up check), all at once.
    Gates,
    /// Waiting for the time a scheduled deploy was asked for.
    Schedule,
    /// Whether a deployment window is open and no freeze holds.
    Window,
    /// The version deployed to the environment before this one (`staging`), through
    /// that environment's daemon, until it is promoted there.
    Staging,
    /// The smoke tests, against the environment before this one.
    Smoke,
    /// Waiting for the approvals quorum.
    Approval,
    /// The database migration's `up`, before any traffic moves.
    Migrate,
    /// The `before_deploy` hook.
    BeforeDeploy,
    /// The rollout itself: traffic moves by the strategy, the new version is judged.
    Deploy,
    /// The `after_promotion` hook, once the new version is live.
    AfterPromotion,
    /// The migration's `down`, once the run went back (when it is reversible).
    MigrateDown,
    /// The `on_rollback` hook (the rollback script), once the run went back.
    OnRollback,
}

impl Stage {
    /// Whether it runs after the rollout (the new version live, or gone back).
    pub fn is_after(self) -> bool {
        matches!(
            self,
            Stage::AfterPromotion | Stage::MigrateDown | Stage::OnRollback
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Gates => "gates",
            Stage::Schedule => "schedule",
            Stage::Window => "window",
            Stage::Staging => "staging",
            Stage::Smoke => "smoke",
            Stage::Approval => "approval",
            Stage::Migrate => "migrate",
            Stage::BeforeDeploy => "before_deploy",
            Stage::Deploy => "deploy",
            Stage::AfterPromotion => "after_promotion",
            Stage::MigrateDown => "migrate_down",
            Stage::OnRollback => "on_rollback",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a stage is, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Not begun.
    #[default]
    Pending,
    /// Under way (or waiting: for a time, for people).
    Running,
    Passed,
    /// It stopped the run.
    Failed,
    /// Not run, because an earlier stage stopped the run (or a person overrode it).
    Skipped,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Pending => "pending",
            StageStatus::Running => "running",
            StageStatus::Passed => "passed",
            StageStatus::Failed => "failed",
            StageStatus::Skipped => "skipped",
        }
    }

    /// Passed, failed or skipped: nothing more will happen to it.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            StageStatus::Passed | StageStatus::Failed | StageStatus::Skipped
        )
    }
}

/// One stage of a run as recorded: its verdict and the evidence for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StageRecord {
    pub stage: Stage,
    pub status: StageStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// The verdict in words, with its evidence (`2 of 2 approvals: alice, bob`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

impl StageRecord {
    pub fn pending(stage: Stage) -> StageRecord {
        StageRecord {
            stage,
            status: StageStatus::Pending,
            started_at_ms: None,
            finished_at_ms: None,
            summary: String::new(),
        }
    }
}

/// A person's word on a run waiting for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }
}

/// `POST /api/v1/runs/{id}/approve` and `/reject`: who decides, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// One of the names in the config's `approvals.from`.
    pub by: String,
    /// Why; required to reject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One decision on a run, as stored: who, when, what and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalRecord {
    pub by: String,
    pub verdict: Verdict,
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}
