//! The HTTP API under `/api/v1`, and `/metrics`. Bodies are JSON; errors are
//! `{"error": "...", "code": "..."}` (with `field` when a body's field is at fault)
//! with a 4xx status that says whose fault it was. Every request passes the
//! `auth` guard first; the app's runs are in `runs`, their event
//! streams in `streams`, the metrics in `metrics`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cutover_api::{
    ApprovalRequest, DeployRequest, ErrorBody, RollbackRequest, Status, Steered, TrafficTotals,
    Verdict,
};
use cutover_engine::events::error_chain;
use cutover_engine::pipeline::DeployOptions;
use cutover_engine::{Engine, EngineError, RunConfig};
use cutover_platform::LogFiles;
use cutover_store::StoreError;
use tokio::sync::watch;

use crate::auth::{self, Guard};
use crate::config::ConfigSource;
use crate::daemon::DaemonInfo;
use crate::metrics::{self, StepDurations};
use crate::traffic::ProxyTraffic;
use crate::{logs, runs, streams};

#[derive(Clone)]
pub(crate) struct AppState {
    pub engine: Engine,
    pub traffic: Arc<ProxyTraffic>,
    pub info: DaemonInfo,
    pub config: Arc<ConfigSource>,
    /// Where each run's receipts are, `<runs_dir>/<run-id>/`.
    pub runs_dir: PathBuf,
    /// How long runs spent in each stage, for `/metrics`.
    pub steps: Arc<StepDurations>,
    /// Turns true when the daemon stops: endless streams end then.
    pub stopping: watch::Receiver<bool>,
    /// The instances' log files.
    pub logs: LogFiles,
}

/// The API; every request passes `guard` first.
pub(crate) fn router(state: AppState, guard: Guard) -> Router {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/deploy", post(deploy))
        .route("/api/v1/promote", post(promote))
        .route("/api/v1/abort", post(abort))
        .route("/api/v1/rollback", post(rollback))
        .route("/api/v1/config", get(config_check))
        .route("/api/v1/apps", get(runs::apps))
        .route("/api/v1/runs", get(runs::runs))
        .route("/api/v1/runs/{id}", get(runs::run))
        .route("/api/v1/runs/{id}/measurements", get(runs::measurements))
        .route("/api/v1/runs/{id}/receipts", get(runs::receipts))
        .route("/api/v1/runs/{id}/receipts/{name}", get(runs::receipt))
        .route("/api/v1/runs/{id}/events", get(streams::run_events))
        .route("/api/v1/runs/{id}/approve", post(approve))
        .route("/api/v1/runs/{id}/reject", post(reject))
        .route("/api/v1/events", get(streams::all_events))
        .route("/api/v1/logs/{version}", get(logs::logs))
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint; see /api/v1/openapi.json for every one",
            )
        })
        .with_state(state)
        .layer(middleware::from_fn_with_state(guard, auth::require))
        // The dashboard's files hold no data, so they are outside the guard.
        .merge(crate::dashboard::router())
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// The body's `field` is at fault: 422 `invalid_field`, the field named.
    pub(crate) fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let field = field.into();
        ApiError {
            message: format!("field `{field}`: {}", message.into()),
            field: Some(field),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            code: self.code.to_owned(),
            field: self.field,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let (status, code) = match &e {
            EngineError::Busy { .. } => (StatusCode::CONFLICT, "busy"),
            EngineError::AlreadyServing(_) => (StatusCode::CONFLICT, "already_serving"),
            EngineError::InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_version"),
            EngineError::NoActiveRun => (StatusCode::CONFLICT, "no_active_run"),
            EngineError::TooLate { .. } => (StatusCode::CONFLICT, "too_late"),
            EngineError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            EngineError::NothingToRollBack => (StatusCode::CONFLICT, "nothing_to_roll_back"),
            EngineError::NeverPromoted { .. } => (StatusCode::CONFLICT, "never_promoted"),
            EngineError::NotActive { .. } => (StatusCode::CONFLICT, "not_active"),
            EngineError::NotAwaitingApproval { .. } => {
                (StatusCode::CONFLICT, "not_awaiting_approval")
            }
            EngineError::NotAnApprover { .. } => (StatusCode::FORBIDDEN, "not_an_approver"),
            EngineError::RejectionWithoutReason => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
            }
            EngineError::AlreadyDecided { .. } => (StatusCode::CONFLICT, "already_decided"),
            EngineError::InvalidSchedule(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            EngineError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
            EngineError::Stuck { .. } | EngineError::Suspended => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let field = match &e {
            EngineError::InvalidVersion(_) => Some("version"),
            EngineError::RejectionWithoutReason => Some("comment"),
            EngineError::InvalidSchedule(_) => Some("at"),
            EngineError::NotAnApprover { .. } => Some("by"),
            _ => None,
        };
        let message = match field {
            Some(field) => format!("field `{field}`: {e}"),
            None => error_chain(&e),
        };
        let field = field.map(str::to_owned);
        ApiError {
            field,
            ..ApiError::new(status, code, message)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NoSuchRun(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_run",
                format!("no run with id {id}"),
            ),
            e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", error_chain(&e)),
        }
    }
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/api/v1/status", tag = "app",
        responses((status = 200, description = "what serves now, and the run in progress", body = cutover_api::Status))
    )
)]
pub(crate) async fn status(State(s): State<AppState>) -> Json<Status> {
    let app = s.engine.status().await;
    let traffic = s
        .traffic
        .totals()
        .into_iter()
        .map(|(version, requests, errors_5xx)| TrafficTotals {
            version,
            requests,
            errors_5xx,
        })
        .collect();
    Json(Status {
        app: app.app,
        environment: s.engine.config().config.environment.clone(),
        proxy: s.info.proxy.to_string(),
        preview: s.info.preview.map(|p| p.to_string()),
        api: s.info.api.to_string(),
        pid: s.info.pid,
        stable: app.stable,
        backends: app.backends,
        active_run: app.active_run,
        traffic,
    })
}

