//! Judging windows, shared by every strategy: what a judged window means for the
//! run (stay, go on, roll back), counted across the run's windows, and which
//! baseline a window is judged against. Pure functions of plain values.

use std::time::Duration;

use cutover_analysis::policy::{self, JudgeState};
use cutover_analysis::{
    Against, MetricResult, Sample, Test, Verdict, WindowReport, absolute_limits, judge,
};
use cutover_spec::{AnalysisSpec, Pause};
use serde::{Deserialize, Serialize};

/// What to do after an analysis window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Keep analysing at this weight.
    Stay,
    /// The step's pause is over and the last window passed: go to the next step.
    StepDone,
    /// Roll back, for this reason.
    RollBack(String),
}

/// Counts kept across the windows of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Failed windows in the whole run.
    pub failures: u32,
    /// Inconclusive windows in a row.
    pub inconclusive_streak: u32,
}

/// Decides what follows a judged window.
///
/// `elapsed` is the time spent in the current step (a canary step, a rolling
/// batch, a blue-green phase), which lasts `pause`.
/// - A sequential test that found the canary worse rolls back at once: its
///   false-alarm chance is bounded however often it looks, so there is nothing
///   to wait for.
/// - A failed window (a limit) counts towards `failure_limit`; inconclusive ones
///   in a row towards `inconclusive_limit`.
/// - A step ends only on a passing window once its pause is over, and only if the
///   step's Mann-Whitney comparison, decided then and only then, passes too: a
///   rollout never moves on, let alone promotes, on missing data.
pub fn after_window(
    tally: &mut Tally,
    analysis: &AnalysisSpec,
    pause: Pause,
    elapsed: Duration,
    report: &WindowReport,
) -> Next {
    let rejected: Vec<String> = report
        .of(Test::Sequential)
        .filter(|m| m.verdict == Verdict::Fail)
        .map(explain)
        .collect();
    if !rejected.is_empty() {
        return Next::RollBack(format!(
            "the sequential test found the canary worse: {}",
            rejected.join("; ")
        ));
    }
    match report.verdict {
        Verdict::Fail => {
            tally.failures += 1;
            tally.inconclusive_streak = 0;
            if tally.failures >= analysis.failure_limit {
                let why: Vec<String> = report.failures().into_iter().map(explain).collect();
                return Next::RollBack(format!(
                    "analysis failed {} time(s), reaching the failure limit of {}: {}",
                    tally.failures,
                    analysis.failure_limit,
                    why.join("; ")
                ));
            }
            Next::Stay
        }
        Verdict::Inconclusive => inconclusive(tally, analysis, report, Test::Limit),
        Verdict::Pass => match pause {
            Pause::For(d) if elapsed >= d => step_end(tally, analysis, report),
            _ => {
                tally.inconclusive_streak = 0;
                Next::Stay
            }
        },
    }
}

/// The step's pause is over and its last window passed: the comparison decides.
fn step_end(tally: &mut Tally, analysis: &AnalysisSpec, report: &WindowReport) -> Next {
    let compared: Vec<&MetricResult> = report.of(Test::MannWhitney).collect();
    if let Some(failed) = compared.iter().find(|m| m.verdict == Verdict::Fail) {
        return Next::RollBack(format!(
            "at the end of the step, the Mann-Whitney comparison failed: {}",
            explain(failed)
        ));
    }
    if compared.iter().any(|m| m.verdict == Verdict::Inconclusive) {
        return inconclusive(tally, analysis, report, Test::MannWhitney);
    }
    tally.inconclusive_streak = 0;
    Next::StepDone
}

fn inconclusive(
    tally: &mut Tally,
    analysis: &AnalysisSpec,
    report: &WindowReport,
    test: Test,
) -> Next {
    tally.inconclusive_streak += 1;
    if tally.inconclusive_streak >= analysis.inconclusive_limit {
        let unmeasured = report
            .source_error
            .as_ref()
            .map(|e| format!("not measured: {e}"));
        let why = unmeasured
            .or_else(|| {
                report
                    .of(test)
                    .find(|m| m.verdict == Verdict::Inconclusive)
                    .and_then(MetricResult::explain)
            })
            .unwrap_or_else(|| "not enough data".into());
        return Next::RollBack(format!(
            "analysis was inconclusive {} windows in a row (limit {}): {why}; cutover never promotes on missing data",
            tally.inconclusive_streak, analysis.inconclusive_limit
        ));
    }
    Next::Stay
}

