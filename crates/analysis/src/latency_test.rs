//! An anytime-valid test of whether the canary's latency is worse than the
//! baseline's at a quantile (p95 by default): looked at after every window, with
//! the chance of a false alarm over the whole run held below `alpha` however often
//! it looks.
//!
//! # Method
//! Lindon, Sanden and Shirikian ("Rapid Regression Detection in Software
//! Deployments through Sequential Testing", KDD 2022) test canary metrics
//! sequentially for stochastic order and equality in distribution; the bound under
//! continuous monitoring comes from a non-negative supermartingale and Ville's
//! inequality, as in the confidence sequences of Howard, Ramdas, McAuliffe and
//! Sekhon ("Time-uniform, nonparametric, nonasymptotic confidence sequences",
//! Annals of Statistics 2021). Here the distribution is reduced to one event per
//! request, *slower than the baseline's `q`-quantile*, and the canary's rate of
//! that event is compared with the baseline's by the count test of
//! [`crate::rate_test`]. A canary whose p95 is 10% higher has more of its requests
//! above the baseline's p95: with lognormal latencies (sigma 0.6) about 6.9% instead
//! of 5%, a rate ratio of 1.37.
//!
//! # The threshold is estimated, and that is accounted for
//! The baseline's p95 is not known, only estimated from its requests. Testing the
//! canary's share above an estimate against `1 - q` (a one-sample test) is not
//! valid: an estimate a little low makes every healthy canary look slower, and a
//! sequential test finds any fixed bias given time. The test here never compares
//! with `1 - q`: it compares the canary's and the baseline's counts above a *common*
//! threshold, a two-sample question whose answer under the null does not depend on
//! where the threshold is. What it needs is that the threshold does not depend on
//! which version served the window's requests:
//! - from the second window on, it is the `q`-quantile of the baseline's
//!   histograms of the windows before ([`LatencyTest::reference`]), fixed before
//!   the window it is applied to;
//! - before the baseline has served [`LatencyTest::min_reference`] requests, it is
//!   the `q`-quantile of the window's own requests of both versions pooled, which
//!   is the same whichever version served which request.
//!
//! Either way, under the null (both versions draw latencies from the same
//! distribution, whatever it is at the time) whether a request is slow does not
//! depend on which version it went to, so given the requests each version served
//! and how many of the window's requests were slow, the canary's slow count is
//! hypergeometric, and the rate test's mixture stays a supermartingale (see
//! [`crate::rate_test`]): the bound `alpha` holds exactly, not asymptotically.
//!
//! The threshold is read in buckets of the [`Histogram`]: a request is slow when
//! it lies in a bucket above the one holding the quantile. That changes the share
//! counted (below `1 - q` by up to a bucket's width) and so the power a little,
//! never the bound, since both versions are counted with the same buckets.
//!
//! # Assumptions
//! - Requests are independent: each one's latency does not depend on the others'
//!   (a queue shared by both versions breaks this little; a queue in front of one
//!   version only is a real difference between them).
//! - Both versions see the same conditions at the same time. The latency may
//!   drift (load, a slow dependency) as long as it drifts for both alike; it is
//!   *not* assumed stationary for the bound, only for the power (a baseline that
//!   has become much slower since the threshold was set makes most requests
//!   "slow" on both sides, and the test learns little).
//! - Which version serves a request does not depend on how slow it will be (the
//!   proxy's weighted random choice; a header that pins slow clients to the canary
//!   would be read as a regression).
//!
//! The null is "same distribution", not "within a tolerance": a canary persistently
//! 3% slower is found too, given time. The tolerance belongs to the fixed-sample
//! comparison at the end of a step ([`crate::comparison`]).
//!
//! The engine's judge ([`crate::policy`]) runs this test after every window as
//! `slow_requests`.

use serde::{Deserialize, Serialize};

use crate::histogram::{Histogram, representative};
use crate::rate_test::{Counts, RateEvidence, RateTest};
use crate::sequential::SequentialError;

/// The quantile tested by default: p95.
pub const DEFAULT_QUANTILE: f64 = 0.95;

/// Requests above the quantile the baseline's past windows must hold before their
/// quantile is the threshold: with fewer the estimate is too coarse to be a good
/// threshold (still a valid one), and the window's pooled quantile is used instead.
pub const MIN_REFERENCE_TAIL: f64 = 20.0;

/// Where a window's threshold came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdSource {
    /// The baseline's windows before this one.
    Reference,
    /// This window's requests, both versions pooled.
    Pooled,
}

