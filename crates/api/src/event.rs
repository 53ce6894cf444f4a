//! A run's timeline: typed events, each with a stable `kind` tag and its numbers,
//! and a message in words for people.

use cutover_analysis::WindowReport;
use serde::{Deserialize, Serialize};

use crate::format::format_bp;
use crate::{Outcome, Role};

/// Where a run is. Persisted with the run and shown by `cutover status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Phase {
    /// Recorded, nothing started yet.
    #[default]
    Pending,
    /// A scheduled deploy waits for its time (ms since the Unix epoch).
    Scheduled { at_ms: i64 },
    /// Waiting for people: `approved` of the `required` approvals so far.
    AwaitingApproval { approved: u32, required: u32 },
    /// The new version is starting, waiting for its health checks.
    Starting,
    /// A canary step (1-based) at a weight, analysing.
    Step { step: u32, of: u32, weight_bp: u16 },
    /// Blue-green: green runs beside blue and gets only preview traffic, for smoke
    /// checks and preview analysis.
    Preview,
    /// Blue-green: green passed its checks and waits for `cutover promote`.
    AwaitingPromotion,
    /// Blue-green: all traffic is on green; blue still runs, for an instant way back.
    PostPromotion,
    /// Rolling: a batch (1-based) of instances replaced, analysing.
    Batch { batch: u32, of: u32 },
    /// The decision is made: the new version gets all traffic.
    Promoting,
    /// The decision is made: traffic goes back to the old version.
    RollingBack,
    /// The run has its outcome.
    Finished,
}

impl Phase {
    /// The stable tag, as in the JSON (`step`, `awaiting_promotion`, ...).
    pub fn stage(&self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Scheduled { .. } => "scheduled",
            Phase::AwaitingApproval { .. } => "awaiting_approval",
            Phase::Starting => "starting",
            Phase::Step { .. } => "step",
            Phase::Preview => "preview",
            Phase::AwaitingPromotion => "awaiting_promotion",
            Phase::PostPromotion => "post_promotion",
            Phase::Batch { .. } => "batch",
            Phase::Promoting => "promoting",
            Phase::RollingBack => "rolling_back",
            Phase::Finished => "finished",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Pending => f.write_str("pending"),
            Phase::Scheduled { at_ms } => {
                write!(f, "scheduled for {}", crate::format::format_ms(*at_ms))
            }
            Phase::AwaitingApproval { approved, required } => {
                write!(f, "awaiting approval ({approved}/{required})")
            }
            Phase::Starting => f.write_str("starting"),
            Phase::Step {
                step,
                of,
                weight_bp,
            } => {
                write!(f, "step {step}/{of} at {}", format_bp(*weight_bp))
            }
            Phase::Preview => f.write_str("preview"),
            Phase::AwaitingPromotion => f.write_str("awaiting promotion"),
            Phase::PostPromotion => f.write_str("post-promotion analysis"),
            Phase::Batch { batch, of } => write!(f, "batch {batch}/{of}"),
            Phase::Promoting => f.write_str("promoting"),
            Phase::RollingBack => f.write_str("rolling back"),
            Phase::Finished => f.write_str("finished"),
        }
    }
}

/// One version's share of the traffic after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Share {
    pub version: String,
    pub role: Role,
    /// Share of the requests that pin nothing, in basis points (0..=10000).
    pub weight_bp: u16,
    /// Ready instances it had.
    pub ready: u32,
}

/// A request a person (or a program) made of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Promote,
    Abort,
}

/// One smoke check against a version before it gets production traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmokeResult {
    /// `GET /healthz`.
    pub check: String,
    pub passed: bool,
    /// The status it answered with, if it answered.
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    /// What was wrong, when it failed.
    pub problem: Option<String>,
}

