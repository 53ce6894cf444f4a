//! The Mann-Whitney U test (Wilcoxon rank-sum test) of a canary's sample against a
//! baseline's, with the effect sizes a verdict needs next to its p-value.
//!
//! It answers "does the canary tend to produce larger (or smaller) values than the
//! baseline?" without assuming a distribution, which suits latencies and other
//! heavy-tailed metrics; Kayenta judges each canary metric with it. The statistic is
//! the canary's `U = R - n(n+1)/2` (`R` the sum of its ranks in the pooled sample,
//! ties given their mean rank), that is the number of (canary, baseline) pairs in
//! which the canary is larger, a tie counting one half.
//!
//! The p-value comes from the exact null distribution of `U` when both samples are
//! small and untied (the counts of rank arrangements are the coefficients of the
//! Gaussian binomial coefficient, Mann and Whitney 1947), and otherwise from the
//! normal approximation with the tie-corrected variance
//! `n1 n2 / 12 * ((N + 1) - sum(t^3 - t) / (N (N - 1)))` and a continuity correction
//! of one half. Both follow `scipy.stats.mannwhitneyu` (statistic, p-values and
//! conventions), against which the tests check them.
//!
//! The samples are slices of finite `f64` ([`mann_whitney`]) or latency
//! histograms ([`mann_whitney_histograms`]). Both are ranked the same way, as
//! runs of equal values merged in ascending order: a histogram's bucket is one
//! such run, every value at its midpoint, so the test of two histograms is the
//! test of their expansions, computed bucket by bucket (O(buckets) rather than
//! O(N log N), with no allocation per request).
//!
//! Pure: the result is numbers.

use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;

/// Which departure from "same distribution" the p-value measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alternative {
    /// The canary is stochastically larger than the baseline: higher is bad.
    Greater,
    /// The canary is stochastically smaller than the baseline.
    Less,
    /// Either way.
    TwoSided,
}

impl Alternative {
    /// The same question asked with the samples swapped.
    pub fn mirrored(self) -> Alternative {
        match self {
            Alternative::Greater => Alternative::Less,
            Alternative::Less => Alternative::Greater,
            Alternative::TwoSided => Alternative::TwoSided,
        }
    }
}

/// How to compute the p-value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Exact when both samples have at most [`EXACT_MAX_N`] values and no value is
    /// tied, the normal approximation otherwise.
    #[default]
    Auto,
    /// The exact null distribution; an error with ties, when the counts would
    /// overflow (more than about 130 values in all), or past [`EXACT_MAX_PAIRS`].
    Exact,
    /// The normal approximation with tie and continuity correction.
    Asymptotic,
}

/// The largest sample, on either side, that [`Method::Auto`] judges exactly.
pub const EXACT_MAX_N: usize = 20;

/// The most pairs (`n1 * n2`) [`Method::Exact`] counts: beyond, its table of
/// counts would take more memory than the normal approximation's error is worth.
pub const EXACT_MAX_PAIRS: usize = 1_000_000;

/// How a result's p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// The exact null distribution of `U`.
    Exact,
    /// The normal approximation, with tie and continuity correction.
    Normal,
}

/// Which sample an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The version under test.
    Canary,
    /// The version it is compared with.
    Baseline,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Canary => "canary",
            Side::Baseline => "baseline",
        })
    }
}

/// Why a test could not be run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MannWhitneyError {
    /// A sample had no values.
    #[error("the {0} sample is empty: the test needs at least one value on each side")]
    Empty(Side),
    /// A value was NaN or infinite.
    #[error("the {side} sample's value #{index} is {value}: only finite numbers can be ranked")]
    NotFinite {
        /// The sample it is in.
        side: Side,
        /// Its 0-based position.
        index: usize,
        /// The value.
        value: f64,
    },
    /// [`Method::Exact`] was asked for samples with tied values.
    #[error(
        "the exact distribution assumes no ties, and {tied} values are tied: use the normal approximation"
    )]
    ExactWithTies {
        /// How many values share their value with another.
        tied: usize,
    },
    /// [`Method::Exact`] was asked for samples too large to count exactly.
    #[error(
        "the exact distribution of {n_canary} x {n_baseline} values is too large to count: use the normal approximation"
    )]
    ExactTooLarge {
        /// The canary's sample size.
        n_canary: usize,
        /// The baseline's sample size.
        n_baseline: usize,
    },
}

