//! How a canary is judged: the `analysis` settings and the metric rules under
//! `analysis.metrics`.

use super::Checker;
use crate::parse::node::{Entry, Value};
use crate::types::{AnalysisSpec, ErrorRateRule, LatencyRule, MetricRules, defaults};

pub(super) const ANALYSIS: &[&str] = &[
    "interval",
    "min_requests",
    "failure_limit",
    "inconclusive_limit",
    "metrics",
];
pub(super) const METRICS: &[&str] = &["error_rate", "latency_p50", "latency_p95", "latency_p99"];
pub(super) const ERROR_RATE: &[&str] = &["max", "max_over_stable"];
pub(super) const LATENCY: &[&str] = &["max", "max_ratio"];

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
        Some(AnalysisSpec {
            interval: interval?,
            min_requests: min_requests?,
            failure_limit: failure_limit?,
            inconclusive_limit: inconclusive_limit?,
            metrics: metrics?,
        })
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

/// An optional setting that was checked if present: `None` if it was present but
/// invalid, else whether it was given.
fn if_valid<T>(checked: Option<Option<T>>) -> Option<Option<T>> {
    match checked {
        None => Some(None),
        Some(value) => value.map(Some),
    }
}
