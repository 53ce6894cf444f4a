//! The config's other environments, reached through their daemons' HTTP API: the
//! daemon serving an environment says where it is in `daemon.json` in that
//! environment's state directory, beside its token, so a daemon on the same
//! machine finds and authenticates to it as the CLI does.
//!
//! A deploy asked as the staging of a later environment's run skips the gates,
//! the windows and the approvals (that run has them), so it must come from that
//! environment's daemon: it carries that daemon's own token in
//! [`STAGED_BY_HEADER`], which the earlier environment's daemon checks against the
//! token file of the environment right after its own ([`check_staged_for`]).

use std::time::Duration;

use async_trait::async_trait;
use axum::http::{HeaderMap, StatusCode};
use cutover_api::{DeployRequest, DeployType, ErrorBody, RunRecord, RunStarted, Status};
use cutover_engine::environments::{EnvironmentError, Environments, Staged, StagedRun};
use cutover_spec::{Config, EnvironmentSpec};
use serde::Deserialize;

use crate::api::ApiError;
use crate::auth::Token;
use crate::daemon::DaemonInfo;

/// The header a staged deploy carries: the token of the daemon of the later
/// environment whose run it is the staging of.
pub(crate) const STAGED_BY_HEADER: &str = "x-cutover-staged-by";

/// How long one request to another environment's daemon may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The other environments' daemons, over HTTP, as the daemon serving
/// `own_state_dir` (whose token proves a staged deploy is its own).
pub(crate) struct DaemonEnvironments {
    http: reqwest::Client,
    own_state_dir: std::path::PathBuf,
}

/// The parts of `GET /api/v1/runs/{id}` a staging stage reads.
#[derive(Deserialize)]
struct RunAnswer {
    run: RunRecord,
    decision: StagedFor,
}

#[derive(Deserialize)]
struct StagedFor {
    #[serde(default)]
    staged_for: Option<String>,
}

impl DaemonEnvironments {
    pub(crate) fn new(own_state_dir: &std::path::Path) -> DaemonEnvironments {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            // Without TLS or a proxy there is nothing in the builder to fail.
            .unwrap_or_default();
        DaemonEnvironments {
            http,
            own_state_dir: own_state_dir.to_owned(),
        }
    }

    /// `env`'s daemon: its API's base URL and its token.
    fn daemon(env: &EnvironmentSpec) -> Result<(DaemonInfo, Token), EnvironmentError> {
        let info = DaemonInfo::read(&env.state_dir).ok_or_else(|| {
            EnvironmentError::Unreachable(format!(
                "no daemon serves it (there is no {}); start one with `cutover serve --env {}`",
                DaemonInfo::path(&env.state_dir).display(),
                env.name
            ))
        })?;
        let token = Token::read(&env.state_dir)
            .map_err(|why| EnvironmentError::Unreachable(format!("its token: {why}")))?;
        Ok((info, token))
    }

    /// Sends `request` to `env`'s daemon; the answer's status and body.
    async fn send(
        &self,
        env: &EnvironmentSpec,
        request: impl FnOnce(&reqwest::Client, String) -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, bytes::Bytes), EnvironmentError> {
        let (info, token) = Self::daemon(env)?;
        let base = format!("http://{}/api/v1", info.api);
        let unreachable = |what: String| EnvironmentError::Unreachable(what);
        let response = request(&self.http, base)
            .bearer_auth(token.as_str())
            .send()
            .await
            .map_err(|e| {
                unreachable(format!(
                    "its daemon at http://{} did not answer: {e}",
                    info.api
                ))
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| unreachable(format!("its daemon's answer broke off: {e}")))?;
        Ok((status, body))
    }

    /// `GET path` of `env`'s daemon, decoded; a refusal is final, a 5xx is not.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        env: &EnvironmentSpec,
        path: &str,
    ) -> Result<T, EnvironmentError> {
        let (status, body) = self
            .send(env, |http, base| http.get(format!("{base}{path}")))
            .await?;
        if status.is_server_error() {
            return Err(EnvironmentError::Unreachable(refusal(status, &body).1));
        }
        if !status.is_success() {
            return Err(EnvironmentError::Refused(refusal(status, &body).1));
        }
        serde_json::from_slice(&body).map_err(|e| {
            EnvironmentError::Refused(format!(
                "its daemon's answer to {path} is not what cutover sends: {e}"
            ))
        })
    }

    /// The run in progress in `env`, if it is the staging of `staged_for`.
    async fn ours(&self, env: &EnvironmentSpec, staged_for: &str) -> Option<String> {
        let status: Status = self.get(env, "/status").await.ok()?;
        let run_id = status.active_run?.run_id;
        let answer: RunAnswer = self.get(env, &format!("/runs/{run_id}")).await.ok()?;
        (answer.decision.staged_for.as_deref() == Some(staged_for)).then_some(run_id)
    }
}

