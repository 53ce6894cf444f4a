//! The types that cross cutover's boundaries: the daemon's HTTP API (requests,
//! responses, errors), the run event stream, and the records the store keeps.
//! The server and the CLI share them, so neither parses the other's strings; each
//! value has a stable tag (`kind`, `outcome`, `role`, `stage`) that machines can
//! match on, beside a `message` in words for people.
//!
//! This crate is plain data: serde types and their formatting, no IO, no tokio,
//! no HTTP client or server. It must not depend on the engine, the store or the
//! server.
//!
//! ```
//! use cutover_api::{Event, Outcome, RunEvent};
//! let line = r#"{"run_id":"r1","seq":9,"at_ms":0,"kind":"outcome","reason":"all steps passed",
//!               "message":"v2 is live","outcome":"promoted"}"#;
//! let event: RunEvent = serde_json::from_str(line).unwrap();
//! assert!(event.is_final());
//! assert_eq!(event.outcome, Some(Outcome::Promoted));
//! assert!(matches!(event.event, Event::Outcome { .. }));
//! ```

mod event;
mod format;
mod pipeline;
mod run;
mod status;
mod version;

pub use event::{Command, Event, Phase, RunEvent, Share, SmokeResult};
pub use format::{format_bp, format_ms};
pub use pipeline::{
    ApprovalRecord, ApprovalRequest, DeployType, Stage, StageRecord, StageStatus, Verdict,
};
pub use run::{MeasurementRecord, Outcome, Role, RunKind, RunRecord};
pub use status::{
    ActiveStatus, AppInfo, BackendStatus, ConfigCheck, DeployRequest, ErrorBody, ReceiptFile,
    RollbackRequest, RunStarted, Status, Steered, TrafficTotals,
};
pub use version::{VERSION_RULE, valid_version};
