//! A latency distribution small enough to keep with every analysis window: counts
//! in log-linear buckets over microseconds, only the non-empty ones.
//!
//! Values below [`SUB_BUCKETS`] µs have a bucket each; above, every power of two
//! is cut into [`SUB_BUCKETS`] equal buckets, so a bucket is at most 1/32 (3.1%)
//! of its values wide and its midpoint is within 1.6% of any of them. A window's
//! latencies usually span five or six powers of two: under 200 buckets, a few KiB
//! of JSON, whatever the traffic. Histograms of the same version merge exactly
//! (bucket by bucket), which is what a step's or a run's distribution is.
//!
//! The engine builds them from the proxy's hdrhistograms (or another source's
//! buckets); the tests here and the statistics read them through
//! [`Histogram::quantile`], [`Histogram::count_from`] and
//! [`Histogram::values`] (or [`Histogram::values_ms`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Buckets per power of two, and the values below which every microsecond has a
/// bucket of its own.
pub const SUB_BUCKETS: u64 = 32;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();

/// Latency counts by bucket. See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<(u32, u64)>", into = "Vec<(u32, u64)>")]
pub struct Histogram {
    /// `(bucket index, count)`, ascending by index, no zero counts.
    buckets: Vec<(u32, u64)>,
}

/// The bucket a value in microseconds falls in.
pub fn bucket_of(micros: u64) -> u32 {
    if micros < SUB_BUCKETS {
        return micros as u32;
    }
    let octave = 63 - micros.leading_zeros(); // >= SUB_BITS
    let shift = octave - SUB_BITS;
    let sub = (micros >> shift) & (SUB_BUCKETS - 1);
    (SUB_BUCKETS + u64::from(shift) * SUB_BUCKETS + sub) as u32
}

/// The smallest value (µs) in a bucket, and the bucket's width.
fn bounds(bucket: u32) -> (u64, u64) {
    let bucket = u64::from(bucket);
    if bucket < SUB_BUCKETS {
        return (bucket, 1);
    }
    let shift = (bucket - SUB_BUCKETS) / SUB_BUCKETS;
    let sub = (bucket - SUB_BUCKETS) % SUB_BUCKETS;
    ((SUB_BUCKETS + sub) << shift, 1 << shift)
}

/// The value a bucket stands for: its midpoint, in microseconds.
pub fn representative(bucket: u32) -> f64 {
    let (low, width) = bounds(bucket);
    low as f64 + (width - 1) as f64 / 2.0
}

/// The last bucket: the one of `u64::MAX` µs.
pub const MAX_BUCKET: u32 =
    (SUB_BUCKETS + (63 - SUB_BITS as u64) * SUB_BUCKETS + SUB_BUCKETS - 1) as u32;

impl TryFrom<Vec<(u32, u64)>> for Histogram {
    type Error = String;

    /// Any pairs, in any order: repeated buckets add up, zero counts drop out.
    fn try_from(pairs: Vec<(u32, u64)>) -> Result<Histogram, String> {
        let mut histogram = Histogram::new();
        for (bucket, count) in pairs {
            if bucket > MAX_BUCKET {
                return Err(format!(
                    "histogram bucket {bucket} does not exist (buckets go from 0 to {MAX_BUCKET})"
                ));
            }
            histogram.add(bucket, count);
        }
        Ok(histogram)
    }
}

