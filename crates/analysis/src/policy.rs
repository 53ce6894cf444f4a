//! The canary judge the engine runs after every analysis window, and `bench/judge`
//! and `cutover judge --run` run on recorded windows: three kinds of evidence in
//! one [`WindowReport`].
//!
//! - **Limits** on this window ([`crate::judge`]): error rate, latency quantiles,
//!   Apdex.
//!   A failed window counts towards `failure_limit`.
//! - **Sequential tests** on the run so far, looked at after every window with
//!   the false-alarm chance over the whole run bounded by `alpha` (split equally
//!   between the tests in use, a Bonferroni bound):
//!   - `error_rate`: the canary's errors per request against the baseline's
//!     ([`crate::rate_test`]);
//!   - `slow_requests`: the canary's share of requests slower than the baseline's
//!     `latency_quantile` (p95 by default) against the baseline's own share
//!     ([`crate::latency_test`]), the threshold taken from the baseline's earlier
//!     windows (or, before there are enough, from the window's requests pooled),
//!     never from the canary's.
//!
//!   A rejection rolls the canary back at once: that is how a clearly bad canary
//!   goes within seconds of the evidence, and a subtly bad one within minutes.
//! - **A fixed-sample comparison** of the step so far ([`crate::comparison`]): the
//!   Mann-Whitney U test of whether the canary's latencies are higher than the
//!   baseline's *plus the tolerance* (see `comparison` below), ranked bucket by
//!   bucket from the step's histograms ([`crate::comparison::compare_histograms`]),
//!   so that it costs the same however many requests the step has. Reported after every window so the
//!   evidence can be watched, but decided only at the step's end, once (a
//!   fixed-sample test looked at repeatedly loses its error rate).
//!
//! Only windows with a fresh baseline (measured in the same window) feed the
//! tests and the comparison: a carried-over baseline (the stable version at 100%
//! serves nothing) would count old requests twice, and would compare the canary
//! with another time of day. It still serves the limits; a step without a
//! baseline of its own is not compared, and the limits decide.

use serde::{Deserialize, Serialize};

use cutover_spec::{AnalysisSpec, ComparisonSpec, SequentialSpec};

use crate::comparison::{Direction, MetricSpec, MetricVerdict, Tolerance, compare_histograms};
use crate::histogram::Histogram;
use crate::latency_test::LatencyTest;
use crate::rate_test::{Counts, RateEvidence, RateTest};
use crate::{
    Against, MetricResult, Sample, Test, Unit, Verdict, Why, WindowReport, judge, window_verdict,
};

/// What the judge remembers between windows, persisted with the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeState {
    /// The error-rate test, once started.
    pub errors: Option<RateTest>,
    /// The slow-request test, once started.
    pub slow: Option<LatencyTest>,
    /// The canary's latencies in the current step, in the windows with a fresh
    /// baseline.
    pub step_canary: Histogram,
    /// The fresh baseline's latencies in the current step.
    pub step_baseline: Histogram,
}

impl JudgeState {
    /// A new step at another weight: the comparison starts over; the sequential
    /// tests go on (they read the split from each window).
    pub fn next_step(&mut self) {
        self.step_canary = Histogram::new();
        self.step_baseline = Histogram::new();
    }
}

/// Judges one window of `canary` against `baseline` (`fresh`: measured in this
/// same window, rather than carried over from an earlier one).
pub fn judge_window(
    spec: &AnalysisSpec,
    state: &mut JudgeState,
    baseline: &Sample,
    fresh: bool,
    canary: &Sample,
) -> WindowReport {
    let mut report = judge(&spec.metrics, spec.min_requests, baseline, canary);
    // A baseline that served nothing is not a measurement, however recent.
    let fresh = fresh && baseline.requests > 0;
    if fresh {
        if let Some(seq) = &spec.sequential {
            sequential(seq, state, baseline, canary, &mut report.metrics);
        }
        // Both sides of the comparison from the same windows only.
        state.step_canary.merge(&canary.latency);
        state.step_baseline.merge(&baseline.latency);
    } else if let Some(seq) = &spec.sequential {
        report.metrics.extend(standing(seq, state));
    }
    if let Some(cmp) = &spec.comparison {
        // Only against a baseline measured alongside: latencies drift with the
        // load on the machine, so an earlier baseline would read that drift as
        // the canary's. A step whose baseline serves nothing (a 100% step) and
        // has not served enough is not compared: waiting would not help.
        if fresh || state.step_baseline.count() >= cmp.min_samples {
            report.metrics.push(comparison(cmp, state));
        }
    }
    report.verdict = window_verdict(&report.metrics, canary.requests >= spec.min_requests);
    if !fresh {
        report.against = Against::CarriedBaseline;
    }
    report
}

/// The sequential tests in use and the alpha each gets.
fn tests_in_use(seq: &SequentialSpec) -> (bool, bool, f64) {
    let slow = seq.latency_quantile.is_some();
    let n = u32::from(seq.errors) + u32::from(slow);
    (seq.errors, slow, seq.alpha.fraction() / f64::from(n.max(1)))
}