/// How far the canary is from the baseline, in the units a tolerance is set in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// Median of the canary's sample.
    pub median_canary: f64,
    /// Median of the baseline's sample.
    pub median_baseline: f64,
    /// `median_canary / median_baseline`; `None` when the baseline's median is 0.
    pub median_ratio: Option<f64>,
    /// The Hodges-Lehmann estimate of the shift: the median of all differences
    /// `canary[i] - baseline[j]`. Positive when the canary is larger.
    pub hodges_lehmann: f64,
    /// The common-language effect size `U / (n1 n2)`: the probability that a random
    /// canary value exceeds a random baseline value, ties counting one half.
    /// 0.5 means no difference.
    pub probability_of_superiority: f64,
}

/// One Mann-Whitney U test of a canary's sample against a baseline's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// Values in the canary's sample.
    pub n_canary: usize,
    /// Values in the baseline's sample.
    pub n_baseline: usize,
    /// The canary's `U`: pairs in which the canary is larger, a tie counting one half.
    pub u: f64,
    /// The baseline's `U`; `u + u_baseline == n_canary * n_baseline`.
    pub u_baseline: f64,
    /// `sum(t^3 - t)` over groups of `t` tied values; 0 without ties.
    pub tie_term: f64,
    /// The alternative the p-value is for.
    pub alternative: Alternative,
    /// How the p-value was computed.
    pub distribution: Distribution,
    /// The standardized statistic of the normal approximation (continuity-corrected,
    /// for the side the alternative looks at); `None` with the exact distribution.
    pub z: Option<f64>,
    /// The probability, with both samples from one distribution, of a `U` at least
    /// as extreme as this one in the direction of the alternative.
    pub p_value: f64,
    /// The size of the difference.
    pub effect: Effect,
}

/// Tests whether `canary` is stochastically larger, smaller or different (per
/// `alternative`) than `baseline`.
///
/// # Errors
/// An empty sample, a value that is not finite, and for [`Method::Exact`], ties or
/// samples too large to count.
///
/// ```
/// use cutover_analysis::mann_whitney::{mann_whitney, Alternative, Method};
///
/// let baseline = [10.0, 11.0, 12.0, 13.0, 14.0];
/// let canary = [15.0, 16.0, 17.0, 18.0, 19.0];
/// let t = mann_whitney(&canary, &baseline, Alternative::Greater, Method::Auto).unwrap();
/// assert_eq!(t.u, 25.0);
/// assert!((t.p_value - 1.0 / 252.0).abs() < 1e-15); // one arrangement in C(10, 5)
/// ```
pub fn mann_whitney(
    canary: &[f64],
    baseline: &[f64],
    alternative: Alternative,
    method: Method,
) -> Result<MannWhitney, MannWhitneyError> {
    check(canary, Side::Canary)?;
    check(baseline, Side::Baseline)?;
    test_runs(&runs(canary), &runs(baseline), alternative, method)
}

/// The same test on two latency histograms, in milliseconds: every value counted
/// at its bucket's midpoint ([`Histogram::values_ms`]), so the values of one
/// bucket tie, on either side.
///
/// It gives exactly what [`mann_whitney`] gives on the two
/// [`Histogram::expand_ms`] (the same `U`, tie term, p-value and effect, to the
/// bit, for every method), computed bucket by bucket: time and memory in the
/// number of buckets, not of requests. So small samples are judged as slices
/// are: [`Method::Auto`] is exact when both sides have at most [`EXACT_MAX_N`]
/// values and no two values share a bucket, and normal otherwise.
///
/// # Errors
/// An empty histogram; for [`Method::Exact`], ties or samples too large to count.
///
/// ```
/// use cutover_analysis::Histogram;
/// use cutover_analysis::mann_whitney::{mann_whitney, mann_whitney_histograms, Alternative, Method};
///
/// let (mut baseline, mut canary) = (Histogram::new(), Histogram::new());
/// baseline.record(20_000, 900); // 900 requests of 20 ms
/// baseline.record(40_000, 100);
/// canary.record(20_000, 80);
/// canary.record(40_000, 20);
/// let t = mann_whitney_histograms(&canary, &baseline, Alternative::Greater, Method::Auto).unwrap();
/// let slices = mann_whitney(&canary.expand_ms(), &baseline.expand_ms(), Alternative::Greater, Method::Auto);
/// assert_eq!(Ok(t), slices);
/// assert_eq!(t.u, 80.0 * 900.0 * 0.5 + 20.0 * 900.0 + 20.0 * 100.0 * 0.5);
/// ```
pub fn mann_whitney_histograms(
    canary: &Histogram,
    baseline: &Histogram,
    alternative: Alternative,
    method: Method,
) -> Result<MannWhitney, MannWhitneyError> {
    let runs = |h: &Histogram, side| {
        let runs: Vec<(f64, u64)> = h.values_ms().collect();
        if runs.is_empty() {
            Err(MannWhitneyError::Empty(side))
        } else {
            Ok(runs)
        }
    };
    let canary = runs(canary, Side::Canary)?;
    let baseline = runs(baseline, Side::Baseline)?;
    test_runs(&canary, &baseline, alternative, method)
}

