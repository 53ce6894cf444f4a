//! `notifications`: webhooks (URL, body format, events, signing key) and GitHub
//! deployments (repository, token, API URL, environment).

use super::Checker;
use super::fields::suggestion;
use crate::parse::node::{Entry, Node, Value};
use crate::types::{
    GitHubSpec, NotificationKind, NotificationsSpec, Redacted, SecretSource, WebhookFormat,
    WebhookSpec, defaults,
};

pub(super) const NOTIFICATIONS: &[&str] = &["webhooks", "github"];
pub(super) const WEBHOOK: &[&str] = &["url", "format", "events", "secret", "secret_env"];
pub(super) const GITHUB: &[&str] = &["repository", "token_env", "api_url", "environment"];

const WEBHOOK_EXAMPLE: &str = "{ url: http://127.0.0.1:9000/hook, format: json }";
const FORMATS: &[(&str, WebhookFormat)] = &[
    ("json", WebhookFormat::Json),
    ("slack", WebhookFormat::Slack),
];

impl Checker<'_> {
    pub(super) fn notifications(&mut self, e: &Entry) -> Option<NotificationsSpec> {
        let f = self.fields(&e.value, "notifications", NOTIFICATIONS)?;
        let webhooks = self.optional(&f, "webhooks", Vec::new(), Self::webhooks);
        let github = self.optional(&f, "github", None, |c, e| c.github(e).map(Some));
        Some(NotificationsSpec {
            webhooks: webhooks?,
            github: github?,
        })
    }

    fn webhooks(&mut self, e: &Entry) -> Option<Vec<WebhookSpec>> {
        self.mappings(e, "notifications.webhooks", WEBHOOK_EXAMPLE, Self::webhook)
    }

    fn webhook(&mut self, node: &Node, path: &str) -> Option<WebhookSpec> {
        if !matches!(node.value, Value::Map(_)) {
            self.error(
                node.pos,
                format!(
                    "`{path}` must be a mapping like `{WEBHOOK_EXAMPLE}`, got {}",
                    node.describe()
                ),
            );
            return None;
        }
        let f = self.fields(node, path, WEBHOOK)?;
        let url = self.require(
            &f,
            path,
            node.pos,
            "url",
            "where to POST each event, e.g. `http://127.0.0.1:9000/hook`",
        );
        let url = url.and_then(|e| self.http_url(e));
        let format = self.optional(&f, "format", defaults::WEBHOOK_FORMAT, |c, e| {
            c.keyword(e, FORMATS)
        });
        let events = self.optional(&f, "events", NotificationKind::ALL.to_vec(), Self::events);
        let secret = match (f.get("secret"), f.get("secret_env")) {
            (Some(_), Some(second)) => {
                self.error(
                    second.key_pos,
                    format!(
                        "`{path}` has both `secret` and `secret_env`; keep one: the key itself, \
                         or the name of the environment variable holding it"
                    ),
                );
                None
            }
            (Some(e), None) => self
                .webhook_secret(e)
                .map(|s| Some(SecretSource::Literal(s))),
            (None, Some(e)) => self.env_name(e).map(|n| Some(SecretSource::Env(n))),
            (None, None) => Some(None),
        };
        Some(WebhookSpec {
            url: url?,
            format: format?,
            events: events?,
            secret: secret?,
        })
    }

    fn events(&mut self, e: &Entry) -> Option<Vec<NotificationKind>> {
        let names: Vec<&str> = NotificationKind::ALL.iter().map(|k| k.as_str()).collect();
        let valid = names.join(", ");
        let items = match &e.value.value {
            Value::Seq(items) if !items.is_empty() => items,
            _ => {
                self.error(
                    Self::at(e),
                    format!(
                        "`events` must be a non-empty list of events (valid: {valid}; leave \
                         `events` out for all of them), got {}",
                        e.value.describe()
                    ),
                );
                return None;
            }
        };
        let mut kinds = Vec::new();
        let mut ok = true;
        for item in items {
            let text = item.scalar_text();
            let kind = text.as_deref().and_then(|t| {
                NotificationKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == t.trim())
            });
            match kind {
                Some(kind) if kinds.contains(&kind) => {
                    self.error(item.pos, format!("event `{kind}` is listed twice"));
                    ok = false;
                }
                Some(kind) => kinds.push(kind),
                None => {
                    let hint = text
                        .map(|t| suggestion(t.trim(), &names))
                        .unwrap_or_default();
                    self.error(
                        item.pos,
                        format!("unknown event {}{hint} (valid: {valid})", item.describe()),
                    );
                    ok = false;
                }
            }
        }
        kinds.sort();
        ok.then_some(kinds)
    }

    fn webhook_secret(&mut self, e: &Entry) -> Option<Redacted> {
        match e.value.scalar_text() {
            // Taken literally, `${env:NAME}` would sign with those very characters.
            Some(s) if s.contains("${") => {
                self.error(
                    Self::at(e),
                    "`secret` looks like a placeholder, which is not expanded here; to read \
                     the key from the environment, write `secret_env: NAME` instead",
                );
                None
            }
            Some(s) if !s.is_empty() => Some(Redacted::new(s)),
            _ => {
                // Never echo what was written: it may be most of a key.
                self.error(
                    Self::at(e),
                    "`secret` must be a non-empty string (the HMAC-SHA256 key), or use \
                     `secret_env: NAME` to read it from the environment",
                );
                None
            }
        }
    }

    /// The name of an environment variable: letters, digits and `_`, not starting
    /// with a digit.
    fn env_name(&mut self, e: &Entry) -> Option<String> {
        let text = e.value.scalar_text();
        if let Some(name) = &text
            && name.chars().next().is_some_and(|c| !c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Some(name.clone());
        }
        self.error(
            Self::at(e),
            format!(
                "`{}` must name an environment variable (letters, digits and `_`, like \
                 `DEPLOY_WEBHOOK_SECRET`), got {}",
                e.key,
                e.value.describe()
            ),
        );
        None
    }

    fn github(&mut self, e: &Entry) -> Option<GitHubSpec> {
        let path = "notifications.github";
        let f = self.fields(&e.value, path, GITHUB)?;
        let repository = self.require(
            &f,
            path,
            e.key_pos,
            "repository",
            "the repository as `owner/name`, e.g. `acme/shop`",
        );
        let repository = repository.and_then(|e| self.repository(e));
        let token_env = self.require(
            &f,
            path,
            e.key_pos,
            "token_env",
            "the environment variable holding the token, e.g. `GITHUB_TOKEN`",
        );
        let token_env = token_env.and_then(|e| self.env_name(e));
        let api_url = match f.get("api_url") {
            Some(e) => self.http_url(e),
            None => self.default_github_api_url(e),
        };
        let environment = self.optional(
            &f,
            "environment",
            defaults::GITHUB_ENVIRONMENT.to_owned(),
            |c, e| match c.text(e, "the deployment's environment, e.g. `production`") {
                Some(t) if !t.trim().is_empty() => Some(t.trim().to_owned()),
                Some(_) => {
                    c.error(
                        Self::at(e),
                        "`environment` must not be empty (like `production` or `staging`)",
                    );
                    None
                }
                None => None,
            },
        );
        let (owner, repo) = repository?;
        Some(GitHubSpec {
            owner,
            repo,
            token_env: token_env?,
            api_url: api_url?.trim_end_matches('/').to_owned(),
            environment: environment?,
        })
    }

    fn default_github_api_url(&mut self, e: &Entry) -> Option<String> {
        match http_url_problem(defaults::GITHUB_API_URL) {
            None => Some(defaults::GITHUB_API_URL.to_owned()),
            Some(problem) => {
                self.error(
                    e.key_pos,
                    format!(
                        "`notifications.github` has no `api_url`, and the default {}: {problem}; \
                         set `api_url` to an `http://` address that forwards to the GitHub API",
                        defaults::GITHUB_API_URL
                    ),
                );
                None
            }
        }
    }

    fn repository(&mut self, e: &Entry) -> Option<(String, String)> {
        let part = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if let Some(text) = e.value.scalar_text()
            && let Some((owner, repo)) = text.trim().split_once('/')
            && part(owner)
            && part(repo)
        {
            return Some((owner.to_owned(), repo.to_owned()));
        }
        self.error(
            Self::at(e),
            format!(
                "`repository` must be `owner/name` (letters, digits, `-`, `_` and `.`), like \
                 `acme/shop`, got {}",
                e.value.describe()
            ),
        );
        None
    }

    /// A URL this build can send requests to.
    fn http_url(&mut self, e: &Entry) -> Option<String> {
        let Some(url) = e.value.scalar_text() else {
            self.error(
                Self::at(e),
                format!(
                    "`{}` must be a URL like `http://127.0.0.1:9000/hook`, got {}",
                    e.key,
                    e.value.describe()
                ),
            );
            return None;
        };
        let url = url.trim().to_owned();
        match http_url_problem(&url) {
            None => Some(url),
            Some(problem) => {
                self.error(
                    Self::at(e),
                    format!("`{}` {}: {problem}", e.key, e.value.describe()),
                );
                None
            }
        }
    }
}

/// What keeps `url` from being one this build can send to, or `None`. The one place
/// that decides which schemes are allowed (see [`defaults::HTTPS_SUPPORTED`]).
fn http_url_problem(url: &str) -> Option<String> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => {
            return Some(
                "it must be a URL starting with `http://`, like `http://127.0.0.1:9000/hook`"
                    .to_owned(),
            );
        }
    };
    match scheme.as_str() {
        "http" => {}
        "https" if defaults::HTTPS_SUPPORTED => {}
        "https" => {
            return Some(
                "this build of cutover has no TLS, so it cannot send to `https://` URLs; use \
                 an `http://` URL (for example a local relay that forwards over TLS)"
                    .to_owned(),
            );
        }
        other => {
            return Some(format!(
                "the scheme `{other}` is not supported; use `http://`"
            ));
        }
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Some(
            "it must name a host after `http://` (and no user or password), like \
             `http://127.0.0.1:9000/hook`"
                .to_owned(),
        );
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("it must not contain spaces or control characters".to_owned());
    }
    None
}