fn explain(m: &MetricResult) -> String {
    m.explain()
        .unwrap_or_else(|| format!("{} failed", m.metric))
}

/// A recorded run judged again with other settings: each window's new report,
/// and where, if anywhere, those settings would have rolled the run back.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub reports: Vec<WindowReport>,
    /// The window (0-based) at which it would have rolled back, and why.
    pub roll_back: Option<(usize, String)>,
}

/// Judges recorded windows again under `analysis`: the same samples, the same
/// step of each, as the engine would have judged them. A step is taken to end at
/// its last recorded window (where the recorded run moved on), which is where its
/// comparison is decided; the sequential tests run through the whole run. The
/// replay goes on past a rollback, so every window has its report.
pub fn replay(analysis: &AnalysisSpec, windows: &[(usize, &WindowReport)]) -> Replay {
    let mut state = JudgeState::default();
    let mut tally = Tally::default();
    let mut roll_back = None;
    let mut reports = Vec::with_capacity(windows.len());
    for (i, &(step, recorded)) in windows.iter().enumerate() {
        if i > 0 && windows[i - 1].0 != step {
            state.next_step();
        }
        let (baseline, canary) = (&recorded.stable, &recorded.canary);
        let report = match recorded.against {
            // What was never measured cannot be judged again.
            _ if recorded.source_error.is_some() => recorded.clone(),
            Against::Limits => WindowReport {
                against: Against::Limits,
                ..judge(
                    &absolute_limits(&analysis.metrics),
                    analysis.min_requests,
                    baseline,
                    canary,
                )
            },
            against => policy::judge_window(
                analysis,
                &mut state,
                baseline,
                against == Against::Baseline,
                canary,
            ),
        };
        let last_of_step = windows.get(i + 1).is_none_or(|next| next.0 != step);
        let pause = if last_of_step {
            Pause::For(Duration::ZERO)
        } else {
            Pause::UntilPromoted
        };
        if let Next::RollBack(why) =
            after_window(&mut tally, analysis, pause, Duration::ZERO, &report)
            && roll_back.is_none()
        {
            roll_back = Some((i, why));
        }
        reports.push(report);
    }
    Replay { reports, roll_back }
}

