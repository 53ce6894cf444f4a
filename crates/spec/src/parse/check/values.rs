//! Values: durations, percentages, whole numbers in a range, ratios, booleans, one
//! of a few words, strings, URL paths, and the `${...}` placeholders in strings.

use std::time::Duration;

use super::Checker;
use super::fields::{did_you_mean, suggestion};
use crate::parse::node::{Entry, Node, Value};
use crate::types::{Percent, defaults};

const DURATION_EXPECTED: &str = "expected a duration like `500ms`, `30s` or `2m`";

impl Checker<'_> {
    /// Checks the `${...}` placeholders in `text`, the value of `node`.
    pub(super) fn placeholders(&mut self, node: &Node, text: &str, what: &str) -> bool {
        let valid: Vec<String> = defaults::PLACEHOLDERS
            .iter()
            .map(|p| format!("${{{p}}}"))
            .collect();
        let valid_list = valid.join(", ");
        let mut ok = true;
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.error(
                    node.pos_of(&rest[start..]),
                    format!(
                        "unterminated placeholder `{}` in {what} (valid: {valid_list})",
                        &rest[start..]
                    ),
                );
                return false;
            };
            let name = &after[..end];
            if !defaults::PLACEHOLDERS.contains(&name) {
                let found = format!("${{{name}}}");
                let hint = did_you_mean(name, &defaults::PLACEHOLDERS)
                    .map(|p| format!("; did you mean `${{{p}}}`?"))
                    .unwrap_or_default();
                self.error(
                    node.pos_of(&found),
                    format!("unknown placeholder `{found}` in {what}{hint} (valid: {valid_list})"),
                );
                ok = false;
            }
            rest = &after[end + 1..];
        }
        ok
    }

    pub(super) fn duration(&mut self, e: &Entry) -> Option<Duration> {
        match parse_duration(&e.value) {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(Self::at(e), message);
                None
            }
        }
    }

    pub(super) fn positive_duration(&mut self, e: &Entry) -> Option<Duration> {
        let d = self.duration(e)?;
        if d.is_zero() {
            self.error(
                Self::at(e),
                format!(
                    "`{}` must be longer than 0s, got {}",
                    e.key,
                    e.value.describe()
                ),
            );
            return None;
        }
        Some(d)
    }

    pub(super) fn percent(&mut self, e: &Entry) -> Option<Percent> {
        match parse_percent(&e.key, &e.value) {
            Ok(p) => Some(p),
            Err(message) => {
                self.error(Self::at(e), message);
                None
            }
        }
    }

    /// A whole number in `min..=max`.
    pub(super) fn whole(&mut self, e: &Entry, min: u64, max: u64) -> Option<u64> {
        let n: Option<i128> = match &e.value.value {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        };
        if let Some(n) = n
            && n >= i128::from(min)
            && n <= i128::from(max)
        {
            return Some(n as u64);
        }
        let range = match (min, max) {
            (0, u64::MAX) => "(0 or more)".to_owned(),
            (0, max) if max == u64::from(u32::MAX) => "(0 or more)".to_owned(),
            (min, u64::MAX) => format!("of at least {min}"),
            (min, max) if max == u64::from(u32::MAX) => format!("of at least {min}"),
            (min, max) => format!("from {min} to {max}"),
        };
        self.error(
            Self::at(e),
            format!(
                "`{}` must be a whole number {range}, got {}",
                e.key,
                e.value.describe()
            ),
        );
        None
    }

    /// A count of at least 1 (thresholds and limits).
    pub(super) fn count(&mut self, e: &Entry) -> Option<u32> {
        self.whole(e, 1, u32::MAX.into()).map(|n| n as u32)
    }

    pub(super) fn boolean(&mut self, e: &Entry) -> Option<bool> {
        if let Value::Bool(b) = e.value.value {
            return Some(b);
        }
        self.error(
            Self::at(e),
            format!(
                "`{}` must be `true` or `false`, got {}",
                e.key,
                e.value.describe()
            ),
        );
        None
    }

    /// One of the words in `choices`, each standing for a value.
    pub(super) fn keyword<T: Copy>(&mut self, e: &Entry, choices: &[(&str, T)]) -> Option<T> {
        let text = e.value.scalar_text();
        if let Some(t) = &text
            && let Some((_, value)) = choices.iter().find(|(word, _)| *word == t.trim())
        {
            return Some(*value);
        }
        let words: Vec<String> = choices.iter().map(|(w, _)| format!("`{w}`")).collect();
        let listed = match words.as_slice() {
            [one] => one.clone(),
            [first @ .., last] => format!("{} or {last}", first.join(", ")),
            [] => unreachable!("a keyword has choices"),
        };
        let plain: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
        let hint = text
            .map(|t| suggestion(t.trim(), &plain))
            .unwrap_or_default();
        self.error(
            Self::at(e),
            format!(
                "`{}` must be {listed}, got {}{hint}",
                e.key,
                e.value.describe()
            ),
        );
        None
    }

    /// A string (a number or boolean keeps its text); `what` says what it is for, in the message when it is not one.
    pub(super) fn text(&mut self, e: &Entry, what: &str) -> Option<String> {
        match e.value.scalar_text() {
            Some(s) => Some(s),
            None => {
                self.error(
                    Self::at(e),
                    format!(
                        "`{}` must be a string ({what}), got {}",
                        e.key,
                        e.value.describe()
                    ),
                );
                None
            }
        }
    }

    /// A URL path: starts with `/`, no whitespace or control characters.
    pub(super) fn url_path(&mut self, e: &Entry) -> Option<String> {
        let text = e.value.scalar_text();
        if let Some(p) = &text
            && p.starts_with('/')
            && !p.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Some(p.clone());
        }
        let mut message = format!(
            "`{}` must be a URL path starting with `/`, like `{}`, got {}",
            e.key,
            defaults::HEALTH_PATH,
            e.value.describe()
        );
        if let Some(p) = text
            && !p.starts_with('/')
            && !p.is_empty()
            && !p.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            message.push_str(&format!("; did you mean `/{p}`?"));
        }
        self.error(Self::at(e), message);
        None
    }

    pub(super) fn ratio(&mut self, e: &Entry) -> Option<f64> {
        let r = match &e.value.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match r {
            Some(r) if r.is_finite() && r > 0.0 => Some(r),
            _ => {
                self.error(
                    Self::at(e),
                    format!(
                        "`{}` must be a number greater than 0 like `1.5` (the canary's value over the stable's), got {}",
                        e.key,
                        e.value.describe()
                    ),
                );
                None
            }
        }
    }
}