/// What a daemon's error answer says: its code, and the words for the receipt.
fn refusal(status: reqwest::StatusCode, body: &[u8]) -> (String, String) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => (
            e.code,
            format!("its daemon refused ({status}): {}", e.error),
        ),
        Err(_) => (
            String::new(),
            format!(
                "its daemon answered {status}: {}",
                String::from_utf8_lossy(body).trim()
            ),
        ),
    }
}

#[async_trait]
impl Environments for DaemonEnvironments {
    async fn deploy(
        &self,
        env: &EnvironmentSpec,
        version: &str,
        deploy_type: DeployType,
        staged_for: &str,
    ) -> Result<Staged, EnvironmentError> {
        let own = Token::read(&self.own_state_dir).map_err(|why| {
            EnvironmentError::Refused(format!(
                "this daemon's own token, which proves the deploy is this run's: {why}"
            ))
        })?;
        let request = DeployRequest {
            deploy_type,
            staged_for: Some(staged_for.to_owned()),
            ..DeployRequest::standard(version)
        };
        let (status, body) = self
            .send(env, |http, base| {
                http.post(format!("{base}/deploy"))
                    .header(STAGED_BY_HEADER, own.as_str())
                    .json(&request)
            })
            .await?;
        if status.is_success() {
            let started: RunStarted = serde_json::from_slice(&body).map_err(|e| {
                EnvironmentError::Refused(format!("its daemon's answer is not a started run: {e}"))
            })?;
            return Ok(Staged::Started {
                run_id: started.run_id,
            });
        }
        match refusal(status, &body) {
            (code, _) if code == "already_serving" => Ok(Staged::AlreadyServing),
            // Busy with this very deploy: asked for just before a daemon died, and
            // begun there before the run id could be recorded here.
            (code, why) if code == "busy" => match self.ours(env, staged_for).await {
                Some(run_id) => Ok(Staged::Started { run_id }),
                None => Err(EnvironmentError::Refused(why)),
            },
            (_, why) => Err(EnvironmentError::Refused(why)),
        }
    }

    /// Asks for the status first, which is small: the run's whole record (its
    /// events, its measurements) only once it is no longer the one in progress.
    async fn run(
        &self,
        env: &EnvironmentSpec,
        run_id: &str,
    ) -> Result<StagedRun, EnvironmentError> {
        let status: Status = self.get(env, "/status").await?;
        if status.active_run.is_some_and(|a| a.run_id == run_id) {
            return Ok(StagedRun {
                outcome: None,
                reason: None,
            });
        }
        let answer: RunAnswer = self.get(env, &format!("/runs/{run_id}")).await?;
        Ok(StagedRun {
            outcome: answer.run.outcome,
            reason: answer.run.reason,
        })
    }

    async fn url(&self, env: &EnvironmentSpec) -> Result<String, EnvironmentError> {
        let (info, _) = Self::daemon(env)?;
        Ok(format!("http://{}", info.proxy))
    }
}

/// Checks that a deploy asked as the staging of `staged_for` (`ENVIRONMENT/RUN-ID`)
/// comes from the daemon of the environment right after `config`'s: it names
/// that environment and carries that daemon's token. Anyone else would skip this
/// environment's gates, windows and approvals.
///
/// # Errors
/// 422 for a `staged_for` that is not `ENVIRONMENT/RUN-ID`; 403 for one this
/// environment does not stage for, or without that daemon's token.
pub(crate) fn check_staged_for(
    config: &Config,
    staged_for: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let Some((env, _)) = staged_for
        .split_once('/')
        .filter(|(env, run)| valid_part(env) && valid_part(run))
    else {
        return Err(ApiError::invalid_field(
            "staged_for",
            format!(
                "`{staged_for}` is not `ENVIRONMENT/RUN-ID` (an environment's name and one of \
                 its runs, like `production/20261202T101500Z-v2`)"
            ),
        ));
    };
    let refused = |why: String| ApiError::new(StatusCode::FORBIDDEN, "not_staged", why);
    let here = config.environment.as_deref();
    let at = config
        .environments
        .iter()
        .position(|e| Some(e.name.as_str()) == here);
    let Some(later) = at.and_then(|i| config.environments.get(i + 1)) else {
        return Err(refused(format!(
            "this environment stages for no other (it is the last, or the config defines \
             none), so not for `{env}`; deploy here without `staged_for`"
        )));
    };
    if later.name != env {
        return Err(refused(format!(
            "only `{}`, the environment after this one, stages here, not `{env}`",
            later.name
        )));
    }
    let presented = headers
        .get(STAGED_BY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let expected = Token::read(&later.state_dir)
        .map_err(|why| refused(format!("the token of `{}`: {why}", later.name)))?;
    if !expected.matches(presented) {
        return Err(refused(format!(
            "a deploy staged for `{}` comes from its daemon, with its token in \
             {STAGED_BY_HEADER}; this one does not",
            later.name
        )));
    }
    Ok(())
}

/// One half of `ENVIRONMENT/RUN-ID`: letters, digits, `-` and `_`.
fn valid_part(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 128
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
