//! Judging windows, shared by every strategy: what a judged window means for the
//! run (stay, go on, roll back), counted across the run's windows, and which
//! baseline a window is judged against. Pure functions of plain values.

use std::time::Duration;

use cutover_analysis::{Sample, Verdict, WindowReport};
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
/// batch, a blue-green phase), which lasts `pause`. A step ends only on a passing
/// window once its pause is over: a rollout never moves on, let alone promotes, on
/// missing data.
pub fn after_window(
    tally: &mut Tally,
    analysis: &AnalysisSpec,
    pause: Pause,
    elapsed: Duration,
    report: &WindowReport,
) -> Next {
    match report.verdict {
        Verdict::Fail => {
            tally.failures += 1;
            tally.inconclusive_streak = 0;
            if tally.failures >= analysis.failure_limit {
                let why: Vec<String> = report
                    .failures()
                    .iter()
                    .map(|m| {
                        m.reason
                            .clone()
                            .unwrap_or_else(|| format!("{} failed", m.metric))
                    })
                    .collect();
                return Next::RollBack(format!(
                    "analysis failed {} time(s), reaching the failure limit of {}: {}",
                    tally.failures,
                    analysis.failure_limit,
                    why.join("; ")
                ));
            }
            Next::Stay
        }
        Verdict::Inconclusive => {
            tally.inconclusive_streak += 1;
            if tally.inconclusive_streak >= analysis.inconclusive_limit {
                let why = report
                    .metrics
                    .iter()
                    .find_map(|m| m.reason.clone())
                    .unwrap_or_else(|| "not enough data".into());
                return Next::RollBack(format!(
                    "analysis was inconclusive {} windows in a row (limit {}): {why}; cutover never promotes on missing data",
                    tally.inconclusive_streak, analysis.inconclusive_limit
                ));
            }
            Next::Stay
        }
        Verdict::Pass => {
            tally.inconclusive_streak = 0;
            match pause {
                Pause::For(d) if elapsed >= d => Next::StepDone,
                _ => Next::Stay,
            }
        }
    }
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
        *carried = Some(current);
        (current, false)
    } else {
        match carried {
            Some(previous) => (*previous, true),
            None => (Sample::default(), false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cutover_analysis::MetricResult;
    use cutover_spec::MetricRules;

    fn analysis(failure_limit: u32, inconclusive_limit: u32) -> AnalysisSpec {
        AnalysisSpec {
            interval: Duration::from_secs(5),
            min_requests: 20,
            failure_limit,
            inconclusive_limit,
            metrics: MetricRules::default(),
        }
    }

    fn step(pause: Pause) -> Pause {
        pause
    }

    fn report(verdict: Verdict) -> WindowReport {
        WindowReport {
            stable: Sample::default(),
            canary: Sample::default(),
            metrics: vec![MetricResult {
                metric: "error_rate".into(),
                stable: "0.00%".into(),
                canary: "5.00%".into(),
                limit: "<= 1%".into(),
                verdict,
                reason: (verdict != Verdict::Pass)
                    .then(|| "error rate 5.00% is above the limit 1.00%".into()),
            }],
            verdict,
        }
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
            Next::RollBack(why) => assert!(why.contains("error rate 5.00%"), "{why}"),
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
        assert_eq!(baseline(busy, &mut carried, 20), (busy, false));
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
}
