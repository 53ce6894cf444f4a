//! `notifications:`: who is told what happened in a run: webhooks (a generic JSON
//! body or a Slack-compatible one, optionally signed) and GitHub deployments.

use std::fmt;

/// Where a run's news goes (default: nowhere).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotificationsSpec {
    pub webhooks: Vec<WebhookSpec>,
    /// GitHub deployments and their statuses (default none).
    pub github: Option<GitHubSpec>,
}

impl NotificationsSpec {
    /// Nothing to notify.
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.github.is_none()
    }
}

/// One webhook: a URL that is POSTed each event it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    /// An `http://` URL (see [`crate::defaults::HTTPS_SUPPORTED`]).
    pub url: String,
    /// The body's shape (default [`WebhookFormat::Json`]).
    pub format: WebhookFormat,
    /// The events sent, in the order of [`NotificationKind::ALL`] (default: all).
    pub events: Vec<NotificationKind>,
    /// The key of the body's HMAC-SHA256 signature (default none: unsigned).
    pub secret: Option<SecretSource>,
}

/// The body of a webhook. YAML `format: json | slack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The event's facts as one JSON object.
    Json,
    /// Slack's incoming-webhook body: `text` and `blocks`.
    Slack,
}

/// What happened in a run that a webhook may be told; serialized as its
/// [`as_str`](NotificationKind::as_str) name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    RunStarted,
    StageFinished,
    WaitingForApproval,
    Promoted,
    RolledBack,
}

impl NotificationKind {
    /// Every kind, in the order a run meets them.
    pub const ALL: [NotificationKind; 5] = [
        NotificationKind::RunStarted,
        NotificationKind::StageFinished,
        NotificationKind::WaitingForApproval,
        NotificationKind::Promoted,
        NotificationKind::RolledBack,
    ];

    /// The name in `cutover.yaml` and in a webhook's body: `run_started`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::RunStarted => "run_started",
            NotificationKind::StageFinished => "stage_finished",
            NotificationKind::WaitingForApproval => "waiting_for_approval",
            NotificationKind::Promoted => "promoted",
            NotificationKind::RolledBack => "rolled_back",
        }
    }
}

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a webhook's signing key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `secret: ...`, written in the config.
    Literal(Redacted),
    /// `secret_env: NAME`: read from the daemon's environment when the run starts.
    Env(String),
}

/// A secret that never shows itself, not even as written (a webhook's signing key):
/// `Debug` prints `Redacted(***)` and there is no `Display`; [`Redacted::expose`] is
/// the only way to the text. (A [`crate::Secret`] shows itself as written, with its
/// `${env:...}` placeholders; this shows nothing.)
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(String);

impl Redacted {
    pub fn new(value: impl Into<String>) -> Redacted {
        Redacted(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Redacted(***)")
    }
}

/// `notifications.github`: a GitHub deployment per run, with its statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubSpec {
    /// The repository's owner (user or organisation).
    pub owner: String,
    /// The repository's name.
    pub repo: String,
    /// The environment variable holding the token (read when the run starts).
    pub token_env: String,
    /// The REST API's base URL, without a trailing `/` (default
    /// [`crate::defaults::GITHUB_API_URL`]; a GitHub Enterprise server's `/api/v3`).
    pub api_url: String,
    /// The deployment's environment (default
    /// [`crate::defaults::GITHUB_ENVIRONMENT`]).
    pub environment: String,
}
