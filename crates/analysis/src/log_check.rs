//! The log check: the canary's error lines against its baseline's, template by
//! template, cumulatively over an analysis step ([`LogTally`]).
//!
//! Both sides' error-level lines ([`crate::log_line`]) are mined into templates by
//! one [`Drain`], so a template means the same on both sides. A template is a
//! finding when the canary logged it at least `min_count` times and
//! - it is **new**: the baseline never logged it in the step, or
//! - its **rate rose**: more than `rate_factor` times the baseline's.
//!
//! Rates are per request each side served, when both served some: the share of
//! traffic each side gets differs (10% against 90%), and a count per request is
//! what an error a request runs into scales with. (Per line instead would let a
//! canary that merely logs more of everything else hide its errors.) When a side
//! served no requests (a 100% step leaves the stable version none), rates are per
//! line the side logged, the best measure of how busy it was that is left. With
//! neither, the sides cannot be compared and there are no findings.
//!
//! `min_count` keeps a single line from being a verdict. The tally is per step,
//! so evidence builds up over the step's windows; a finding stays one for the
//! rest of the step.

use std::collections::BTreeMap;

use cutover_spec::{LogAction, LogCheckSpec};
use serde::{Deserialize, Serialize};

use crate::drain::{Drain, TemplateId};
use crate::log_line::{self, Level};
use crate::{MetricResult, Test, Unit, Verdict, Why, WindowReport};

/// The metric a log check reports under.
pub const METRIC: &str = "log_errors";

/// Which side a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Baseline,
    Canary,
}

/// How a finding's template differs between the sides.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// The baseline never logged it.
    New,
    /// The canary logs it this many times as often (per request, or per line).
    Rose { factor: f64 },
}

/// What rates are counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    Request,
    Line,
}

/// An error template the canary logs that its baseline does not, or far less.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogFinding {
    /// The template, variable parts as `<*>`.
    pub template: String,
    /// One line of it as the canary logged it.
    pub example: String,
    /// Lines of it in the step, on each side.
    pub baseline: u64,
    pub canary: u64,
    pub change: Change,
    /// What the rates behind `change` are per.
    pub per: Per,
}

/// The findings of a window's log check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogReport {
    /// The canary's most frequent first.
    pub findings: Vec<LogFinding>,
}

impl LogReport {
    /// A report of `findings`; `None` without any.
    pub fn of(findings: Vec<LogFinding>) -> Option<Box<LogReport>> {
        (!findings.is_empty()).then(|| Box::new(LogReport { findings }))
    }
}

/// One template's lines on each side.
#[derive(Debug, Clone, Default)]
struct Counts {
    baseline: u64,
    canary: u64,
    /// The canary's first line of it.
    example: Option<String>,
}

/// Both sides' lines and requests in one step, mined into templates.
#[derive(Debug, Clone, Default)]
pub struct LogTally {
    drain: Drain,
    templates: BTreeMap<TemplateId, Counts>,
    /// Lines of any level, per side.
    lines: [u64; 2],
    requests: [u64; 2],
}

fn slot(side: Side) -> usize {
    match side {
        Side::Baseline => 0,
        Side::Canary => 1,
    }
}

