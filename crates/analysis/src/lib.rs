//! Statistics and verdicts for a rollout: per-version [`Sample`]s of one analysis
//! window in, a [`WindowReport`] with a [`Verdict`] per metric and overall out.
//!
//! Pure: no IO, no clocks, no tokio. The engine collects samples from wherever the
//! metrics come from (the built-in proxy today, Prometheus later) and hands them here,
//! so every rule is testable with plain numbers.
//!
//! Beside the fixed limits, the statistics that compare a canary with a baseline:
//! - [`mann_whitney`]: the Mann-Whitney U test of two samples, exact or normal, with
//!   its effect sizes (Hodges-Lehmann shift, ratio of medians, probability of
//!   superiority).
//! - [`comparison`]: a Kayenta-style verdict per metric (pass, high, low, no data)
//!   from that test and an effect-size tolerance, and a weighted score over metrics
//!   in which critical ones fail the canary on their own.
//! - [`sequential`]: an anytime-valid mixture SPRT on the canary's and the
//!   baseline's error counts, which may be looked at after every window with the
//!   false-alarm rate still bounded by its alpha.
//! - [`latency_test`]: the same kind of anytime-valid test for latency: the
//!   canary's and the baseline's requests slower than the baseline's quantile
//!   (p95), counted per window from their histograms.
//!
//! ```
//! use cutover_analysis::{judge, Sample, Verdict};
//! use cutover_spec::{MetricRules, ErrorRateRule, Percent};
//!
//! let rules = MetricRules {
//!     error_rate: Some(ErrorRateRule { max: Percent::from_fraction(0.01), max_over_stable: None }),
//!     ..Default::default()
//! };
//! let stable = Sample { requests: 1000, errors: 1, ..Default::default() };
//! let canary = Sample { requests: 100, errors: 5, ..Default::default() };
//! let report = judge(&rules, 20, &stable, &canary);
//! assert_eq!(report.verdict, Verdict::Fail);
//! ```

pub mod comparison;
pub mod histogram;
pub mod latency_test;
pub mod mann_whitney;
pub mod rate_test;
pub mod sequential;

use std::time::Duration;

use cutover_spec::{ErrorRateRule, LatencyRule, MetricRules};
use serde::{Deserialize, Serialize};

/// What one version did during one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Responses completed in the window.
    pub requests: u64,
    /// Of those, failures: 5xx responses (the proxy's own 502/504 included) and
    /// responses whose body broke off mid-stream.
    pub errors: u64,
    /// Latency quantiles, `None` when there were no requests.
    #[serde(with = "opt_millis")]
    pub p50: Option<Duration>,
    #[serde(with = "opt_millis")]
    pub p95: Option<Duration>,
    #[serde(with = "opt_millis")]
    pub p99: Option<Duration>,
}

impl Sample {
    /// Share of requests that failed; `None` without requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }
}

/// The outcome of judging one metric or one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not enough data to say; never a reason to promote.
    Inconclusive,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Inconclusive => "inconclusive",
        })
    }
}

/// One metric judged in one window: the numbers a person needs to check the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    /// `error_rate`, `latency_p50`, `latency_p95` or `latency_p99`.
    pub metric: String,
    /// Human form of the stable value (`0.10%`, `12.3ms`), `-` when unknown.
    pub stable: String,
    /// Human form of the canary value.
    pub canary: String,
    /// The limit that applied, e.g. `<= 1%` or `<= 1.5x stable (18.4ms)`.
    pub limit: String,
    pub verdict: Verdict,
    /// Why, in one sentence, when not a pass.
    pub reason: Option<String>,
}

/// One analysis window judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    pub stable: Sample,
    pub canary: Sample,
    pub metrics: Vec<MetricResult>,
    /// Fail if any metric failed; else inconclusive if the canary served fewer than
    /// `min_requests` or any metric was inconclusive; else pass.
    pub verdict: Verdict,
}

impl WindowReport {
    /// The failing metrics' reasons, joined, for a rollback trigger.
    pub fn failures(&self) -> Vec<&MetricResult> {
        self.metrics
            .iter()
            .filter(|m| m.verdict == Verdict::Fail)
            .collect()
    }
}

