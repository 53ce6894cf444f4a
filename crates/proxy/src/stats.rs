//! Per-version measurements: totals, in-flight count, and cumulative latency
//! histograms the engine diffs into exact analysis windows.
//!
//! Nothing here knows about time windows: a [`VersionStats`] only accumulates, and
//! a reader takes a [`Snapshot`] at the start and at the end of each window and asks
//! the later one what happened [`since`](Snapshot::since) the earlier. Consecutive
//! windows that share their boundary snapshot are therefore exact, gap-free and
//! non-overlapping whatever their length: every record lands in exactly one of them.
//! Memory is constant per version (one histogram per shard), however long it serves.
//!
//! The request path never takes a lock shared by every thread: totals and the
//! in-flight count are atomics, and the cumulative counts and histograms are split
//! into a few shards, each behind its own `Mutex`, picked by a per-thread index.
//! Readers (the engine, once or twice per analysis window) merge the shards.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cutover_analysis::Sample;
use hdrhistogram::Histogram;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Number of shards. Threads are spread over them round-robin, so with a tokio
/// worker per core, concurrent recorders rarely meet on the same mutex.
const SHARDS: usize = 8;

/// Histogram precision: 2 significant figures (quantiles within 1%).
const SIGFIG: u8 = 2;
/// Latencies are recorded in microseconds, clamped to 1µs..=60s.
const MAX_MICROS: u64 = 60_000_000;

/// What one version's traffic looked like: totals since creation, requests in
/// flight, and cumulative latency histograms to take [`Snapshot`]s of.
pub struct VersionStats {
    requests: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicUsize,
    idle: Notify,
    shards: [Mutex<Shard>; SHARDS],
}

/// One shard's share of everything recorded since creation. Counts and histogram
/// change together under the shard's lock, so a snapshot sees both or neither.
struct Shard {
    requests: u64,
    errors: u64,
    /// Latency in microseconds.
    latency: Histogram<u64>,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            requests: 0,
            errors: 0,
            latency: new_histogram(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // Auto-resizing: starts small and grows with the largest latency seen (bounded
    // by the clamp in `record`), so a fast service's histograms stay a few KiB.
    Histogram::new(SIGFIG).expect("2 significant figures is a valid histogram precision")
}

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard lock leaves plain counters behind, still usable.
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything a version had done when the snapshot was taken, since its stats
/// were created: requests, 5xx responses and a merged latency histogram.
///
/// Cheap to clone (a few KiB). Diff two of them with [`Snapshot::since`].
#[derive(Clone)]
pub struct Snapshot {
    requests: u64,
    errors: u64,
    /// Latency in microseconds.
    latency: Histogram<u64>,
}

impl Snapshot {
    /// An empty snapshot (what a version had before it served anything).
    pub fn empty() -> Snapshot {
        Snapshot {
            requests: 0,
            errors: 0,
            latency: new_histogram(),
        }
    }