impl LogTally {
    /// Adds lines one side logged (without their newlines).
    pub fn add_lines<'a>(&mut self, side: Side, lines: impl IntoIterator<Item = &'a str>) {
        for line in lines {
            self.lines[slot(side)] += 1;
            let parsed = log_line::parse(line);
            if parsed.level != Level::Error {
                continue;
            }
            let Some(id) = self.drain.add(&parsed.text) else {
                continue;
            };
            let counts = self.templates.entry(id).or_default();
            match side {
                Side::Baseline => counts.baseline += 1,
                Side::Canary => {
                    counts.canary += 1;
                    counts.example.get_or_insert_with(|| line.trim().to_owned());
                }
            }
        }
    }

    /// Adds requests one side served.
    pub fn add_requests(&mut self, side: Side, requests: u64) {
        self.requests[slot(side)] += requests;
    }

    /// The findings so far, the canary's most frequent first.
    pub fn findings(&self, spec: &LogCheckSpec) -> Vec<LogFinding> {
        let Some((per, [base_total, canary_total])) = self.denominators() else {
            return Vec::new();
        };
        let mut out: Vec<LogFinding> = self
            .templates
            .iter()
            .filter(|(_, c)| c.canary >= spec.min_count.max(1))
            .filter_map(|(&id, c)| {
                let change = if c.baseline == 0 {
                    Change::New
                } else {
                    let canary_rate = c.canary as f64 / canary_total as f64;
                    let base_rate = c.baseline as f64 / base_total as f64;
                    let factor = canary_rate / base_rate;
                    if factor <= spec.rate_factor {
                        return None;
                    }
                    Change::Rose { factor }
                };
                Some(LogFinding {
                    template: self.drain.template(id)?,
                    example: c.example.clone().unwrap_or_default(),
                    baseline: c.baseline,
                    canary: c.canary,
                    change,
                    per,
                })
            })
            .collect();
        out.sort_by(|a, b| b.canary.cmp(&a.canary).then(a.template.cmp(&b.template)));
        out
    }

    /// What both sides' rates are per, and each side's total of it; `None` when
    /// a side has nothing to count (or the canary logged nothing at all).
    fn denominators(&self) -> Option<(Per, [u64; 2])> {
        if self.requests.iter().all(|&r| r > 0) {
            Some((Per::Request, self.requests))
        } else if self.lines.iter().all(|&l| l > 0) {
            Some((Per::Line, self.lines))
        } else {
            None
        }
    }

    /// The check's result for a window, and its findings; `None` when the check is
    /// off or the sides cannot be compared. A finding fails the window with
    /// `new_errors: fail`, and is recorded (the result passes, saying why) with `warn`.
    pub fn judge(&self, spec: &LogCheckSpec) -> Option<(MetricResult, Vec<LogFinding>)> {
        if spec.new_errors == LogAction::Off {
            return None;
        }
        self.denominators()?;
        let findings = self.findings(spec);
        let mut result = MetricResult::of(METRIC, Test::Limit, Unit::Count);
        result.canary = Some(findings.len() as f64);
        result.limit = Some(0.0);
        if !findings.is_empty() {
            result.why = Some(Why::LogErrors {
                templates: findings.len() as u32,
                fails: spec.new_errors == LogAction::Fail,
            });
            if spec.new_errors == LogAction::Fail {
                result.verdict = Verdict::Fail;
            }
        }
        Some((result, findings))
    }
}

impl WindowReport {
    /// The log check's findings, if it found any.
    pub fn log_findings(&self) -> &[LogFinding] {
        self.logs.as_ref().map_or(&[], |r| &r.findings)
    }

    /// Adds the log check's result and findings to a judged window, and judges
    /// the window again with it (`min_requests`: what the canary needed to serve).
    pub fn add_log_check(
        &mut self,
        result: MetricResult,
        findings: Vec<LogFinding>,
        min_requests: u64,
    ) {
        self.metrics.push(result);
        self.logs = LogReport::of(findings);
        self.verdict = crate::window_verdict(&self.metrics, self.canary.requests >= min_requests);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(new_errors: LogAction) -> LogCheckSpec {
        LogCheckSpec {
            new_errors,
            rate_factor: 3.0,
            min_count: 3,
        }
    }

    fn lines(text: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| text.replace('#', &i.to_string())).collect()
    }

    fn add(tally: &mut LogTally, side: Side, lines: &[String]) {
        tally.add_lines(side, lines.iter().map(String::as_str));
    }

