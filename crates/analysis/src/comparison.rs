//! Kayenta-style canary judgement: each metric's canary sample compared with the
//! baseline's by a Mann-Whitney U test and an effect-size tolerance, then a weighted
//! score over the metrics.
//!
//! A metric fails only when the difference is both *significant* (the test's
//! p-value is below `1 - confidence`, in the direction that is bad for it) and
//! *large enough to matter* (the effect is past the tolerance): with thousands of
//! requests a 1% shift is significant, and the tolerance is what keeps it from
//! rolling back. This is the scheme of Netflix and Google's Kayenta
//! (`MannWhitneyClassifier` per metric, `WeightedSumScorer` over them), with the
//! one-sided p-value and a tolerance on the ratio of medians or on the shift where
//! Kayenta holds a confidence interval of the shift against a fraction of it:
//! critical metrics fail the canary on their own, the others add their weight to
//! the score when they pass, and the score is held against a pass and a marginal
//! threshold.
//!
//! A metric with fewer than its minimum samples on either side is
//! [`MetricVerdict::NoData`], which is never a pass: it leaves the score (as in
//! Kayenta), and a critical metric without data makes the whole verdict no-data.
//!
//! ```
//! use cutover_analysis::comparison::{compare, score, Direction, MetricSpec, MetricVerdict, Thresholds, CanaryVerdict};
//!
//! let baseline: Vec<f64> = (0..50).map(|i| 20.0 + f64::from(i % 10)).collect();
//! let canary: Vec<f64> = baseline.iter().map(|ms| ms * 1.5).collect();
//! let spec = MetricSpec { critical: true, ..MetricSpec::new("latency_ms", Direction::HigherIsBad) };
//! let latency = compare(&spec, &canary, &baseline).unwrap();
//! assert_eq!(latency.verdict, MetricVerdict::High);
//! let card = score(&[latency], Thresholds::default()).unwrap();
//! assert_eq!(card.verdict, CanaryVerdict::Fail);
//! ```

use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;
use crate::mann_whitney::{
    Alternative, MannWhitney, MannWhitneyError, Method, mann_whitney, mann_whitney_histograms,
};

/// Which way a metric gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Larger is worse: latency, errors. Tested one-sided, for an increase.
    HigherIsBad,
    /// Smaller is worse: throughput, successes. Tested one-sided, for a decrease.
    LowerIsBad,
    /// Any change is suspect. Tested two-sided.
    Either,
}

impl Direction {
    /// The test's alternative for this direction.
    pub fn alternative(self) -> Alternative {
        match self {
            Direction::HigherIsBad => Alternative::Greater,
            Direction::LowerIsBad => Alternative::Less,
            Direction::Either => Alternative::TwoSided,
        }
    }
}

/// How far the canary may drift from the baseline before a significant difference
/// counts. Both amounts are non-negative.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Tolerance {
    /// Relative to the baseline's median: the canary's median may be up to
    /// `(1 + increase)` and down to `(1 - decrease)` times it (0.1 = 10%). For
    /// positive metrics such as latency.
    Ratio {
        /// Allowed relative increase.
        increase: f64,
        /// Allowed relative decrease.
        decrease: f64,
    },
    /// In the metric's unit: the Hodges-Lehmann shift (median of canary minus
    /// baseline differences) may be up to `+increase` and down to `-decrease`.
    Absolute {
        /// Allowed increase.
        increase: f64,
        /// Allowed decrease.
        decrease: f64,
    },
}

impl Tolerance {
    /// No drift allowed: every significant difference counts.
    pub const NONE: Tolerance = Tolerance::Ratio {
        increase: 0.0,
        decrease: 0.0,
    };

    /// The effect this tolerance is measured on: the ratio of medians, or the
    /// Hodges-Lehmann shift.
    ///
    /// A ratio over a baseline median of 0 is 1 when the canary's median is 0
    /// too, and infinite (with the canary's sign) otherwise.
    pub fn effect(&self, test: &MannWhitney) -> f64 {
        let e = &test.effect;
        match self {
            Tolerance::Ratio { .. } => e.median_ratio.unwrap_or(if e.median_canary == 0.0 {
                1.0
            } else {
                f64::INFINITY.copysign(e.median_canary)
            }),
            Tolerance::Absolute { .. } => e.hodges_lehmann,
        }
    }

