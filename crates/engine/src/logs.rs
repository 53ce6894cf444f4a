//! What the engine reads of the versions' output: the [`LogSource`] trait, and
//! the log check of an analysis step, which feeds each window's new
//! lines on both sides to [`LogTally`] and adds its result to the window.
//!
//! The tally lives as long as the analysis of one step: a daemon restarted in
//! the middle of a step starts the step's log check over, from the lines written
//! after it came back.

use cutover_analysis::WindowReport;
use cutover_analysis::log_check::{LogReport, LogTally, Side};
use cutover_spec::AnalysisSpec;

/// Where the releases' output can be read from (files the platform writes,
/// a log service).
pub trait LogSource: Send + Sync + 'static {
    /// Follows the output of every instance of the release `name`, from now on.
    fn follow(&self, release: &str) -> Box<dyn LogFollower>;
}

/// The new lines of one release's instances, as they come.
pub trait LogFollower: Send + Sync {
    /// The complete lines written since the previous call (or since the follower
    /// was made), without their newlines. A bounded amount per call: what is
    /// beyond is read by the next one. Output that cannot be read is left out
    /// (and logged by the source), never an error of the run.
    fn next_lines(&mut self) -> Vec<String>;
}

/// A source with nothing to read: for platforms that capture no output.
pub struct NoLogs;

impl LogSource for NoLogs {
    fn follow(&self, _release: &str) -> Box<dyn LogFollower> {
        Box::new(NoLogs)
    }
}

impl LogFollower for NoLogs {
    fn next_lines(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// The log check of one analysis step: both sides followed, their lines tallied.
pub(crate) struct LogWatch {
    canary: Box<dyn LogFollower>,
    baseline: Box<dyn LogFollower>,
    tally: LogTally,
}

impl LogWatch {
    /// Follows the releases `canary` and `baseline` from now on.
    pub(crate) fn start(source: &dyn LogSource, canary: &str, baseline: &str) -> LogWatch {
        LogWatch {
            canary: source.follow(canary),
            baseline: source.follow(baseline),
            tally: LogTally::default(),
        }
    }

    /// Reads the window's new lines on both sides, counts the requests each side
    /// served in it (`baseline_requests`: measured in this window, 0 when
    /// carried over), and adds the check's result to `report` when the check is
    /// on and the sides can be compared.
    pub(crate) fn judge(
        &mut self,
        spec: &AnalysisSpec,
        report: &mut WindowReport,
        baseline_requests: u64,
    ) {
        let Some(check) = &spec.logs else {
            return;
        };
        let canary = self.canary.next_lines();
        let baseline = self.baseline.next_lines();
        self.tally
            .add_lines(Side::Canary, canary.iter().map(String::as_str));
        self.tally
            .add_lines(Side::Baseline, baseline.iter().map(String::as_str));
        self.tally
            .add_requests(Side::Canary, report.canary.requests);
        self.tally.add_requests(Side::Baseline, baseline_requests);
        match self.tally.judge(check) {
            Some((result, findings)) => {
                report.add_log_check(result, findings, spec.min_requests);
            }
            None => report.logs = LogReport::of(self.tally.findings(check)),
        }
    }
}

impl crate::run::Runner {
    /// The log check of the analysis `key` (canary, baseline): `None` when it is
    /// off, or nothing is compared.
    pub(crate) fn log_watch(
        &self,
        key: &(crate::state::Target, Option<crate::state::Target>, u32),
    ) -> Option<LogWatch> {
        self.config.config.analysis.logs?;
        let baseline = key.1.as_ref()?;
        let canary = self.release_of(&key.0);
        let baseline = self.release_of(baseline);
        Some(LogWatch::start(&*self.inner.logs, &canary, &baseline))
    }

    /// The release that runs `target`: routed in its role (a mirrored canary is
    /// measured as `shadow` but routed as `canary`), else any of its version.
    fn release_of(&self, target: &crate::state::Target) -> String {
        let routes = &self.state.routes;
        routes
            .iter()
            .find(|r| r.version == target.version && r.role == target.role)
            .or_else(|| routes.iter().find(|r| r.version == target.version))
            .map_or_else(|| target.version.clone(), |r| r.release.clone())
    }
}
