//! Delivering notifications in the background, so that a webhook or a GitHub that is
//! dead, slow or refusing never blocks or fails a deploy.
//!
//! [`Notifier::notify`] only queues (it never waits, and never fails); each webhook
//! and the GitHub client have a queue and a task of their own, which send in the
//! order queued (so a receiver sees a run's events in order) and retry a failed
//! attempt as [`DeliveryPolicy`] says (see `retry`). Every attempt is recorded, and
//! [`Notifier::finish`] returns the record for `notifications.md`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cutover_spec::{NotificationsSpec, Redacted, SecretSource, WebhookFormat, WebhookSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::github::{DeploymentState, GitHub, state_for};
use crate::notify::Notification;
use crate::retry::{Attempt, DeliveryPolicy, Failure, with_retries};
use crate::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

/// Sent with every request.
pub(crate) const USER_AGENT: &str = concat!("cutover/", env!("CARGO_PKG_VERSION"));
/// Notifications queued per target before more are dropped (and recorded so).
const QUEUE: usize = 64;

/// Every notification and what became of it, for `notifications.md` and `run.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NotificationsReport {
    /// In the order queued.
    pub deliveries: Vec<DeliveryRecord>,
    /// The id of the run's GitHub deployment, once created.
    pub github_deployment: Option<u64>,
}

/// One notification to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// `webhook http://host/…` (the path hidden: Slack's holds its secret) or
    /// `GitHub owner/repo`.
    pub target: String,
    pub event: cutover_spec::NotificationKind,
    pub result: DeliveryResult,
    /// The requests made for it (a GitHub `run_started` makes two), in order.
    pub requests: Vec<RequestRecord>,
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum DeliveryResult {
    /// Queued or being sent.
    Pending,
    Delivered,
    /// Given up: the last error, after the attempts the policy allows.
    Failed {
        error: String,
    },
    /// Not sent: the queue was full, the notifier had finished, or it was still
    /// pending when the run's time to deliver ran out.
    NotSent {
        reason: String,
    },
}

/// One request and its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// What it was: `POST`, `create deployment`, `status success`.
    pub what: String,
    pub attempts: Vec<Attempt>,
}

type Records = Arc<Mutex<NotificationsReport>>;

/// Delivers a run's notifications in the background. Made per run by
/// [`Notifier::start`], told each event with [`Notifier::notify`], closed with
/// [`Notifier::finish`].
pub struct Notifier {
    queues: Vec<Queue>,
    records: Records,
    workers: Vec<JoinHandle<()>>,
}

struct Queue {
    target: String,
    accepts: Box<dyn Fn(&Notification) -> bool + Send + Sync>,
    tx: mpsc::Sender<Job>,
}

struct Job {
    notification: Arc<Notification>,
    record: usize,
}

