//! Open-loop load at a fixed rate: request `i` is sent at `start + i / rate`
//! whether or not the earlier ones were answered, so a stall in the proxy shows
//! up as requests without answer (or late ones), never as a lower rate. Requests
//! go round-robin over a few clients, each keeping one keep-alive connection, so
//! the proxy sees a small, steady pool of connections.
//!
//! Every request is recorded (when sent, when done, what came back) on one clock
//! shared with the scenario, so the scenario can line its own actions (a promote,
//! a SIGKILL) up with what the clients saw.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Clients, one keep-alive connection each (while the requests on it do not overlap).
const CLIENTS: usize = 8;

/// A request with no answer by then counts as one without answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What one request got.
#[derive(Debug, Clone)]
pub enum Answer {
    /// An HTTP answer, with the version that served it (`x-cutover-version`),
    /// and for a non-2xx the first line of its body.
    Http {
        status: u16,
        version: Option<String>,
        said: Option<String>,
    },
    /// No answer: refused, reset, closed before the answer, or timed out.
    None { error: ErrorKind },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    Connect,
    Timeout,
    /// The connection broke after the request was sent (reset, closed early), or
    /// while the body was read.
    Broken,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Broken => "broken connection",
        }
    }
}

/// One request: sent and done, as time since the scenario's clock started.
#[derive(Debug, Clone)]
pub struct Record {
    pub sent: Duration,
    pub done: Duration,
    pub answer: Answer,
}

impl Record {
    pub fn ok(&self) -> bool {
        matches!(self.answer, Answer::Http { status, .. } if (200..300).contains(&status))
    }

    pub fn version(&self) -> Option<&str> {
        match &self.answer {
            Answer::Http { version, .. } => version.as_deref(),
            Answer::None { .. } => None,
        }
    }
}

/// A running load; [`Load::stop`] ends it and hands back every record.
pub struct Load {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    records: Arc<Mutex<Vec<Record>>>,
}

impl Load {
    /// Sends `rate` requests per second to `GET http://{proxy}/` until stopped,
    /// or until `limit` has passed (then it stops sending by itself), timed on
    /// `clock`.
    pub fn start(proxy: &str, rate: u32, limit: Duration, clock: Instant) -> anyhow::Result<Load> {
        let clients = (0..CLIENTS)
            .map(|_| {
                reqwest::Client::builder()
                    .no_proxy()
                    .http1_only()
                    .pool_max_idle_per_host(1)
                    .connect_timeout(REQUEST_TIMEOUT)
                    .timeout(REQUEST_TIMEOUT)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let url = format!("http://{proxy}/");
        let records = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = watch::channel(false);
        let max = u64::from(rate) * limit.as_secs().max(1);
        let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let shared = records.clone();
        let task = tokio::spawn(async move {
            let mut in_flight = JoinSet::new();
            // Burst (the default): a tick missed while the CPU was busy is sent late,
            // not skipped, so the count over the run stays rate × time.
            let mut tick = tokio::time::interval(period);
            for i in 0..max {
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => break,
                    _ = tick.tick() => {}
                }
                let client = clients[i as usize % CLIENTS].clone();
                let url = url.clone();
                let records = shared.clone();
                in_flight.spawn(async move {
                    let record = one(&client, &url, clock).await;
                    records
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(record);
                });
                // Reap finished ones as we go, so the set stays small.
                while in_flight.try_join_next().is_some() {}
            }
            // Each has its timeout: this ends within REQUEST_TIMEOUT.
            while in_flight.join_next().await.is_some() {}
        });
        Ok(Load {
            stop,
            task,
            records,
        })
    }

    /// Stops sending, waits for the requests in flight, and returns every record
    /// in the order the requests were sent.
    pub async fn stop(self) -> Vec<Record> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let mut records =
            std::mem::take(&mut *self.records.lock().unwrap_or_else(|p| p.into_inner()));
        records.sort_by_key(|r| r.sent);
        records
    }
}

async fn one(client: &reqwest::Client, url: &str, clock: Instant) -> Record {
    let sent = clock.elapsed();
    let answer = match client.get(url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let version = response
                .headers()
                .get("x-cutover-version")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // Read to the end, or the connection cannot be reused.
            match response.bytes().await {
                Ok(body) => Answer::Http {
                    status,
                    version,
                    said: (!(200..300).contains(&status)).then(|| first_line(&body)),
                },
                Err(e) => Answer::None { error: kind(&e) },
            }
        }
        Err(e) => Answer::None { error: kind(&e) },
    };
    Record {
        sent,
        done: clock.elapsed(),
        answer,
    }
}

