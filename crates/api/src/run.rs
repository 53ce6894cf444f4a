//! Runs: what they do, how they end, and the part each version plays in them.

use serde::{Deserialize, Serialize};

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// The app's first version: start, health-check, serve.
    Initial,
    /// A new version shifted in step by step with analysis.
    Canary,
    /// A new version started beside the old one, checked, then switched to at once.
    BlueGreen,
    /// A new version replacing the old one's instances batch by batch.
    Rolling,
    /// Back to a previous promoted version, fast and without analysis.
    Rollback,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Initial => "initial",
            RunKind::Canary => "canary",
            RunKind::BlueGreen => "blue_green",
            RunKind::Rolling => "rolling",
            RunKind::Rollback => "rollback",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new version serves all traffic.
    Promoted,
    /// The new version failed health, analysis or a trigger; the old one serves.
    RolledBack,
    /// A person aborted it, or the daemon stopped while it ran; the old one serves.
    Aborted,
    /// Stopped before any traffic moved: a gate failed, an approval was refused,
    /// or the deployment window is closed. The old version serves as before.
    Blocked,
    /// cutover itself failed (the store could not record a transition); traffic was
    /// returned to the old version as a precaution.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Promoted => "promoted",
            Outcome::RolledBack => "rolled_back",
            Outcome::Aborted => "aborted",
            Outcome::Blocked => "blocked",
            Outcome::Failed => "failed",
        }
    }
}

/// The part a version plays. Two backends of one version are told apart by their
/// role (the stable version and its fresh baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The version that serves when no run is in progress.
    Stable,
    /// The new version being judged (a canary, a rolling update's new instances,
    /// green after a blue-green switch until the run promotes it).
    Canary,
    /// A fresh instance of the stable version beside the canary, so the canary is
    /// judged against something with the same uptime.
    Baseline,
    /// The new version before a blue-green switch: only pinned requests reach it.
    Preview,
    /// The new version as it answers copies of the stable version's requests (a
    /// canary step's `mirror`): measured, never seen by a client.
    Shadow,
}

impl Role {
    /// The name requests pin it by (`x-cutover-version: canary`) and people read.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stable => "stable",
            Role::Canary => "canary",
            Role::Baseline => "baseline",
            Role::Preview => "preview",
            Role::Shadow => "shadow",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run as stored and as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunRecord {
    pub id: String,
    pub app: String,
    pub version: String,
    /// The version serving when the run started, if any.
    pub stable: Option<String>,
    pub kind: RunKind,
    /// The phase it is in, or was in when it ended.
    pub phase: crate::Phase,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub outcome: Option<Outcome>,
    /// Why it ended the way it did, in words.
    pub reason: Option<String>,
}

/// One analysis window, judged: as stored, and as `GET /api/v1/runs/{id}/measurements`
/// lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeasurementRecord {
    pub at_ms: i64,
    /// The canary step, rolling batch or blue-green phase (0-based) the window
    /// was measured in.
    pub step: usize,
    pub weight_bp: u16,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub report: cutover_analysis::WindowReport,
}