    /// Requests recorded up to this snapshot.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// 5xx responses recorded up to this snapshot.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// What happened between `earlier` and `self`: the requests, the 5xx responses
    /// and the p50/p95/p99 of the latencies recorded in between (`None` quantiles
    /// when nothing was).
    ///
    /// If `earlier` is not actually earlier (more requests or errors than `self`,
    /// or a histogram `self` does not contain, as with a snapshot of another
    /// version), it is treated as empty: the result is everything up to `self`.
    pub fn since(&self, earlier: &Snapshot) -> Sample {
        let diff = if earlier.requests <= self.requests && earlier.errors <= self.errors {
            let mut latency = self.latency.clone();
            // Fails (part-way, hence the clone) only if `earlier` holds values or
            // counts `self` does not.
            latency.subtract(&earlier.latency).ok().map(|()| {
                (
                    self.requests - earlier.requests,
                    self.errors - earlier.errors,
                    latency,
                )
            })
        } else {
            None
        };
        match &diff {
            Some((requests, errors, latency)) => sample(*requests, *errors, latency),
            None => sample(self.requests, self.errors, &self.latency),
        }
    }
}

fn sample(requests: u64, errors: u64, latency: &Histogram<u64>) -> Sample {
    let quantile =
        |q: f64| (!latency.is_empty()).then(|| Duration::from_micros(latency.value_at_quantile(q)));
    Sample {
        requests,
        errors,
        p50: quantile(0.50),
        p95: quantile(0.95),
        p99: quantile(0.99),
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot::empty()
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The histogram's thousands of counts would drown the rest.
        f.debug_struct("Snapshot")
            .field("requests", &self.requests)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl VersionStats {
    /// Empty stats.
    pub fn new() -> Arc<VersionStats> {
        Arc::new(VersionStats {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        })
    }

    /// Records one response: its status (5xx counts as an error) and its latency
    /// (to response headers).
    pub fn record(&self, status: u16, latency: Duration) {
        let is_error = (500..600).contains(&status);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if is_error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_MICROS);

        let mut shard = lock(&self.shards[shard_index()]);
        shard.requests += 1;
        if is_error {
            shard.errors += 1;
        }
        // Auto-resizing, and `micros` is clamped above, so this cannot fail.
        // (`saturating_record` would clamp to the current size instead of growing.)
        let _ = shard.latency.record(micros);
    }

    /// Everything recorded so far, the shards merged. Take one at each analysis
    /// window boundary and diff consecutive ones with [`Snapshot::since`].
    ///
    /// Shards are read one after the other, so a record made meanwhile may or may
    /// not be in this snapshot; if not, it is in the next one, never in both.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::empty();
        for shard in &self.shards {
            let shard = lock(shard);
            snapshot.requests += shard.requests;
            snapshot.errors += shard.errors;
            // Both histograms auto-resize, so adding cannot fail.
            let _ = snapshot.latency.add(&shard.latency);
        }
        snapshot
    }

    /// Requests and 5xx responses since creation.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }

    /// Requests to this version whose response has not finished yet (body included).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Waits until no request to this version is in flight, or `timeout` passes;
    /// returns true if idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Register before checking, so a guard dropped in between still wakes us.
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.in_flight() == 0;
            }
        }
    }

    /// Marks one request in flight until the returned guard is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            stats: Arc::clone(self),
        }
    }
}

impl fmt::Debug for VersionStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (requests, errors) = self.totals();
        f.debug_struct("VersionStats")
            .field("requests", &requests)
            .field("errors", &errors)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

/// One request in flight to a version; dropping it ends the request.
pub(crate) struct InFlight {
    stats: Arc<VersionStats>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.stats.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.stats.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Asserts `actual` is within 2% of `expected`.
    fn about(actual: Option<Duration>, expected: Duration) {
        let actual = actual.expect("a quantile");
        let (a, e) = (actual.as_secs_f64(), expected.as_secs_f64());
        assert!(
            (a - e).abs() <= e * 0.02,
            "{actual:?} is not about {expected:?}"
        );
    }

    /// 100 requests at 1..=100 ms: one 500 and a 404 (not an error).
    fn record_uniform(stats: &VersionStats) {
        for i in 1..=100u32 {
            let status = match i {
                1 => 500,
                2 => 404,
                _ => 200,
            };
            stats.record(status, i * MS);
        }
    }

    #[test]
    fn snapshots_around_records_count_exactly_those() {
        let stats = VersionStats::new();
        let before = stats.snapshot();
        record_uniform(&stats);
        let after = stats.snapshot();
        assert_eq!((after.requests(), after.errors()), (100, 1));

        let s = after.since(&before);
        assert_eq!((s.requests, s.errors), (100, 1));
        about(s.p50, 50 * MS);
        about(s.p95, 95 * MS);
        about(s.p99, 99 * MS);
        assert_eq!(stats.totals(), (100, 1));
    }

    #[test]
    fn consecutive_windows_do_not_overlap() {
        let stats = VersionStats::new();
        let start = stats.snapshot();
        // Window 1: 100 requests at 10ms, 10 of them 5xx.
        for i in 0..100 {
            stats.record(if i < 10 { 503 } else { 200 }, 10 * MS);
        }
        let middle = stats.snapshot();
        // Window 2: 100 requests at 1..=100ms, one 5xx.
        record_uniform(&stats);
        let end = stats.snapshot();

        let first = middle.since(&start);
        assert_eq!((first.requests, first.errors), (100, 10));
        about(first.p50, 10 * MS);
        about(first.p99, 10 * MS);

        let second = end.since(&middle);
        assert_eq!((second.requests, second.errors), (100, 1));
        about(second.p50, 50 * MS);
        about(second.p99, 99 * MS);

        // Together they are exactly the whole.
        let both = end.since(&start);
        assert_eq!((both.requests, both.errors), (200, 11));
        about(both.p50, 10 * MS);
        assert_eq!(both, end.since(&Snapshot::empty()));
        assert_eq!(stats.totals(), (200, 11));
    }

