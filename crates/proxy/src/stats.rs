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
//! Readers (the engine, once or twice per analysis window) merge the shards. The
//! idle notification's lock is only taken when someone waits for idleness.
//!
//! A request is counted once, when its response headers arrive (5xx is an error
//! then). If the upstream's body then fails (connection reset, upstream crashed),
//! the same request becomes an error in the window where the failure happens,
//! unless it already was one: a request is never counted twice, and a window never
//! reports more errors than requests.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cutover_analysis::Sample;
use hdrhistogram::Histogram;

use crate::endpoint::{EndpointGuard, Gauge};

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
    in_flight: Gauge,
    /// Responses per status class since creation: 1xx, 2xx, 3xx, 4xx, 5xx.
    classes: [AtomicU64; 5],
    /// Whether a [`crate::Backend`] was ever built over these stats.
    routed: AtomicBool,
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

/// A small per-thread number, handed out round-robin to threads as they first ask;
/// spreads threads over shards (here and for the proxy's upstream connection pools).
pub(crate) fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i)
}

fn shard_index() -> usize {
    thread_index() % SHARDS
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard lock leaves plain counters behind, still usable.
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything a version had done when the snapshot was taken, since its stats
/// were created: requests, errors (5xx responses and failed bodies) and a merged
/// latency histogram.
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

    /// Errors recorded up to this snapshot: 5xx responses, and responses whose
    /// body failed after the headers.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// What happened between `earlier` and `self`: the requests, the errors, the
    /// p50/p95/p99 of the latencies recorded in between (`None` quantiles when
    /// nothing was) and the latencies themselves, in the analysis's buckets.
    ///
    /// A body that fails counts as an error in the window where it fails, though
    /// its request was counted in the window where its headers arrived. The errors
    /// are capped at the requests, so a window's error rate never exceeds 100%
    /// (e.g. a window without requests in which an older response's body failed).
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
    let mut buckets = cutover_analysis::Histogram::new();
    for value in latency.iter_recorded() {
        buckets.record(value.value_iterated_to(), value.count_at_value());
    }
    Sample {
        requests,
        errors: errors.min(requests),
        p50: quantile(0.50),
        p95: quantile(0.95),
        p99: quantile(0.99),
        latency: buckets,
        custom: Default::default(),
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

/// The latency histogram, for a histogram of its own (Prometheus' buckets).
impl Snapshot {
    /// Latencies recorded up to this snapshot (one per request).
    pub fn latency_count(&self) -> u64 {
        self.latency.len()
    }

    /// Latencies recorded up to this snapshot that were at most `bound`, within the
    /// histogram's precision: a cumulative bucket of a latency histogram.
    pub fn latency_at_most(&self, bound: Duration) -> u64 {
        let micros = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
        self.latency.count_between(0, micros)
    }

    /// Every latency recorded up to this snapshot, added up (each within the
    /// histogram's precision).
    pub fn latency_sum(&self) -> Duration {
        let micros = self
            .latency
            .iter_recorded()
            .map(|v| v.value_iterated_to() * v.count_at_value())
            .sum();
        Duration::from_micros(micros)
    }
}

impl VersionStats {
    /// Empty stats.
    pub fn new() -> Arc<VersionStats> {
        Arc::new(VersionStats {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            classes: Default::default(),
            in_flight: Gauge::default(),
            routed: AtomicBool::new(false),
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        })
    }

    /// Records one response: its status (5xx counts as an error) and its latency
    /// (to response headers).
    pub fn record(&self, status: u16, latency: Duration) {
        self.record_response(status, latency);
    }

    /// [`VersionStats::record`], returning where the record went, for a later
    /// [`VersionStats::record_body_error`].
    fn record_response(&self, status: u16, latency: Duration) -> Recorded {
        let is_error = is_error(status);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if is_error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(class) = usize::from(status / 100)
            .checked_sub(1)
            .and_then(|i| self.classes.get(i))
        {
            class.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_MICROS);

        let index = shard_index();
        let mut shard = lock(&self.shards[index]);
        shard.requests += 1;
        if is_error {
            shard.errors += 1;
        }
        // Auto-resizing, and `micros` is clamped above, so this cannot fail.
        // (`saturating_record` would clamp to the current size instead of growing.)
        let _ = shard.latency.record(micros);
        Recorded {
            shard: index,
            is_error,
        }
    }

    /// Turns an already recorded response whose body then failed into an error,
    /// unless it already was one. The error goes into the shard that holds the
    /// request, so no snapshot can see the error without its request.
    fn record_body_error(&self, recorded: Recorded) {
        if recorded.is_error {
            return;
        }
        self.errors.fetch_add(1, Ordering::Relaxed);
        lock(&self.shards[recorded.shard]).errors += 1;
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

    /// Requests and errors (5xx responses, and responses whose body failed) since
    /// creation.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }

    /// Responses since creation by the class of their status: 1xx, 2xx, 3xx, 4xx
    /// and 5xx (a body that fails later keeps the class of its status).
    pub fn status_classes(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.classes[i].load(Ordering::Relaxed))
    }

    /// Requests to this version whose response has not finished yet (body included).
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Waits until no request to this version is in flight, or `timeout` passes;
    /// returns true if idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        self.in_flight.wait_idle(timeout).await
    }

    /// Marks one request in flight, to the instance `endpoint` holds, until the
    /// returned guard is dropped.
    pub(crate) fn start(self: &Arc<Self>, endpoint: EndpointGuard) -> InFlight {
        self.in_flight.enter();
        InFlight {
            stats: Arc::clone(self),
            endpoint,
            recorded: None,
        }
    }

    /// True the first time it is called on these stats, false after: whether this
    /// is the first backend built over them.
    pub(crate) fn first_route(&self) -> bool {
        !self.routed.swap(true, Ordering::Relaxed)
    }
}

fn is_error(status: u16) -> bool {
    (500..600).contains(&status)
}

/// Where a response was recorded, and whether as an error.
#[derive(Debug, Clone, Copy)]
struct Recorded {
    shard: usize,
    is_error: bool,
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
    /// Ends the request on its instance too, after the version (fields drop in order).
    endpoint: EndpointGuard,
    /// Where its response was recorded, once it was.
    recorded: Option<Recorded>,
}

impl InFlight {
    /// Records this request's response (see [`VersionStats::record`]).
    pub(crate) fn record(&mut self, status: u16, latency: Duration) {
        debug_assert!(self.recorded.is_none(), "a response is recorded once");
        self.recorded = Some(self.stats.record_response(status, latency));
    }

    /// The instance the request went to.
    pub(crate) fn endpoint(&self) -> &Arc<crate::endpoint::Endpoint> {
        self.endpoint.endpoint()
    }

    /// Ends the request with a failed response body: an error, if its response was
    /// recorded and not already counted as one.
    pub(crate) fn body_failed(mut self) {
        if let Some(recorded) = self.recorded.take() {
            self.stats.record_body_error(recorded);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A request in flight to `stats`, on an instance of its own.
    fn in_flight(stats: &Arc<VersionStats>) -> InFlight {
        let endpoint = crate::endpoint::Endpoint::new("127.0.0.1:1".parse().unwrap());
        stats.start(endpoint.enter().expect("a fresh endpoint is not retired"))
    }

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
        // The latencies come along, bucketed for the analysis.
        assert_eq!(s.latency.count(), 100);
        about(s.latency.quantile(0.95), 95 * MS);
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
        let mut merged = first.latency.clone();
        merged.merge(&second.latency);
        assert_eq!(merged, both.latency);
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

    #[test]
    fn a_failed_body_makes_its_request_an_error_once() {
        let stats = VersionStats::new();
        let start = stats.snapshot();

        // A 200 whose body fails: one request, one error.
        let mut ok = in_flight(&stats);
        ok.record(200, 5 * MS);
        assert_eq!(stats.totals(), (1, 0));
        ok.body_failed();
        assert_eq!(stats.totals(), (1, 1));
        assert_eq!(stats.in_flight(), 0);

        // A 503 whose body fails was already an error: not counted twice.
        let mut failed = in_flight(&stats);
        failed.record(503, 5 * MS);
        failed.body_failed();
        assert_eq!(stats.totals(), (2, 2));

        // A body that ends normally adds nothing.
        let mut fine = in_flight(&stats);
        fine.record(200, 5 * MS);
        drop(fine);
        assert_eq!(stats.totals(), (3, 2));

        let s = stats.snapshot().since(&start);
        assert_eq!((s.requests, s.errors), (3, 2));
        about(s.p50, 5 * MS);
    }

    #[test]
    fn a_body_failing_in_a_later_window_never_exceeds_its_requests() {
        let stats = VersionStats::new();
        let start = stats.snapshot();
        let mut a = in_flight(&stats);
        a.record(200, MS);
        let mut b = in_flight(&stats);
        b.record(200, MS);
        let middle = stats.snapshot();
        // Both bodies fail in the next window, which has one request of its own.
        a.body_failed();
        b.body_failed();
        stats.record(200, MS);
        let end = stats.snapshot();

        let first = middle.since(&start);
        assert_eq!((first.requests, first.errors), (2, 0));
        let second = end.since(&middle);
        assert_eq!((second.requests, second.errors), (1, 1), "capped at 100%");
        let both = end.since(&start);
        assert_eq!((both.requests, both.errors), (3, 2));
        assert_eq!(stats.totals(), (3, 2));
        assert_eq!((end.requests(), end.errors()), (3, 2));

        // A window without requests reports no errors either.
        let mut c = in_flight(&stats);
        c.record(200, MS);
        let before = stats.snapshot();
        c.body_failed();
        let after = stats.snapshot();
        assert_eq!(after.since(&before), Sample::default());
        assert_eq!(after.errors(), 3);
    }

    #[test]
    fn an_unrecorded_request_whose_body_fails_counts_nothing() {
        let stats = VersionStats::new();
        in_flight(&stats).body_failed();
        assert_eq!(stats.totals(), (0, 0));
        assert_eq!(stats.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_idle_wakes_when_the_last_guard_drops() {
        let stats = VersionStats::new();
        assert!(stats.wait_idle(Duration::ZERO).await);
        let a = in_flight(&stats);
        let b = in_flight(&stats);
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

    #[test]
    fn responses_by_status_class_and_latency_buckets() {
        let stats = VersionStats::new();
        record_uniform(&stats);
        stats.record(101, MS);
        stats.record(302, MS);
        stats.record(99, MS);
        assert_eq!(stats.status_classes(), [1, 98, 1, 1, 1]);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.latency_count(), 103);
        // 1..=100 ms plus three at 1 ms; buckets within the histogram's 1%.
        assert_eq!(snapshot.latency_at_most(Duration::ZERO), 0);
        assert_eq!(snapshot.latency_at_most(10 * MS), 13);
        assert_eq!(snapshot.latency_at_most(50 * MS), 53);
        assert_eq!(snapshot.latency_at_most(Duration::from_secs(3600)), 103);
        let sum = snapshot.latency_sum().as_secs_f64();
        let exact = (5050.0 + 3.0) / 1000.0;
        assert!(
            (sum - exact).abs() <= exact * 0.01,
            "{sum} is not about {exact}"
        );
        assert_eq!(Snapshot::empty().latency_sum(), Duration::ZERO);
    }
}
