//! The versions' captured output: `GET /api/v1/logs/{version}` (the last lines of
//! each instance's log file, and with `follow` the new ones as they come, across
//! rotations), and the task that keeps the files within `logs.max_size` and the
//! run folders within `logs.keep_runs`.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cutover_engine::Engine;
use cutover_platform::log_files::{self, LogFile};
use cutover_platform::{FileCursor, LogFiles};
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::api::{ApiError, AppState};

/// How often the log files' sizes are looked at.
const ROTATE_EVERY: Duration = Duration::from_secs(1);

/// How often a followed log is read for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Lines shown of each instance when the request does not say.
const DEFAULT_LINES: usize = 100;

/// Lines a request may ask for at most, per instance.
const MAX_LINES: usize = 10_000;

/// Every second until `stopping` turns true, as the latest run's `logs` says:
/// rotates the log files under `files` past `max_size`, and removes the folders
/// of runs older than the `keep_runs` newest, but those the run in progress or a
/// release still serving writes to.
pub(crate) fn spawn_rotation(engine: Engine, files: LogFiles, mut stopping: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(ROTATE_EVERY);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            let spec = engine.config().config.logs;
            let status = engine.status().await;
            let serving: Vec<String> = status.backends.into_iter().map(|b| b.release).collect();
            let active = status.active_run.map(|a| a.run_id);
            let files = files.clone();
            let kept = tokio::task::spawn_blocking(move || {
                let failed = files.rotate_all(&spec);
                (
                    failed,
                    files.prune_runs(spec.keep_runs, &serving, active.as_deref()),
                )
            })
            .await;
            let Ok((failed, pruned)) = kept else {
                continue;
            };
            for (path, e) in failed {
                warn!(file = %path.display(), error = %e, "could not rotate a log file");
            }
            for dir in pruned.removed {
                info!(folder = %dir.display(), keep_runs = spec.keep_runs, "removed an old run's logs");
            }
            for (dir, e) in pruned.failed {
                warn!(folder = %dir.display(), error = %e, "could not remove an old run's logs");
            }
        }
    });
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogsQuery {
    instance: Option<u32>,
    run: Option<String>,
    lines: Option<usize>,
    #[serde(default)]
    follow: bool,
}

/// `GET /api/v1/logs/{version}`: what the instances of a version (or of a
/// release: `v1+baseline`, a fresh baseline) wrote to stdout and stderr.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/api/v1/logs/{version}", tag = "logs",
        params(
            ("version" = String, Path, description = "the version (or release, like `v1+baseline`)"),
            ("instance" = Option<u32>, Query, description = "only this instance (default: every one, each line prefixed with `[n] `)"),
            ("run" = Option<String>, Query, description = "the run that started the instances (default: the files written to last)"),
            ("lines" = Option<usize>, Query, description = "the last lines of each instance to send first (default 100, at most 10000)"),
            ("follow" = Option<bool>, Query, description = "then send new lines as they are written, across rotations, until the client goes away"),
        ),
        responses(
            (status = 200, description = "the lines, as text; with `follow` a chunked stream", content_type = "text/plain", body = String),
            (status = 400, description = "`bad_query`", body = cutover_api::ErrorBody),
            (status = 404, description = "`no_such_version`, `no_such_run` or `no_such_instance`, naming those there are", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn logs(
    State(s): State<AppState>,
    Path(version): Path<String>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|r| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!(
                "{}; valid: ?instance=N&run=ID&lines=N&follow=true",
                r.body_text()
            ),
        )
    })?;
    let files = select(&s.logs, &version, q.run.as_deref(), q.instance)?;
    let lines = q.lines.unwrap_or(DEFAULT_LINES).min(MAX_LINES);
    let prefixed = files.len() > 1;
    let mut text = String::new();
    let mut cursors = Vec::new();
    for file in &files {
        let tail = log_files::tail(&file.path, lines).unwrap_or(log_files::Tail {
            lines: Vec::new(),
            end: 0,
        });
        for line in &tail.lines {
            push_line(&mut text, prefixed.then_some(file.instance), line);
        }
        cursors.push((file.instance, FileCursor::at(file.path.clone(), tail.end)));
    }
    let text_plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if !q.follow {
        return Ok((text_plain, text).into_response());
    }
    let follow = Follow {
        first: Some(text),
        cursors,
        prefixed,
        ticker: tokio::time::interval(FOLLOW_EVERY),
        stopping: s.stopping.clone(),
    };
    let stream = futures_util::stream::unfold(follow, |mut f| async move {
        let chunk = f.next().await?;
        Some((Ok::<_, Infallible>(Bytes::from(chunk)), f))
    });
    Ok((text_plain, Body::from_stream(stream)).into_response())
}

