//! `logs`: how instances' output is kept; and `analysis.logs`: what the log
//! check does with the canary's new error templates.

use super::Checker;
use crate::parse::node::{Entry, Value};
use crate::types::{LogAction, LogCheckSpec, LogsSpec, defaults};

pub(super) const LOGS: &[&str] = &["max_size", "keep", "keep_runs"];
pub(super) const LOG_CHECK: &[&str] = &["new_errors", "rate_factor", "min_count"];

impl Checker<'_> {
    pub(super) fn logs(&mut self, e: &Entry) -> Option<LogsSpec> {
        let f = self.fields(&e.value, "logs", LOGS)?;
        let d = LogsSpec::default();
        let max_size = self.optional(&f, "max_size", d.max_size, |c, e| {
            let size = c.size(e)?;
            if size >= defaults::LOG_MIN_SIZE {
                return Some(size);
            }
            c.error(
                Self::at(e),
                format!(
                    "`logs.max_size` must be at least 4KiB, e.g. `10MiB`, got {}",
                    e.value.describe()
                ),
            );
            None
        });
        let keep = self.optional(&f, "keep", d.keep, |c, e| {
            c.whole(e, 0, defaults::LOG_MAX_KEEP.into())
                .map(|n| n as u32)
        });
        let keep_runs = self.optional(&f, "keep_runs", d.keep_runs, |c, e| {
            c.whole(e, 1, defaults::LOG_MAX_KEEP_RUNS.into())
                .map(|n| n as u32)
        });
        Some(LogsSpec {
            max_size: max_size?,
            keep: keep?,
            keep_runs: keep_runs?,
        })
    }

    pub(super) fn log_check(&mut self, e: &Entry) -> Option<LogCheckSpec> {
        let f = self.fields(&e.value, "analysis.logs", LOG_CHECK)?;
        let d = LogCheckSpec::default();
        let new_errors = self.optional(&f, "new_errors", d.new_errors, |c, e| {
            if let Value::Bool(false) = e.value.value {
                return Some(LogAction::Off);
            }
            c.keyword(
                e,
                &[
                    ("fail", LogAction::Fail),
                    ("warn", LogAction::Warn),
                    ("off", LogAction::Off),
                ],
            )
        });
        let rate_factor = self.optional(&f, "rate_factor", d.rate_factor, |c, e| {
            let factor = c.ratio(e)?;
            if factor > 1.0 {
                return Some(factor);
            }
            c.error(
                Self::at(e),
                format!(
                    "`analysis.logs.rate_factor` must be more than 1 (how many times as often \
                     the canary logs a template as its baseline), e.g. 3, got {}",
                    e.value.describe()
                ),
            );
            None
        });
        let min_count = self.optional(&f, "min_count", d.min_count, |c, e| c.whole(e, 1, u64::MAX));
        Some(LogCheckSpec {
            new_errors: new_errors?,
            rate_factor: rate_factor?,
            min_count: min_count?,
        })
    }
}
