//! What a webhook is told: one [`Notification`] per event of a run, and the two
//! bodies it is sent as, a generic JSON object and a Slack-compatible message.
//!
//! The JSON body is the notification itself:
//!
//! ```json
//! {"event":"rolled_back","app":"shop","version":"v2","previous_version":"v1",
//!  "run_id":"shop-20261202-101500-ab12","stage":null,"verdict":null,
//!  "outcome":"rolled_back","reason":"error rate 12% > 5%","log_url":null,
//!  "at":"2026-12-02T10:16:40Z"}
//! ```
//!
//! The Slack body has a `text` (the notification's one line, also what phones show)
//! and `blocks`: a section with that line in Slack's `mrkdwn`, and a context line with
//! the run's id and, when known, a link to its log.

use std::time::SystemTime;

use cutover_spec::{NotificationKind, WebhookFormat};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::hooks::RunFacts;

/// One event of a run, with the run's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    #[serde(rename = "event")]
    pub kind: NotificationKind,
    pub app: String,
    pub version: String,
    pub previous_version: Option<String>,
    pub run_id: String,
    /// For `stage_finished` (and `waiting_for_approval`): the stage, like `gates`.
    pub stage: Option<String>,
    /// For `stage_finished`: how the stage ended, like `passed` or `failed`.
    pub verdict: Option<String>,
    /// How the run ended, once it has: `promoted`, `rolled_back`, `blocked`, `aborted`.
    pub outcome: Option<String>,
    /// Why (a rollback's trigger, a gate's failure, who approved, ...).
    pub reason: Option<String>,
    /// Where a person can read the run (the dashboard's page for it).
    pub log_url: Option<String>,
    /// When it happened, RFC 3339 in UTC.
    pub at: String,
}

impl Notification {
    /// A `kind` notification about the run `facts` describe, dated now; `stage`,
    /// `verdict` and `log_url` are left for the caller to fill in.
    pub fn new(kind: NotificationKind, facts: &RunFacts) -> Notification {
        Notification {
            kind,
            app: facts.app.clone(),
            version: facts.version.clone(),
            previous_version: facts.previous_version.clone(),
            run_id: facts.run_id.clone(),
            stage: None,
            verdict: None,
            outcome: facts.outcome.clone(),
            reason: facts.reason.clone(),
            log_url: None,
            at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        }
    }

    /// One line for people: `shop v2: rolled back to v1 (error rate 12% > 5%)`.
    pub fn headline(&self) -> String {
        let what = match self.kind {
            NotificationKind::RunStarted => match &self.previous_version {
                Some(previous) => format!("deploy started, replacing {previous}"),
                None => "deploy started".to_owned(),
            },
            NotificationKind::StageFinished => format!(
                "stage {} {}",
                self.stage.as_deref().unwrap_or("(unnamed)"),
                self.verdict.as_deref().unwrap_or("finished")
            ),
            NotificationKind::WaitingForApproval => "waiting for approval".to_owned(),
            NotificationKind::Promoted => match &self.previous_version {
                Some(previous) => format!("promoted, replacing {previous}"),
                None => "promoted".to_owned(),
            },
            NotificationKind::RolledBack => match &self.previous_version {
                Some(previous) => format!("rolled back to {previous}"),
                None => "rolled back".to_owned(),
            },
        };
        let mut line = format!("{} {}: {what}", self.app, self.version);
        if let Some(reason) = &self.reason {
            line.push_str(&format!(" ({reason})"));
        }
        line
    }

    /// The request body for a webhook of `format`.
    pub fn body(&self, format: WebhookFormat) -> Vec<u8> {
        let value = match format {
            WebhookFormat::Json => json!(self),
            WebhookFormat::Slack => self.slack(),
        };
        serde_json::to_vec(&value).expect("a JSON value serializes")
    }

    fn slack(&self) -> serde_json::Value {
        let mut context = format!("run `{}`", self.run_id);
        if let Some(url) = &self.log_url {
            context.push_str(&format!(" · <{url}|log>"));
        }
        json!({
            "text": self.headline(),
            "blocks": [
                {
                    "type": "section",
                    "text": { "type": "mrkdwn", "text": slack_escape(&self.headline()) },
                },
                {
                    "type": "context",
                    "elements": [{ "type": "mrkdwn", "text": context }],
                },
            ],
        })
    }
}

/// Slack's `mrkdwn` gives `&`, `<` and `>` meaning; they are escaped as it asks.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn facts() -> RunFacts {
        RunFacts {
            app: "shop".into(),
            version: "v2".into(),
            previous_version: Some("v1".into()),
            run_id: "run-1".into(),
            outcome: Some("rolled_back".into()),
            reason: Some("error rate 12% > 5%".into()),
            receipts_dir: PathBuf::from("/tmp/run-1"),
        }
    }

    #[test]
    fn the_json_body_is_the_notification() {
        let n = Notification::new(NotificationKind::RolledBack, &facts());
        let body: serde_json::Value = serde_json::from_slice(&n.body(WebhookFormat::Json)).unwrap();
        assert_eq!(body["event"], "rolled_back");
        assert_eq!(body["app"], "shop");
        assert_eq!(body["version"], "v2");
        assert_eq!(body["previous_version"], "v1");
        assert_eq!(body["run_id"], "run-1");
        assert_eq!(body["reason"], "error rate 12% > 5%");
        assert!(body["stage"].is_null());
        let back: Notification = serde_json::from_value(body).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn the_slack_body_has_text_and_blocks() {
        let mut n = Notification::new(NotificationKind::RolledBack, &facts());
        n.reason = Some("p95 > 300ms & <rising>".into());
        n.log_url = Some("http://127.0.0.1:7070/runs/run-1".into());
        let body: serde_json::Value =
            serde_json::from_slice(&n.body(WebhookFormat::Slack)).unwrap();
        assert_eq!(
            body["text"],
            "shop v2: rolled back to v1 (p95 > 300ms & <rising>)"
        );
        assert_eq!(body["blocks"][0]["type"], "section");
        assert_eq!(
            body["blocks"][0]["text"]["text"],
            "shop v2: rolled back to v1 (p95 &gt; 300ms &amp; &lt;rising&gt;)"
        );
        assert_eq!(
            body["blocks"][1]["elements"][0]["text"],
            "run `run-1` · <http://127.0.0.1:7070/runs/run-1|log>"
        );
    }

    #[test]
    fn headlines_name_the_stage_and_the_versions() {
        let mut n = Notification::new(NotificationKind::StageFinished, &facts());
        n.reason = None;
        n.stage = Some("gates".into());
        n.verdict = Some("passed".into());
        assert_eq!(n.headline(), "shop v2: stage gates passed");
        n.kind = NotificationKind::RunStarted;
        assert_eq!(n.headline(), "shop v2: deploy started, replacing v1");
        n.kind = NotificationKind::Promoted;
        n.previous_version = None;
        assert_eq!(n.headline(), "shop v2: promoted");
    }
}
