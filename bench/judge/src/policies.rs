//! The three ways of judging a canary compared here, each fed one window at a
//! time: cutover's judge as the engine runs it, a Flagger-like policy of fixed
//! limits checked once per interval, and a Kayenta-like Mann-Whitney judgement at
//! the end of an interval.

use std::time::Duration;

use cutover_analysis::comparison::{Direction, MetricSpec, MetricVerdict, Tolerance, compare};
use cutover_analysis::policy::{JudgeState, judge_window};
use cutover_analysis::{Test, Verdict, WindowReport};
use cutover_engine::judging::{self, Next, Tally};
use cutover_spec::{AnalysisSpec, Pause};

use crate::traffic::VersionWindow;

/// What made a policy roll back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    ErrorRate,
    Latency,
    /// One of cutover's per-window limits (the error rate's, by default).
    Limit,
    /// cutover's Mann-Whitney comparison of a step's latencies, at its end.
    Comparison,
    /// cutover's analysis, inconclusive too many windows in a row.
    Inconclusive,
}

/// In words, for the results.
impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Metric::ErrorRate => "error rate",
            Metric::Latency => "latency",
            Metric::Limit => "limit",
            Metric::Comparison => "step comparison",
            Metric::Inconclusive => "inconclusive",
        })
    }
}

/// cutover's judge as the engine runs it: after every window,
/// [`judge_window`] (the limits, the sequential tests, the step's comparison
/// so far), then the engine's own decision on the report,
/// [`judging::after_window`]: a sequential test's rejection rolls back at once,
/// a window failing a limit counts towards `failure_limit`, and once the step's
/// pause is over, a passing window ends the step if the step's comparison
/// passes too (and rolls back if it fails). A new step, at the same weight,
/// starts the comparison over and keeps the sequential tests and the counts, as
/// the engine's `RunState::analyse` does.
pub struct CutoverPolicy {
    spec: AnalysisSpec,
    state: JudgeState,
    tally: Tally,
    step_pause: Duration,
    window: Duration,
    in_step: Duration,
}

/// The engine's judge with `spec`, in steps lasting `step_pause`.
pub fn cutover_policy(spec: AnalysisSpec, step_pause: Duration) -> CutoverPolicy {
    let window = spec.interval;
    CutoverPolicy {
        spec,
        state: JudgeState::default(),
        tally: Tally::default(),
        step_pause,
        window,
        in_step: Duration::ZERO,
    }
}

/// What one window judged.
pub struct Judged {
    /// Whether the run rolls back, and why.
    pub roll_back: Option<Metric>,
    /// Whether a limit failed in this window.
    pub limit_failed: bool,
}

impl CutoverPolicy {
    /// Judges one more window, the baseline measured in the same window.
    pub fn observe(&mut self, canary: &VersionWindow, baseline: &VersionWindow) -> Judged {
        let report = judge_window(
            &self.spec,
            &mut self.state,
            &baseline.sample(),
            true,
            &canary.sample(),
        );
        self.in_step += self.window;
        let next = judging::after_window(
            &mut self.tally,
            &self.spec,
            Pause::For(self.step_pause),
            self.in_step,
            &report,
        );
        let roll_back = match next {
            Next::Stay => None,
            Next::StepDone => {
                self.state.next_step();
                self.in_step = Duration::ZERO;
                None
            }
            Next::RollBack(_) => Some(cause(&report)),
        };
        Judged {
            roll_back,
            limit_failed: report.of(Test::Limit).any(|m| m.verdict == Verdict::Fail),
        }
    }
}

/// Why `after_window` rolled back on `report`, read in its order: a sequential
/// rejection, a failed window (a limit), the step's comparison failing or
/// missing its data.
fn cause(report: &WindowReport) -> Metric {
    let failed = |test: Test| {
        report
            .of(test)
            .find(|m| m.verdict == Verdict::Fail)
            .map(|m| m.metric.as_str())
    };
    match failed(Test::Sequential) {
        Some("error_rate") => Metric::ErrorRate,
        Some(_) => Metric::Latency,
        None if report.verdict == Verdict::Fail => Metric::Limit,
        None if failed(Test::MannWhitney).is_some() => Metric::Comparison,
        None => Metric::Inconclusive,
    }
}

