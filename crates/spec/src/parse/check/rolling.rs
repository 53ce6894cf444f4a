//! `strategy.rolling`: how many instances may be added or missing while batches are
//! replaced, and how long each batch is analysed.

use super::Checker;
use crate::parse::node::{Entry, Value};
use crate::types::{Count, RollingSpec};

pub(super) const ROLLING: &[&str] = &["max_surge", "max_unavailable", "pause"];

impl Checker<'_> {
    pub(super) fn rolling(&mut self, e: &Entry) -> Option<RollingSpec> {
        let f = self.fields(&e.value, "strategy.rolling", ROLLING)?;
        let d = RollingSpec::default();
        let max_surge = self.optional(&f, "max_surge", d.max_surge, Self::instance_count);
        let max_unavailable = self.optional(
            &f,
            "max_unavailable",
            d.max_unavailable,
            Self::instance_count,
        );
        let pause = self.optional(&f, "pause", d.pause, Self::duration);
        Some(RollingSpec {
            max_surge: max_surge?,
            max_unavailable: max_unavailable?,
            pause: pause?,
        })
    }

    /// A whole number of instances (`1`) or a share of them (`25%`).
    fn instance_count(&mut self, e: &Entry) -> Option<Count> {
        let absolute = match &e.value.value {
            Value::Str(s) if s.trim_end().ends_with('%') => {
                return self.percent(e).map(Count::Percent);
            }
            Value::Int(i) => u32::try_from(*i).ok(),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        };
        if let Some(n) = absolute {
            return Some(Count::Absolute(n));
        }
        self.error(
            Self::at(e),
            format!(
                "`{}` must be a whole number of instances like `1`, or a share of \
                 `platform.local.instances` like `25%`, got {}",
                e.key,
                e.value.describe()
            ),
        );
        None
    }

    /// With neither a surge nor an instance out of service allowed, no batch could
    /// ever start. `strategy` is the `strategy` entry that parsed to `rolling`.
    pub(super) fn rolling_progress(
        &mut self,
        strategy: &Entry,
        rolling: &RollingSpec,
        instances: u32,
    ) {
        if rolling.max_surge.surge(instances) > 0
            || rolling.max_unavailable.unavailable(instances) > 0
        {
            return;
        }
        let section = strategy.value.get("rolling");
        let at = match section.and_then(|r| r.value.get("max_unavailable")) {
            Some(e) => Self::at(e),
            None => section.map_or(strategy.key_pos, |r| r.key_pos),
        };
        let plural = if instances == 1 { "" } else { "s" };
        self.error(
            at,
            format!(
                "`max_surge` {} and `max_unavailable` {} both resolve to 0 for {instances} \
                 instance{plural} (`platform.local.instances`), so no instance could ever be \
                 replaced; at least one must allow progress, e.g. `max_surge: 1`",
                rolling.max_surge, rolling.max_unavailable
            ),
        );
    }
}
