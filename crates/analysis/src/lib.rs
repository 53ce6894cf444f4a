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
//!   superiority), on slices of numbers or bucket by bucket on two [`Histogram`]s.
//! - [`comparison`]: a Kayenta-style verdict per metric (pass, high, low, no data)
//!   from that test and an effect-size tolerance, and a weighted score over metrics
//!   in which critical ones fail the canary on their own.
//! - [`sequential`]: an anytime-valid mixture SPRT on the canary's and the
//!   baseline's error counts, which may be looked at after every window with the
//!   false-alarm rate still bounded by its alpha.
//! - [`latency_test`]: the same kind of anytime-valid test for latency: the
//!   canary's and the baseline's requests slower than the baseline's quantile
//!   (p95), counted per window from their histograms.
//! - [`log_check`]: the canary's error log templates against its baseline's,
//!   mined online with [`drain`] from lines read by [`log_line`].
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
//! assert_eq!(report.metrics[0].canary, Some(0.05));
//! ```

pub mod comparison;
pub mod drain;
pub mod histogram;
pub mod latency_test;
pub mod log_check;
pub mod log_line;
pub mod mann_whitney;
pub mod policy;
pub mod rate_test;
pub mod sequential;

use std::collections::BTreeMap;
use std::time::Duration;

use cutover_spec::{CustomRule, Direction, ErrorRateRule, LatencyRule, MetricRules};
use serde::{Deserialize, Serialize};

pub use histogram::Histogram;
pub use source::{SourceError, SourceFault};

mod source;

/// What one version did during one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Every response's latency, bucketed; empty when the source has none.
    #[serde(default, skip_serializing_if = "Histogram::is_empty")]
    pub latency: Histogram,
    /// Custom metrics' values (from a metric source's queries), by name. Boxed:
    /// a sample is moved around in every window's report, and is mostly empty.
    #[serde(default, skip_serializing_if = "no_custom")]
    pub custom: Box<BTreeMap<String, f64>>,
}

fn no_custom(custom: &BTreeMap<String, f64>) -> bool {
    custom.is_empty()
}

impl Sample {
    /// Share of requests that failed; `None` without requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }

    /// The Apdex score for satisfied threshold `t`: `(satisfied + tolerating / 2)
    /// / requests`, from the latency histogram, with failed requests frustrated
    /// (taken out of the other two in proportion, since the histogram does not say
    /// which latencies failed). `None` without latencies.
    pub fn apdex(&self, t: Duration) -> Option<f64> {
        let total = self.latency.count();
        if total == 0 {
            return None;
        }
        let t_us = u64::try_from(t.as_micros()).unwrap_or(u64::MAX);
        let tolerating_or_worse = self.latency.count_from(histogram::bucket_of(t_us) + 1);
        let frustrated = self
            .latency
            .count_from(histogram::bucket_of(t_us.saturating_mul(4)) + 1);
        let satisfied = total - tolerating_or_worse;
        let tolerating = tolerating_or_worse - frustrated;
        let served_well = 1.0 - self.error_rate().unwrap_or(0.0);
        Some((satisfied as f64 + tolerating as f64 / 2.0) / total as f64 * served_well)
    }

    /// Adds another window of the same version (its custom values, which do
    /// not add up, are left as they were).
    pub fn merge(&mut self, other: &Sample) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
        let pick = |q| self.latency.quantile(q);
        (self.p50, self.p95, self.p99) = (pick(0.50), pick(0.95), pick(0.99));
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

/// How a metric was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// This window's value against a configured limit.
    Limit,
    /// An anytime-valid test over the run so far ([`rate_test`]); its failure
    /// rolls back at once.
    Sequential,
    /// The Mann-Whitney U test of the step so far ([`comparison`]); decided at
    /// the step's end.
    MannWhitney,
}

impl std::fmt::Display for Test {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Test::Limit => "limit",
            Test::Sequential => "sequential",
            Test::MannWhitney => "Mann-Whitney U",
        })
    }
}

/// What a metric's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A share of requests, 0..=1.
    Share,
    /// Milliseconds.
    Millis,
    /// A score, 0..=1.
    Score,
    /// A number of things (log templates).
    Count,
    /// A custom metric's own unit.
    Number,
}

impl Unit {
    /// A value in this unit, for people: `0.52%`, `12.3ms`, `0.91`.
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Share => format!("{:.2}%", value * 100.0),
            Unit::Millis => format!("{value:.1}ms"),
            Unit::Score => format!("{value:.2}"),
            Unit::Count => format!("{value:.0}"),
            Unit::Number => format!("{value:.4}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_owned(),
        }
    }
}