    /// The largest effect that is not an increase, and the smallest that is not a
    /// decrease. With nothing allowed on a side, an effect at its bound counts too.
    pub fn bounds(&self) -> (f64, f64) {
        match *self {
            Tolerance::Ratio { increase, decrease } => (1.0 + increase, 1.0 - decrease),
            Tolerance::Absolute { increase, decrease } => (increase, -decrease),
        }
    }

    fn allowed(&self) -> (f64, f64) {
        let (Tolerance::Ratio { increase, decrease } | Tolerance::Absolute { increase, decrease }) =
            *self;
        (increase, decrease)
    }
}

/// How to judge one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    /// The metric's name, carried into its result.
    pub name: String,
    /// Which way it gets worse.
    pub direction: Direction,
    /// Confidence of the test, in (0, 1): a difference is significant when the
    /// p-value is below `1 - confidence`.
    pub confidence: f64,
    /// The drift allowed before a significant difference fails the metric.
    pub tolerance: Tolerance,
    /// Values needed on each side to judge; fewer is [`MetricVerdict::NoData`].
    /// At least 1 applies.
    pub min_samples: usize,
    /// Its share in the score, finite and non-negative.
    pub weight: f64,
    /// A failure fails the canary whatever the score.
    pub critical: bool,
}

impl MetricSpec {
    /// A non-critical metric of weight 1, tested at 95% confidence with no
    /// tolerance, needing 10 values on each side.
    pub fn new(name: impl Into<String>, direction: Direction) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            direction,
            confidence: 0.95,
            tolerance: Tolerance::NONE,
            min_samples: 10,
            weight: 1.0,
            critical: false,
        }
    }

    fn validate(&self) -> Result<(), ComparisonError> {
        let invalid = |field, value, valid| ComparisonError::InvalidSpec {
            metric: self.name.clone(),
            field,
            value,
            valid,
        };
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(invalid(
                "confidence",
                self.confidence,
                "a number between 0 and 1, such as 0.95",
            ));
        }
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(invalid("weight", self.weight, "a finite number >= 0"));
        }
        let (increase, decrease) = self.tolerance.allowed();
        for (field, value) in [
            ("tolerance.increase", increase),
            ("tolerance.decrease", decrease),
        ] {
            // +inf is allowed: "never fail on this side".
            if value.is_nan() || value < 0.0 {
                return Err(invalid(field, value, "a number >= 0"));
            }
        }
        Ok(())
    }
}

/// One metric's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricVerdict {
    /// No significant difference past the tolerance in a bad direction.
    Pass,
    /// Significantly and materially higher than the baseline, where that is bad.
    High,
    /// Significantly and materially lower than the baseline, where that is bad.
    Low,
    /// Too few values to judge; never a pass.
    NoData,
}

impl MetricVerdict {
    /// High or low.
    pub fn is_failure(self) -> bool {
        matches!(self, MetricVerdict::High | MetricVerdict::Low)
    }
}

/// One metric judged: the verdict and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// The metric's name.
    pub metric: String,
    /// The verdict.
    pub verdict: MetricVerdict,
    /// Values on the canary's side.
    pub n_canary: usize,
    /// Values on the baseline's side.
    pub n_baseline: usize,
    /// The test; `None` for no data.
    pub test: Option<MannWhitney>,
    /// The significance level, `1 - confidence`.
    pub alpha: f64,
    /// The effect the tolerance is measured on ([`Tolerance::effect`]); `None`
    /// for no data.
    pub effect: Option<f64>,
    /// The tolerance that applied.
    pub tolerance: Tolerance,
    /// The metric's weight in the score.
    pub weight: f64,
    /// Whether its failure fails the canary alone.
    pub critical: bool,
}

