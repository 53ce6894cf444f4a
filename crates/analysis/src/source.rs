//! Why a metric source could not say what a version did in a window, as data:
//! recorded in the window's [`crate::WindowReport`], which is then inconclusive.
//! None of these is ever a pass.

use serde::{Deserialize, Serialize};

/// What went wrong with one query of a metric source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceFault {
    /// The query matched no series (Prometheus' empty vector, Datadog's empty
    /// `series`): the metric is not there, or not yet.
    #[error("no series matched the query")]
    MissingSeries,
    /// The value was NaN (0/0, a quantile of no observations).
    #[error("the value is NaN")]
    NaN,
    /// The answer held nothing to read: no value at the JSONPath, an empty
    /// output, a series without points.
    #[error("the answer is empty: {detail}")]
    Empty { detail: String },
    /// The server answered with an error status.
    #[error("HTTP {status}: {message}")]
    Http { status: u16, message: String },
    /// No answer within the configured timeout.
    #[error("no answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    /// The server could not be reached at all.
    #[error("unreachable: {message}")]
    Unreachable { message: String },
    /// The server refused the query itself (a PromQL syntax error, say), with
    /// its own message.
    #[error("the query was refused: {message}")]
    Query { message: String },
    /// The answer was not a number where one was expected, or the command failed.
    #[error("{message}")]
    Invalid { message: String },
}

/// A metric a source could not read for a version, naming the config field of
/// its query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field} for {version} ({role}): {fault}")]
pub struct SourceError {
    /// The config field of the query, like `analysis.source.prometheus.queries.error_rate`.
    pub field: String,
    pub version: String,
    pub role: String,
    pub fault: SourceFault,
}