/// The stable sample to judge against: this window's, or, when the stable version
/// served too little this window (at a 100% step it serves nothing), the last window
/// in which it served enough. Returns the sample and whether it was carried over.
///
/// A thin window with nothing to carry over gives an empty sample, so relative
/// limits say "no stable traffic" (inconclusive) instead of comparing against one
/// or two requests.
pub fn baseline(
    current: Sample,
    carried: &mut Option<Sample>,
    min_requests: u64,
) -> (Sample, bool) {
    if current.requests >= min_requests.max(1) {
        *carried = Some(current.clone());
        (current, false)
    } else {
        match carried {
            Some(previous) => (previous.clone(), true),
            None => (Sample::default(), false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cutover_analysis::Why;
    use cutover_spec::MetricRules;

    fn analysis(failure_limit: u32, inconclusive_limit: u32) -> AnalysisSpec {
        AnalysisSpec {
            interval: Duration::from_secs(5),
            min_requests: 20,
            failure_limit,
            inconclusive_limit,
            metrics: MetricRules::default(),
            ..AnalysisSpec::default()
        }
    }

    fn step(pause: Pause) -> Pause {
        pause
    }

    fn result(test: Test, verdict: Verdict) -> MetricResult {
        let mut m: MetricResult = serde_json::from_value(serde_json::json!({
            "metric": "error_rate", "test": test, "unit": "share",
            "baseline": 0.0, "canary": 0.05, "limit": 0.01,
            "statistic": null, "p_value": null, "effect": null, "threshold_ms": null,
            "verdict": verdict, "why": null,
        }))
        .unwrap();
        if verdict != Verdict::Pass {
            m.why = Some(if verdict == Verdict::Fail {
                Why::PastLimit
            } else {
                Why::NoData
            });
        }
        m
    }

    fn report(verdict: Verdict) -> WindowReport {
        WindowReport {
            stable: Sample::default(),
            canary: Sample::default(),
            against: Against::Baseline,
            metrics: vec![result(Test::Limit, verdict)],
            source_error: None,
            verdict,
            logs: None,
        }
    }

    fn with(mut report: WindowReport, test: Test, verdict: Verdict) -> WindowReport {
        report.metrics.push(result(test, verdict));
        report
    }

    #[test]
    fn a_sequential_rejection_rolls_back_at_once_whatever_the_failure_limit() {
        let mut t = Tally::default();
        let rejected = with(report(Verdict::Fail), Test::Sequential, Verdict::Fail);
        match after_window(
            &mut t,
            &analysis(5, 3),
            Pause::UntilPromoted,
            Duration::ZERO,
            &rejected,
        ) {
            Next::RollBack(why) => assert!(why.contains("sequential test"), "{why}"),
            other => panic!("expected a rollback, got {other:?}"),
        }
    }

    #[test]
    fn the_comparison_decides_only_at_the_end_of_the_step() {
        let a = analysis(1, 2);
        let pause = Pause::For(Duration::from_secs(30));
        let failing = with(report(Verdict::Pass), Test::MannWhitney, Verdict::Fail);
        let mut t = Tally::default();
        let mid = Duration::from_secs(10);
        assert_eq!(after_window(&mut t, &a, pause, mid, &failing), Next::Stay);
        let end = Duration::from_secs(30);
        assert!(matches!(
            after_window(&mut t, &a, pause, end, &failing),
            Next::RollBack(why) if why.contains("Mann-Whitney")
        ));
        // Without data at the end it waits, then gives up.
        let thin = with(
            report(Verdict::Pass),
            Test::MannWhitney,
            Verdict::Inconclusive,
        );
        let mut t = Tally::default();
        assert_eq!(after_window(&mut t, &a, pause, end, &thin), Next::Stay);
        assert!(matches!(
            after_window(&mut t, &a, pause, end, &thin),
            Next::RollBack(why) if why.contains("inconclusive 2 windows")
        ));
        let passing = with(report(Verdict::Pass), Test::MannWhitney, Verdict::Pass);
        assert_eq!(
            after_window(&mut Tally::default(), &a, pause, end, &passing),
            Next::StepDone
        );
    }

    #[test]
    fn a_pass_before_the_pause_is_over_stays() {
        let mut t = Tally::default();
        let s = step(Pause::For(Duration::from_secs(30)));
        assert_eq!(
            after_window(
                &mut t,
                &analysis(1, 3),
                s,
                Duration::from_secs(10),
                &report(Verdict::Pass)
            ),
            Next::Stay
        );
        assert_eq!(
            after_window(
                &mut t,
                &analysis(1, 3),
                s,
                Duration::from_secs(30),
                &report(Verdict::Pass)
            ),
            Next::StepDone
        );
    }

    #[test]
    fn an_indefinite_pause_never_ends_by_itself() {
        let mut t = Tally::default();
        let s = step(Pause::UntilPromoted);
        let next = after_window(
            &mut t,
            &analysis(1, 3),
            s,
            Duration::from_secs(86_400),
            &report(Verdict::Pass),
        );
        assert_eq!(next, Next::Stay);
    }

    #[test]
    fn failures_roll_back_at_the_limit_and_name_the_metric() {
        let mut t = Tally::default();
        let s = step(Pause::For(Duration::from_secs(1)));
        let a = analysis(2, 3);
        assert_eq!(
            after_window(
                &mut t,
                &a,
                s,
                Duration::from_secs(5),
                &report(Verdict::Fail)
            ),
            Next::Stay
        );
        match after_window(
            &mut t,
            &a,
            s,
            Duration::from_secs(10),
            &report(Verdict::Fail),
        ) {
            Next::RollBack(why) => assert!(why.contains("error_rate 5.00%"), "{why}"),
            other => panic!("expected a rollback, got {other:?}"),
        }
    }

    #[test]
    fn inconclusive_windows_in_a_row_roll_back_but_a_pass_resets_the_streak() {
        let mut t = Tally::default();
        let s = step(Pause::UntilPromoted);
        let a = analysis(1, 2);
        let d = Duration::from_secs(5);
        assert_eq!(
            after_window(&mut t, &a, s, d, &report(Verdict::Inconclusive)),
            Next::Stay
        );
        assert_eq!(
            after_window(&mut t, &a, s, d, &report(Verdict::Pass)),
            Next::Stay
        );
        assert_eq!(
            after_window(&mut t, &a, s, d, &report(Verdict::Inconclusive)),
            Next::Stay
        );
        assert!(matches!(
            after_window(&mut t, &a, s, d, &report(Verdict::Inconclusive)),
            Next::RollBack(_)
        ));
    }

    #[test]
    fn a_pass_after_the_pause_never_hides_an_earlier_failure_count() {
        let mut t = Tally::default();
        let s = step(Pause::For(Duration::ZERO));
        let a = analysis(2, 5);
        assert_eq!(
            after_window(
                &mut t,
                &a,
                s,
                Duration::from_secs(5),
                &report(Verdict::Fail)
            ),
            Next::Stay
        );
        assert_eq!(
            after_window(
                &mut t,
                &a,
                s,
                Duration::from_secs(5),
                &report(Verdict::Pass)
            ),
            Next::StepDone
        );
        assert_eq!(t.failures, 1);
    }

    #[test]
    fn baseline_is_carried_over_when_stable_stops_serving() {
        let mut carried = None;
        let busy = Sample {
            requests: 100,
            errors: 1,
            ..Default::default()
        };
        assert_eq!(
            baseline(busy.clone(), &mut carried, 20),
            (busy.clone(), false)
        );
        let idle = Sample::default();
        assert_eq!(baseline(idle, &mut carried, 20), (busy, true));
        let thin = Sample {
            requests: 1,
            errors: 1,
            ..Default::default()
        };
        let mut none = None;
        assert_eq!(baseline(thin, &mut none, 20), (Sample::default(), false));
    }

    fn recorded(canary_errors: u64, against: Against) -> WindowReport {
        let sample = |requests, errors| Sample {
            requests,
            errors,
            ..Sample::default()
        };
        WindowReport {
            against,
            ..judge(
                &MetricRules::default(),
                20,
                &sample(900, 4),
                &sample(100, canary_errors),
            )
        }
    }

    #[test]
    fn a_replay_with_the_sequential_tests_finds_what_the_limits_let_through() {
        let windows: Vec<WindowReport> = (0..6).map(|_| recorded(4, Against::Baseline)).collect();
        let steps: Vec<(usize, &WindowReport)> = windows
            .iter()
            .enumerate()
            .map(|(i, w)| (i / 3, w))
            .collect();
        let lenient = AnalysisSpec {
            sequential: None,
            comparison: None,
            ..AnalysisSpec::default()
        };
        let before = replay(&lenient, &steps);
        assert_eq!(before.roll_back, None, "{before:?}");
        assert_eq!(before.reports.len(), 6);
        let after = replay(&AnalysisSpec::default(), &steps);
        let (at, why) = after.roll_back.expect("the sequential test rejects");
        assert_eq!(at, 1, "{why}");
        assert!(why.contains("sequential"), "{why}");
        assert_eq!(after.reports.len(), 6, "every window is judged again");
    }

    #[test]
    fn a_replay_never_feeds_a_carried_baseline_to_the_tests() {
        let windows: Vec<WindowReport> = (0..6)
            .map(|_| recorded(4, Against::CarriedBaseline))
            .collect();
        let steps: Vec<(usize, &WindowReport)> = windows.iter().map(|w| (0, w)).collect();
        let replayed = replay(&AnalysisSpec::default(), &steps);
        assert_eq!(replayed.roll_back, None, "{replayed:?}");
        assert!(
            replayed
                .reports
                .iter()
                .all(|r| r.against == Against::CarriedBaseline)
        );
    }
}
