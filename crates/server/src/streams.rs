//! Runs' events as they happen: one run's (`/api/v1/runs/{id}/events`, as JSON
//! lines or server-sent events), or every run's (`/api/v1/events`, server-sent
//! events, so a dashboard learns of a new run).
//!
//! The store is the source of truth and the engine's broadcast only says when to
//! look again, so a stream delivers each event once and in order, with no gap,
//! whether it was recorded before the client asked or while it listened. A client
//! resumes with `Last-Event-ID` (or `?last_event_id=`, for a browser's first
//! connection): the event ids are `<seq>` in one run's stream and `<run_id>:<seq>` in
//! the stream of every run.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cutover_api::RunEvent;
use cutover_engine::Engine;
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use crate::api::{ApiError, AppState};

/// How often an idle event stream sends a comment, so proxies and browsers keep it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The most runs the stream of every run looks back at when it catches up.
const CATCH_UP_RUNS: usize = 100;

/// `?last_event_id=`: where to resume, for a client that cannot send the header.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resume {
    last_event_id: Option<String>,
}

/// Where the client says it got to: the `Last-Event-ID` header, else the query.
fn last_event_id(headers: &HeaderMap, query: Resume) -> Option<String> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .or(query.last_event_id)
        .filter(|id| !id.is_empty())
}

fn resume_query(query: Result<Query<Resume>, QueryRejection>) -> Result<Resume, ApiError> {
    query.map(|Query(q)| q).map_err(|r| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("{}; valid: ?last_event_id=ID", r.body_text()),
        )
    })
}

fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

fn bad_last_event_id(id: &str, expected: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_last_event_id",
        format!("Last-Event-ID `{id}` is not an event id of this stream; expected {expected}"),
    )
}

