//! The effect sizes of a Mann-Whitney test, on two samples of runs (sorted
//! `(value, count)`, as [`super`] ranks them): the medians and their ratio, the
//! probability of superiority from `U`, and the Hodges-Lehmann shift, each in
//! time linear in the runs, so a histogram's effect costs its buckets, not its
//! requests.

use super::{Effect, size};

/// The effect sizes of two non-empty samples of runs, the canary's `U` given.
pub(super) fn of(canary: &[(f64, u64)], baseline: &[(f64, u64)], u: f64) -> Effect {
    let median_canary = median(canary);
    let median_baseline = median(baseline);
    let pairs = u128::from(size(canary)) * u128::from(size(baseline));
    Effect {
        median_canary,
        median_baseline,
        median_ratio: (median_baseline != 0.0).then(|| median_canary / median_baseline),
        hodges_lehmann: hodges_lehmann(canary, baseline),
        probability_of_superiority: u / pairs as f64,
    }
}

/// The median of a non-empty sample of runs: the middle value, or the mean of
/// the two middle ones.
fn median(runs: &[(f64, u64)]) -> f64 {
    let n = size(runs);
    if n % 2 == 1 {
        nth(runs, n / 2)
    } else {
        (nth(runs, n / 2 - 1) + nth(runs, n / 2)) / 2.0
    }
}

/// The `k`-th value (0-based, `k` below the sample's size) of a sample of runs.
fn nth(runs: &[(f64, u64)], k: u64) -> f64 {
    let mut seen = 0;
    for &(value, count) in runs {
        seen += count;
        if k < seen {
            return value;
        }
    }
    unreachable!("the {k}-th value of a sample of {seen}")
}

/// The median of all `c[i] - b[j]` over two samples of runs, without forming the
/// `n1 n2` differences: each order statistic is found by bisecting on the bits of
/// the threshold, counting the differences at or below it in time linear in the
/// runs (buckets, for histograms).
fn hodges_lehmann(c: &[(f64, u64)], b: &[(f64, u64)]) -> f64 {
    let pairs = u128::from(size(c)) * u128::from(size(b));
    let upper = kth_difference(c, b, pairs / 2 + 1);
    if pairs % 2 == 1 {
        upper
    } else {
        (kth_difference(c, b, pairs / 2) + upper) / 2.0
    }
}

/// The `k`-th smallest (1-based) of the differences `c[i] - b[j]` as computed in
/// `f64`: the least threshold with at least `k` differences at or below it.
fn kth_difference(c: &[(f64, u64)], b: &[(f64, u64)], k: u128) -> f64 {
    let at_or_below = |d: f64| -> u128 {
        // For each c[i] ascending, the b[j] with c[i] - b[j] <= d are a suffix of b
        // that only shrinks; `rest` values are in it.
        let mut j = 0;
        let mut rest = size(b);
        let mut count = 0;
        for &(ci, n) in c {
            while j < b.len() && ci - b[j].0 > d {
                rest -= b[j].1;
                j += 1;
            }
            count += u128::from(n) * u128::from(rest);
        }
        count
    };
    let mut lo = ordered_key(c[0].0 - b[b.len() - 1].0); // the smallest difference
    let mut hi = ordered_key(c[c.len() - 1].0 - b[0].0); // the largest
    // Invariant: fewer than k at or below `lo - 1`, at least k at or below `hi`.
    while lo < hi {
        let mid = (i128::from(lo) + i128::from(hi)).div_euclid(2) as i64;
        if at_or_below(from_ordered_key(mid)) >= k {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    from_ordered_key(lo)
}

/// Maps finite floats to integers in the same order, so bisection on the integer
/// takes at most 64 steps whatever the range.
fn ordered_key(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    if bits < 0 { i64::MIN - bits } else { bits }
}

fn from_ordered_key(k: i64) -> f64 {
    let bits = if k < 0 { i64::MIN - k } else { k };
    f64::from_bits(bits as u64)
}