/// Why a metric could not be judged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ComparisonError {
    /// A field of a [`MetricSpec`] is out of range.
    #[error("metric {metric:?}: {field} is {value}, expected {valid}")]
    InvalidSpec {
        /// The metric's name.
        metric: String,
        /// The field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// What would be valid.
        valid: &'static str,
    },
    /// A sample could not be tested (a value that is not a finite number).
    #[error("metric {metric:?}")]
    Sample {
        /// The metric's name.
        metric: String,
        /// What was wrong with the sample.
        #[source]
        source: MannWhitneyError,
    },
    /// The score's thresholds are out of range.
    #[error(
        "score thresholds pass {pass} and marginal {marginal}: expected 0 <= marginal <= pass <= 100"
    )]
    InvalidThresholds {
        /// The pass threshold.
        pass: f64,
        /// The marginal threshold.
        marginal: f64,
    },
}

/// Judges one metric of the canary against the baseline.
///
/// # Errors
/// A spec out of range, or a value that is not a finite number.
pub fn compare(
    spec: &MetricSpec,
    canary: &[f64],
    baseline: &[f64],
) -> Result<MetricComparison, ComparisonError> {
    judge_metric(spec, canary.len(), baseline.len(), |alternative| {
        mann_whitney(canary, baseline, alternative, Method::Auto)
    })
}

/// Judges the canary's latencies against the baseline's, from their histograms
/// (in milliseconds, each value at its bucket's midpoint).
///
/// The same [`MetricComparison`] as [`compare`] on the two
/// [`Histogram::expand_ms`], to the bit, but computed bucket by bucket
/// ([`mann_whitney_histograms`]): what the engine's judge runs after every
/// window on the step's requests, however many there are.
///
/// # Errors
/// A spec out of range.
///
/// ```
/// use cutover_analysis::Histogram;
/// use cutover_analysis::comparison::{compare, compare_histograms, Direction, MetricSpec, MetricVerdict};
///
/// let (mut baseline, mut canary) = (Histogram::new(), Histogram::new());
/// for ms in 20..60 {
///     baseline.record(ms * 1000, 20);
///     canary.record(ms * 1300, 20); // 30% slower
/// }
/// let spec = MetricSpec::new("latency_ms", Direction::HigherIsBad);
/// let judged = compare_histograms(&spec, &canary, &baseline).unwrap();
/// assert_eq!(judged.verdict, MetricVerdict::High);
/// assert_eq!(judged, compare(&spec, &canary.expand_ms(), &baseline.expand_ms()).unwrap());
/// ```
pub fn compare_histograms(
    spec: &MetricSpec,
    canary: &Histogram,
    baseline: &Histogram,
) -> Result<MetricComparison, ComparisonError> {
    let size = |h: &Histogram| usize::try_from(h.count()).unwrap_or(usize::MAX);
    judge_metric(spec, size(canary), size(baseline), |alternative| {
        mann_whitney_histograms(canary, baseline, alternative, Method::Auto)
    })
}

/// The verdict on samples of `n_canary` and `n_baseline` values, `test` run for
/// the direction's alternative once both have the minimum.
fn judge_metric(
    spec: &MetricSpec,
    n_canary: usize,
    n_baseline: usize,
    test: impl FnOnce(Alternative) -> Result<MannWhitney, MannWhitneyError>,
) -> Result<MetricComparison, ComparisonError> {
    spec.validate()?;
    let alpha = 1.0 - spec.confidence;
    let mut result = MetricComparison {
        metric: spec.name.clone(),
        verdict: MetricVerdict::NoData,
        n_canary,
        n_baseline,
        test: None,
        alpha,
        effect: None,
        tolerance: spec.tolerance,
        weight: spec.weight,
        critical: spec.critical,
    };
    let min = spec.min_samples.max(1);
    if n_canary < min || n_baseline < min {
        return Ok(result);
    }
    let test = test(spec.direction.alternative()).map_err(|source| ComparisonError::Sample {
        metric: spec.name.clone(),
        source,
    })?;
    let effect = spec.tolerance.effect(&test);
    let (max, min) = spec.tolerance.bounds();
    let significant = test.p_value < alpha;
    // With no drift allowed, an effect at the bound still counts: counts that are
    // mostly 0 have equal medians however much more often the canary fails.
    let (allowed_up, allowed_down) = spec.tolerance.allowed();
    let past_max = effect > max || (allowed_up == 0.0 && effect >= max);
    let past_min = effect < min || (allowed_down == 0.0 && effect <= min);
    let higher = test.effect.probability_of_superiority > 0.5 && past_max;
    let lower = test.effect.probability_of_superiority < 0.5 && past_min;
    result.verdict = match spec.direction {
        Direction::HigherIsBad | Direction::Either if significant && higher => MetricVerdict::High,
        Direction::LowerIsBad | Direction::Either if significant && lower => MetricVerdict::Low,
        _ => MetricVerdict::Pass,
    };
    result.test = Some(test);
    result.effect = Some(effect);
    Ok(result)
}