/// Why a metric did not pass, as data; [`MetricResult::explain`] says it in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Why {
    /// The canary served fewer requests than are needed to judge.
    TooFewRequests { served: u64, needed: u64 },
    /// A limit relative to the baseline, with no baseline traffic to measure.
    NoBaseline,
    /// No value to judge (no requests, no latencies).
    NoData,
    /// Past the configured limit.
    PastLimit,
    /// The test found the canary worse, beyond chance.
    Significant,
    /// The canary logged error templates that are new, or more frequent than on
    /// its baseline ([`log_check`]); `fails`: configured to fail the window, else a warning.
    LogErrors { templates: u32, fails: bool },
}

/// One metric judged: the numbers a person (or a program) needs to check the
/// verdict, in the metric's [`Unit`].
///
/// Results recorded before they carried numbers (their values were text) still
/// read: with their verdict, as limits, without the numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    /// `error_rate`, `latency_p50`/`p95`/`p99`, `apdex`, `slow_requests` (the
    /// share slower than the baseline's quantile) or `latency` (the distribution).
    pub metric: String,
    #[serde(default = "limit_test")]
    pub test: Test,
    #[serde(default = "share_unit")]
    pub unit: Unit,
    /// What the canary is judged against (the stable version, or its baseline):
    /// this window's value for a limit, the run's or step's for a test.
    #[serde(default, deserialize_with = "number_or_old_text")]
    pub baseline: Option<f64>,
    #[serde(default, deserialize_with = "number_or_old_text")]
    pub canary: Option<f64>,
    /// A limit: the bound on `canary` (the tightest that applied). A sequential
    /// test: the bound on `statistic`, `ln(1/alpha)`. Mann-Whitney: the bound on
    /// `effect`, `1 + tolerance`.
    #[serde(default, deserialize_with = "number_or_old_text")]
    pub limit: Option<f64>,
    /// Whether the bound is a minimum (Apdex) rather than a maximum.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub limit_is_min: bool,
    /// The test's statistic: `ln M` of the mixture, or `U`.
    #[serde(default)]
    pub statistic: Option<f64>,
    /// The (anytime-valid, for a sequential test) one-sided p-value.
    #[serde(default)]
    pub p_value: Option<f64>,
    /// How much worse the canary is: the ratio of the rates, or of the medians.
    #[serde(default)]
    pub effect: Option<f64>,
    /// `slow_requests`: the latency a request is counted above, ms.
    #[serde(default)]
    pub threshold_ms: Option<f64>,
    pub verdict: Verdict,
    #[serde(default)]
    pub why: Option<Why>,
}

fn limit_test() -> Test {
    Test::Limit
}

fn share_unit() -> Unit {
    Unit::Share
}

/// A number, or the text an older record kept in its place (read as unknown).
fn number_or_old_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Recorded {
        Number(f64),
        Text(serde::de::IgnoredAny),
    }
    Ok(match Option::<Recorded>::deserialize(d)? {
        Some(Recorded::Number(n)) => Some(n),
        Some(Recorded::Text(_)) | None => None,
    })
}

impl MetricResult {
    /// A pass with no numbers yet, to fill in.
    pub(crate) fn of(metric: &str, test: Test, unit: Unit) -> MetricResult {
        MetricResult {
            metric: metric.to_owned(),
            test,
            unit,
            baseline: None,
            canary: None,
            limit: None,
            limit_is_min: false,
            statistic: None,
            p_value: None,
            effect: None,
            threshold_ms: None,
            verdict: Verdict::Pass,
            why: None,
        }
    }

    /// A value of this metric for people.
    pub fn format(&self, value: Option<f64>) -> String {
        value.map_or_else(|| "-".to_owned(), |v| self.unit.format(v))
    }

    /// The bound, for people: `<= 1.00%`, `>= 0.90`, `ln M < 5.30 (alpha 0.50%)`,
    /// `median ratio <= 1.10`.
    pub fn format_limit(&self) -> String {
        let Some(limit) = self.limit else {
            return "-".to_owned();
        };
        match self.test {
            Test::Limit if self.limit_is_min => format!(">= {}", self.unit.format(limit)),
            Test::Limit => format!("<= {}", self.unit.format(limit)),
            Test::Sequential => format!("ln M < {limit:.2} (alpha {:.2}%)", (-limit).exp() * 100.0),
            Test::MannWhitney => format!("median ratio <= {limit:.2}"),
        }
    }

