//! The daemon's answers about the app, and the bodies of the requests that change it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Phase, Role, RunKind};

/// `POST /api/v1/deploy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    pub version: String,
    /// `standard` (the default), `hotfix` or `scheduled` (which needs `at`).
    #[serde(default, rename = "type")]
    pub deploy_type: crate::DeployType,
    /// When a scheduled deploy starts: an RFC 3339 time with its offset
    /// (`2026-12-02T18:00:00Z`). Only with `type: scheduled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Deploy outside the configured windows, or in a freeze, for this reason
    /// (recorded with the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_window: Option<String>,
    /// The run of a later environment this deploy is the staging of, as
    /// `ENVIRONMENT/RUN-ID`. That run has the gates, the windows and the
    /// approvals, so this one goes straight to its rollout. Only that
    /// environment's daemon may set it: the request must carry its token in
    /// `X-Cutover-Staged-By` (else 403 `not_staged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_for: Option<String>,
}

impl DeployRequest {
    /// A standard deploy of `version`, now.
    pub fn standard(version: &str) -> DeployRequest {
        DeployRequest {
            version: version.to_owned(),
            deploy_type: crate::DeployType::Standard,
            at: None,
            override_window: None,
            staged_for: None,
        }
    }
}

/// `POST /api/v1/rollback`; an empty body means "the previous promoted version".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The promoted version to go back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// The answer to a request that started a run (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunStarted {
    pub run_id: String,
    pub version: String,
    pub kind: RunKind,
    /// The version serving when it started, if any (for a rollback: where it
    /// goes back from).
    pub from: Option<String>,
    /// Where the run's receipts will be once it ends.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub receipts: PathBuf,
}

/// The answer to `promote` and `abort`: the run they were passed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Steered {
    pub run_id: String,
}

/// Every 4xx answer: what was wrong in words, and a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: String,
    /// `busy`, `already_serving`, `no_active_run`, `too_late`, `invalid_version`,
    /// `invalid_field`, `bad_body`, `no_such_run`, `invalid_config`,
    /// `restart_needed`, `unauthorized`, ...
    pub code: String,
    /// The body's field at fault (`version`, `to`), when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `GET /api/v1/status`: the app as it is now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Status {
    pub app: String,
    /// The environment of the config this daemon serves, when it defines
    /// environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The proxy's address, where clients send their requests.
    pub proxy: String,
    /// Blue-green's preview address, if one listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    pub api: String,
    pub pid: u32,
    /// The version that serves when no run is in progress.
    pub stable: Option<String>,
    /// Every backend the proxy routes to, in order, with its share.
    pub backends: Vec<BackendStatus>,
    pub active_run: Option<ActiveStatus>,
    /// Requests per version since the daemon started.
    pub traffic: Vec<TrafficTotals>,
}

/// One version in one role, as it serves now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackendStatus {
    pub version: String,
    pub role: Role,
    /// Its release's name (the version, or e.g. `v1+baseline`).
    pub release: String,
    /// Share of the requests that pin nothing, in basis points.
    pub weight_bp: u16,
    pub instances: u32,
    pub ready_instances: u32,
    /// The first thing that went wrong with it since it started, even if it has
    /// recovered since (an instance restarted, a health check passing again).
    pub first_problem: Option<String>,
    /// The platform's handles, for people (`pid 4242 on 127.0.0.1:40001 (ready)`).
    pub describe: Vec<String>,
}

/// The run in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveStatus {
    pub run_id: String,
    pub version: String,
    pub kind: RunKind,
    pub phase: Phase,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrafficTotals {
    pub version: String,
    pub requests: u64,
    pub errors_5xx: u64,
}

/// `GET /api/v1/config`: the config file as it is now, against what the daemon
/// runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigCheck {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub path: PathBuf,
    /// The next run can use the file as it is.
    pub usable: bool,
    /// Its mistakes, `file:line:col: ...`.
    pub errors: Vec<String>,
    /// Settings it changes that need a daemon restart.
    pub restart_needed: Vec<String>,
    /// The sections the next run will use differently from the last one.
    pub changes: Vec<String>,
}

/// `GET /api/v1/apps`: an app the daemon serves, with its live and previous versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppInfo {
    pub app: String,
    /// The version that serves when no run is in progress.
    pub live: Option<String>,
    /// The versions promoted before it, newest first, without repeats: where
    /// `cutover rollback` goes.
    pub previous: Vec<String>,
    pub active_run: Option<ActiveStatus>,
}

/// One of a run's receipt files, as `GET /api/v1/runs/{id}/receipts` lists them;
/// `GET /api/v1/runs/{id}/receipts/{name}` serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReceiptFile {
    pub name: String,
    /// What it is served as (`text/markdown; charset=utf-8`, `application/json`, ...).
    pub content_type: String,
    pub bytes: u64,
}
