//! What the HTTP sources share: one GET with a timeout, its failures told apart
//! (unreachable, timed out, an error status with the server's message).

use std::collections::BTreeMap;
use std::time::Duration;

use cutover_analysis::SourceFault;
use cutover_spec::Secret;
use reqwest::{Client, Url};

/// The most of a server's error answer kept in a fault.
const MESSAGE_MAX: usize = 500;

/// An HTTP client for one source. Without TLS, like every client of cutover.
pub(crate) fn client() -> Client {
    Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|_| Client::new())
}

/// `base` with `path` appended and `query` added; a URL that does not parse is
/// a fault of its own (a `${env:...}` value or a rendered template can be anything).
pub(crate) fn url(base: &str, path: &str, query: &[(&str, &str)]) -> Result<Url, SourceFault> {
    let joined = format!("{}{path}", base.trim_end_matches('/'));
    let mut url = Url::parse(&joined).map_err(|e| SourceFault::Invalid {
        message: format!("the URL does not parse: {e}"),
    })?;
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(url)
}

/// An answer: its status and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// GETs `url` with `headers` within `timeout`. Any status is an answer; no
/// answer is a fault. The URL (which may hold a secret) never appears in it.
pub(crate) async fn get(
    client: &Client,
    url: Url,
    headers: &BTreeMap<String, Secret>,
    timeout: Duration,
) -> Result<Answer, SourceFault> {
    let mut request = client.get(url).timeout(timeout);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.expose());
    }
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            SourceFault::Timeout {
                timeout_ms: timeout.as_millis() as u64,
            }
        } else {
            SourceFault::Unreachable {
                message: chain(&e.without_url()),
            }
        }
    };
    let response = request.send().await.map_err(failed)?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(failed)?;
    Ok(Answer {
        status,
        body: body.to_vec(),
    })
}

impl Answer {
    /// A fault for an error status, with the server's own words.
    pub(crate) fn http_fault(&self) -> SourceFault {
        SourceFault::Http {
            status: self.status,
            message: excerpt(&self.body),
        }
    }

    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> Result<serde_json::Value, SourceFault> {
        serde_json::from_slice(&self.body).map_err(|e| SourceFault::Invalid {
            message: format!("the answer is not JSON ({e}): {}", excerpt(&self.body)),
        })
    }
}

/// The start of a body, as text.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MESSAGE_MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// An error and its causes, in one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A JSON number, or a string holding one (Prometheus writes its values as
/// strings, `"NaN"` included).
pub(crate) fn number(value: &serde_json::Value) -> Result<f64, SourceFault> {
    let n = match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_nan() => Err(SourceFault::NaN),
        Some(n) => Ok(n),
        None if value.is_null() => Err(SourceFault::Empty {
            detail: "the value is null".into(),
        }),
        None => Err(SourceFault::Invalid {
            message: format!("`{value}` is not a number"),
        }),
    }
}