/// The threshold a window's requests were held against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// The histogram bucket holding the quantile; requests in the buckets above
    /// it are slow.
    pub bucket: u32,
    /// The quantile itself, in microseconds (its bucket's midpoint).
    pub quantile_micros: f64,
    /// Where it came from.
    pub source: ThresholdSource,
}

/// The sequential latency test. Its state is the baseline's histogram so far and
/// the rate test on slow requests, updated once per window, so it can be stored
/// and resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyTest {
    /// The quantile tested, in (0, 1).
    pub quantile: f64,
    /// Baseline requests needed in [`LatencyTest::reference`] before its quantile
    /// is the threshold.
    pub min_reference: u64,
    /// The baseline's latencies in every window so far.
    pub reference: Histogram,
    /// The count test on requests slower than the threshold.
    pub slow: RateTest,
}

/// The test after one window: the numbers behind its decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyEvidence {
    /// This window's threshold; `None` when the window had no requests at all.
    pub threshold: Option<Threshold>,
    /// The canary's slow requests and requests in this window.
    pub canary: Counts,
    /// The baseline's slow requests and requests in this window.
    pub baseline: Counts,
    /// The rate test over all windows so far: counts, the canary's rate of slow
    /// requests over the baseline's, `ln M`, its threshold, the anytime-valid
    /// p-value, and whether the canary is significantly slower.
    pub rate: RateEvidence,
}

impl LatencyEvidence {
    /// Whether the canary's latency is significantly worse at the quantile.
    pub fn rejected(&self) -> bool {
        self.rate.rejected
    }
}

impl LatencyTest {
    /// A test of the [`DEFAULT_QUANTILE`].
    ///
    /// # Errors
    /// An alpha outside (0, 1).
    pub fn new(alpha: f64) -> Result<LatencyTest, SequentialError> {
        LatencyTest::at_quantile(DEFAULT_QUANTILE, alpha)
    }

    /// A test of the `quantile`, with [`MIN_REFERENCE_TAIL`] requests above it
    /// needed in the baseline's reference.
    ///
    /// # Errors
    /// A quantile or an alpha outside (0, 1).
    pub fn at_quantile(quantile: f64, alpha: f64) -> Result<LatencyTest, SequentialError> {
        if !(quantile > 0.0 && quantile < 1.0) {
            return Err(SequentialError::Invalid {
                field: "quantile",
                value: quantile,
                valid: "a number between 0 and 1, exclusive, such as 0.95",
            });
        }
        Ok(LatencyTest {
            quantile,
            min_reference: (MIN_REFERENCE_TAIL / (1.0 - quantile)).ceil() as u64,
            reference: Histogram::new(),
            slow: RateTest::new(alpha)?,
        })
    }

    /// Adds one window's latencies and says where the test stands. Once rejected,
    /// the test stays rejected.
    pub fn observe(&mut self, canary: &Histogram, baseline: &Histogram) -> LatencyEvidence {
        let threshold = self.threshold(canary, baseline);
        let slow = |h: &Histogram| Counts {
            events: threshold.map_or(0, |t| h.count_from(t.bucket + 1)),
            requests: h.count(),
        };
        let (canary_counts, baseline_counts) = (slow(canary), slow(baseline));
        let rate = self.slow.observe(canary_counts, baseline_counts);
        self.reference.merge(baseline);
        LatencyEvidence {
            threshold,
            canary: canary_counts,
            baseline: baseline_counts,
            rate,
        }
    }

    /// Where the test stands, without a new window.
    pub fn evidence(&self) -> RateEvidence {
        self.slow.evidence()
    }

    /// The threshold for a window: the reference's quantile once it is large
    /// enough, else the window's pooled quantile.
    fn threshold(&self, canary: &Histogram, baseline: &Histogram) -> Option<Threshold> {
        let mut pooled = Histogram::new();
        let (histogram, source) = if self.reference.count() >= self.min_reference {
            (&self.reference, ThresholdSource::Reference)
        } else {
            pooled.merge(canary);
            pooled.merge(baseline);
            (&pooled, ThresholdSource::Pooled)
        };
        let bucket = histogram.quantile_bucket(self.quantile)?;
        Some(Threshold {
            bucket,
            quantile_micros: representative(bucket),
            source,
        })
    }
}

#[cfg(test)]
#[path = "latency_test/tests.rs"]
mod tests;