impl Notifier {
    /// Start a notifier for `spec`'s webhooks and GitHub repository. `env` looks up
    /// the environment variables that hold secrets (`secret_env`, `token_env`), once,
    /// now; pass `|name| std::env::var(name).ok()`. `github_deployment` is the id of
    /// the run's deployment when the run is resumed after a restart (it is in the
    /// last [`NotificationsReport`]), so that no second one is created.
    ///
    /// A secret or token missing from the environment does not fail here: every
    /// delivery to that target is recorded as failed, saying which variable is unset.
    /// Must be called within a tokio runtime.
    pub fn start(
        spec: &NotificationsSpec,
        policy: DeliveryPolicy,
        env: &dyn Fn(&str) -> Option<String>,
        github_deployment: Option<u64>,
    ) -> Notifier {
        let http = http_client();
        let records: Records = Arc::new(Mutex::new(NotificationsReport {
            deliveries: Vec::new(),
            github_deployment,
        }));
        let mut notifier = Notifier {
            queues: Vec::new(),
            records: records.clone(),
            workers: Vec::new(),
        };
        for hook in &spec.webhooks {
            let key = match &hook.secret {
                None => Ok(None),
                Some(SecretSource::Literal(secret)) => Ok(Some(secret.clone())),
                Some(SecretSource::Env(name)) => env(name).map(|v| Some(Redacted::new(v))).ok_or_else(|| {
                    format!("not sent: `secret_env: {name}` names a variable that is not set in the daemon's environment (it is never sent unsigned)")
                }),
            };
            let events = hook.events.clone();
            let sender = WebhookSender {
                http: http.clone(),
                hook: hook.clone(),
                key,
                policy,
            };
            let (tx, rx) = mpsc::channel(QUEUE);
            notifier.queues.push(Queue {
                target: format!("webhook {}", shown_url(&hook.url)),
                accepts: Box::new(move |n| events.contains(&n.kind)),
                tx,
            });
            notifier
                .workers
                .push(tokio::spawn(webhook_worker(sender, rx, records.clone())));
        }
        if let Some(gh) = &spec.github {
            let client = env(&gh.token_env)
                .map(|token| GitHub::new(gh, Redacted::new(token), http.clone()))
                .ok_or_else(|| {
                    format!(
                        "not sent: `token_env: {}` names a variable that is not set in the daemon's environment",
                        gh.token_env
                    )
                });
            let (tx, rx) = mpsc::channel(QUEUE);
            notifier.queues.push(Queue {
                target: format!("GitHub {}/{}", gh.owner, gh.repo),
                accepts: Box::new(|n| state_for(n).is_some()),
                tx,
            });
            notifier.workers.push(tokio::spawn(github_worker(
                client,
                policy,
                rx,
                records.clone(),
            )));
        }
        notifier
    }

    /// Queue `n` for every target that wants it.
    ///
    /// # Guarantees
    /// Returns at once and never fails: a target whose queue is full (it has been
    /// failing for a long time) gets the notification recorded as not sent.
    pub fn notify(&self, n: Notification) {
        let n = Arc::new(n);
        for queue in self.queues.iter().filter(|q| (q.accepts)(&n)) {
            let record = self.record(DeliveryRecord {
                target: queue.target.clone(),
                event: n.kind,
                result: DeliveryResult::Pending,
                requests: Vec::new(),
            });
            let job = Job {
                notification: n.clone(),
                record,
            };
            if let Err(err) = queue.tx.try_send(job) {
                let reason = match err {
                    mpsc::error::TrySendError::Full(_) => {
                        format!("{QUEUE} notifications were already waiting for this target")
                    }
                    mpsc::error::TrySendError::Closed(_) => {
                        "the target's sender had stopped".to_owned()
                    }
                };
                update(&self.records, record, |r| {
                    r.result = DeliveryResult::NotSent { reason }
                });
            }
        }
    }

    /// What has been delivered so far, and what is still pending.
    pub fn report(&self) -> NotificationsReport {
        lock(&self.records).clone()
    }

    /// Stop taking notifications, give the pending ones up to `grace` to be
    /// delivered (with their retries), and return the whole record; what is still
    /// pending then is recorded as not sent.
    pub async fn finish(self, grace: Duration) -> NotificationsReport {
        let Notifier {
            queues,
            records,
            workers,
        } = self;
        // Closing the queues lets each worker end once it has sent what it holds.
        drop(queues);
        let deadline = Instant::now() + grace;
        for mut worker in workers {
            if tokio::time::timeout_at(deadline, &mut worker)
                .await
                .is_err()
            {
                worker.abort();
            }
        }
        let mut report = lock(&records).clone();
        for d in &mut report.deliveries {
            if d.result == DeliveryResult::Pending {
                d.result = DeliveryResult::NotSent {
                    reason: format!(
                        "still pending when the run's {} to deliver ran out",
                        humantime::format_duration(grace)
                    ),
                };
            }
        }
        report
    }

