//! What the API says about the app and its runs: the app with its versions, past
//! runs, one run with its events, measurements and receipts.

use std::path::Path as FsPath;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cutover_api::{AppInfo, MeasurementRecord, ReceiptFile, RunRecord};
use cutover_engine::receipts;
use serde::Deserialize;

use crate::api::{ApiError, AppState};

/// How many earlier versions `GET /api/v1/apps` lists.
const PREVIOUS_VERSIONS: usize = 20;

/// `GET /api/v1/apps`: the daemon's app (it serves one), with its live and
/// previous versions and the run in progress.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/api/v1/apps", tag = "app",
        responses((status = 200, description = "the daemon's app with its live and previous versions", body = [cutover_api::AppInfo]))
    )
)]
pub(crate) async fn apps(State(s): State<AppState>) -> Result<Json<Vec<AppInfo>>, ApiError> {
    let status = s.engine.status().await;
    let mut previous = s
        .engine
        .store()
        .promoted_versions(&s.info.app, PREVIOUS_VERSIONS + 1)?;
    previous.retain(|v| Some(v) != status.stable.as_ref());
    previous.truncate(PREVIOUS_VERSIONS);
    Ok(Json(vec![AppInfo {
        app: status.app,
        live: status.stable,
        previous,
        active_run: status.active_run,
    }]))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/runs?limit=N`: past runs, newest first.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/api/v1/runs", tag = "runs",
        params(("limit" = Option<usize>, Query, description = "how many (default 20, at most 1000)")),
        responses(
            (status = 200, description = "past runs, newest first", body = [cutover_api::RunRecord]),
            (status = 400, description = "`bad_query`", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn runs(
    State(s): State<AppState>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<Vec<RunRecord>>, ApiError> {
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

/// `GET /api/v1/runs/{id}`: the run's record, events, measurements and config.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/api/v1/runs/{id}", tag = "runs",
        params(("id" = String, Path, description = "the run's id")),
        responses(
            (status = 200, description = "the run: `run` (a RunRecord), `events`, `measurements`, `config`, the `decision` record stage by stage, `approvals` and receipt `files`", body = Object),
            (status = 404, description = "`no_such_run`", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn run(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<receipts::RunReceipt>, ApiError> {
    let files = receipt_files(&s.runs_dir.join(&id))
        .into_iter()
        .map(|f| f.name)
        .collect();
    Ok(Json(receipts::RunReceipt::read(
        s.engine.store(),
        &id,
        files,
    )?))
}

/// `GET /api/v1/runs/{id}/measurements`: the run's analysis windows, oldest first.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/api/v1/runs/{id}/measurements", tag = "runs",
        params(("id" = String, Path, description = "the run's id")),
        responses(
            (status = 200, description = "its analysis windows, oldest first", body = [cutover_api::MeasurementRecord]),
            (status = 404, description = "`no_such_run`", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn measurements(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<MeasurementRecord>>, ApiError> {
    let store = s.engine.store();
    store.run(&id)?;
    Ok(Json(store.measurements(&id)?))
}

/// `GET /api/v1/runs/{id}/receipts`: the run's receipt files (none until it ends).
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/api/v1/runs/{id}/receipts", tag = "runs",
        params(("id" = String, Path, description = "the run's id")),
        responses(
            (status = 200, description = "its receipt files (none until it ends)", body = [cutover_api::ReceiptFile]),
            (status = 404, description = "`no_such_run`", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn receipts(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<ReceiptFile>>, ApiError> {
    // The run is looked up first, so its id is a run's before it names a folder.
    s.engine.store().run(&id)?;
    Ok(Json(receipt_files(&s.runs_dir.join(&id))))
}

/// `GET /api/v1/runs/{id}/receipts/{name}`: one receipt file, as its type. Only a
/// name in the run's list is served, so no path leads out of the run's folder.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/api/v1/runs/{id}/receipts/{name}", tag = "runs",
        params(
            ("id" = String, Path, description = "the run's id"),
            ("name" = String, Path, description = "a name from its list of receipts"),
        ),
        responses(
            (status = 200, description = "the file, as its content type (Markdown, JSON, YAML)", body = String),
            (status = 404, description = "`no_such_run` or `no_such_receipt`", body = cutover_api::ErrorBody),
        )
    )
)]
pub(crate) async fn receipt(
    State(s): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    s.engine.store().run(&id)?;
    let dir = s.runs_dir.join(&id);
    let files = receipt_files(&dir);
    let Some(file) = files.iter().find(|f| f.name == name) else {
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_receipt",
            format!(
                "run {id} has no receipt `{name}`; it has: {}",
                if names.is_empty() {
                    "none yet (receipts are written when a run ends)".to_owned()
                } else {
                    names.join(", ")
                }
            ),
        ));
    };
    let body = std::fs::read(dir.join(&file.name)).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "receipt_unreadable",
            format!("could not read {}: {e}", dir.join(&file.name).display()),
        )
    })?;
    let content_type = HeaderValue::from_str(&file.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response())
}

/// The receipt files in `dir`, by name: regular files (no links, no folders) with
/// plain names. None when the folder does not exist (yet).
fn receipt_files(dir: &FsPath) -> Vec<ReceiptFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<ReceiptFile> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let plain = !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            plain.then(|| ReceiptFile {
                content_type: content_type(&name).to_owned(),
                bytes: e.metadata().map_or(0, |m| m.len()),
                name,
            })
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("md") => "text/markdown; charset=utf-8",
        Some("json") => "application/json",
        Some("yaml" | "yml") => "application/yaml",
        _ => "text/plain; charset=utf-8",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_the_plain_regular_files_of_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert!(receipt_files(&dir.path().join("missing")).is_empty());
        std::fs::write(dir.path().join("run.json"), "{}").unwrap();
        std::fs::write(dir.path().join("deployment-log.md"), "# log").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        std::fs::write(dir.path().join("with space.md"), "x").unwrap();
        std::fs::create_dir(dir.path().join("folder")).unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link.md")).unwrap();
        let files = receipt_files(dir.path());
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["deployment-log.md", "run.json"]);
        assert_eq!(files[0].content_type, "text/markdown; charset=utf-8");
        assert_eq!(files[0].bytes, 5);
        assert_eq!(files[1].content_type, "application/json");
        assert_eq!(content_type("config.yaml"), "application/yaml");
    }
}