    /// Why it did not pass, in one sentence; `None` for a pass.
    pub fn explain(&self) -> Option<String> {
        let why = self.why?;
        let name = &self.metric;
        Some(match why {
            Why::TooFewRequests { served, needed } => {
                format!("canary served {served} requests, fewer than the {needed} needed to judge")
            }
            Why::NoBaseline => format!("no stable traffic to compare {name} with"),
            Why::NoData => format!("no {name} data on both sides yet"),
            Why::LogErrors { templates, fails } => format!(
                "the canary logged {templates} error template(s) new or more frequent than on its baseline{}",
                if fails { "" } else { " (a warning only)" }
            ),
            Why::PastLimit => format!(
                "{name} {} is past the limit {}",
                self.format(self.canary),
                self.format_limit()
            ),
            Why::Significant => {
                let p = self.p_value.unwrap_or(1.0);
                let effect = self
                    .effect
                    .map_or_else(String::new, |e| format!(", {e:.2}x"));
                match self.test {
                    Test::MannWhitney => format!(
                        "{name} is higher on the canary (median {} vs {}{effect}, p = {p:.2e})",
                        self.format(self.canary),
                        self.format(self.baseline)
                    ),
                    _ => format!(
                        "{name} is higher on the canary beyond chance ({} vs {}{effect}, anytime-valid p = {p:.2e})",
                        self.format(self.canary),
                        self.format(self.baseline)
                    ),
                }
            }
        })
    }
}

/// What the canary was judged against in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Against {
    /// Its baseline (the stable version, or a fresh baseline) as measured in the
    /// same window.
    #[default]
    Baseline,
    /// The baseline's last window with enough requests: it served too few in
    /// this one (at a 100% step it serves none).
    CarriedBaseline,
    /// Nothing: absolute limits only (a blue-green preview).
    Limits,
}

/// One analysis window judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    /// What the canary is judged against: the stable version, or its baseline.
    pub stable: Sample,
    pub canary: Sample,
    /// Where `stable` came from.
    #[serde(default)]
    pub against: Against,
    pub metrics: Vec<MetricResult>,
    /// The metric source could not say what a version did: the window is
    /// inconclusive, with no metric judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_error: Option<Box<SourceError>>,
    /// Fail if a limit or a sequential test failed; else inconclusive if the
    /// canary served fewer than `min_requests` or a limit was inconclusive; else
    /// pass. (A Mann-Whitney result is decided at the step's end, not here.)
    pub verdict: Verdict,
    /// The log check's findings in the step so far ([`log_check`]), when it
    /// found any (boxed: most windows have none, and reports travel in events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Box<log_check::LogReport>>,
}

impl WindowReport {
    /// The failing metrics (of any test).
    pub fn failures(&self) -> Vec<&MetricResult> {
        self.metrics
            .iter()
            .filter(|m| m.verdict == Verdict::Fail)
            .collect()
    }

    /// A window the metric source could not measure: inconclusive, never a pass.
    pub fn unmeasured(error: SourceError, against: Against) -> WindowReport {
        WindowReport {
            stable: Sample::default(),
            canary: Sample::default(),
            against,
            metrics: Vec::new(),
            source_error: Some(Box::new(error)),
            verdict: Verdict::Inconclusive,
            logs: None,
        }
    }

    /// The results of one test.
    pub fn of(&self, test: Test) -> impl Iterator<Item = &MetricResult> {
        self.metrics.iter().filter(move |m| m.test == test)
    }
}

/// Judges one window of the canary against the stable version's (or a
/// baseline's) by the configured limits.
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
    let mut metrics: Vec<MetricResult> = limits(rules)
        .iter()
        .map(|limit| limit.check(stable, canary))
        .collect();
    let enough = canary.requests >= min_requests;
    if !enough {
        for m in &mut metrics {
            m.verdict = Verdict::Inconclusive;
            m.why = Some(Why::TooFewRequests {
                served: canary.requests,
                needed: min_requests,
            });
        }
    }
    let verdict = window_verdict(&metrics, enough);
    WindowReport {
        stable: stable.clone(),
        canary: canary.clone(),
        against: Against::Baseline,
        metrics,
        source_error: None,
        verdict,
        logs: None,
    }
}