/// Judges one window of the canary against the stable version.
///
/// A window in which the canary served fewer than `min_requests` is inconclusive
/// whatever its numbers say: a handful of requests proves nothing either way. A
/// relative limit needs a stable value to compare to; without stable traffic it is
/// inconclusive (the absolute limit, if any, still applies).
pub fn judge(
    rules: &MetricRules,
    min_requests: u64,
    stable: &Sample,
    canary: &Sample,
) -> WindowReport {
    let mut metrics = Vec::new();
    if let Some(rule) = &rules.error_rate {
        metrics.push(judge_error_rate(rule, stable, canary));
    }
    for (name, rule, pick) in [
        (
            "latency_p50",
            &rules.latency_p50,
            (|s: &Sample| s.p50) as fn(&Sample) -> Option<Duration>,
        ),
        ("latency_p95", &rules.latency_p95, |s: &Sample| s.p95),
        ("latency_p99", &rules.latency_p99, |s: &Sample| s.p99),
    ] {
        if let Some(rule) = rule {
            metrics.push(judge_latency(name, rule, pick(stable), pick(canary)));
        }
    }
    let enough = canary.requests >= min_requests;
    if !enough {
        for m in &mut metrics {
            m.verdict = Verdict::Inconclusive;
            m.reason = Some(format!(
                "canary served {} requests, fewer than the {min_requests} needed to judge",
                canary.requests
            ));
        }
    }
    let verdict = if metrics.iter().any(|m| m.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if !enough || metrics.iter().any(|m| m.verdict == Verdict::Inconclusive) {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    };
    WindowReport {
        stable: *stable,
        canary: *canary,
        metrics,
        verdict,
    }
}

fn judge_error_rate(rule: &ErrorRateRule, stable: &Sample, canary: &Sample) -> MetricResult {
    let s = stable.error_rate();
    let c = canary.error_rate();
    let mut limits = Vec::new();
    let mut bound: Option<f64> = None;
    if let Some(max) = rule.max {
        limits.push(format!("<= {max}"));
        bound = Some(max.fraction());
    }
    let mut relative_unknown = false;
    if let Some(over) = rule.max_over_stable {
        match s {
            Some(s) => {
                let rel = s + over.fraction();
                limits.push(format!("<= stable + {over} ({})", pct(rel)));
                bound = Some(bound.map_or(rel, |b| b.min(rel)));
            }
            None => {
                limits.push(format!("<= stable + {over} (no stable traffic)"));
                relative_unknown = true;
            }
        }
    }
    let (verdict, reason) = match (c, bound) {
        (None, _) => (
            Verdict::Inconclusive,
            Some("canary served no requests".to_string()),
        ),
        (Some(c), Some(b)) if c > b => (
            Verdict::Fail,
            Some(format!(
                "error rate {} is above the limit {}",
                pct(c),
                pct(b)
            )),
        ),
        (Some(_), _) if relative_unknown => (
            Verdict::Inconclusive,
            Some("no stable traffic to compare the error rate with".to_string()),
        ),
        (Some(_), _) => (Verdict::Pass, None),
    };
    MetricResult {
        metric: "error_rate".into(),
        stable: s.map_or("-".into(), pct),
        canary: c.map_or("-".into(), pct),
        limit: limits.join(" and "),
        verdict,
        reason,
    }
}

fn judge_latency(
    name: &str,
    rule: &LatencyRule,
    stable: Option<Duration>,
    canary: Option<Duration>,
) -> MetricResult {
    let mut limits = Vec::new();
    let mut bound: Option<Duration> = None;
    if let Some(max) = rule.max {
        limits.push(format!("<= {}", ms(max)));
        bound = Some(max);
    }
    let mut relative_unknown = false;
    if let Some(ratio) = rule.max_ratio {
        match stable {
            Some(s) => {
                let rel = s.mul_f64(ratio);
                limits.push(format!("<= {ratio}x stable ({})", ms(rel)));
                bound = Some(bound.map_or(rel, |b| b.min(rel)));
            }
            None => {
                limits.push(format!("<= {ratio}x stable (no stable traffic)"));
                relative_unknown = true;
            }
        }
    }
    let (verdict, reason) = match (canary, bound) {
        (None, _) => (
            Verdict::Inconclusive,
            Some("canary served no requests".to_string()),
        ),
        (Some(c), Some(b)) if c > b => (
            Verdict::Fail,
            Some(format!("{name} {} is above the limit {}", ms(c), ms(b))),
        ),
        (Some(_), _) if relative_unknown => (
            Verdict::Inconclusive,
            Some(format!("no stable traffic to compare {name} with")),
        ),
        (Some(_), _) => (Verdict::Pass, None),
    };
    MetricResult {
        metric: name.into(),
        stable: stable.map_or("-".into(), ms),
        canary: canary.map_or("-".into(), ms),
        limit: limits.join(" and "),
        verdict,
        reason,
    }
}

fn pct(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.map(|ms| Duration::from_secs_f64(ms / 1000.0)))
    }
}

#[cfg(test)]
mod tests;

/// `rules` with their absolute limits only: what judges a version on its own
/// numbers, with nothing to compare it against (blue-green's preview). A metric
/// with only a relative limit is left out.
pub fn absolute_limits(rules: &MetricRules) -> MetricRules {
    MetricRules {
        error_rate: rules
            .error_rate
            .filter(|r| r.max.is_some())
            .map(|r| ErrorRateRule {
                max_over_stable: None,
                ..r
            }),
        latency_p50: absolute_latency(rules.latency_p50),
        latency_p95: absolute_latency(rules.latency_p95),
        latency_p99: absolute_latency(rules.latency_p99),
    }
}

fn absolute_latency(rule: Option<LatencyRule>) -> Option<LatencyRule> {
    rule.filter(|r| r.max.is_some()).map(|r| LatencyRule {
        max_ratio: None,
        ..r
    })
}