fn first_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect()
}

fn kind(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Broken
    }
}

/// Every record as CSV (`sent_ms,done_ms,status,version,error`), for a closer look.
pub fn write_csv(path: &std::path::Path, records: &[Record]) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let mut out = String::from("sent_ms,done_ms,status,version,error\n");
    for r in records {
        let (status, version, error) = match &r.answer {
            Answer::Http {
                status, version, ..
            } => (status.to_string(), version.clone().unwrap_or_default(), ""),
            Answer::None { error } => (String::new(), String::new(), error.as_str()),
        };
        let _ = writeln!(
            out,
            "{:.3},{:.3},{status},{version},{error}",
            r.sent.as_secs_f64() * 1000.0,
            r.done.as_secs_f64() * 1000.0
        );
    }
    std::fs::write(path, out)
}

/// What the clients saw, counted.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub sent: usize,
    pub ok: usize,
    pub non_2xx: usize,
    /// Non-2xx answers by status and what they said.
    pub non_2xx_kinds: Vec<(u16, String, usize)>,
    /// No answer, by kind.
    pub no_answer: Vec<(ErrorKind, usize)>,
    /// Of the answered requests, in ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From the first request sent to the last.
    pub span: Duration,
}

impl Counts {
    pub fn of(records: &[Record]) -> Counts {
        let mut c = Counts {
            sent: records.len(),
            ..Counts::default()
        };
        let mut latencies = Vec::new();
        for r in records {
            match &r.answer {
                Answer::Http { status, said, .. } => {
                    if (200..300).contains(status) {
                        c.ok += 1;
                    } else {
                        c.non_2xx += 1;
                        let said = said.clone().unwrap_or_default();
                        match c
                            .non_2xx_kinds
                            .iter_mut()
                            .find(|(s, w, _)| s == status && *w == said)
                        {
                            Some((_, _, n)) => *n += 1,
                            None => c.non_2xx_kinds.push((*status, said, 1)),
                        }
                    }
                    latencies.push((r.done - r.sent).as_secs_f64() * 1000.0);
                }
                Answer::None { error } => match c.no_answer.iter_mut().find(|(k, _)| k == error) {
                    Some((_, n)) => *n += 1,
                    None => c.no_answer.push((*error, 1)),
                },
            }
        }
        c.no_answer.sort();
        latencies.sort_by(f64::total_cmp);
        c.p50_ms = quantile(&latencies, 0.50);
        c.p99_ms = quantile(&latencies, 0.99);
        c.max_ms = latencies.last().copied().unwrap_or(0.0);
        if let (Some(first), Some(last)) = (records.first(), records.last()) {
            c.span = last.sent - first.sent;
        }
        c
    }

    pub fn without_answer(&self) -> usize {
        self.no_answer.iter().map(|(_, n)| n).sum()
    }

    /// `0`, or `3 (connect: 2, timeout: 1)`.
    pub fn without_answer_text(&self) -> String {
        if self.no_answer.is_empty() {
            return "0".into();
        }
        let kinds: Vec<String> = self
            .no_answer
            .iter()
            .map(|(k, n)| format!("{}: {n}", k.as_str()))
            .collect();
        format!("{} ({})", self.without_answer(), kinds.join(", "))
    }

    /// `0`, or `2 (503 "cutover: no version of this app is serving yet": 2)`.
    pub fn non_2xx_text(&self) -> String {
        if self.non_2xx_kinds.is_empty() {
            return self.non_2xx.to_string();
        }
        let kinds: Vec<String> = self
            .non_2xx_kinds
            .iter()
            .map(|(status, said, n)| format!("{status} {said:?}: {n}"))
            .collect();
        format!("{} ({})", self.non_2xx, kinds.join(", "))
    }

    pub fn rate(&self) -> f64 {
        let s = self.span.as_secs_f64();
        if s > 0.0 {
            (self.sent.saturating_sub(1)) as f64 / s
        } else {
            0.0
        }
    }
}

/// Nearest-rank quantile of sorted values; 0 for none.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