impl From<Histogram> for Vec<(u32, u64)> {
    fn from(histogram: Histogram) -> Vec<(u32, u64)> {
        histogram.buckets
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Counts `count` values of `micros` microseconds.
    pub fn record(&mut self, micros: u64, count: u64) {
        self.add(bucket_of(micros), count);
    }

    /// Counts a duration (saturating at `u64::MAX` µs).
    pub fn record_duration(&mut self, latency: Duration) {
        self.record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX), 1);
    }

    fn add(&mut self, bucket: u32, count: u64) {
        if count == 0 {
            return;
        }
        match self.buckets.binary_search_by_key(&bucket, |&(b, _)| b) {
            Ok(i) => self.buckets[i].1 += count,
            Err(i) => self.buckets.insert(i, (bucket, count)),
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for &(bucket, count) in &other.buckets {
            self.add(bucket, count);
        }
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|&(_, c)| c).sum()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The `q`-quantile (0..=1) as its bucket's midpoint: the smallest value with
    /// at least `q` of the counts at or below it. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        self.quantile_bucket(q)
            .map(|b| Duration::from_nanos((representative(b) * 1000.0) as u64))
    }

    /// The bucket of the `q`-quantile; `None` when empty.
    pub fn quantile_bucket(&self, q: f64) -> Option<u32> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        self.buckets.iter().find_map(|&(bucket, count)| {
            seen += count;
            (seen >= rank).then_some(bucket)
        })
    }

    /// Values counted in `bucket` or above it.
    pub fn count_from(&self, bucket: u32) -> u64 {
        self.buckets
            .iter()
            .filter(|&&(b, _)| b >= bucket)
            .map(|&(_, c)| c)
            .sum()
    }

    /// Each non-empty bucket's midpoint (µs) and count, ascending.
    pub fn values(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.buckets
            .iter()
            .map(|&(bucket, count)| (representative(bucket), count))
    }

    /// Each non-empty bucket's midpoint in milliseconds and count, ascending: what
    /// the rank tests read ([`crate::mann_whitney::mann_whitney_histograms`]).
    pub fn values_ms(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.values()
            .map(|(micros, count)| (micros / 1000.0, count))
    }

    /// Every value times `factor` (> 0), each bucket's midpoint scaled and counted
    /// again in the bucket it falls in: "the same requests, `factor` times as
    /// slow", within a bucket's width.
    pub fn scaled(&self, factor: f64) -> Histogram {
        let mut out = Histogram::new();
        for (micros, count) in self.values() {
            out.record((micros * factor).round() as u64, count);
        }
        out
    }

    /// Every value as its bucket's midpoint in milliseconds, ascending, repeated
    /// by its count: a sample for the slice form of the rank tests, one `f64` per
    /// value (the histogram form reads [`Histogram::values_ms`] instead).
    pub fn expand_ms(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(usize::try_from(self.count()).unwrap_or(0));
        for (ms, count) in self.values_ms() {
            out.extend(std::iter::repeat_n(ms, count as usize));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_values_have_a_bucket_each_and_large_ones_share_by_power_of_two() {
        for v in 0..SUB_BUCKETS {
            assert_eq!(bounds(bucket_of(v)), (v, 1));
        }
        assert_eq!(bounds(bucket_of(32)), (32, 1));
        assert_eq!(bounds(bucket_of(64)), (64, 2));
        assert_eq!(bounds(bucket_of(65)), (64, 2));
        assert_eq!(bounds(bucket_of(1_000_000)), (999_424, 16_384));
        assert_eq!(bucket_of(u64::MAX), MAX_BUCKET);
        assert_eq!(bounds(MAX_BUCKET), (63 << 58, 1 << 58));
    }

    proptest! {
        #[test]
        fn a_value_lies_in_its_bucket_and_its_midpoint_is_close(v in 0u64..(1 << 40)) {
            let (low, width) = bounds(bucket_of(v));
            prop_assert!(low <= v && v < low + width);
            let mid = representative(bucket_of(v));
            prop_assert!((mid - v as f64).abs() <= (v as f64 / 60.0).max(0.5));
        }

        #[test]
        fn buckets_are_ordered_like_their_values(a in 0u64..(1 << 40), b in 0u64..(1 << 40)) {
            if a <= b {
                prop_assert!(bucket_of(a) <= bucket_of(b));
            }
        }

        #[test]
        fn merging_is_recording_both(xs in proptest::collection::vec(0u64..10_000_000, 0..200),
                                    ys in proptest::collection::vec(0u64..10_000_000, 0..200)) {
            let mut a = Histogram::new();
            xs.iter().for_each(|&x| a.record(x, 1));
            let mut b = Histogram::new();
            ys.iter().for_each(|&y| b.record(y, 1));
            let mut both = Histogram::new();
            xs.iter().chain(&ys).for_each(|&v| both.record(v, 1));
            a.merge(&b);
            prop_assert_eq!(&a, &both);
            prop_assert_eq!(a.count(), (xs.len() + ys.len()) as u64);
        }
    }

    #[test]
    fn quantiles_walk_the_counts() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), None);
        h.record(10, 90);
        h.record(20, 9);
        h.record(30, 1);
        assert_eq!(h.quantile(0.5), Some(Duration::from_micros(10)));
        assert_eq!(h.quantile(0.90), Some(Duration::from_micros(10)));
        assert_eq!(h.quantile(0.95), Some(Duration::from_micros(20)));
        assert_eq!(h.quantile(1.0), Some(Duration::from_micros(30)));
        assert_eq!(h.quantile(0.0), Some(Duration::from_micros(10)));
        assert_eq!(h.count_from(bucket_of(20)), 10);
        assert_eq!(h.count_from(bucket_of(31)), 0);
        assert_eq!(h.expand_ms().len(), 100);
    }

    #[test]
    fn scaling_moves_every_value_by_the_factor() {
        let mut h = Histogram::new();
        h.record(1_000, 90);
        h.record(10_000, 10);
        let slower = h.scaled(1.5);
        assert_eq!(slower.count(), 100);
        let q = |h: &Histogram, q| h.quantile(q).unwrap().as_secs_f64() * 1000.0;
        assert!((q(&slower, 0.5) / q(&h, 0.5) - 1.5).abs() < 0.04);
        assert!((q(&slower, 0.99) / q(&h, 0.99) - 1.5).abs() < 0.04);
    }

    #[test]
    fn it_serializes_as_pairs() {
        let mut h = Histogram::new();
        h.record(5, 2);
        h.record(100, 1);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("[[5,2],[{},1]]", bucket_of(100)));
        assert_eq!(serde_json::from_str::<Histogram>(&json).unwrap(), h);
        let messy: Histogram = serde_json::from_str("[[7,1],[5,0],[7,2],[3,1]]").unwrap();
        assert_eq!(serde_json::to_string(&messy).unwrap(), "[[3,1],[7,3]]");
        assert!(serde_json::from_str::<Histogram>("[[4000000000,1]]").is_err());
    }
}
