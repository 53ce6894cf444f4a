//! Per-version measurements: totals, in-flight count, and a sliding window of
//! 1-second buckets with latency histograms.
//!
//! The request path never takes a lock shared by every thread: totals and the
//! in-flight count are atomics, and the per-second buckets are split into a few
//! shards, each behind its own `Mutex`, picked by a per-thread index. Readers
//! (the engine, a few times per analysis window) merge the shards.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cutover_analysis::Sample;
use hdrhistogram::Histogram;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How many 1-second buckets are kept: about ten minutes.
pub const WINDOW_CAPACITY_SECS: u64 = 600;

/// Number of bucket shards. Threads are spread over them round-robin, so with a
/// tokio worker per core, concurrent recorders rarely meet on the same mutex.
const SHARDS: usize = 8;

/// Histogram precision: 2 significant figures (quantiles within 1%).
const SIGFIG: u8 = 2;
/// Latencies are recorded in microseconds, clamped to 1µs..=60s.
const MAX_MICROS: u64 = 60_000_000;

/// What one version's traffic looked like: totals since creation, requests in
/// flight, and per-second buckets for the last [`WINDOW_CAPACITY_SECS`] seconds.
///
/// Time comes from [`tokio::time::Instant`], so tests may drive it with paused time.
pub struct VersionStats {
    epoch: Instant,
    requests: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicUsize,
    idle: Notify,
    shards: [Mutex<Shard>; SHARDS],
}

/// One shard's ring of per-second buckets, keyed by second number modulo the
/// capacity. Slots are allocated when first written.
#[derive(Default)]
struct Shard {
    ring: Vec<Bucket>,
}

#[derive(Default)]
struct Bucket {
    /// Second number (since the stats' epoch) this bucket holds; a slot whose
    /// second is not the one looked for is stale.
    second: u64,
    requests: u64,
    errors: u64,
    /// Latency in microseconds; allocated on first use and reused (reset) after.
    /// `u32` counts keep a slot at a few KiB (at most 4 billion equal values a second).
    latency: Option<Histogram<u32>>,
}

impl Bucket {
    fn reset(&mut self, second: u64) {
        self.second = second;
        self.requests = 0;
        self.errors = 0;
        if let Some(h) = &mut self.latency {
            h.reset();
        }
    }
}

