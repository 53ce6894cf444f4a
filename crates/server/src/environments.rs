//! The config's other environments, reached through their daemons' HTTP API: the
//! daemon serving an environment says where it is in `daemon.json` in that
//! environment's state directory, beside its token, so a daemon on the same
//! machine finds and authenticates to it as the CLI does.

use std::time::Duration;

use async_trait::async_trait;
use cutover_api::{DeployRequest, ErrorBody, RunRecord, RunStarted, Status};
use cutover_engine::environments::{Environments, Staged, StagedRun};
use cutover_spec::EnvironmentSpec;
use serde::Deserialize;

use crate::auth::Token;
use crate::daemon::DaemonInfo;

/// How long one request to another environment's daemon may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The other environments' daemons, over HTTP.
pub(crate) struct DaemonEnvironments {
    http: reqwest::Client,
}

/// The part of `GET /api/v1/runs/{id}` a staging stage reads.
#[derive(Deserialize)]
struct RunAnswer {
    run: RunRecord,
    decision: Staging,
}

#[derive(Deserialize)]
struct Staging {
    #[serde(default)]
    staged_for: Option<String>,
}

impl DaemonEnvironments {
    pub(crate) fn new() -> DaemonEnvironments {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            // Without TLS or a proxy there is nothing in the builder to fail.
            .unwrap_or_default();
        DaemonEnvironments { http }
    }

    /// `env`'s daemon: its API's base URL and its token.
    fn daemon(env: &EnvironmentSpec) -> Result<(DaemonInfo, String), String> {
        let info = DaemonInfo::read(&env.state_dir).ok_or_else(|| {
            format!(
                "no daemon serves it (there is no {}); start one with `cutover serve --env {}`",
                DaemonInfo::path(&env.state_dir).display(),
                env.name
            )
        })?;
        let path = Token::path(&env.state_dir);
        let token = std::fs::read_to_string(&path)
            .map_err(|e| format!("its token {} could not be read: {e}", path.display()))?;
        Ok((info, token.trim().to_owned()))
    }

    /// Sends `request` to `env`'s daemon; the answer's status and body.
    async fn send(
        &self,
        env: &EnvironmentSpec,
        request: impl FnOnce(&reqwest::Client, String) -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, bytes::Bytes), String> {
        let (info, token) = Self::daemon(env)?;
        let base = format!("http://{}/api/v1", info.api);
        let response = request(&self.http, base)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| format!("its daemon at http://{} did not answer: {e}", info.api))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("its daemon's answer broke off: {e}"))?;
        Ok((status, body))
    }
}

/// What a daemon's error answer says.
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

impl DaemonEnvironments {
    /// The run in progress in `env`, if it is the staging of `staged_for`.
    async fn ours(&self, env: &EnvironmentSpec, staged_for: &str) -> Option<String> {
        let (status, body) = self
            .send(env, |http, base| http.get(format!("{base}/status")))
            .await
            .ok()?;
        if !status.is_success() {
            return None;
        }
        let status: Status = serde_json::from_slice(&body).ok()?;
        let run_id = status.active_run?.run_id;
        let (status, body) = self
            .send(env, |http, base| http.get(format!("{base}/runs/{run_id}")))
            .await
            .ok()?;
        let answer: RunAnswer = serde_json::from_slice(&body).ok()?;
        (status.is_success() && answer.decision.staged_for.as_deref() == Some(staged_for))
            .then_some(run_id)
    }
}

#[async_trait]
impl Environments for DaemonEnvironments {
    async fn deploy(
        &self,
        env: &EnvironmentSpec,
        version: &str,
        staged_for: &str,
    ) -> Result<Staged, String> {
        let request = DeployRequest {
            staged_for: Some(staged_for.to_owned()),
            ..DeployRequest::standard(version)
        };
        let (status, body) = self
            .send(env, |http, base| {
                http.post(format!("{base}/deploy")).json(&request)
            })
            .await?;
        if status.is_success() {
            let started: RunStarted = serde_json::from_slice(&body)
                .map_err(|e| format!("its daemon's answer is not a started run: {e}"))?;
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
                None => Err(why),
            },
            (_, why) => Err(why),
        }
    }

    async fn run(&self, env: &EnvironmentSpec, run_id: &str) -> Result<StagedRun, String> {
        let (status, body) = self
            .send(env, |http, base| http.get(format!("{base}/runs/{run_id}")))
            .await?;
        if !status.is_success() {
            return Err(refusal(status, &body).1);
        }
        let answer: RunAnswer = serde_json::from_slice(&body)
            .map_err(|e| format!("its daemon's answer is not a run: {e}"))?;
        Ok(StagedRun {
            outcome: answer.run.outcome,
            reason: answer.run.reason,
        })
    }

    async fn url(&self, env: &EnvironmentSpec) -> Result<String, String> {
        let (info, _) = Self::daemon(env)?;
        Ok(format!("http://{}", info.proxy))
    }
}
