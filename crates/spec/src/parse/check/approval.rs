//! `approvals` (the quorum a deploy waits for) and `windows` (when deploys may
//! move traffic, in a named time zone, and the freezes when they may not).

use super::Checker;
use crate::approval::{ApprovalsSpec, DeployWindow, Freeze, Quorum, WEEKDAYS, WindowsSpec};
use crate::parse::node::{Entry, Node, Value};
use crate::types::defaults;

pub(super) const APPROVALS: &[&str] = &["required", "from", "timeout", "hotfix"];
pub(super) const QUORUM: &[&str] = &["required", "from"];
pub(super) const WINDOWS: &[&str] = &["timezone", "allow", "freezes"];
pub(super) const WINDOW: &[&str] = &["days", "hours"];
pub(super) const FREEZE: &[&str] = &["from", "until", "reason"];

const WINDOW_EXAMPLE: &str = r#"{ days: [mon-fri], hours: "09:00-17:00" }"#;
const FREEZE_EXAMPLE: &str = "{ from: 2026-12-20, until: 2027-01-04, reason: year-end freeze }";

impl Checker<'_> {
    pub(super) fn approvals(&mut self, e: &Entry) -> Option<ApprovalsSpec> {
        let f = self.fields(&e.value, "approvals", APPROVALS)?;
        let standard = self.quorum(&f, "approvals", e);
        let timeout = self.optional(
            &f,
            "timeout",
            defaults::APPROVAL_TIMEOUT,
            Self::positive_duration,
        );
        let hotfix = match f.get("hotfix") {
            Some(h) => self
                .fields(&h.value, "approvals.hotfix", QUORUM)
                .and_then(|hf| self.quorum(&hf, "approvals.hotfix", h)),
            None => standard.clone(),
        };
        Some(ApprovalsSpec {
            standard: standard?,
            hotfix: hotfix?,
            timeout: timeout?,
        })
    }

    /// `required` out of `from`, the fields of the section `path` at `e`.
    fn quorum(&mut self, f: &super::fields::Fields<'_>, path: &str, e: &Entry) -> Option<Quorum> {
        let from = self.require(
            f,
            path,
            e.key_pos,
            "from",
            "the names that may approve, e.g. `[alice, bob, carol]`",
        );
        let from = from.and_then(|e| self.names(e));
        let required = self.optional(f, "required", 1, Self::count);
        let (from, required) = (from?, required?);
        if required as usize > from.len() {
            let at = f.get("required").map_or(e.key_pos, Self::at);
            self.error(
                at,
                format!(
                    "`required` is {required} but `from` names only {} approver(s), so the quorum \
                     could never be reached; name more approvers or require at most {}",
                    from.len(),
                    from.len()
                ),
            );
            return None;
        }
        Some(Quorum { required, from })
    }

    /// A non-empty list of distinct approver names.
    fn names(&mut self, e: &Entry) -> Option<Vec<String>> {
        let Value::Seq(items) = &e.value.value else {
            self.error(
                Self::at(e),
                format!(
                    "`{}` must be a list of names like `[alice, bob]`, got {}",
                    e.key,
                    e.value.describe()
                ),
            );
            return None;
        };
        if items.is_empty() {
            self.error(
                Self::at(e),
                format!("`{}` must name at least one approver", e.key),
            );
            return None;
        }
        let mut names: Vec<String> = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            match item.scalar_text().map(|t| t.trim().to_owned()) {
                Some(name) if valid_name(&name) => {
                    if names.contains(&name) {
                        self.error(item.pos, format!("`{name}` is named twice in `{}`", e.key));
                        ok = false;
                    } else {
                        names.push(name);
                    }
                }
                _ => {
                    self.error(
                        item.pos,
                        format!(
                            "an approver's name is 1-64 letters, digits, `.`, `_`, `-` or `@` \
                             (like `alice` or `alice@example.com`), got {}",
                            item.describe()
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(names)
    }

    pub(super) fn windows(&mut self, e: &Entry) -> Option<WindowsSpec> {
        let f = self.fields(&e.value, "windows", WINDOWS)?;
        let timezone = self.require(
            &f,
            "windows",
            e.key_pos,
            "timezone",
            "an IANA time zone name, e.g. `Europe/Berlin` or `UTC`",
        );
        let timezone = timezone.and_then(|e| self.timezone(e));
        let allow = self.optional(&f, "allow", Vec::new(), |c, e| {
            c.mappings(e, "windows.allow", WINDOW_EXAMPLE, Self::window)
        });
        let freezes = self.optional(&f, "freezes", Vec::new(), |c, e| {
            c.mappings(e, "windows.freezes", FREEZE_EXAMPLE, Self::freeze)
        });
        Some(WindowsSpec {
            timezone: timezone?,
            allow: allow?,
            freezes: freezes?,
        })
    }

    fn timezone(&mut self, e: &Entry) -> Option<String> {
        let name = e.value.scalar_text().map(|t| t.trim().to_owned());
        if let Some(name) = &name
            && jiff::tz::db().get(name).is_ok()
        {
            return Some(name.clone());
        }
        let mut message = format!(
            "`timezone` must be an IANA time zone name like `Europe/Berlin`, `America/New_York` \
             or `UTC`, got {}",
            e.value.describe()
        );
        if let Some(name) = name {
            let known: Vec<String> = jiff::tz::db().available().map(|n| n.to_string()).collect();
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            message.push_str(&super::fields::suggestion(&name, &known));
        }
        self.error(Self::at(e), message);
        None
    }

    fn window(&mut self, node: &Node, path: &str) -> Option<DeployWindow> {
        let f = self.fields(node, path, WINDOW)?;
        let days = self.optional(&f, "days", ALL_DAYS, Self::days);
        let hours = self.require(
            &f,
            path,
            node.pos,
            "hours",
            r#"the times of day it is open, e.g. "09:00-17:00""#,
        );
        let hours = hours.and_then(|e| self.hours(e));
        let (from_minute, until_minute) = hours?;
        Some(DeployWindow {
            days: days?,
            from_minute,
            until_minute,
        })
    }

    /// `[mon, wed]`, `[mon-fri]`, or one word: a set of weekdays.
    fn days(&mut self, e: &Entry) -> Option<u8> {
        let words: Vec<(String, crate::parse::node::Pos)> = match &e.value.value {
            Value::Seq(items) => items
                .iter()
                .map(|n| (n.scalar_text().unwrap_or_default(), n.pos))
                .collect(),
            _ => vec![(e.value.scalar_text().unwrap_or_default(), Self::at(e))],
        };
        let mut days = 0u8;
        let mut ok = !words.is_empty();
        for (word, pos) in &words {
            match day_set(word.trim()) {
                Some(set) => days |= set,
                None => {
                    self.error(
                        *pos,
                        format!(
                            "`days` takes weekdays ({}) or ranges like `mon-fri`, got `{word}`",
                            WEEKDAYS.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        if words.is_empty() {
            self.error(
                Self::at(e),
                "`days` must name at least one weekday, like `[mon-fri]`",
            );
        }
        ok.then_some(days)
    }

    /// `"09:00-17:00"`: minutes after midnight, opening and closing.
    fn hours(&mut self, e: &Entry) -> Option<(u16, u16)> {
        let text = e.value.scalar_text().unwrap_or_default();
        let parsed = text.split_once('-').and_then(|(a, b)| {
            let from = minute_of_day(a.trim())?;
            let until = minute_of_day(b.trim())?;
            Some((from, until))
        });
        match parsed {
            Some((from, until)) if from != until => Some((from, until)),
            Some(_) => {
                self.error(
                    Self::at(e),
                    format!(
                        "`hours` opens and closes at the same time in `{text}`; for all day leave \
                         `hours` as \"00:00-24:00\""
                    ),
                );
                None
            }
            None => {
                self.error(
                    Self::at(e),
                    format!(
                        "`hours` must be two times of day like \"09:00-17:00\" (24-hour clock; \
                         \"22:00-02:00\" runs past midnight, \"24:00\" is the end of the day), got {}",
                        e.value.describe()
                    ),
                );
                None
            }
        }
    }

    fn freeze(&mut self, node: &Node, path: &str) -> Option<Freeze> {
        let f = self.fields(node, path, FREEZE)?;
        let from = self.require(&f, path, node.pos, "from", "a date like `2026-12-20`");
        let from = from.and_then(|e| self.date_time(e, false));
        let until = self.require(
            &f,
            path,
            node.pos,
            "until",
            "a date like `2027-01-04` (the whole day is frozen)",
        );
        let until = until.and_then(|e| self.date_time(e, true));
        let reason = self.require(
            &f,
            path,
            node.pos,
            "reason",
            "why, shown to whoever is refused, e.g. `year-end freeze`",
        );
        let reason = reason.and_then(|e| self.text(e, "why deploys are frozen"));
        let (from, until, reason) = (from?, until?, reason?);
        if until <= from {
            let at = f.get("until").map_or(node.pos, Self::at);
            self.error(
                at,
                format!("`until` ({until}) must be after `from` ({from})"),
            );
            return None;
        }
        Some(Freeze {
            from,
            until,
            reason,
        })
    }

    /// `2026-12-20` or `2026-12-20 18:00` (also with `T`). A bare date is the start
    /// of that day, or with `end_of_day` the start of the next (a freeze's `until`
    /// freezes the whole day it names).
    fn date_time(&mut self, e: &Entry, end_of_day: bool) -> Option<jiff::civil::DateTime> {
        let text = e.value.scalar_text().unwrap_or_default();
        let text = text.trim();
        if let Ok(date) = text.parse::<jiff::civil::Date>()
            && !text.contains([' ', 'T'])
        {
            let start = date.to_datetime(jiff::civil::Time::midnight());
            return if end_of_day {
                start.checked_add(jiff::Span::new().days(1)).ok()
            } else {
                Some(start)
            };
        }
        if let Ok(dt) = text.replacen(' ', "T", 1).parse::<jiff::civil::DateTime>() {
            return Some(dt);
        }
        self.error(
            Self::at(e),
            format!(
                "`{}` must be a date like `2026-12-20` or a date and time like `2026-12-20 18:00` \
                 (in the windows' time zone), got {}",
                e.key,
                e.value.describe()
            ),
        );
        None
    }
}

const ALL_DAYS: u8 = 0b111_1111;

/// `mon` or `mon-fri` (wrapping: `fri-mon`) as a weekday bit set, Monday bit 0.
fn day_set(word: &str) -> Option<u8> {
    let index = |w: &str| WEEKDAYS.iter().position(|d| *d == w.to_ascii_lowercase());
    match word.split_once('-') {
        None => index(word).map(|i| 1 << i),
        Some((a, b)) => {
            let (a, b) = (index(a.trim())?, index(b.trim())?);
            let mut set = 0u8;
            let mut i = a;
            loop {
                set |= 1 << i;
                if i == b {
                    break Some(set);
                }
                i = (i + 1) % 7;
            }
        }
    }
}

/// `09:30` as 570; `24:00` as 1440 (the end of the day).
fn minute_of_day(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if !(1..=2).contains(&h.len()) || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_sets_read_single_days_ranges_and_wrapping_ranges() {
        assert_eq!(day_set("mon"), Some(0b1));
        assert_eq!(day_set("mon-fri"), Some(0b1_1111));
        assert_eq!(day_set("fri-mon"), Some(0b111_0001));
        assert_eq!(day_set("Sun"), Some(0b100_0000));
        assert_eq!(day_set("funday"), None);
    }

    #[test]
    fn times_of_day_are_24_hour_with_24_00_as_the_end() {
        assert_eq!(minute_of_day("09:30"), Some(570));
        assert_eq!(minute_of_day("24:00"), Some(1440));
        assert_eq!(minute_of_day("24:01"), None);
        assert_eq!(minute_of_day("9:05"), Some(545));
        assert_eq!(minute_of_day("9:5"), None);
        assert_eq!(minute_of_day("12:60"), None);
        assert_eq!(minute_of_day("noon"), None);
    }
}