    fn record(&self, record: DeliveryRecord) -> usize {
        let mut all = lock(&self.records);
        all.deliveries.push(record);
        all.deliveries.len() - 1
    }
}

impl NotificationsReport {
    /// The `notifications.md` receipt.
    pub fn to_markdown(&self) -> String {
        let mut out = "# Notifications\n\n".to_owned();
        if self.deliveries.is_empty() {
            out.push_str("None were sent.\n");
            return out;
        }
        if let Some(id) = self.github_deployment {
            out.push_str(&format!("GitHub deployment: {id}\n\n"));
        }
        out.push_str("| target | event | result | attempts |\n|---|---|---|---|\n");
        for d in &self.deliveries {
            let result = match &d.result {
                DeliveryResult::Pending => "pending".to_owned(),
                DeliveryResult::Delivered => "delivered".to_owned(),
                DeliveryResult::Failed { error } => format!("FAILED: {error}"),
                DeliveryResult::NotSent { reason } => format!("not sent: {reason}"),
            };
            let attempts: Vec<String> = d
                .requests
                .iter()
                .map(|r| {
                    let tries: Vec<String> = r.attempts.iter().map(shown_attempt).collect();
                    format!("{}: {}", r.what, tries.join(", "))
                })
                .collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                cell(&d.target),
                d.event,
                cell(&result),
                cell(&attempts.join("; "))
            ));
        }
        out
    }

    /// How many deliveries ended each way: `delivered`, `failed`, `not_sent`, `pending`.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for d in &self.deliveries {
            let key = match d.result {
                DeliveryResult::Pending => "pending",
                DeliveryResult::Delivered => "delivered",
                DeliveryResult::Failed { .. } => "failed",
                DeliveryResult::NotSent { .. } => "not_sent",
            };
            *counts.entry(key).or_default() += 1;
        }
        counts
    }
}

