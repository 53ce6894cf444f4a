//! How a canary is judged: the `analysis` settings and the metric rules under
//! `analysis.metrics`.

use super::Checker;
use crate::parse::node::{Entry, Value};
use crate::types::{
    AnalysisSpec, ApdexRule, ComparisonSpec, ErrorRateRule, LatencyRule, MetricRules,
    SequentialSpec, defaults,
};

pub(super) const ANALYSIS: &[&str] = &[
    "interval",
    "min_requests",
    "failure_limit",
    "inconclusive_limit",
    "metrics",
    "sequential",
    "comparison",
    "logs",
    "source",
];
pub(super) const METRICS: &[&str] = &[
    "error_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "apdex",
];
pub(super) const ERROR_RATE: &[&str] = &["max", "max_over_stable"];
pub(super) const LATENCY: &[&str] = &["max", "max_ratio"];
pub(super) const APDEX: &[&str] = &["threshold", "min"];
pub(super) const SEQUENTIAL: &[&str] = &["alpha", "errors", "latency_quantile"];
pub(super) const COMPARISON: &[&str] = &["confidence", "tolerance", "min_samples"];

impl Checker<'_> {
    pub(super) fn analysis(&mut self, e: &Entry) -> Option<AnalysisSpec> {
        let f = self.fields(&e.value, "analysis", ANALYSIS)?;
        let d = AnalysisSpec::default();
        let interval = self.optional(&f, "interval", d.interval, Self::positive_duration);
        let min_requests = self.optional(&f, "min_requests", d.min_requests, |c, e| {
            c.whole(e, 0, u64::MAX)
        });
        let failure_limit = self.optional(&f, "failure_limit", d.failure_limit, Self::count);
        let inconclusive_limit =
            self.optional(&f, "inconclusive_limit", d.inconclusive_limit, Self::count);
        let metrics = match f.get("metrics") {
            Some(e) => self.metrics(e),
            None => Some(d.metrics),
        };
        let sequential = self.optional(&f, "sequential", d.sequential, |c, e| {
            c.switched(e, |c, e| c.sequential(e))
        });
        let comparison = self.optional(&f, "comparison", d.comparison, |c, e| {
            c.switched(e, |c, e| c.comparison(e))
        });
        let logs = self.optional(&f, "logs", d.logs, |c, e| {
            c.switched(e, |c, e| c.log_check(e))
        });
        let source = match f.get("source") {
            Some(e) => self.source(e),
            None => Some((d.source, Vec::new())),
        };
        let (source, custom) = source?;
        let mut analysis = AnalysisSpec {
            interval: interval?,
            min_requests: min_requests?,
            failure_limit: failure_limit?,
            inconclusive_limit: inconclusive_limit?,
            metrics: MetricRules { custom, ..metrics? },
            sequential: sequential?,
            comparison: comparison?,
            logs: logs?,
            source,
        };
        self.fit_source(e, &mut analysis);
        Some(analysis)
    }

    /// A section that `false` turns off (`true` keeps its defaults): `None` inside
    /// when off, the outer `None` when invalid.
    pub(super) fn switched<T: Default>(
        &mut self,
        e: &Entry,
        section: impl FnOnce(&mut Self, &Entry) -> Option<T>,
    ) -> Option<Option<T>> {
        match e.value.value {
            Value::Bool(false) => Some(None),
            Value::Bool(true) => Some(Some(T::default())),
            _ => section(self, e).map(Some),
        }
    }

    fn sequential(&mut self, e: &Entry) -> Option<SequentialSpec> {
        let f = self.fields(&e.value, "analysis.sequential", SEQUENTIAL)?;
        let d = SequentialSpec::default();
        let alpha = self.optional(&f, "alpha", d.alpha, |c, e| {
            c.percent(e)
                .filter(|p| c.strictly_between(e, p.fraction(), "1%"))
        });
        let errors = self.optional(&f, "errors", d.errors, Self::boolean);
        let quantile = self.optional(&f, "latency_quantile", d.latency_quantile, |c, e| {
            if let Value::Bool(false) = e.value.value {
                return Some(None);
            }
            c.percent(e)
                .filter(|p| c.strictly_between(e, p.fraction(), "95%"))
                .map(Some)
        });
        Some(SequentialSpec {
            alpha: alpha?,
            errors: errors?,
            latency_quantile: quantile?,
        })
    }

    fn comparison(&mut self, e: &Entry) -> Option<ComparisonSpec> {
        let f = self.fields(&e.value, "analysis.comparison", COMPARISON)?;
        let d = ComparisonSpec::default();
        let confidence = self.optional(&f, "confidence", d.confidence, |c, e| {
            c.percent(e)
                .filter(|p| c.strictly_between(e, p.fraction(), "99%"))
        });
        let tolerance = self.optional(&f, "tolerance", d.tolerance, Self::percent);
        let min_samples = self.optional(&f, "min_samples", d.min_samples, |c, e| {
            c.whole(e, 1, u64::MAX)
        });
        Some(ComparisonSpec {
            confidence: confidence?,
            tolerance: tolerance?,
            min_samples: min_samples?,
        })
    }

    /// Whether a share is strictly between 0% and 100%, saying so if not.
    fn strictly_between(&mut self, e: &Entry, fraction: f64, example: &str) -> bool {
        let ok = fraction > 0.0 && fraction < 1.0;
        if !ok {
            self.error(
                Self::at(e),
                format!(
                    "`{}` must be more than 0% and less than 100%, e.g. {example}",
                    e.key
                ),
            );
        }
        ok
    }

    fn metrics(&mut self, e: &Entry) -> Option<MetricRules> {
        let f = self.fields(&e.value, "analysis.metrics", METRICS)?;
        if f.entries.is_empty() {
            // Unknown metrics were reported already; say what is missing only if
            // nothing else was written.
            if !matches!(&e.value.value, Value::Map(m) if !m.is_empty()) {
                self.error(
                    e.key_pos,
                    format!(
                        "`analysis.metrics` has no metrics: give at least one (valid: {}), \
                         or leave `metrics` out for the default `error_rate: {{ max: {} }}`",
                        METRICS.join(", "),
                        defaults::ERROR_RATE_MAX
                    ),
                );
            }
            return None;
        }
        let mut ok = true;
        let mut rules = MetricRules::default();
        for entry in &f.entries {
            let path = format!("analysis.metrics.{}", entry.key);
            if entry.key == "error_rate" {
                match self.error_rate(entry, &path) {
                    Some(rule) => rules.error_rate = Some(rule),
                    None => ok = false,
                }
            } else if entry.key == "apdex" {
                match self.apdex(entry, &path) {
                    Some(rule) => rules.apdex = Some(rule),
                    None => ok = false,
                }
            } else {
                match self.latency(entry, &path) {
                    Some(rule) => match entry.key.as_str() {
                        "latency_p50" => rules.latency_p50 = Some(rule),
                        "latency_p95" => rules.latency_p95 = Some(rule),
                        _ => rules.latency_p99 = Some(rule),
                    },
                    None => ok = false,
                }
            }
        }
        ok.then_some(rules)
    }

    fn error_rate(&mut self, e: &Entry, path: &str) -> Option<ErrorRateRule> {
        let f = self.fields(&e.value, path, ERROR_RATE)?;
        let max = f.get("max").map(|e| self.percent(e));
        let over = f.get("max_over_stable").map(|e| self.percent(e));
        if max.is_none() && over.is_none() {
            if !f.unknown.is_empty() {
                return None;
            }
            self.error(
                e.key_pos,
                format!(
                    "`{path}` needs at least one of `max` or `max_over_stable`, e.g. `max: 5%`"
                ),
            );
            return None;
        }
        Some(ErrorRateRule {
            max: if_valid(max)?,
            max_over_stable: if_valid(over)?,
        })
    }

    fn latency(&mut self, e: &Entry, path: &str) -> Option<LatencyRule> {
        let f = self.fields(&e.value, path, LATENCY)?;
        let max = f.get("max").map(|e| self.positive_duration(e));
        let ratio = f.get("max_ratio").map(|e| self.ratio(e));
        if max.is_none() && ratio.is_none() {
            if !f.unknown.is_empty() {
                return None;
            }
            self.error(
                e.key_pos,
                format!("`{path}` needs at least one of `max` or `max_ratio`, e.g. `max: 300ms`"),
            );
            return None;
        }
        Some(LatencyRule {
            max: if_valid(max)?,
            max_ratio: if_valid(ratio)?,
        })
    }
}