/// `GET /api/v1/runs/{id}/events`: the run's events, the ones already recorded and
/// then live ones, until its final one; then the response ends. JSON lines, or
/// server-sent events (`id: <seq>`, `event: <kind>`) for `Accept: text/event-stream`.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/api/v1/runs/{id}/events", tag = "events",
        params(
            ("id" = String, Path, description = "the run's id"),
            ("Last-Event-ID" = Option<i64>, Header, description = "resume after this seq"),
            ("last_event_id" = Option<i64>, Query, description = "the same, for a client that cannot send the header"),
        ),
        responses(
            (status = 200, description = "the run's events, recorded then live, until its final one: JSON lines, or server-sent events (`id: <seq>`, `event: <kind>`, `data: <RunEvent>`) with `Accept: text/event-stream`", content((cutover_api::RunEvent = "application/x-ndjson"), (cutover_api::RunEvent = "text/event-stream"))),
            (status = 400, description = "`bad_last_event_id`", body = cutover_api::ErrorBody),
            (status = 404, description = "`no_such_run`", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn run_events(
    State(s): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<Resume>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = match last_event_id(&headers, resume_query(query)?) {
        Some(last) => last
            .parse::<i64>()
            .map_err(|_| bad_last_event_id(&last, "the `id` of one of its events, like `7`"))?,
        None => 0,
    };
    // Subscribe before reading the store, so nothing falls in between.
    let live = s.engine.subscribe();
    s.engine.store().run(&id)?;
    let events = RunEvents::new(s.engine.clone(), id, live, after, s.stopping.clone());
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        let event = events.next().await?;
        Some((event, events))
    });
    if wants_sse(&headers) {
        let sse = futures_util::StreamExt::map(stream, |e| Ok(sse_event(e.seq.to_string(), &e)));
        return Ok(sse_response(sse));
    }
    let lines = futures_util::StreamExt::map(stream, line);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// `GET /api/v1/events`: every run's events as server-sent events (`id:
/// <run_id>:<seq>`), from the start of the run in progress (or, resumed, from just
/// after the event named), until the daemon stops.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/api/v1/events", tag = "events",
        params(
            ("Last-Event-ID" = Option<String>, Header, description = "resume after this event, `<run_id>:<seq>`"),
            ("last_event_id" = Option<String>, Query, description = "the same, for a client that cannot send the header"),
        ),
        responses(
            (status = 200, description = "every run's events as server-sent events (`id: <run_id>:<seq>`, `event: <kind>`, `data: <RunEvent>`), from the start of the run in progress, until the daemon stops", content_type = "text/event-stream", body = cutover_api::RunEvent),
            (status = 400, description = "`bad_last_event_id`", body = cutover_api::ErrorBody),
            (status = 404, description = "`no_such_run`", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn all_events(
    State(s): State<AppState>,
    query: Result<Query<Resume>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = resume_query(query)?;
    // Subscribes before the store is read, so nothing falls in between.
    let mut events = AllEvents::new(s.engine.clone(), s.info.app.clone(), s.stopping.clone());
    let store = s.engine.store();
    events.since_ms = match last_event_id(&headers, query) {
        Some(last) => {
            let expected = "`<run_id>:<seq>`, the `id` of one of its events";
            let (run_id, seq) = last
                .rsplit_once(':')
                .and_then(|(run, seq)| Some((run, seq.parse::<i64>().ok()?)))
                .ok_or_else(|| bad_last_event_id(&last, expected))?;
            let run = store.run(run_id)?;
            events.seen.insert(run.id, seq);
            run.started_at_ms
        }
        None => match s.engine.status().await.active_run {
            Some(active) => store.run(&active.run_id)?.started_at_ms,
            None => now_ms(),
        },
    };
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        let event = events.next().await?;
        let id = format!("{}:{}", event.run_id, event.seq);
        Some((Ok(sse_event(id, &event)), events))
    });
    Ok(sse_response(stream))
}

fn sse_response(
    stream: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// One server-sent event: its id, its kind as the event type, the event as one
/// line of JSON.
fn sse_event(id: String, event: &RunEvent) -> SseEvent {
    SseEvent::default()
        .id(id)
        .event(event.event.kind())
        .data(serde_json::to_string(event).unwrap_or_default())
}

fn line(e: RunEvent) -> Result<Bytes, Infallible> {
    let mut json = serde_json::to_vec(&e).unwrap_or_default();
    json.push(b'\n');
    Ok(Bytes::from(json))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The events of `run_id` after `after`, from the store, a few tries if it fails
/// to answer, then the run's final event if the store could not record it (the
/// store marks the final event with the run's outcome, recorded in the same
/// transaction). `None` if the store did not answer: a stream then ends rather
/// than skip what it holds, and its client resumes with `Last-Event-ID`.
async fn recorded_after(engine: &Engine, run_id: &str, after: i64) -> Option<Vec<RunEvent>> {
    let store = engine.store();
    let mut delay = Duration::from_millis(50);
    let mut out = None;
    for attempt in 1..=4 {
        match store.events_after(run_id, after) {
            Ok(records) => {
                out = Some(records);
                break;
            }
            Err(e) => {
                tracing::warn!(run = %run_id, attempt, error = %e, "could not read the run's events");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    let mut out = out?;
    if let Some(last) = engine.unrecorded_final(run_id) {
        out.push(last);
    }
    Some(out)
}

/// One run's events in order, each once.
struct RunEvents {
    engine: Engine,
    run_id: String,
    live: broadcast::Receiver<RunEvent>,
    stopping: watch::Receiver<bool>,
    pending: VecDeque<RunEvent>,
    last_seq: i64,
    /// The recorded events have been read once.
    primed: bool,
    done: bool,
}

impl RunEvents {
    fn new(
        engine: Engine,
        run_id: String,
        live: broadcast::Receiver<RunEvent>,
        after: i64,
        stopping: watch::Receiver<bool>,
    ) -> RunEvents {
        RunEvents {
            engine,
            run_id,
            live,
            stopping,
            pending: VecDeque::new(),
            last_seq: after,
            primed: false,
            done: false,
        }
    }

    async fn next(&mut self) -> Option<RunEvent> {
        if !self.primed {
            self.primed = true;
            self.refill().await?;
            // Resumed after its final event: nothing more will come.
            if self.pending.is_empty() && self.finished() {
                self.done = true;
            }
        }
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                if event.seq <= self.last_seq && !self.ends_beyond(&event) {
                    continue;
                }
                self.last_seq = self.last_seq.max(event.seq);
                self.done = event.is_final();
                return Some(event);
            }
            let received = tokio::select! {
                received = self.live.recv() => received,
                _ = self.stopping.wait_for(|stopping| *stopping) => return None,
            };
            match received {
                Ok(event) if event.run_id != self.run_id => {}
                Ok(event) if event.seq <= self.last_seq => {
                    if self.ends_beyond(&event) {
                        self.pending.push_back(event);
                    }
                }
                Ok(event) if event.seq == self.last_seq + 1 => self.pending.push_back(event),
                // A gap: events were recorded that this receiver has not seen. The
                // store has them (an event not in the store, the final one of a run
                // whose store failed, comes after all of them).
                Ok(event) => {
                    self.refill().await?;
                    self.pending.push_back(event);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.refill().await?,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Whether `event` is the run's final one and comes before the seq the client
    /// resumed after, which the run never reached: it ends the stream all the
    /// same (a client that had the final event resumes after its very seq).
    fn ends_beyond(&self, event: &RunEvent) -> bool {
        event.is_final() && event.seq < self.last_seq
    }

    /// Queues the recorded events after the last one delivered; `None` (the
    /// stream ends) if the store did not answer.
    async fn refill(&mut self) -> Option<()> {
        let records = recorded_after(&self.engine, &self.run_id, self.last_seq).await?;
        self.pending.extend(records);
        Some(())
    }

    fn finished(&self) -> bool {
        self.engine.unrecorded_final(&self.run_id).is_some()
            || self
                .engine
                .store()
                .run(&self.run_id)
                .is_ok_and(|r| r.outcome.is_some())
    }
}

/// Every run's events: each run's in order and each once, runs in the order they
/// started (one app runs one run at a time).
pub(crate) struct AllEvents {
    engine: Engine,
    app: String,
    live: broadcast::Receiver<RunEvent>,
    stopping: watch::Receiver<bool>,
    pending: VecDeque<RunEvent>,
    /// The last seq delivered per run.
    seen: HashMap<String, i64>,
    /// Runs that started at or after this are caught up on from the store.
    since_ms: i64,
    caught_up: bool,
    /// The engine's events channel closed.
    closed: bool,
}

impl AllEvents {
    /// From now on (and the runs that start from now), until `stopping` turns true.
    pub(crate) fn new(engine: Engine, app: String, stopping: watch::Receiver<bool>) -> AllEvents {
        AllEvents {
            live: engine.subscribe(),
            engine,
            app,
            stopping,
            pending: VecDeque::new(),
            seen: HashMap::new(),
            since_ms: now_ms(),
            caught_up: false,
            closed: false,
        }
    }

    /// The next event, or `None` once the daemon stops or the store does not
    /// answer (see [`AllEvents::ended`]).
    pub(crate) async fn next(&mut self) -> Option<RunEvent> {
        if !self.caught_up {
            self.caught_up = true;
            if self.catch_up().await.is_none() {
                return self.end_for_store();
            }
        }
        loop {
            if let Some(event) = self.pending.pop_front() {
                let last = self.seen.entry(event.run_id.clone()).or_insert(0);
                if event.seq <= *last {
                    continue;
                }
                *last = event.seq;
                return Some(event);
            }
            let received = tokio::select! {
                received = self.live.recv() => received,
                _ = self.stopping.wait_for(|stopping| *stopping) => return None,
            };
            match received {
                Ok(event) => {
                    let last = self.seen.get(&event.run_id).copied().unwrap_or(0);
                    if event.seq > last + 1 {
                        let Some(missed) = recorded_after(&self.engine, &event.run_id, last).await
                        else {
                            return self.end_for_store();
                        };
                        self.pending.extend(missed);
                    }
                    self.pending.push_back(event);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if self.catch_up().await.is_none() {
                        return self.end_for_store();
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.closed = true;
                    return None;
                }
            }
        }
    }

    /// Ends the stream because the store did not answer; called again, `next`
    /// catches up from the store first, so nothing is skipped.
    fn end_for_store(&mut self) -> Option<RunEvent> {
        self.caught_up = false;
        self.pending.clear();
        None
    }

    /// Whether the stream is over for good: the daemon stops, or its engine is
    /// gone (not a store that did not answer, after which `next` goes on).
    pub(crate) fn ended(&self) -> bool {
        self.closed || *self.stopping.borrow()
    }

    /// Queues what the store holds of the runs since `since_ms`, oldest run first,
    /// after what was delivered of each; `None` (the stream ends) if the store did
    /// not answer for one of them.
    async fn catch_up(&mut self) -> Option<()> {
        let runs = match self.engine.store().runs(&self.app, CATCH_UP_RUNS) {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the runs to catch up on");
                return None;
            }
        };
        for run in runs.iter().rev() {
            if run.started_at_ms < self.since_ms {
                continue;
            }
            let after = self.seen.get(&run.id).copied().unwrap_or(0);
            let events = recorded_after(&self.engine, &run.id, after).await?;
            self.pending.extend(events);
        }
        Some(())
    }
}