/// Flagger's documented example analysis (`interval: 1m`, `threshold: 5`,
/// `request-success-rate` min 99%, `request-duration` P99 max 500 ms): every
/// interval, the canary's last interval is held against the limits and a failure
/// adds one to the failed checks; at the tick after the failed checks reach the
/// threshold it rolls back, as Flagger's scheduler checks the count before it
/// runs the metrics. Failed checks are counted over the whole analysis (Flagger's
/// `status.failedChecks`), not only consecutive ones.
pub struct FlaggerPolicy {
    windows_per_interval: usize,
    threshold: u32,
    max_error_rate: f64,
    max_p99_ms: f64,
    failed: u32,
    last_failure: Option<Metric>,
    interval: VersionWindow,
    windows: usize,
}

impl FlaggerPolicy {
    /// Flagger's example limits, with intervals of `windows_per_interval` windows.
    pub fn new(windows_per_interval: usize) -> FlaggerPolicy {
        FlaggerPolicy {
            windows_per_interval,
            threshold: 5,
            max_error_rate: 0.01,
            max_p99_ms: 500.0,
            failed: 0,
            last_failure: None,
            interval: VersionWindow::default(),
            windows: 0,
        }
    }

    /// Sees one more window of the canary; `Some` when it rolls back.
    pub fn observe(&mut self, canary: &VersionWindow) -> Option<Metric> {
        self.interval.requests += canary.requests;
        self.interval.errors += canary.errors;
        self.interval.latency.merge(&canary.latency);
        self.windows += 1;
        if !self.windows.is_multiple_of(self.windows_per_interval) {
            return None;
        }
        if self.failed >= self.threshold {
            return self.last_failure;
        }
        let interval = std::mem::take(&mut self.interval);
        let p99_ms = interval
            .latency
            .quantile(0.99)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let failure = if interval.error_rate() > self.max_error_rate {
            Some(Metric::ErrorRate)
        } else if p99_ms > self.max_p99_ms {
            Some(Metric::Latency)
        } else {
            None
        };
        if failure.is_some() {
            self.failed += 1;
            self.last_failure = failure;
        }
        None
    }
}

/// What a Kayenta-like judgement said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Still collecting the interval.
    Collecting,
    /// The interval passed: the canary is promoted.
    Pass,
    /// A metric was significantly higher: the canary is rolled back.
    Fail(Metric),
}

/// Kayenta's scheme (the NetflixACAJudge): at the end of the interval, each
/// metric's series of data points (one per window: the error rate, the p95) of
/// the canary against a baseline of the same size (Kayenta deploys one beside the
/// canary), by a one-sided Mann-Whitney U test at 98% confidence with no
/// effect-size allowance (Kayenta's defaults); either metric high fails it.
pub struct KayentaPolicy {
    windows_per_interval: usize,
    canary: Series,
    baseline: Series,
}

#[derive(Default)]
struct Series {
    error_rate: Vec<f64>,
    p95_ms: Vec<f64>,
}

impl Series {
    fn push(&mut self, w: &VersionWindow) {
        self.error_rate.push(w.error_rate());
        if let Some(p95) = w.latency.quantile(0.95) {
            self.p95_ms.push(p95.as_secs_f64() * 1000.0);
        }
    }
}

impl KayentaPolicy {
    /// One judgement after `windows_per_interval` windows.
    pub fn new(windows_per_interval: usize) -> KayentaPolicy {
        KayentaPolicy {
            windows_per_interval,
            canary: Series::default(),
            baseline: Series::default(),
        }
    }

    /// Sees one more window of the canary and of its same-sized baseline.
    pub fn observe(&mut self, canary: &VersionWindow, baseline: &VersionWindow) -> Judgement {
        self.canary.push(canary);
        self.baseline.push(baseline);
        if self.canary.error_rate.len() < self.windows_per_interval {
            return Judgement::Collecting;
        }
        let high = |name: &str, canary: &[f64], baseline: &[f64]| {
            let spec = MetricSpec {
                confidence: 0.98,
                tolerance: Tolerance::NONE,
                critical: true,
                ..MetricSpec::new(name, Direction::HigherIsBad)
            };
            let result = compare(&spec, canary, baseline).expect("finite data points");
            result.verdict == MetricVerdict::High
        };
        if high(
            "error_rate",
            &self.canary.error_rate,
            &self.baseline.error_rate,
        ) {
            Judgement::Fail(Metric::ErrorRate)
        } else if high("latency_p95", &self.canary.p95_ms, &self.baseline.p95_ms) {
            Judgement::Fail(Metric::Latency)
        } else {
            Judgement::Pass
        }
    }
}