/// The test of two non-empty samples given as runs ([`runs`]).
fn test_runs(
    canary: &[(f64, u64)],
    baseline: &[(f64, u64)],
    alternative: Alternative,
    method: Method,
) -> Result<MannWhitney, MannWhitneyError> {
    let (n1, n2) = (size(canary), size(baseline));
    let ranks = Ranks::of(canary, baseline);
    // In u128: the products of two counts do not overflow.
    let pairs = u128::from(n1) * u128::from(n2);
    let u = ranks.canary_sum - (u128::from(n1) * u128::from(n1 + 1)) as f64 / 2.0;
    let u_baseline = pairs as f64 - u;
    let (n1, n2) = (as_usize(n1), as_usize(n2));

    let exact = match method {
        Method::Asymptotic => false,
        Method::Auto => ranks.tied == 0 && n1 <= EXACT_MAX_N && n2 <= EXACT_MAX_N,
        Method::Exact if ranks.tied > 0 => {
            return Err(MannWhitneyError::ExactWithTies { tied: ranks.tied });
        }
        Method::Exact => true,
    };
    // Each side's p-value is an upper tail: the baseline's `U` for `Less` (by the
    // symmetry of the null distribution), and twice the larger `U`'s for `TwoSided`.
    let (tail_u, factor) = match alternative {
        Alternative::Greater => (u, 1.0),
        Alternative::Less => (u_baseline, 1.0),
        Alternative::TwoSided => (u.max(u_baseline), 2.0),
    };
    let (distribution, z, tail) = if exact {
        let counts = ExactCounts::new(n1, n2).ok_or(MannWhitneyError::ExactTooLarge {
            n_canary: n1,
            n_baseline: n2,
        })?;
        (Distribution::Exact, None, counts.sf(tail_u as usize))
    } else {
        let z = normal_z(tail_u, n1, n2, ranks.tie_term);
        let p = match z {
            Some(z) => normal_sf(z),
            // Every value is tied: no evidence of any difference.
            None => 1.0,
        };
        (Distribution::Normal, z, p)
    };
    Ok(MannWhitney {
        n_canary: n1,
        n_baseline: n2,
        u,
        u_baseline,
        tie_term: ranks.tie_term,
        alternative,
        distribution,
        z,
        p_value: (tail * factor).clamp(0.0, 1.0),
        effect: effect::of(canary, baseline, u),
    })
}

fn check(sample: &[f64], side: Side) -> Result<(), MannWhitneyError> {
    if sample.is_empty() {
        return Err(MannWhitneyError::Empty(side));
    }
    match sample.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(MannWhitneyError::NotFinite {
            side,
            index,
            value: sample[index],
        }),
        None => Ok(()),
    }
}

/// A sample sorted, as `(value, count)` runs, ascending, one per distinct value
/// bit for bit (0.0 and -0.0 apart: they rank as ties, but differ as the
/// Hodges-Lehmann shift's differences).
fn runs(sample: &[f64]) -> Vec<(f64, u64)> {
    let mut sorted = sample.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut runs: Vec<(f64, u64)> = Vec::new();
    for v in sorted {
        match runs.last_mut() {
            Some((last, count)) if last.to_bits() == v.to_bits() => *count += 1,
            _ => runs.push((v, 1)),
        }
    }
    runs
}

/// Values in a sample of runs.
fn size(runs: &[(f64, u64)]) -> u64 {
    runs.iter().map(|&(_, count)| count).sum()
}

/// A count as a size: `usize` holds any `u64` on the 64-bit targets cutover runs on.
fn as_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The pooled ranking: the canary's rank sum and the ties.
struct Ranks {
    canary_sum: f64,
    /// `sum(t^3 - t)` over tie groups.
    tie_term: f64,
    /// Values sharing their value with another.
    tied: usize,
}