/// Scores at or above which the canary passes, or is marginal, out of 100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Pass at or above this score.
    pub pass: f64,
    /// Marginal at or above this score, below `pass`; fail below it.
    pub marginal: f64,
}

impl Default for Thresholds {
    /// Kayenta's usual 95 and 75.
    fn default() -> Thresholds {
        Thresholds {
            pass: 95.0,
            marginal: 75.0,
        }
    }
}

/// The canary's verdict over all its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryVerdict {
    /// The score reached the pass threshold and no critical metric failed.
    Pass,
    /// The score is between the marginal and the pass threshold: neither promote
    /// nor roll back on this alone.
    Marginal,
    /// A critical metric failed, or the score is below the marginal threshold.
    Fail,
    /// A critical metric, or every weighted metric, had too little data.
    NoData,
}

/// The weighted score over the metrics and the verdict it gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    /// `100 * (weight of passing metrics) / (weight of metrics with data)`;
    /// `None` when no weighted metric had data.
    pub score: Option<f64>,
    /// The verdict.
    pub verdict: CanaryVerdict,
    /// The thresholds it was held against.
    pub thresholds: Thresholds,
    /// Critical metrics that failed.
    pub critical_failures: Vec<String>,
    /// Metrics without enough data, left out of the score.
    pub no_data: Vec<String>,
}

/// Scores judged metrics: critical failures first, then critical metrics without
/// data, then the weighted share of passing metrics against `thresholds`.
///
/// # Errors
/// Thresholds outside `0 <= marginal <= pass <= 100`.
pub fn score(
    metrics: &[MetricComparison],
    thresholds: Thresholds,
) -> Result<Scorecard, ComparisonError> {
    let Thresholds { pass, marginal } = thresholds;
    if !(0.0 <= marginal && marginal <= pass && pass <= 100.0) {
        return Err(ComparisonError::InvalidThresholds { pass, marginal });
    }
    let names = |keep: &dyn Fn(&MetricComparison) -> bool| -> Vec<String> {
        metrics
            .iter()
            .filter(|m| keep(m))
            .map(|m| m.metric.clone())
            .collect()
    };
    let critical_failures = names(&|m| m.critical && m.verdict.is_failure());
    let no_data = names(&|m| m.verdict == MetricVerdict::NoData);
    let with_data = metrics
        .iter()
        .filter(|m| m.verdict != MetricVerdict::NoData);
    let judged: f64 = with_data.clone().map(|m| m.weight).sum();
    let passed: f64 = with_data
        .filter(|m| m.verdict == MetricVerdict::Pass)
        .map(|m| m.weight)
        .sum();
    let score = (judged > 0.0).then(|| 100.0 * passed / judged);
    let critical_no_data = metrics
        .iter()
        .any(|m| m.critical && m.verdict == MetricVerdict::NoData);
    let verdict = match score {
        _ if !critical_failures.is_empty() => CanaryVerdict::Fail,
        _ if critical_no_data => CanaryVerdict::NoData,
        None => CanaryVerdict::NoData,
        Some(s) if s >= pass => CanaryVerdict::Pass,
        Some(s) if s >= marginal => CanaryVerdict::Marginal,
        Some(_) => CanaryVerdict::Fail,
    };
    Ok(Scorecard {
        score,
        verdict,
        thresholds,
        critical_failures,
        no_data,
    })
}

#[cfg(test)]
#[path = "comparison/tests.rs"]
mod tests;