fn new_histogram() -> Histogram<u32> {
    // Starts small and grows with the largest latency seen (bounded by the clamp
    // in `record`), so a fast service's buckets stay a few KiB each.
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

impl VersionStats {
    /// Empty stats whose clock starts now.
    pub fn new() -> Arc<VersionStats> {
        Arc::new(VersionStats {
            epoch: Instant::now(),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        })
    }

    fn current_second(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.epoch)
            .as_secs()
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
        let second = self.current_second();
        let slot = (second % WINDOW_CAPACITY_SECS) as usize;

        let mut shard = lock(&self.shards[shard_index()]);
        if shard.ring.is_empty() {
            shard
                .ring
                .resize_with(WINDOW_CAPACITY_SECS as usize, Bucket::default);
        }
        let bucket = &mut shard.ring[slot];
        if bucket.second != second || bucket.requests == 0 {
            bucket.reset(second);
        }
        bucket.requests += 1;
        if is_error {
            bucket.errors += 1;
        }
        // Auto-resizing, and `micros` is clamped above, so this cannot fail.
        // (`saturating_record` would clamp to the current size instead of growing.)
        let _ = bucket
            .latency
            .get_or_insert_with(new_histogram)
            .record(micros);
    }

    /// What happened in the last `window`, at 1-second resolution: the
    /// `ceil(window / 1s)` most recent 1-second buckets, the current partial second
    /// being the newest of them (so a window of 10s covers between 9 and 10 seconds
    /// of wall time). Windows longer than [`WINDOW_CAPACITY_SECS`] are cut to it; a
    /// zero window still covers the current second.
    pub fn sample(&self, window: Duration) -> Sample {
        let now = self.current_second();
        let secs = window
            .as_secs()
            .saturating_add(u64::from(window.subsec_nanos() > 0))
            .clamp(1, WINDOW_CAPACITY_SECS);
        let oldest = now.saturating_sub(secs - 1);

        let mut requests = 0;
        let mut errors = 0;
        let mut merged: Option<Histogram<u32>> = None;
        for shard in &self.shards {
            let shard = lock(shard);
            for bucket in &shard.ring {
                if bucket.requests == 0 || bucket.second < oldest || bucket.second > now {
                    continue;
                }
                requests += bucket.requests;
                errors += bucket.errors;
                if let Some(h) = &bucket.latency {
                    let into = merged.get_or_insert_with(new_histogram);
                    // Both histograms auto-resize, so adding cannot fail.
                    let _ = into.add(h);
                }
            }
        }

        let quantile = |q: f64| {
            merged
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| Duration::from_micros(h.value_at_quantile(q)))
        };
        Sample {
            requests,
            errors,
            p50: quantile(0.50),
            p95: quantile(0.95),
            p99: quantile(0.99),
        }
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

    #[tokio::test(start_paused = true)]
    async fn window_counts_only_recent_seconds() {
        let stats = VersionStats::new();
        // Second 0: 100 requests at 10ms, 10 of them 5xx.
        for i in 0..100 {
            stats.record(if i < 10 { 503 } else { 200 }, 10 * MS);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        // Second 5: 100 requests, 1..=100 ms, one 500 and a 404 (not an error).
        for i in 1..=100u32 {
            let status = match i {
                1 => 500,
                2 => 404,
                _ => 200,
            };
            stats.record(status, i * MS);
        }

        let recent = stats.sample(Duration::from_secs(3));
        assert_eq!((recent.requests, recent.errors), (100, 1));
        let p50 = recent.p50.unwrap();
        let p95 = recent.p95.unwrap();
        let p99 = recent.p99.unwrap();
        assert!(p50 >= 49 * MS && p50 <= 51 * MS, "p50 {p50:?}");
        assert!(p95 >= 94 * MS && p95 <= 96 * MS, "p95 {p95:?}");
        assert!(p99 >= 98 * MS && p99 <= 100 * MS, "p99 {p99:?}");

        // 6 buckets: seconds 0..=5.
        let both = stats.sample(Duration::from_secs(6));
        assert_eq!((both.requests, both.errors), (200, 11));
        let p50 = both.p50.unwrap();
        assert!(p50 >= 9 * MS && p50 <= 11 * MS, "p50 {p50:?}");
        // 5 buckets: seconds 1..=5, the first second excluded.
        assert_eq!(stats.sample(Duration::from_secs(5)).requests, 100);
        // A fractional window rounds up to whole buckets.
        assert_eq!(stats.sample(Duration::from_millis(5_500)).requests, 200);

        assert_eq!(stats.totals(), (200, 11));
    }

    #[tokio::test(start_paused = true)]
    async fn empty_window_has_no_quantiles() {
        let stats = VersionStats::new();
        let s = stats.sample(Duration::from_secs(30));
        assert_eq!(s, Sample::default());
        stats.record(200, 3 * MS);
        tokio::time::advance(Duration::from_secs(31)).await;
        let s = stats.sample(Duration::from_secs(30));
        assert_eq!((s.requests, s.p50), (0, None));
        assert_eq!(stats.totals(), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn ring_slots_are_reused_and_stale_ones_skipped() {
        let stats = VersionStats::new();
        stats.record(200, MS);
        stats.record(500, MS);
        // Exactly one ring later: the same slot, which must be reset on write.
        tokio::time::advance(Duration::from_secs(WINDOW_CAPACITY_SECS)).await;
        let s = stats.sample(Duration::from_secs(WINDOW_CAPACITY_SECS));
        assert_eq!(s.requests, 0, "a bucket from a full ring ago is stale");
        stats.record(200, 7 * MS);
        let s = stats.sample(Duration::from_secs(1));
        assert_eq!((s.requests, s.errors), (1, 0));
        let p99 = s.p99.unwrap();
        assert!(p99 >= 6 * MS && p99 <= 8 * MS, "p99 {p99:?}");
        // Longer windows than the ring are cut to it.
        assert_eq!(stats.sample(Duration::from_secs(3600)).requests, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn latencies_are_clamped() {
        let stats = VersionStats::new();
        stats.record(200, Duration::ZERO);
        stats.record(200, Duration::from_secs(3600));
        let s = stats.sample(Duration::from_secs(1));
        assert_eq!(s.requests, 2);
        assert!(s.p99.unwrap() <= Duration::from_secs(61));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn records_from_many_threads_are_merged() {
        let stats = VersionStats::new();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let stats = Arc::clone(&stats);
                tokio::task::spawn_blocking(move || {
                    for _ in 0..1000 {
                        stats.record(200, MS);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(stats.totals(), (8000, 0));
        // Real time: the records may straddle a second boundary, so look back 10s.
        assert_eq!(stats.sample(Duration::from_secs(10)).requests, 8000);
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