impl Ranks {
    /// Merges the two samples' runs in ascending order; each group of equal
    /// values, from either side, shares the mean of the ranks it spans.
    fn of(canary: &[(f64, u64)], baseline: &[(f64, u64)]) -> Ranks {
        let mut ranks = Ranks {
            canary_sum: 0.0,
            tie_term: 0.0,
            tied: 0,
        };
        let (mut c, mut b) = (canary.iter().peekable(), baseline.iter().peekable());
        // Values ranked before the current group.
        let mut below: u64 = 0;
        while let Some(value) = match (c.peek(), b.peek()) {
            (Some(x), Some(y)) => Some(x.0.min(y.0)),
            (Some(x), None) | (None, Some(x)) => Some(x.0),
            (None, None) => None,
        } {
            // `==` rather than bits, so that 0.0 and -0.0 tie.
            let in_canary: u64 = std::iter::from_fn(|| c.next_if(|r| r.0 == value))
                .map(|r| r.1)
                .sum();
            let in_baseline: u64 = std::iter::from_fn(|| b.next_if(|r| r.0 == value))
                .map(|r| r.1)
                .sum();
            let t = in_canary + in_baseline;
            // Ranks start at 1: the group holds ranks below+1 ..= below+t.
            let mid_rank = (below + 1 + below + t) as f64 / 2.0;
            ranks.canary_sum += mid_rank * in_canary as f64;
            if t > 1 {
                ranks.tied += as_usize(t);
                let t = t as f64;
                ranks.tie_term += t * t * t - t;
            }
            below += t;
        }
        ranks
    }
}

/// The continuity-corrected z of an upper-tail `U`; `None` when the variance is 0
/// (all values tied).
fn normal_z(u: f64, n1: usize, n2: usize, tie_term: f64) -> Option<f64> {
    let (n1, n2) = (n1 as f64, n2 as f64);
    let n = n1 + n2;
    let mean = n1 * n2 / 2.0;
    let ties = if n > 1.0 {
        tie_term / (n * (n - 1.0))
    } else {
        0.0
    };
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties);
    (variance > 0.0).then(|| (u - mean - 0.5) / variance.sqrt())
}

/// The exact null distribution of `U` for samples of `m` and `n` untied values:
/// `counts[u]` arrangements of the ranks give the statistic `u`, out of `C(m+n, m)`.
struct ExactCounts {
    counts: Vec<u128>,
    total: u128,
}

impl ExactCounts {
    /// `None` when `C(m+n, m)` does not fit in a `u128`, or the distribution has
    /// more than [`EXACT_MAX_PAIRS`] points.
    fn new(m: usize, n: usize) -> Option<ExactCounts> {
        let (m, n) = (m.min(n), m.max(n));
        if m.checked_mul(n).is_none_or(|pairs| pairs > EXACT_MAX_PAIRS) {
            return None;
        }
        let total = binomial(m + n, m)?;
        // The counts are the coefficients of the Gaussian binomial
        // [m+n choose m]_q = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i), computed as a
        // power series truncated past degree m n. Multiplying by 1 - q^k and
        // dividing by it (adding the shifted series) are ring operations, so
        // wrapping arithmetic is exact for a result that fits: every coefficient
        // is at most `total`.
        let len = m * n + 1;
        let mut c = vec![0u128; len];
        c[0] = 1;
        for i in 1..=m {
            let k = n + i;
            for d in (k..len).rev() {
                c[d] = c[d].wrapping_sub(c[d - k]);
            }
            for d in i..len {
                c[d] = c[d].wrapping_add(c[d - i]);
            }
        }
        Some(ExactCounts { counts: c, total })
    }

    /// `P(U >= u)`.
    fn sf(&self, u: usize) -> f64 {
        let upper: u128 = self.counts.iter().skip(u).sum();
        upper as f64 / self.total as f64
    }
}

/// `C(n, k)`, or `None` past `u128`.
fn binomial(n: usize, k: usize) -> Option<u128> {
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        // C(n, i+1) = C(n, i) * (n - i) / (i + 1), exact at every step.
        c = c.checked_mul((n - i) as u128)? / (i as u128 + 1);
    }
    Some(c)
}

/// `P(Z > z)` for a standard normal `Z`.
pub(crate) fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function, to about 1e-13 relative: a series for small
/// arguments, a continued fraction for the tail, the reflection for negative ones.
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.0 {
        return 1.0 - erf_series(x);
    }
    if x > 27.0 {
        return 0.0;
    }
    erfc_continued_fraction(x)
}

/// `erf(x) = 2/sqrt(pi) exp(-x^2) sum_k 2^k x^(2k+1) / (1*3*...*(2k+1))`: all
/// terms positive, so no cancellation.
fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut k = 0.0;
    while term > sum * 1e-17 {
        k += 1.0;
        term *= 2.0 * x2 / (2.0 * k + 1.0);
        sum += term;
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
}

/// `erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))`,
/// evaluated with the modified Lentz method; fast for `x >= 2`.
fn erfc_continued_fraction(x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..500 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        d = if d == 0.0 { TINY } else { d };
        c = x + a / c;
        c = if c == 0.0 { TINY } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / f
}

#[path = "mann_whitney/effect.rs"]
mod effect;

#[cfg(test)]
#[path = "mann_whitney/tests.rs"]
mod tests;
