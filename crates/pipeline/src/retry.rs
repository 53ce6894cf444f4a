//! Retrying a request: a bounded number of attempts, each with a timeout, with
//! exponential backoff between them, all within a bounded total time.
//! A connection error, a timeout, 408, 429 and 5xx are worth another attempt; any
//! other answer is final.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// How hard a notification is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Attempts per request, the first included (at least 1).
    pub attempts: u32,
    /// The wait after the first failed attempt; it doubles after each next one.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// How long one attempt may take (connect, send, answer).
    pub attempt_timeout: Duration,
    /// How long one request may take with all its attempts and waits.
    pub total: Duration,
}

impl Default for DeliveryPolicy {
    /// 5 attempts, 1 s then 2, 4 and 8 s apart (at most 30 s), 10 s each, 2 minutes in
    /// all.
    fn default() -> Self {
        DeliveryPolicy {
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
            total: Duration::from_secs(120),
        }
    }
}

/// One try of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The HTTP status answered, if any.
    pub status: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// Why an attempt did not succeed, and whether another may.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub status: Option<u16>,
    pub error: String,
    pub retryable: bool,
}

impl Failure {
    pub(crate) fn from_request(err: reqwest::Error) -> Failure {
        let what = if err.is_timeout() {
            "timed out".to_owned()
        } else if err.is_connect() {
            format!("cannot connect: {}", error_chain(&err))
        } else {
            error_chain(&err)
        };
        Failure {
            status: err.status().map(|s| s.as_u16()),
            error: what,
            retryable: true,
        }
    }

    pub(crate) fn from_status(status: u16, error: String) -> Failure {
        Failure {
            status: Some(status),
            error,
            retryable: matches!(status, 408 | 429 | 500..=599),
        }
    }
}

pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

/// Make one request with `policy`'s retries, telling `on_attempt` of each attempt as
/// it ends; the value of the first that succeeds, or the last error.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &DeliveryPolicy,
    on_attempt: impl Fn(Attempt),
    mut call: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(u16, T), Failure>>,
{
    let deadline = Instant::now() + policy.total;
    let mut backoff = policy.first_backoff;
    let mut tries = 0;
    loop {
        tries += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let failure = match tokio::time::timeout(policy.attempt_timeout.min(left), call()).await {
            Ok(Ok((status, value))) => {
                on_attempt(Attempt {
                    status: Some(status),
                    error: None,
                });
                return Ok(value);
            }
            Ok(Err(failure)) => failure,
            Err(_elapsed) => Failure {
                status: None,
                error: "timed out".to_owned(),
                retryable: true,
            },
        };
        on_attempt(Attempt {
            status: failure.status,
            error: Some(failure.error.clone()),
        });
        if !failure.retryable {
            return Err(failure.error);
        }
        if tries >= policy.attempts.max(1) {
            return Err(format!("{} (after {tries} attempts)", failure.error));
        }
        if Instant::now() + backoff >= deadline {
            return Err(format!(
                "{} (after {tries} attempts, out of the {} allowed)",
                failure.error,
                humantime::format_duration(policy.total)
            ));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn unavailable() -> Failure {
        Failure::from_status(503, "answered 503".into())
    }

    /// The times (from the start, in paused time) at which each attempt began.
    async fn attempt_times(policy: DeliveryPolicy) -> (Vec<Duration>, Result<(), String>, usize) {
        let start = Instant::now();
        let times = Mutex::new(Vec::new());
        let recorded = Mutex::new(0);
        let result = with_retries(
            &policy,
            |_| *recorded.lock().unwrap() += 1,
            || {
                times.lock().unwrap().push(start.elapsed());
                async { Err::<(u16, ()), _>(unavailable()) }
            },
        )
        .await;
        let recorded = *recorded.lock().unwrap();
        (times.into_inner().unwrap(), result, recorded)
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_its_limit_and_attempts_are_bounded() {
        let policy = DeliveryPolicy {
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(10),
            total: Duration::from_secs(600),
        };
        let (times, result, recorded) = attempt_times(policy).await;
        let secs: Vec<u64> = times.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 1, 3, 6, 9]);
        assert_eq!(recorded, 5);
        assert_eq!(result, Err("answered 503 (after 5 attempts)".to_owned()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_total_time_bounds_the_attempts() {
        let policy = DeliveryPolicy {
            attempts: 100,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(10),
            total: Duration::from_secs(10),
        };
        let (times, result, _) = attempt_times(policy).await;
        let secs: Vec<u64> = times.iter().map(Duration::as_secs).collect();
        // 0, then 1, 2 and 4 s apart; the next wait (8 s) would end past 10 s.
        assert_eq!(secs, [0, 1, 3, 7]);
        assert_eq!(
            result,
            Err("answered 503 (after 4 attempts, out of the 10s allowed)".to_owned())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_is_cut_at_its_timeout_and_retried() {
        let policy = DeliveryPolicy {
            attempts: 2,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(5),
            total: Duration::from_secs(60),
        };
        let attempts = Mutex::new(Vec::new());
        let result: Result<(), String> = with_retries(
            &policy,
            |a| attempts.lock().unwrap().push(a),
            std::future::pending,
        )
        .await;
        assert_eq!(result, Err("timed out (after 2 attempts)".to_owned()));
        let attempts = attempts.into_inner().unwrap();
        assert_eq!(attempts.len(), 2);
        assert!(
            attempts
                .iter()
                .all(|a| a.status.is_none() && a.error.as_deref() == Some("timed out"))
        );
    }

    #[test]
    fn only_transient_answers_are_retried() {
        for status in [408, 429, 500, 502, 503] {
            assert!(
                Failure::from_status(status, String::new()).retryable,
                "{status}"
            );
        }
        for status in [301, 400, 401, 403, 404, 422] {
            assert!(
                !Failure::from_status(status, String::new()).retryable,
                "{status}"
            );
        }
    }
}