fn sequential(
    seq: &SequentialSpec,
    state: &mut JudgeState,
    baseline: &Sample,
    canary: &Sample,
    out: &mut Vec<MetricResult>,
) {
    let (errors, slow, alpha) = tests_in_use(seq);
    if errors {
        let test = state
            .errors
            .get_or_insert_with(|| RateTest::new(alpha).expect("alpha is checked by the spec"));
        let evidence = test.observe(
            Counts {
                events: canary.errors,
                requests: canary.requests,
            },
            Counts {
                events: baseline.errors,
                requests: baseline.requests,
            },
        );
        out.push(rate_result("error_rate", evidence, None));
    }
    if let (true, Some(q)) = (slow, seq.latency_quantile) {
        let test = state.slow.get_or_insert_with(|| {
            LatencyTest::at_quantile(q.fraction(), alpha).expect("the spec checks both")
        });
        let evidence = test.observe(&canary.latency, &baseline.latency);
        let threshold_ms = evidence.threshold.map(|t| t.quantile_micros / 1000.0);
        out.push(rate_result("slow_requests", evidence.rate, threshold_ms));
    }
}

/// The tests as they stand, in a window that gives them nothing new.
fn standing(seq: &SequentialSpec, state: &JudgeState) -> Vec<MetricResult> {
    let (errors, slow, _) = tests_in_use(seq);
    let mut out = Vec::new();
    if let (true, Some(t)) = (errors, &state.errors) {
        out.push(rate_result("error_rate", t.evidence(), None));
    }
    if let (true, Some(t)) = (slow, &state.slow) {
        out.push(rate_result("slow_requests", t.evidence(), None));
    }
    out
}

fn rate_result(metric: &str, e: RateEvidence, threshold_ms: Option<f64>) -> MetricResult {
    MetricResult {
        baseline: e.baseline.rate(),
        canary: e.canary.rate(),
        limit: Some(e.log_threshold),
        statistic: Some(e.log_mixture),
        p_value: Some(e.p_value),
        effect: e.rate_ratio,
        threshold_ms,
        verdict: if e.rejected {
            Verdict::Fail
        } else {
            Verdict::Pass
        },
        why: e.rejected.then_some(Why::Significant),
        ..MetricResult::of(metric, Test::Sequential, Unit::Share)
    }
}

/// The step's latencies, canary against baseline, both measured in the step.
///
/// The question is not "is the canary slower at all" (with thousands of requests
/// a 2% shift is significant, and a 30 s step's median is noisy by a few %) but
/// "is it significantly slower than the baseline *plus the tolerance*": the
/// canary's latencies divided by `1 + tolerance` must still be higher than the
/// baseline's, one-sided at `confidence`. This is the tolerance tested, rather
/// than the point estimate held against it, as Kayenta holds its confidence
/// interval of the shift against the allowed shift: a canary exactly at the
/// tolerance fails with chance `1 - confidence` at most, a healthy one far less,
/// however many steps there are of it.
fn comparison(cmp: &ComparisonSpec, state: &JudgeState) -> MetricResult {
    let min = usize::try_from(cmp.min_samples).unwrap_or(usize::MAX);
    let enough = |h: &Histogram| h.count() >= cmp.min_samples;
    let (canary, baseline) = (&state.step_canary, &state.step_baseline);
    let allowed = 1.0 + cmp.tolerance.fraction();
    let mut result = MetricResult {
        limit: Some(allowed),
        ..MetricResult::of("latency", Test::MannWhitney, Unit::Millis)
    };
    if !enough(canary) || !enough(baseline) {
        result.verdict = Verdict::Inconclusive;
        result.why = Some(Why::NoData);
        return result;
    }
    let spec = MetricSpec {
        confidence: cmp.confidence.fraction(),
        tolerance: Tolerance::NONE,
        min_samples: min,
        critical: true,
        ..MetricSpec::new("latency", Direction::HigherIsBad)
    };
    let Ok(judged) = compare_histograms(&spec, &canary.scaled(1.0 / allowed), baseline) else {
        // Only an invalid spec fails here (both sides have values), and the
        // config's checks keep those out.
        result.verdict = Verdict::Inconclusive;
        result.why = Some(Why::NoData);
        return result;
    };
    let median = |h: &Histogram| h.quantile(0.5).map(|d| d.as_secs_f64() * 1000.0);
    result.canary = median(canary);
    result.baseline = median(baseline);
    result.effect = match (result.canary, result.baseline) {
        (Some(c), Some(b)) if b > 0.0 => Some(c / b),
        _ => None,
    };
    if let Some(test) = &judged.test {
        result.statistic = Some(test.u);
        result.p_value = Some(test.p_value);
    }
    (result.verdict, result.why) = match judged.verdict {
        MetricVerdict::Pass => (Verdict::Pass, None),
        MetricVerdict::NoData => (Verdict::Inconclusive, Some(Why::NoData)),
        MetricVerdict::High | MetricVerdict::Low => (Verdict::Fail, Some(Why::Significant)),
    };
    result
}

#[cfg(test)]
#[path = "policy/tests.rs"]
mod tests;