/// What happened, typed. The `kind` tag is stable; new kinds may be added, and a
/// reader that does not know one gets [`Event::Other`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The run entered a phase.
    Phase { phase: Phase },
    /// A release is up: every instance passed its health checks.
    Healthy {
        release: String,
        version: String,
        instances: u32,
        after_ms: u64,
        /// The platform's handles, for people (`pid 4242 on 127.0.0.1:40001 (ready)`).
        describe: Vec<String>,
    },
    /// A release (or more instances of it) could not be started.
    StartFailed {
        release: String,
        version: String,
        error: String,
    },
    /// A release runs a different number of instances (a rolling batch).
    Scaled {
        release: String,
        version: String,
        instances: u32,
    },
    /// The routing changed; every backend with its share.
    Traffic { shares: Vec<Share> },
    /// An analysis window was judged.
    Analysis {
        /// The canary step, rolling batch or blue-green phase (0-based) it belongs to.
        step: u32,
        /// Whether the baseline's numbers came from an earlier window (it served too
        /// little in this one).
        carried_over: bool,
        // Boxed: the largest of the events by far, and one per window.
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        report: Box<WindowReport>,
    },
    /// Smoke checks ran against a version before it got production traffic.
    Smoke { results: Vec<SmokeResult> },
    /// Something went wrong with a release after it was healthy.
    Unhealthy { release: String, problem: String },
    /// A person asked for something.
    Command { command: Command, by: String },
    /// The run goes back to the old version, for this reason.
    RollingBack { reason: String },
    /// A release's instances were drained before being stopped.
    Drained {
        release: String,
        instances: u32,
        /// False when requests were still in flight at the drain timeout.
        clean: bool,
    },
    /// A release's instances (all, or those leaving in a batch) were stopped.
    Stopped { release: String, instances: u32 },
    /// Worth a person's attention, but not a change of course.
    Warning,
    /// A stage of the run's pipeline began or ended (`index` of `of`, from 1).
    Stage {
        stage: crate::Stage,
        status: crate::StageStatus,
        index: u32,
        of: u32,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        summary: String,
    },
    /// A person approved or rejected the run.
    Approval {
        by: String,
        verdict: crate::Verdict,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        /// Approvals so far, and how many are needed.
        approved: u32,
        required: u32,
    },
    /// The run's last event; the outcome itself is on [`RunEvent::outcome`].
    Outcome { reason: String },
    /// A kind this reader does not know (written by a newer cutover, or an older
    /// record from before events were typed).
    #[serde(other)]
    Other,
}

impl Event {
    /// The stable tag, as in the JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Phase { .. } => "phase",
            Event::Healthy { .. } => "healthy",
            Event::StartFailed { .. } => "start_failed",
            Event::Scaled { .. } => "scaled",
            Event::Traffic { .. } => "traffic",
            Event::Analysis { .. } => "analysis",
            Event::Smoke { .. } => "smoke",
            Event::Unhealthy { .. } => "unhealthy",
            Event::Command { .. } => "command",
            Event::RollingBack { .. } => "rolling_back",
            Event::Drained { .. } => "drained",
            Event::Stopped { .. } => "stopped",
            Event::Stage { .. } => "stage",
            Event::Approval { .. } => "approval",
            Event::Warning => "warning",
            Event::Outcome { .. } => "outcome",
            Event::Other => "other",
        }
    }
}

/// One event of one run, as stored and streamed (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunEvent {
    pub run_id: String,
    /// Position in the run's timeline, from 1.
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    #[serde(flatten)]
    pub event: Event,
    /// What happened, in words.
    pub message: String,
    /// The new version's share of traffic after this event, in basis points, when
    /// the event concerns traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_bp: Option<u16>,
    /// Set on the last event of a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

impl RunEvent {
    pub fn is_final(&self) -> bool {
        self.outcome.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_their_tag_and_numbers_through_json() {
        let event = RunEvent {
            run_id: "r1".into(),
            seq: 3,
            at_ms: 1,
            event: Event::Phase {
                phase: Phase::Step {
                    step: 2,
                    of: 3,
                    weight_bp: 5_000,
                },
            },
            message: "step 2/3".into(),
            weight_bp: Some(5_000),
            outcome: None,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "phase");
        assert_eq!(json["phase"]["stage"], "step");
        for phase in [
            Phase::Pending,
            Phase::Step {
                step: 1,
                of: 2,
                weight_bp: 1,
            },
            Phase::AwaitingPromotion,
            Phase::Batch { batch: 1, of: 2 },
            Phase::RollingBack,
        ] {
            let json = serde_json::to_value(&phase).unwrap();
            assert_eq!(json["stage"], phase.stage());
        }
        assert_eq!(json["phase"]["weight_bp"], 5000);
        let back: RunEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.event.kind(), "phase");
        assert_eq!(
            Phase::Step {
                step: 2,
                of: 3,
                weight_bp: 5_000
            }
            .to_string(),
            "step 2/3 at 50%"
        );
    }

    #[test]
    fn an_unknown_kind_is_read_as_other() {
        let line =
            r#"{"run_id":"r1","seq":1,"at_ms":0,"kind":"from_the_future","x":1,"message":"m"}"#;
        let event: RunEvent = serde_json::from_str(line).unwrap();
        assert_eq!(event.event, Event::Other);
        assert_eq!(event.message, "m");
    }
}
