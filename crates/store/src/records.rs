//! The records the store keeps, as plain data.

pub use cutover_api::{MeasurementRecord, Outcome, RunKind, RunRecord};

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
    /// The config file's text as the run read it, kept with the run so its
    /// receipts say what was used.
    pub config: String,
}