/// The files the request names, or a 404 that says what there is.
fn select(
    logs: &LogFiles,
    version: &str,
    run: Option<&str>,
    instance: Option<u32>,
) -> Result<Vec<LogFile>, ApiError> {
    let all = logs.current(version, None);
    if all.is_empty() {
        let versions: BTreeSet<String> = logs.list().into_iter().map(|f| f.release).collect();
        return Err(not_found(
            "no_such_version",
            format!("no logs of version `{version}`"),
            "versions with logs",
            versions,
        ));
    }
    let files = match run {
        None => all,
        Some(run) => {
            let files = logs.current(version, Some(run));
            if files.is_empty() {
                let runs: BTreeSet<String> = logs
                    .list()
                    .into_iter()
                    .filter(|f| all.iter().any(|a| a.release == f.release))
                    .map(|f| f.run)
                    .collect();
                return Err(not_found(
                    "no_such_run",
                    format!("no logs of `{version}` in run `{run}`"),
                    &format!("runs with logs of `{version}`"),
                    runs,
                ));
            }
            files
        }
    };
    match instance {
        None => Ok(files),
        Some(n) => {
            let instances: BTreeSet<String> =
                files.iter().map(|f| f.instance.to_string()).collect();
            let chosen: Vec<LogFile> = files.into_iter().filter(|f| f.instance == n).collect();
            if chosen.is_empty() {
                return Err(not_found(
                    "no_such_instance",
                    format!("`{version}` has no log of instance {n}"),
                    "its instances",
                    instances,
                ));
            }
            Ok(chosen)
        }
    }
}

fn not_found(code: &'static str, what: String, there: &str, names: BTreeSet<String>) -> ApiError {
    let names = if names.is_empty() {
        "none yet".to_owned()
    } else {
        names.into_iter().collect::<Vec<_>>().join(", ")
    };
    ApiError::new(
        StatusCode::NOT_FOUND,
        code,
        format!("{what}; {there}: {names}"),
    )
}

fn push_line(out: &mut String, instance: Option<u32>, line: &str) {
    if let Some(n) = instance {
        out.push_str(&format!("[{n}] "));
    }
    out.push_str(line);
    out.push('\n');
}

/// A followed log: the last lines first, then what is new, polled.
struct Follow {
    first: Option<String>,
    cursors: Vec<(u32, FileCursor)>,
    prefixed: bool,
    ticker: tokio::time::Interval,
    stopping: watch::Receiver<bool>,
}

impl Follow {
    /// The next chunk of text; `None` once the daemon stops.
    async fn next(&mut self) -> Option<String> {
        if let Some(first) = self.first.take()
            && !first.is_empty()
        {
            return Some(first);
        }
        loop {
            tokio::select! {
                _ = self.ticker.tick() => {}
                _ = self.stopping.wait_for(|s| *s) => return None,
            }
            let mut text = String::new();
            for (instance, cursor) in &mut self.cursors {
                // Each read is bounded (4 MiB), so the runtime is held up little.
                let lines = cursor.read_lines().unwrap_or_default();
                for line in &lines {
                    push_line(&mut text, self.prefixed.then_some(*instance), line);
                }
            }
            if !text.is_empty() {
                return Some(text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_versions_runs_and_instances_say_what_there_is() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogFiles::new(dir.path().to_owned());
        let message = |e: ApiError| format!("{e:?}");
        assert!(
            message(select(&logs, "v2", None, None).unwrap_err())
                .contains("versions with logs: none yet")
        );
        for (run, name) in [("r1", "v1-0.log"), ("r2", "v2-0.log"), ("r2", "v2-1.log")] {
            let d = logs.run_dir(Some(run));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(name), "x\n").unwrap();
        }
        let e = message(select(&logs, "v9", None, None).unwrap_err());
        assert!(
            e.contains("no_such_version") && e.contains("versions with logs: v1, v2"),
            "{e}"
        );
        let e = message(select(&logs, "v2", Some("r1"), None).unwrap_err());
        assert!(
            e.contains("no_such_run") && e.contains("runs with logs of `v2`: r2"),
            "{e}"
        );
        let e = message(select(&logs, "v2", None, Some(5)).unwrap_err());
        assert!(
            e.contains("no_such_instance") && e.contains("its instances: 0, 1"),
            "{e}"
        );
        assert_eq!(select(&logs, "v2", Some("r2"), Some(1)).unwrap().len(), 1);
    }
}
