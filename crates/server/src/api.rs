//! The HTTP API under `/api/v1`. Bodies are JSON; errors are
//! `{"error": "...", "code": "..."}` with a 4xx status that says whose fault it was.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use cutover_engine::{Engine, EngineError, RunEvent, receipts};
use cutover_store::StoreError;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;

use crate::daemon::DaemonInfo;
use crate::traffic::ProxyTraffic;

#[derive(Clone)]
pub(crate) struct AppState {
    pub engine: Engine,
    pub traffic: Arc<ProxyTraffic>,
    pub info: DaemonInfo,
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/deploy", post(deploy))
        .route("/api/v1/promote", post(promote))
        .route("/api/v1/abort", post(abort))
        .route("/api/v1/rollback", post(rollback))
        .route("/api/v1/runs", get(runs))
        .route("/api/v1/runs/{id}", get(run))
        .route("/api/v1/runs/{id}/events", get(events))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint; see /api/v1/status",
            )
        })
        .with_state(state)
}

/// The body of `POST /api/v1/deploy`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The version to roll out, substituted for `${VERSION}` in the command.
    pub version: String,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.message, "code": self.code })),
        )
            .into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let (status, code) = match &e {
            EngineError::Busy { .. } => (StatusCode::CONFLICT, "busy"),
            EngineError::AlreadyServing(_) => (StatusCode::CONFLICT, "already_serving"),
            EngineError::InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_version"),
            EngineError::NoActiveRun => (StatusCode::CONFLICT, "no_active_run"),
            EngineError::NothingToRollBack => (StatusCode::CONFLICT, "nothing_to_roll_back"),
            EngineError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
        };
        let message = match &e {
            EngineError::InvalidVersion(_) => format!("field `version`: {e}"),
            _ => error_chain(&e),
        };
        ApiError::new(status, code, message)
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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn status(State(s): State<AppState>) -> Json<serde_json::Value> {
    let status = s.engine.status();
    let traffic: Vec<_> = s
        .traffic
        .totals()
        .into_iter()
        .map(|(version, requests, errors)| json!({ "version": version, "requests": requests, "errors_5xx": errors }))
        .collect();
    Json(json!({
        "app": status.app,
        "proxy": s.info.proxy.to_string(),
        "api": s.info.api.to_string(),
        "pid": s.info.pid,
        "stable": status.stable,
        "canary": status.canary,
        "canary_weight": status.canary_weight,
        "active_run": status.active_run,
        "traffic": traffic,
    }))
}

async fn deploy(
    State(s): State<AppState>,
    body: Result<Json<DeployRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!(
                "{}; expected a JSON body like {{\"version\": \"v2\"}}",
                rejection.body_text()
            ),
        )
    })?;
    let started = s.engine.deploy(&req.version)?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

async fn promote(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "run_id": s.engine.promote()? })))
}

async fn abort(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        json!({ "run_id": s.engine.abort("a person (cutover abort)")? }),
    ))
}

async fn rollback(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::ACCEPTED, Json(s.engine.rollback()?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    limit: Option<usize>,
}

async fn runs(
    State(s): State<AppState>,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|r| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("{}; valid: ?limit=N", r.body_text()),
        )
    })?;
    let runs = s
        .engine
        .store()
        .runs(&s.engine.config().app, q.limit.unwrap_or(20).min(1000))?;
    Ok(Json(json!(runs)))
}

async fn run(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = s.engine.store();
    let receipt = receipts::RunReceipt {
        run: store.run(&id)?,
        events: store.events(&id)?,
        measurements: store.measurements(&id)?,
        files: Vec::new(),
    };
    Ok(Json(json!(receipt)))
}

/// The run's events as JSON lines: the ones already recorded, then live ones, until
/// the final one. Subscribes before reading the store so nothing falls in between.
async fn events(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let live = BroadcastStream::new(s.engine.subscribe());
    let store = s.engine.store();
    let run = store.run(&id)?;
    let recorded = store.events(&id)?;
    let last_seq = recorded.last().map_or(0, |e| e.seq);
    let finished = run.outcome;
    let past: Vec<RunEvent> = recorded
        .into_iter()
        .map(|e| {
            let outcome = if e.kind == "outcome" { finished } else { None };
            RunEvent::from_record(&id, e, outcome)
        })
        .collect();
    let ended = past.iter().any(RunEvent::is_final);
    let past = futures_util::stream::iter(past);
    let body = if ended || finished.is_some() {
        Body::from_stream(past.map(line))
    } else {
        let run_id = id.clone();
        let live = live
            .filter_map(move |e| {
                let keep = match e {
                    Ok(e) if e.run_id == run_id && e.seq > last_seq => Some(e),
                    _ => None,
                };
                std::future::ready(keep)
            })
            .scan(false, |done, e| {
                // Stop after the final event.
                if *done {
                    return std::future::ready(None);
                }
                *done = e.is_final();
                std::future::ready(Some(e))
            });
        Body::from_stream(past.chain(live).map(line))
    };
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

fn line(e: RunEvent) -> Result<Bytes, Infallible> {
    let mut json = serde_json::to_vec(&e).unwrap_or_default();
    json.push(b'\n');
    Ok(Bytes::from(json))
}
