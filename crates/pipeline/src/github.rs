//! GitHub deployments, the documents' base layer: a deployment per run
//! (`POST /repos/{owner}/{repo}/deployments`, the version as its `ref`) and its
//! statuses as the run goes (`POST /repos/{owner}/{repo}/deployments/{id}/statuses`:
//! `in_progress` when it starts, `success` when it is promoted, `failure` when it
//! rolls back or ends otherwise), through the REST API with a token.
//!
//! The calls are made by the [`crate::Notifier`] in the background, retried like a
//! webhook's, and recorded in `notifications.md`; a GitHub that is down or refuses
//! the token never blocks or fails a deploy.

use cutover_spec::{GitHubSpec, NotificationKind, Redacted};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::notify::Notification;
use crate::retry::Failure;

/// The REST API version these calls are written against.
pub const API_VERSION: &str = "2022-11-28";
/// GitHub cuts a status's description at this many characters.
const DESCRIPTION_MAX: usize = 140;

/// A deployment status cutover posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    InProgress,
    Success,
    Failure,
}

impl DeploymentState {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::InProgress => "in_progress",
            DeploymentState::Success => "success",
            DeploymentState::Failure => "failure",
        }
    }
}

/// The status a notification moves a run's deployment to, if any: `run_started`
/// creates it `in_progress`, `promoted` makes it `success`, and `rolled_back`, or any
/// notification whose run ended otherwise (its `outcome` set to `blocked`,
/// `aborted`, ...), `failure`.
pub fn state_for(n: &Notification) -> Option<DeploymentState> {
    match n.kind {
        NotificationKind::RunStarted => Some(DeploymentState::InProgress),
        NotificationKind::Promoted => Some(DeploymentState::Success),
        NotificationKind::RolledBack => Some(DeploymentState::Failure),
        NotificationKind::StageFinished | NotificationKind::WaitingForApproval => n
            .outcome
            .as_deref()
            .filter(|o| *o != "promoted")
            .map(|_| DeploymentState::Failure),
    }
}

/// A client for one repository's deployments.
#[derive(Debug, Clone)]
pub struct GitHub {
    http: reqwest::Client,
    api_url: String,
    owner: String,
    repo: String,
    environment: String,
    token: Redacted,
}

/// The part of a created deployment cutover reads.
#[derive(Deserialize)]
struct CreatedDeployment {
    id: u64,
}

impl GitHub {
    /// A client for `spec`'s repository, with `token`.
    pub fn new(spec: &GitHubSpec, token: Redacted, http: reqwest::Client) -> GitHub {
        GitHub {
            http,
            api_url: spec.api_url.clone(),
            owner: spec.owner.clone(),
            repo: spec.repo.clone(),
            environment: spec.environment.clone(),
            token,
        }
    }

    /// `owner/repo`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    /// Create the deployment of `n.version` in the configured environment; the
    /// answer's status and the deployment's id.
    /// `auto_merge` is off (the version is a tag or SHA that must not be merged into)
    /// and `required_contexts` empty (cutover's own gates have judged the version).
    pub(crate) async fn create_deployment(&self, n: &Notification) -> Result<(u16, u64), Failure> {
        let body = json!({
            "ref": n.version,
            "environment": self.environment,
            "auto_merge": false,
            "required_contexts": [],
            "description": truncate(&format!("cutover: {} {} (run {})", n.app, n.version, n.run_id)),
            "payload": { "app": n.app, "run_id": n.run_id, "previous_version": n.previous_version },
        });
        let path = format!("/repos/{}/{}/deployments", self.owner, self.repo);
        let answer = self.post(&path, &body).await?;
        let created: CreatedDeployment =
            serde_json::from_str(&answer.body).map_err(|e| Failure {
                status: Some(answer.status),
                error: format!(
                    "GitHub answered {} without a deployment id ({e}): {}",
                    answer.status,
                    snippet(&answer.body)
                ),
                retryable: false,
            })?;
        Ok((answer.status, created.id))
    }

    /// Post `state` to the deployment `id`, with the notification's headline as its
    /// description and its `log_url`.
    pub(crate) async fn post_status(
        &self,
        id: u64,
        state: DeploymentState,
        n: &Notification,
    ) -> Result<(u16, ()), Failure> {
        let mut body = json!({
            "state": state.as_str(),
            "description": truncate(&n.headline()),
            "environment": self.environment,
        });
        if let Some(url) = &n.log_url {
            body["log_url"] = json!(url);
        }
        let path = format!(
            "/repos/{}/{}/deployments/{id}/statuses",
            self.owner, self.repo
        );
        self.post(&path, &body).await.map(|a| (a.status, ()))
    }

    async fn post(&self, path: &str, body: &serde_json::Value) -> Result<Answer, Failure> {
        let response = self
            .http
            .post(format!("{}{path}", self.api_url))
            .header("Accept", "application/vnd.github+json")
            .header("Authorization", format!("Bearer {}", self.token.expose()))
            .header("X-GitHub-Api-Version", API_VERSION)
            .header("User-Agent", crate::delivery::USER_AGENT)
            .json(body)
            .send()
            .await
            .map_err(Failure::from_request)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(Failure::from_request)?;
        if (200..300).contains(&status) {
            return Ok(Answer { status, body: text });
        }
        Err(Failure::from_status(
            status,
            format!("GitHub answered {status}: {}", snippet(&text)),
        ))
    }
}

struct Answer {
    status: u16,
    body: String,
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= DESCRIPTION_MAX {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(DESCRIPTION_MAX - 1).collect();
    cut.push('…');
    cut
}

/// GitHub's `message` from an error body, else the body's start.
fn snippet(body: &str) -> String {
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    match serde_json::from_str::<Message>(body) {
        Ok(m) => m.message,
        Err(_) => body.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::hooks::RunFacts;

    #[test]
    fn runs_map_to_deployment_states() {
        let facts = RunFacts {
            app: "shop".into(),
            version: "v2".into(),
            previous_version: None,
            run_id: "r".into(),
            outcome: None,
            reason: None,
            receipts_dir: PathBuf::from("/tmp"),
        };
        let mut n = Notification::new(NotificationKind::RunStarted, &facts);
        assert_eq!(state_for(&n), Some(DeploymentState::InProgress));
        n.kind = NotificationKind::StageFinished;
        assert_eq!(state_for(&n), None);
        n.outcome = Some("blocked".into());
        assert_eq!(state_for(&n), Some(DeploymentState::Failure));
        n.kind = NotificationKind::Promoted;
        assert_eq!(state_for(&n), Some(DeploymentState::Success));
        n.kind = NotificationKind::RolledBack;
        assert_eq!(state_for(&n), Some(DeploymentState::Failure));
    }

    #[test]
    fn descriptions_fit_githubs_limit() {
        assert_eq!(truncate("short"), "short");
        let long = "x".repeat(300);
        assert_eq!(truncate(&long).chars().count(), DESCRIPTION_MAX);
    }
}