impl Checker<'_> {
    fn apdex(&mut self, e: &Entry, path: &str) -> Option<ApdexRule> {
        let f = self.fields(&e.value, path, APDEX)?;
        let threshold = f.get("threshold").map(|e| self.positive_duration(e));
        let min = f.get("min").map(|e| {
            let score = match e.value.value {
                Value::Int(i) => Some(i as f64),
                Value::Float(x) => Some(x),
                _ => None,
            };
            let valid = score.filter(|s| (0.0..=1.0).contains(s));
            if valid.is_none() {
                self.error(
                    Self::at(e),
                    format!(
                        "`{path}.min` is a score from 0 to 1, e.g. 0.9; got {}",
                        e.value.describe()
                    ),
                );
            }
            valid
        });
        let (Some(threshold), Some(min)) = (threshold, min) else {
            if f.unknown.is_empty() {
                self.error(
                    e.key_pos,
                    format!("`{path}` needs both `threshold` and `min`, e.g. `{{ threshold: 100ms, min: 0.9 }}`"),
                );
            }
            return None;
        };
        Some(ApdexRule {
            threshold: threshold?,
            min: min?,
        })
    }
}

/// An optional setting that was checked if present: `None` if it was present but
/// invalid, else whether it was given.
fn if_valid<T>(checked: Option<Option<T>>) -> Option<Option<T>> {
    match checked {
        None => Some(None),
        Some(value) => value.map(Some),
    }
}
