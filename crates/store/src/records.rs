//! The records the store keeps, as plain data.

use cutover_analysis::WindowReport;
use serde::{Deserialize, Serialize};

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// The app's first version: start, health-check, serve.
    Initial,
    /// A new version shifted in step by step with analysis.
    Canary,
    /// Back to the previous promoted version, fast and without analysis.
    Rollback,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new version serves all traffic.
    Promoted,
    /// The new version failed health, analysis or a trigger; the old one serves.
    RolledBack,
    /// A person aborted it, or the daemon stopped while it ran; the old one serves.
    Aborted,
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
            Outcome::Failed => "failed",
        }
    }
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Initial => "initial",
            RunKind::Canary => "canary",
            RunKind::Rollback => "rollback",
        }
    }
}

/// A run as it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub id: String,
    pub app: String,
    /// The version being rolled out.
    pub version: String,
    /// The version serving when the run started, if any.
    pub stable: Option<String>,
    pub kind: RunKind,
    pub started_at_ms: i64,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub app: String,
    pub version: String,
    pub stable: Option<String>,
    pub kind: RunKind,
    /// The last phase written, as the engine names it (`starting`, `step 2/3`, ...).
    pub phase: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub outcome: Option<Outcome>,
    /// Why it ended the way it did, in words.
    pub reason: Option<String>,
}

/// One line of a run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Position in the run's timeline, from 1.
    pub seq: i64,
    pub at_ms: i64,
    /// Machine name of the event (`phase`, `weight`, `analysis`, `health`, `outcome`, ...).
    pub kind: String,
    pub message: String,
    /// Canary weight in basis points after this event, when it concerns traffic.
    pub weight_bp: Option<u16>,
}

/// One analysis window, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasurementRecord {
    pub at_ms: i64,
    /// Index of the canary step (0-based) during which the window was measured.
    pub step: usize,
    pub weight_bp: u16,
    pub report: WindowReport,
}