fn shown_attempt(a: &Attempt) -> String {
    match (a.status, &a.error) {
        (Some(status), None) => status.to_string(),
        (Some(status), Some(error)) => format!("{status} ({error})"),
        (None, Some(error)) => error.clone(),
        (None, None) => "?".to_owned(),
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `http://host:port/…`: a Slack webhook's path is its secret.
fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(invalid URL)".to_owned();
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.len() < rest.len() {
        format!("{scheme}://{host}/…")
    } else {
        format!("{scheme}://{host}")
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        // A receiver is named exactly; a redirect of a POST is a mistake to report.
        .redirect(reqwest::redirect::Policy::none())
        // Loopback relays and internal hosts must not go through an HTTP_PROXY.
        .no_proxy()
        .build()
        .unwrap_or_default()
}

fn lock(records: &Records) -> std::sync::MutexGuard<'_, NotificationsReport> {
    // A worker that panicked mid-update leaves plain data; carry on with it.
    records.lock().unwrap_or_else(PoisonError::into_inner)
}

fn update(records: &Records, index: usize, change: impl FnOnce(&mut DeliveryRecord)) {
    if let Some(record) = lock(records).deliveries.get_mut(index) {
        change(record);
    }
}

/// Make one request with the policy's retries, recording it and every attempt in
/// `records[index]` under `what` as it goes.
async fn request<T, F, Fut>(
    policy: &DeliveryPolicy,
    records: &Records,
    index: usize,
    what: &str,
    call: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(u16, T), Failure>>,
{
    update(records, index, |r| {
        r.requests.push(RequestRecord {
            what: what.to_owned(),
            attempts: Vec::new(),
        })
    });
    let on_attempt = |a: Attempt| {
        update(records, index, |r| {
            if let Some(request) = r.requests.last_mut() {
                request.attempts.push(a);
            }
        })
    };
    with_retries(policy, on_attempt, call).await
}

/// What a webhook's worker needs to send.
struct WebhookSender {
    http: reqwest::Client,
    hook: WebhookSpec,
    /// The signing key, or why none could be had.
    key: Result<Option<Redacted>, String>,
    policy: DeliveryPolicy,
}

impl WebhookSender {
    async fn post(&self, body: &[u8], key: Option<&Redacted>) -> Result<(u16, ()), Failure> {
        let content_type = match self.hook.format {
            WebhookFormat::Json | WebhookFormat::Slack => "application/json",
        };
        let mut request = self
            .http
            .post(&self.hook.url)
            .header("Content-Type", content_type)
            .header("User-Agent", USER_AGENT)
            .body(body.to_vec());
        if let Some(key) = key {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            request = request
                .header(TIMESTAMP_HEADER, now.to_string())
                .header(SIGNATURE_HEADER, sign(key.expose().as_bytes(), now, body));
        }
        let response = request.send().await.map_err(Failure::from_request)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            Ok((status, ()))
        } else {
            Err(Failure::from_status(status, format!("answered {status}")))
        }
    }
}

async fn webhook_worker(sender: WebhookSender, mut rx: mpsc::Receiver<Job>, records: Records) {
    while let Some(job) = rx.recv().await {
        let result = match &sender.key {
            Err(why) => Err(why.clone()),
            Ok(key) => {
                let body = job.notification.body(sender.hook.format);
                request(&sender.policy, &records, job.record, "POST", || {
                    sender.post(&body, key.as_ref())
                })
                .await
            }
        };
        finish_job(&records, job.record, result);
    }
}

async fn github_worker(
    client: Result<GitHub, String>,
    policy: DeliveryPolicy,
    mut rx: mpsc::Receiver<Job>,
    records: Records,
) {
    while let Some(job) = rx.recv().await {
        let result = match &client {
            Err(why) => Err(why.clone()),
            Ok(github) => github_job(github, &policy, &records, &job).await,
        };
        finish_job(&records, job.record, result);
    }
}

/// Create the deployment on `run_started`, then post the notification's status.
async fn github_job(
    github: &GitHub,
    policy: &DeliveryPolicy,
    records: &Records,
    job: &Job,
) -> Result<(), String> {
    let n = &job.notification;
    let Some(state) = state_for(n) else {
        return Ok(());
    };
    let known = lock(records).github_deployment;
    let id = match (known, state) {
        (Some(id), _) => id,
        (None, DeploymentState::InProgress) => {
            let id = request(policy, records, job.record, "create deployment", || async {
                github.create_deployment(n).await
            })
            .await?;
            lock(records).github_deployment = Some(id);
            id
        }
        (None, _) => {
            return Err("no deployment to update: creating it had failed".to_owned());
        }
    };
    let what = format!("status {}", state.as_str());
    request(policy, records, job.record, &what, || async {
        github.post_status(id, state, n).await
    })
    .await
}

fn finish_job(records: &Records, index: usize, result: Result<(), String>) {
    update(records, index, |r| {
        r.result = match result {
            Ok(()) => DeliveryResult::Delivered,
            Err(error) => DeliveryResult::Failed { error },
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::error_chain;

    /// `cutover_spec::defaults::HTTPS_SUPPORTED` says what this client can do; if a
    /// TLS stack is added, this fails until the switch is turned.
    #[tokio::test]
    async fn the_spec_knows_whether_this_client_speaks_tls() {
        // Nothing listens on port 1: with TLS this would be "connection refused".
        let err = http_client()
            .post("https://127.0.0.1:1/")
            .send()
            .await
            .expect_err("no server there");
        let chain = error_chain(&err);
        let no_tls = chain.contains("scheme is not http");
        assert_eq!(no_tls, !cutover_spec::defaults::HTTPS_SUPPORTED, "{chain}");
    }

    #[test]
    fn a_webhooks_path_is_never_shown() {
        assert_eq!(
            shown_url("http://hooks.example/services/T0/B0/secret"),
            "http://hooks.example/…"
        );
        assert_eq!(shown_url("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
    }
}
