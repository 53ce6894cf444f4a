//! The HTTP API under `/api/v1`. Bodies are JSON; errors are
//! `{"error": "...", "code": "..."}` with a 4xx status that says whose fault it was.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use cutover_api::{
    DeployRequest, ErrorBody, RollbackRequest, RunEvent, Status, Steered, TrafficTotals,
};
use cutover_engine::events::error_chain;
use cutover_engine::{Engine, EngineError, RunConfig, receipts};
use cutover_store::StoreError;
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::auth::{self, Guard};
use crate::config::ConfigSource;
use crate::daemon::DaemonInfo;
use crate::traffic::ProxyTraffic;

#[derive(Clone)]
pub(crate) struct AppState {
    pub engine: Engine,
    pub traffic: Arc<ProxyTraffic>,
    pub info: DaemonInfo,
    pub config: Arc<ConfigSource>,
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
            EngineError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
            EngineError::Stuck { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = match &e {
            EngineError::InvalidVersion(_) => format!("field `version`: {e}"),
            _ => error_chain(&e),
        };
        let field = matches!(e, EngineError::InvalidVersion(_)).then(|| "version".to_owned());
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

async fn status(State(s): State<AppState>) -> Json<Status> {
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

/// The path of the field a deserializing error is about. A missing or unknown
/// field is reported at the object holding it; serde then names it, in backticks,
/// in its fixed `missing field `x`` and `unknown field `x`` messages.
fn field_at_fault(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let at = error.path().to_string();
    let message = error.inner().to_string();
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (at.as_str(), named) {
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

async fn deploy(
    State(s): State<AppState>,
    body: Result<Json<DeployRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body.map_err(|r| bad_body(&r, r#"{"version": "v2"}"#))?;
    if !cutover_api::valid_version(&req.version) {
        return Err(EngineError::InvalidVersion(req.version).into());
    }
    let config = run_config(&s)?;
    let started = s.engine.deploy(&req.version, config)?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

async fn promote(State(s): State<AppState>) -> Result<Json<Steered>, ApiError> {
    Ok(Json(Steered {
        run_id: s.engine.promote()?,
    }))
}

async fn abort(State(s): State<AppState>) -> Result<Json<Steered>, ApiError> {
    Ok(Json(Steered {
        run_id: s.engine.abort("a person (cutover abort)")?,
    }))
}

async fn rollback(
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

/// What the config file says now, against what the daemon runs with: whether the
/// next run could use it, and what would change.
async fn config_check(State(s): State<AppState>) -> Json<cutover_api::ConfigCheck> {
    Json(s.config.check(&s.engine.config()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    limit: Option<usize>,
}

async fn runs(
    State(s): State<AppState>,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<cutover_api::RunRecord>>, ApiError> {
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
        .runs(&s.info.app, q.limit.unwrap_or(20).min(1000))?;
    Ok(Json(runs))
}

async fn run(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<receipts::RunReceipt>, ApiError> {
    let store = s.engine.store();
    let receipt = receipts::RunReceipt {
        run: store.run(&id)?,
        events: store.events(&id)?,
        config: store
            .run_config(&id)?
            .as_deref()
            .and_then(cutover_engine::recorded_config_text),
        measurements: store.measurements(&id)?,
        files: Vec::new(),
    };
    Ok(Json(receipt))
}

/// The run's events as JSON lines: the ones already recorded, then live ones, until
/// the final one, and then the response ends.
async fn events(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    // Subscribe before reading the store, so nothing falls in between.
    let live = s.engine.subscribe();
    s.engine.store().run(&id)?;
    let stream = RunEvents {
        engine: s.engine.clone(),
        run_id: id,
        live,
        pending: VecDeque::new(),
        last_seq: 0,
        done: false,
    };
    let body = futures_util::stream::unfold(stream, |mut stream| async move {
        let event = stream.next().await?;
        Some((line(event), stream))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

/// One run's events in order, each once: the store is the source of truth, the
/// broadcast only says when to look again.
struct RunEvents {
    engine: Engine,
    run_id: String,
    live: broadcast::Receiver<RunEvent>,
    pending: VecDeque<RunEvent>,
    last_seq: i64,
    done: bool,
}

impl RunEvents {
    async fn next(&mut self) -> Option<RunEvent> {
        if self.last_seq == 0 && !self.done {
            self.refill().await;
        }
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                if event.seq <= self.last_seq {
                    continue;
                }
                self.last_seq = event.seq;
                self.done = event.is_final();
                return Some(event);
            }
            match self.live.recv().await {
                Ok(event) if event.run_id != self.run_id || event.seq <= self.last_seq => {}
                Ok(event) if event.seq == self.last_seq + 1 => self.pending.push_back(event),
                // A gap: events were recorded that this receiver has not seen. The
                // store has them (an event not in the store, the final one of a run
                // whose store failed, comes after all of them).
                Ok(event) => {
                    self.refill().await;
                    self.pending.push_back(event);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.refill().await,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Queues the recorded events after the last one delivered, then the run's
    /// final event if the store could not record it (the store marks the final
    /// event with the run's outcome, recorded in the same transaction). A store that
    /// fails to answer is asked again a few times before the stream goes on
    /// without what it holds.
    async fn refill(&mut self) {
        let store = self.engine.store();
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=4 {
            match store.events_after(&self.run_id, self.last_seq) {
                Ok(records) => {
                    self.pending.extend(records);
                    break;
                }
                Err(e) => {
                    tracing::warn!(run = %self.run_id, attempt, error = %e, "could not read the run's events");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        if let Some(last) = self.engine.unrecorded_final(&self.run_id) {
            self.pending.push_back(last);
        }
    }
}

fn line(e: RunEvent) -> Result<Bytes, Infallible> {
    let mut json = serde_json::to_vec(&e).unwrap_or_default();
    json.push(b'\n');
    Ok(Bytes::from(json))
}