    #[test]
    fn a_new_error_template_in_the_canary_is_a_finding() {
        let mut tally = LogTally::default();
        tally.add_requests(Side::Baseline, 900);
        tally.add_requests(Side::Canary, 100);
        add(
            &mut tally,
            Side::Baseline,
            &lines("INFO served request #", 900),
        );
        add(
            &mut tally,
            Side::Baseline,
            &lines("ERROR cache miss for key #", 20),
        );
        add(
            &mut tally,
            Side::Canary,
            &lines("INFO served request #", 100),
        );
        add(
            &mut tally,
            Side::Canary,
            &lines("ERROR cache miss for key #", 2),
        );
        add(
            &mut tally,
            Side::Canary,
            &lines("ERROR db timeout after #ms", 4),
        );
        let (result, findings) = tally.judge(&spec(LogAction::Fail)).unwrap();
        assert_eq!(findings.len(), 1, "{findings:?}");
        let f = &findings[0];
        assert_eq!(f.template, "ERROR db timeout after <*>");
        assert_eq!(f.example, "ERROR db timeout after 0ms");
        assert_eq!((f.baseline, f.canary), (0, 4));
        assert_eq!(f.change, Change::New);
        assert_eq!(f.per, Per::Request);
        assert_eq!(result.verdict, Verdict::Fail);
        assert_eq!(result.canary, Some(1.0));

        let (warned, _) = tally.judge(&spec(LogAction::Warn)).unwrap();
        assert_eq!(warned.verdict, Verdict::Pass);
        assert!(warned.explain().unwrap().contains("1 error template"));
        assert!(tally.judge(&spec(LogAction::Off)).is_none());
    }

    #[test]
    fn a_rate_that_rose_past_the_factor_is_a_finding_per_request() {
        let mut tally = LogTally::default();
        tally.add_requests(Side::Baseline, 1000);
        tally.add_requests(Side::Canary, 100);
        // 1% of the baseline's requests against 5%: 5x.
        add(
            &mut tally,
            Side::Baseline,
            &lines("ERROR upstream # refused", 10),
        );
        add(
            &mut tally,
            Side::Canary,
            &lines("ERROR upstream # refused", 5),
        );
        let findings = tally.findings(&spec(LogAction::Fail));
        assert_eq!(findings.len(), 1);
        assert!(
            matches!(findings[0].change, Change::Rose { factor } if (factor - 5.0).abs() < 1e-9)
        );
        // 2x is within the factor.
        let mut calm = LogTally::default();
        calm.add_requests(Side::Baseline, 1000);
        calm.add_requests(Side::Canary, 100);
        add(
            &mut calm,
            Side::Baseline,
            &lines("ERROR upstream # refused", 10),
        );
        add(
            &mut calm,
            Side::Canary,
            &lines("ERROR upstream # refused", 2),
        );
        assert!(calm.findings(&spec(LogAction::Fail)).is_empty());
    }

    #[test]
    fn fewer_lines_than_min_count_are_no_verdict() {
        let mut tally = LogTally::default();
        tally.add_requests(Side::Baseline, 100);
        tally.add_requests(Side::Canary, 100);
        add(
            &mut tally,
            Side::Canary,
            &lines("ERROR disk full on /dev/sda#", 2),
        );
        let (result, findings) = tally.judge(&spec(LogAction::Fail)).unwrap();
        assert!(findings.is_empty());
        assert_eq!(result.verdict, Verdict::Pass);
        assert_eq!(result.why, None);
    }

    #[test]
    fn without_requests_rates_are_per_line_and_without_either_nothing_is_judged() {
        let mut tally = LogTally::default();
        add(
            &mut tally,
            Side::Canary,
            &lines("ERROR worker # crashed", 5),
        );
        assert!(tally.judge(&spec(LogAction::Fail)).is_none());
        add(&mut tally, Side::Baseline, &lines("INFO tick #", 50));
        let (_, findings) = tally.judge(&spec(LogAction::Fail)).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].per, Per::Line);
    }
}