fn window_verdict(metrics: &[MetricResult], enough: bool) -> Verdict {
    let counted = || metrics.iter().filter(|m| m.test != Test::MannWhitney);
    if counted().any(|m| m.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if !enough || counted().any(|m| m.verdict == Verdict::Inconclusive) {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    }
}

/// Reads a metric's value off a sample.
type Value = fn(&Sample, &Limit) -> Option<f64>;

/// A limit on one metric of a window: absolute, relative to the baseline's value,
/// or both (the tightest applies).
struct Limit {
    metric: String,
    unit: Unit,
    value: Value,
    absolute: Option<f64>,
    relative: Option<Relative>,
    /// Apdex: the value must stay above the bound.
    at_least: bool,
    /// Apdex's threshold T.
    apdex_t: Duration,
}

#[derive(Clone, Copy)]
enum Relative {
    /// The baseline's value plus this (error rate points).
    Plus(f64),
    /// The baseline's value times this (a latency ratio).
    Times(f64),
}

fn limits(rules: &MetricRules) -> Vec<Limit> {
    let mut out = Vec::new();
    if let Some(rule) = &rules.error_rate {
        out.push(Limit {
            metric: "error_rate".to_owned(),
            unit: Unit::Share,
            value: |s, _| s.error_rate(),
            absolute: rule.max.map(|p| p.fraction()),
            relative: rule.max_over_stable.map(|p| Relative::Plus(p.fraction())),
            at_least: false,
            apdex_t: Duration::ZERO,
        });
    }
    let quantiles: [(&'static str, &Option<LatencyRule>, Value); 3] = [
        ("latency_p50", &rules.latency_p50, |s, _| millis(s.p50)),
        ("latency_p95", &rules.latency_p95, |s, _| millis(s.p95)),
        ("latency_p99", &rules.latency_p99, |s, _| millis(s.p99)),
    ];
    for (metric, rule, value) in quantiles {
        if let Some(rule) = rule {
            out.push(Limit {
                metric: metric.to_owned(),
                unit: Unit::Millis,
                value,
                absolute: rule.max.map(|d| d.as_secs_f64() * 1000.0),
                relative: rule.max_ratio.map(Relative::Times),
                at_least: false,
                apdex_t: Duration::ZERO,
            });
        }
    }
    if let Some(rule) = &rules.apdex {
        out.push(Limit {
            metric: "apdex".to_owned(),
            unit: Unit::Score,
            value: |s, l| s.apdex(l.apdex_t),
            absolute: Some(rule.min),
            relative: None,
            at_least: true,
            apdex_t: rule.threshold,
        });
    }
    out.extend(rules.custom.iter().map(custom_limit));
    out
}

fn custom_limit(rule: &CustomRule) -> Limit {
    Limit {
        metric: rule.name.clone(),
        unit: Unit::Number,
        value: |s, l| s.custom.get(&l.metric).copied(),
        absolute: rule.bound,
        relative: rule.ratio.map(Relative::Times),
        at_least: rule.direction == Direction::HigherIsBetter,
        apdex_t: Duration::ZERO,
    }
}

fn millis(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1000.0)
}

impl Limit {
    fn check(&self, baseline: &Sample, canary: &Sample) -> MetricResult {
        let mut result = MetricResult::of(&self.metric, Test::Limit, self.unit);
        result.limit_is_min = self.at_least;
        result.baseline = (self.value)(baseline, self);
        result.canary = (self.value)(canary, self);
        let relative = self.relative.and_then(|r| {
            result.baseline.map(|b| match r {
                Relative::Plus(points) => b + points,
                Relative::Times(ratio) => b * ratio,
            })
        });
        let tightest = |a: f64, b: f64| if self.at_least { a.max(b) } else { a.min(b) };
        result.limit = match (self.absolute, relative) {
            (Some(a), Some(r)) => Some(tightest(a, r)),
            (a, r) => a.or(r),
        };
        let relative_unknown = self.relative.is_some() && result.baseline.is_none();
        (result.verdict, result.why) = match (result.canary, result.limit) {
            (None, _) => (Verdict::Inconclusive, Some(Why::NoData)),
            (Some(c), Some(l)) if (self.at_least && c < l) || (!self.at_least && c > l) => {
                (Verdict::Fail, Some(Why::PastLimit))
            }
            (Some(_), _) if relative_unknown => (Verdict::Inconclusive, Some(Why::NoBaseline)),
            (Some(_), _) => (Verdict::Pass, None),
        };
        result
    }
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
        apdex: rules.apdex,
        custom: rules
            .custom
            .iter()
            .filter(|r| r.bound.is_some())
            .map(|r| CustomRule {
                ratio: None,
                ..r.clone()
            })
            .collect(),
    }
}

fn absolute_latency(rule: Option<LatencyRule>) -> Option<LatencyRule> {
    rule.filter(|r| r.max.is_some()).map(|r| LatencyRule {
        max_ratio: None,
        ..r
    })
}
