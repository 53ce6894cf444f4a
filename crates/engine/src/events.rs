//! Progress of a run as it happens: what the CLI streams and the receipts replay.

use cutover_store::{EventRecord, Outcome};
use serde::{Deserialize, Serialize};

/// One event of one run, as streamed to clients (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub run_id: String,
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// `phase`, `weight`, `analysis`, `health`, `command`, `outcome`, ...
    pub kind: String,
    pub message: String,
    /// Canary weight in basis points after this event, when it concerns traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_bp: Option<u16>,
    /// Set on the last event of a run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

impl RunEvent {
    pub fn from_record(run_id: &str, record: EventRecord, outcome: Option<Outcome>) -> RunEvent {
        RunEvent {
            run_id: run_id.to_owned(),
            seq: record.seq,
            at_ms: record.at_ms,
            kind: record.kind,
            message: record.message,
            weight_bp: record.weight_bp,
            outcome,
        }
    }

    pub fn is_final(&self) -> bool {
        self.outcome.is_some()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `2026-11-24T20:15:03.123Z` for a millisecond timestamp.
pub fn format_ms(at_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Basis points as a percentage, `12.5%`.
pub fn format_bp(bp: u16) -> String {
    if bp.is_multiple_of(100) {
        format!("{}%", bp / 100)
    } else {
        format!("{:.2}%", f64::from(bp) / 100.0)
    }
}

/// An error and its sources, `outer: inner: innermost`, for messages to people.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
