//! How traffic moves to the new version: which strategy, and `strategy.canary`: its
//! steps, each a weight that never decreases, a pause and an optional mirror, its
//! baseline and stickiness. `blue_green` and `rolling` have files of their own.

use std::net::SocketAddr;

use super::Checker;
use super::fields::suggestion;
use super::values::parse_duration;
use crate::parse::node::{Entry, Value};
use crate::types::{Baseline, CanarySpec, Pause, Percent, Step, Sticky, StrategySpec, defaults};

pub(super) const STRATEGIES: &[&str] = &["canary", "blue_green", "rolling"];
pub(super) const CANARY: &[&str] = &["steps", "baseline", "sticky"];
pub(super) const STEP: &[&str] = &["weight", "pause", "mirror"];
const UNTIL_PROMOTED: &str = "until-promoted";
const BASELINES: &[(&str, Baseline)] = &[("stable", Baseline::Stable), ("fresh", Baseline::Fresh)];
const STICKIES: &[(&str, Option<Sticky>)] = &[("cookie", Some(Sticky::Cookie)), ("none", None)];

impl Checker<'_> {
    /// `listen` is the top-level address, if valid, which a blue-green preview must not
    /// share.
    pub(super) fn strategy(
        &mut self,
        e: &Entry,
        listen: Option<SocketAddr>,
    ) -> Option<StrategySpec> {
        if e.value.is_null() {
            return Some(StrategySpec::default());
        }
        let kind = self.one_of(e, "strategy", "strategy", STRATEGIES, &[])?;
        match kind.key.as_str() {
            "canary" => self.canary(kind).map(StrategySpec::Canary),
            "blue_green" => self.blue_green(kind, listen).map(StrategySpec::BlueGreen),
            "rolling" => self.rolling(kind).map(StrategySpec::Rolling),
            _ => unreachable!("one_of returns only valid kinds"),
        }
    }

    fn canary(&mut self, e: &Entry) -> Option<CanarySpec> {
        let f = self.fields(&e.value, "strategy.canary", CANARY)?;
        let steps = self.optional(&f, "steps", defaults::CANARY_STEPS.to_vec(), Self::steps);
        let baseline = self.optional(&f, "baseline", defaults::BASELINE, |c, e| {
            c.keyword(e, BASELINES)
        });
        let sticky = self.optional(&f, "sticky", defaults::STICKY, |c, e| {
            c.keyword(e, STICKIES)
        });
        Some(CanarySpec {
            steps: steps?,
            baseline: baseline?,
            sticky: sticky?,
        })
    }

    fn steps(&mut self, steps: &Entry) -> Option<Vec<Step>> {
        let items = match &steps.value.value {
            Value::Seq(items) if !items.is_empty() => items,
            Value::Null | Value::Seq(_) => {
                self.error(
                    steps.key_pos,
                    "`steps` must list at least one step, e.g. `- { weight: 100%, pause: 30s }`",
                );
                return None;
            }
            _ => {
                self.error(
                    Self::at(steps),
                    format!(
                        "`steps` must be a list of steps like `- {{ weight: 10%, pause: 30s }}`, got {}",
                        steps.value.describe()
                    ),
                );
                return None;
            }
        };

        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        // The last valid weight seen, to check that weights never decrease.
        let mut previous: Option<Percent> = None;
        for (i, item) in items.iter().enumerate() {
            let path = format!("strategy.canary.steps[{i}]");
            if !matches!(item.value, Value::Map(_)) {
                self.error(
                    item.pos,
                    format!(
                        "`{path}` must be a mapping like `{{ weight: 10%, pause: 30s }}`, got {}",
                        item.describe()
                    ),
                );
                ok = false;
                continue;
            }
            let Some(f) = self.fields(item, &path, STEP) else {
                ok = false;
                continue;
            };
            let weight = self.require(
                &f,
                &path,
                item.pos,
                "weight",
                "the share of traffic sent to the new version, e.g. `25%`",
            );
            let mirror = match f.get("mirror") {
                Some(e) => self.percent(e).map(|m| (m.fraction() > 0.0).then_some(m)),
                None => Some(None),
            };
            // An invalid mirror was reported: a 0% weight beside it is not a second mistake.
            let mirrors = !matches!(mirror, Some(None));
            let weight = weight.and_then(|e| self.weight(e, previous, mirrors));
            if let Some(w) = weight {
                previous = Some(w);
            }
            let pause = match f.get("pause") {
                Some(e) => self.pause(e),
                None => Some(Pause::For(defaults::STEP_PAUSE)),
            };
            match (weight, pause, mirror) {
                (Some(weight), Some(pause), Some(mirror)) => out.push(Step {
                    weight,
                    pause,
                    mirror,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn pause(&mut self, e: &Entry) -> Option<Pause> {
        if let Value::Str(s) = &e.value.value
            && s.trim() == UNTIL_PROMOTED
        {
            return Some(Pause::UntilPromoted);
        }
        match parse_duration(&e.value) {
            Ok(d) => Some(Pause::For(d)),
            Err(mut message) => {
                message.push_str(&format!(
                    ", or `{UNTIL_PROMOTED}` to wait for `cutover promote`"
                ));
                if let Value::Str(s) = &e.value.value
                    && !suggestion(s, &[UNTIL_PROMOTED]).is_empty()
                {
                    message.push_str(&format!("; did you mean `{UNTIL_PROMOTED}`?"));
                }
                self.error(Self::at(e), message);
                None
            }
        }
    }

    /// A step's weight: above 0% (or 0% for a step that `mirrors`), and not below
    /// the previous step's.
    fn weight(&mut self, e: &Entry, previous: Option<Percent>, mirrors: bool) -> Option<Percent> {
        let w = self.percent(e)?;
        if w.fraction() <= 0.0 && !mirrors {
            self.error(
                e.value.pos,
                "`weight` must be more than 0%: every step sends some traffic to the new version \
                 (0% only with a `mirror`, e.g. `mirror: 20%`, copying a share of the stable's requests to it)",
            );
            return None;
        }
        if let Some(prev) = previous
            && w < prev
        {
            self.error(
                e.value.pos,
                format!(
                    "`weight` {w} is lower than the previous step's {prev}: weights must never decrease"
                ),
            );
            return None;
        }
        Some(w)
    }
}