/// A body that could not be read: 422 naming the field when the JSON is well formed
/// but a field is wrong (missing, unknown, of the wrong type), else 400.
fn bad_body(rejection: &JsonRejection, example: &str) -> ApiError {
    if let JsonRejection::JsonDataError(data) = rejection
        && let Some(wrong) = source_of::<serde_path_to_error::Error<serde_json::Error>>(data)
    {
        let field = field_at_fault(wrong);
        return ApiError::invalid_field(
            field,
            format!("{}; expected a JSON body like {example}", wrong.inner()),
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_body",
        format!(
            "{}; expected a JSON body like {example}",
            rejection.body_text()
        ),
    )
}

/// The first error of type `E` in `error`'s chain of sources.
fn source_of<'e, E: std::error::Error + 'static>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e E> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// The path of the field a deserializing error is about. A missing field is
/// reported at the object that lacks it; serde then names it, in backticks, in its
/// fixed `missing field `x`` message.
fn field_at_fault(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let at = error.path().to_string();
    let message = error.inner().to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (at.as_str(), missing) {
        (".", Some(name)) => name.to_owned(),
        (_, Some(name)) => format!("{at}.{name}"),
        _ => at,
    }
}

/// The config file as it is now, for the run about to start.
fn run_config(s: &AppState) -> Result<RunConfig, ApiError> {
    s.config.load().map_err(|e| {
        let code = if e.restart_needed {
            "restart_needed"
        } else {
            "invalid_config"
        };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.message)
    })
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        post, path = "/api/v1/deploy", tag = "runs", security(("token" = [])),
        request_body = cutover_api::DeployRequest,
        responses(
            (status = 202, description = "the run started", body = cutover_api::RunStarted),
            (status = 400, description = "the body is not JSON", body = cutover_api::ErrorBody),
            (status = 401, description = "no token, or not the daemon's", body = cutover_api::ErrorBody),
            (status = 403, description = "`not_staged`: `staged_for` without the later environment's daemon's token (`X-Cutover-Staged-By`)", body = cutover_api::ErrorBody),
            (status = 409, description = "`busy` or `already_serving`", body = cutover_api::ErrorBody),
            (status = 422, description = "`invalid_field`, `invalid_version`, `invalid_config` (a PromQL query Prometheus refused, too) or `restart_needed`", body = cutover_api::ErrorBody),
            (status = 503, description = "`metrics_unavailable`: the config's Prometheus cannot be asked", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn deploy(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Json<DeployRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body.map_err(|r| bad_body(&r, r#"{"version": "v2"}"#))?;
    if !cutover_api::valid_version(&req.version) {
        return Err(EngineError::InvalidVersion(req.version).into());
    }
    let at_ms = req.at.as_deref().map(parse_time).transpose()?;
    let override_window = match req.override_window {
        Some(reason) if reason.trim().is_empty() => {
            return Err(ApiError::invalid_field(
                "override_window",
                "overriding the deployment windows needs a reason, for the record",
            ));
        }
        other => other.map(|r| r.trim().to_owned()),
    };
    let options = DeployOptions {
        deploy_type: req.deploy_type,
        at_ms,
        override_window,
        staged_for: req.staged_for,
    };
    let config = run_config(&s)?;
    if let Some(staged_for) = &options.staged_for {
        crate::environments::check_staged_for(&config.config, staged_for, &headers)?;
    }
    measurable(&config.config).await?;
    let started = s.engine.deploy(&req.version, options, config)?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// An RFC 3339 time with its offset, as ms since the Unix epoch.
fn parse_time(text: &str) -> Result<i64, ApiError> {
    let at: jiff::Timestamp = text.trim().parse().map_err(|e| {
        ApiError::invalid_field(
            "at",
            format!(
                "`{text}` is not an RFC 3339 time with an offset, like `2026-12-02T18:00:00Z` or \
                 `2026-12-02T19:00:00+01:00`: {e}"
            ),
        )
    })?;
    Ok(at.as_millisecond())
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        post, path = "/api/v1/runs/{id}/approve", tag = "runs", security(("token" = [])),
        params(("id" = String, Path, description = "the run waiting for approval")),
        request_body = cutover_api::ApprovalRequest,
        responses(
            (status = 200, description = "recorded; the run counts it", body = cutover_api::Steered),
            (status = 400, description = "the body is not JSON", body = cutover_api::ErrorBody),
            (status = 401, description = "no token, or not the daemon's", body = cutover_api::ErrorBody),
            (status = 403, description = "`not_an_approver`: the name is not in `approvals.from`", body = cutover_api::ErrorBody),
            (status = 409, description = "`not_active`, `not_awaiting_approval` or `already_decided`", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn approve(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<ApprovalRequest>, JsonRejection>,
) -> Result<Json<Steered>, ApiError> {
    decide(&s, &id, Verdict::Approve, body)
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        post, path = "/api/v1/runs/{id}/reject", tag = "runs", security(("token" = [])),
        params(("id" = String, Path, description = "the run waiting for approval")),
        request_body = cutover_api::ApprovalRequest,
        responses(
            (status = 200, description = "recorded; the run ends, blocked", body = cutover_api::Steered),
            (status = 400, description = "the body is not JSON", body = cutover_api::ErrorBody),
            (status = 401, description = "no token, or not the daemon's", body = cutover_api::ErrorBody),
            (status = 403, description = "`not_an_approver`: the name is not in `approvals.from`", body = cutover_api::ErrorBody),
            (status = 409, description = "`not_active`, `not_awaiting_approval` or `already_decided`", body = cutover_api::ErrorBody),
            (status = 422, description = "`invalid_field`: no `comment` saying why", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn reject(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<ApprovalRequest>, JsonRejection>,
) -> Result<Json<Steered>, ApiError> {
    decide(&s, &id, Verdict::Reject, body)
}

fn decide(
    s: &AppState,
    id: &str,
    verdict: Verdict,
    body: Result<Json<ApprovalRequest>, JsonRejection>,
) -> Result<Json<Steered>, ApiError> {
    let Json(req) = body.map_err(|r| bad_body(&r, r#"{"by": "alice", "comment": "why"}"#))?;
    s.engine
        .decide(id, verdict, req.by.trim(), req.comment.as_deref())?;
    Ok(Json(Steered {
        run_id: id.to_owned(),
    }))
}

/// A rollout its metrics source cannot measure is refused before anything
/// starts: its Prometheus must answer and take every query (the others are
/// tried at the first window).
async fn measurable(config: &cutover_spec::Config) -> Result<(), ApiError> {
    match cutover_metrics::check_queries(config).await {
        cutover_metrics::QueryCheck::Refused { url, refused } => {
            let each: Vec<String> = refused
                .iter()
                .map(|(field, message)| {
                    format!("`{field}`: Prometheus at {url} refused the query: {message}")
                })
                .collect();
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
                format!("{}; nothing was started", each.join("; ")),
            ))
        }
        cutover_metrics::QueryCheck::Unreachable { url, reason } => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            format!(
                "`analysis.source.prometheus.url`: Prometheus at {url} cannot be asked ({reason}), \
                 so no analysis window could be judged; nothing was started"
            ),
        )),
        cutover_metrics::QueryCheck::Accepted { .. }
        | cutover_metrics::QueryCheck::NotChecked { .. } => Ok(()),
    }
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        post, path = "/api/v1/promote", tag = "runs", security(("token" = [])),
        responses(
            (status = 200, description = "passed to the run in progress", body = cutover_api::Steered),
            (status = 401, description = "no token, or not the daemon's", body = cutover_api::ErrorBody),
            (status = 409, description = "`no_active_run` or `too_late`", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn promote(State(s): State<AppState>) -> Result<Json<Steered>, ApiError> {
    Ok(Json(Steered {
        run_id: s.engine.promote()?,
    }))
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        post, path = "/api/v1/abort", tag = "runs", security(("token" = [])),
        responses(
            (status = 200, description = "passed to the run in progress", body = cutover_api::Steered),
            (status = 401, description = "no token, or not the daemon's", body = cutover_api::ErrorBody),
            (status = 409, description = "`no_active_run` or `too_late`", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn abort(State(s): State<AppState>) -> Result<Json<Steered>, ApiError> {
    Ok(Json(Steered {
        run_id: s.engine.abort("a person (cutover abort)")?,
    }))
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        post, path = "/api/v1/rollback", tag = "runs", security(("token" = [])),
        request_body(content = cutover_api::RollbackRequest, description = "optional: no body rolls back to the previous promoted version"),
        responses(
            (status = 202, description = "the rollback started", body = cutover_api::RunStarted),
            (status = 400, description = "the body is not JSON", body = cutover_api::ErrorBody),
            (status = 401, description = "no token, or not the daemon's", body = cutover_api::ErrorBody),
            (status = 409, description = "`busy`, `nothing_to_roll_back` or `never_promoted`", body = cutover_api::ErrorBody),
            (status = 422, description = "`invalid_field`, `invalid_config` or `restart_needed`", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn rollback(
    State(s): State<AppState>,
    body: Result<Json<RollbackRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    // An empty body is a plain rollback.
    let req = match body {
        Ok(Json(req)) => req,
        Err(JsonRejection::MissingJsonContentType(_)) => RollbackRequest::default(),
        Err(r) => return Err(bad_body(&r, r#"{} or {"to": "v1"}"#)),
    };
    if let Some(to) = req.to.as_deref()
        && !cutover_api::valid_version(to)
    {
        return Err(ApiError::invalid_field(
            "to",
            format!(
                "`{to}` is not a valid version; use {}",
                cutover_api::VERSION_RULE
            ),
        ));
    }
    let config = run_config(&s)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(s.engine.rollback(req.to.as_deref(), config)?),
    ))
}

/// The API's OpenAPI 3 document, as committed (a test checks it against the one
/// generated from the API types).
const OPENAPI: &str = include_str!("../../../docs/openapi.json");

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/api/v1/openapi.json", tag = "app",
        responses((status = 200, description = "this document", content_type = "application/json", body = Object))
    )
)]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// What the config file says now, against what the daemon runs with: whether the
/// next run could use it, and what would change.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/api/v1/config", tag = "app",
        responses((status = 200, description = "the config file against the latest run's", body = cutover_api::ConfigCheck))
    )
)]
pub(crate) async fn config_check(State(s): State<AppState>) -> Json<cutover_api::ConfigCheck> {
    Json(s.config.check(&s.engine.config()))
}