/// A duration like `500ms`, `30s`, `2m`, `1h 30m`; else the message to report.
pub(super) fn parse_duration(node: &Node) -> Result<Duration, String> {
    match &node.value {
        Value::Str(s) => humantime::parse_duration(s.trim())
            .map_err(|_| format!("invalid duration {}: {DURATION_EXPECTED}", node.describe())),
        Value::Int(_) | Value::Float(_) => Err(format!(
            "invalid duration {}: {DURATION_EXPECTED} (a bare number has no unit)",
            node.describe()
        )),
        _ => Err(format!(
            "invalid duration: {DURATION_EXPECTED}, got {}",
            node.describe()
        )),
    }
}

/// A percentage like `10%`, `0.5%` or `100%`; else the message to report, which
/// names the setting `key`.
pub(super) fn parse_percent(key: &str, node: &Node) -> Result<Percent, String> {
    let general = || {
        format!(
            "`{key}` must be a percentage between 0% and 100% like `25%`, got {}",
            node.describe()
        )
    };
    let bare = |number: &str, value: f64| {
        let mut message = format!(
            "`{key}` must be a percentage like `10%`, got the bare number `{number}`; write it as `{number}%`"
        );
        if value > 0.0
            && value < 1.0
            && let Some(p) = Percent::from_fraction(value)
        {
            message.push_str(&format!(", or `{p}` if you meant a fraction of 1"));
        }
        message
    };
    match &node.value {
        Value::Int(i) => Err(bare(&node.describe().replace('`', ""), *i as f64)),
        Value::Float(f) => Err(bare(&node.describe().replace('`', ""), *f)),
        Value::Str(s) => {
            let t = s.trim();
            match t.strip_suffix('%') {
                Some(number) => {
                    let number = number.trim_end();
                    let digits = number.strip_prefix(['-', '+']).unwrap_or(number);
                    let well_formed = digits.chars().any(|c| c.is_ascii_digit())
                        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
                        && digits.matches('.').count() <= 1;
                    let value: Option<f64> = if well_formed {
                        number.parse().ok()
                    } else {
                        None
                    };
                    value.and_then(Percent::from_percent).ok_or_else(general)
                }
                None => match t.parse::<f64>() {
                    Ok(v) if v.is_finite() => Err(bare(t, v)),
                    _ => Err(general()),
                },
            }
        }
        _ => Err(general()),
    }
}