    #[test]
    fn empty_window_has_no_quantiles() {
        let stats = VersionStats::new();
        let fresh = stats.snapshot();
        assert_eq!(fresh.since(&Snapshot::empty()), Sample::default());
        assert_eq!(fresh.since(&fresh), Sample::default());

        stats.record(500, 3 * MS);
        let a = stats.snapshot();
        let b = stats.snapshot();
        assert_eq!(b.since(&a), Sample::default());
        let s = b.since(&fresh);
        assert_eq!((s.requests, s.errors), (1, 1));
        about(s.p50, 3 * MS);
    }

    #[test]
    fn a_later_earlier_snapshot_counts_as_empty() {
        let stats = VersionStats::new();
        stats.record(200, MS);
        let earlier = stats.snapshot();
        stats.record(500, 80 * MS);
        stats.record(200, 90 * MS);
        let later = stats.snapshot();

        // Swapped: more requests in `earlier` than in `self`.
        assert_eq!(earlier.since(&later), earlier.since(&Snapshot::empty()));
        let s = earlier.since(&later);
        assert_eq!((s.requests, s.errors), (1, 0));

        // Another version's snapshot with fewer requests, but latencies beyond
        // this one's histogram range, or in buckets this one does not have.
        let other = VersionStats::new();
        other.record(200, Duration::from_secs(30));
        let far = other.snapshot();
        assert_eq!(later.since(&far), later.since(&Snapshot::empty()));
        let other = VersionStats::new();
        other.record(200, 2 * MS);
        let near = other.snapshot();
        let s = later.since(&near);
        assert_eq!((s.requests, s.errors), (3, 1));
        about(s.p99, 90 * MS);
    }

    #[test]
    fn latencies_are_clamped() {
        let stats = VersionStats::new();
        stats.record(200, Duration::ZERO);
        stats.record(200, Duration::from_secs(3600));
        let s = stats.snapshot().since(&Snapshot::empty());
        assert_eq!(s.requests, 2);
        assert!(s.p50.unwrap() >= Duration::from_micros(1));
        assert!(s.p99.unwrap() <= Duration::from_secs(61));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn records_from_many_threads_are_merged_without_gaps() {
        let stats = VersionStats::new();
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let stats = Arc::clone(&stats);
                tokio::task::spawn_blocking(move || {
                    for i in 0..1000 {
                        stats.record(if i % 100 == 0 { 502 } else { 200 }, MS);
                    }
                })
            })
            .collect();
        // Meanwhile, windows back to back: together they must hold every record once.
        let reader = tokio::task::spawn_blocking({
            let stats = Arc::clone(&stats);
            move || {
                let mut windows = Vec::new();
                let mut last = Snapshot::empty();
                while last.requests() < 8000 {
                    let next = stats.snapshot();
                    windows.push(next.since(&last));
                    last = next;
                    std::thread::yield_now();
                }
                windows
            }
        });
        for w in writers {
            w.await.unwrap();
        }
        let windows = reader.await.unwrap();
        assert_eq!(stats.totals(), (8000, 80));
        let requests: u64 = windows.iter().map(|w| w.requests).sum();
        let errors: u64 = windows.iter().map(|w| w.errors).sum();
        assert_eq!((requests, errors), (8000, 80));
        let whole = stats.snapshot().since(&Snapshot::empty());
        assert_eq!((whole.requests, whole.errors), (8000, 80));
        about(whole.p99, MS);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_idle_wakes_when_the_last_guard_drops() {
        let stats = VersionStats::new();
        assert!(stats.wait_idle(Duration::ZERO).await);
        let a = stats.start();
        let b = stats.start();
        assert_eq!(stats.in_flight(), 2);
        assert!(!stats.wait_idle(Duration::from_secs(1)).await);
        let waiter = tokio::spawn({
            let stats = Arc::clone(&stats);
            async move { stats.wait_idle(Duration::from_secs(60)).await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        assert!(waiter.await.unwrap());
        assert_eq!(stats.in_flight(), 0);
    }
}
