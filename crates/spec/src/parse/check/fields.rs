//! Mappings: the known fields of a section, with unknown and repeated ones reported
//! (suggesting the closest valid name, or the section a misplaced field belongs
//! in), required fields, and sections that name exactly one kind.

use super::Checker;
use crate::parse::node::{Entry, Node, Pos, Value};

/// The known fields of one mapping, first occurrence of each.
pub(super) struct Fields<'n> {
    pub(super) entries: Vec<&'n Entry>,
    /// Keys that are not valid here (already reported).
    pub(super) unknown: Vec<&'n str>,
}

impl<'n> Fields<'n> {
    fn empty() -> Self {
        Fields {
            entries: Vec::new(),
            unknown: Vec::new(),
        }
    }
    pub(super) fn get(&self, name: &str) -> Option<&'n Entry> {
        self.entries.iter().copied().find(|e| e.key == name)
    }
}

impl Checker<'_> {
    /// The known fields of the mapping `node` at `path` (`""` for the top level).
    /// Reports unknown and repeated fields. A null node is an empty mapping, so
    /// `health:` with everything commented out means all defaults.
    pub(super) fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        valid: &[&str],
    ) -> Option<Fields<'n>> {
        let entries = match &node.value {
            Value::Map(entries) => entries,
            Value::Null => return Some(Fields::empty()),
            _ => {
                let what = if path.is_empty() {
                    "the config".to_owned()
                } else {
                    format!("`{path}`")
                };
                self.error(
                    node.pos,
                    format!(
                        "{what} must be a mapping of settings (valid: {}), got {}",
                        valid.join(", "),
                        node.describe()
                    ),
                );
                return None;
            }
        };
        let mut fields = Fields::empty();
        for entry in entries {
            if let Some(first) = fields.get(&entry.key) {
                self.error(
                    entry.key_pos,
                    format!(
                        "duplicate field `{}`: it is already set on line {}",
                        entry.key, first.key_pos.line
                    ),
                );
            } else if valid.contains(&entry.key.as_str()) {
                fields.entries.push(entry);
            } else {
                let place = if path.is_empty() {
                    "at the top level".to_owned()
                } else {
                    format!("in `{path}`")
                };
                let message = format!(
                    "unknown field `{}` {place}{}{} (valid: {})",
                    entry.key,
                    suggestion(&entry.key, valid),
                    elsewhere(&entry.key, valid),
                    valid.join(", ")
                );
                self.error(entry.key_pos, message);
                fields.unknown.push(&entry.key);
            }
        }
        Some(fields)
    }

    pub(super) fn require<'n>(
        &mut self,
        f: &Fields<'n>,
        path: &str,
        blame: Pos,
        name: &str,
        hint: &str,
    ) -> Option<&'n Entry> {
        let found = f.get(name);
        // `wieght: 5%` was reported as "unknown field ...; did you mean `weight`?":
        // saying `weight` is missing too would be noise.
        let typo = f.unknown.iter().any(|k| did_you_mean(k, &[name]).is_some());
        if found.is_none() && !typo {
            let what = if path.is_empty() {
                "the config".to_owned()
            } else {
                format!("`{path}`")
            };
            self.error(
                blame,
                format!("{what} is missing the required field `{name}` ({hint})"),
            );
        }
        found
    }

    /// `check` the field `name` if present, else the default.
    pub(super) fn optional<T>(
        &mut self,
        f: &Fields<'_>,
        name: &str,
        default: T,
        check: impl FnOnce(&mut Self, &Entry) -> Option<T>,
    ) -> Option<T> {
        match f.get(name) {
            Some(e) => check(self, e),
            None => Some(default),
        }
    }

    /// The list at `path` (`e`'s value; empty when left empty), each item checked
    /// by `item` with its own path (`path[i]`); `example` shows one item. Every
    /// item's mistakes are reported, not only the first's.
    pub(super) fn mappings<T>(
        &mut self,
        e: &Entry,
        path: &str,
        example: &str,
        item: impl Fn(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = match &e.value.value {
            Value::Seq(items) => items,
            Value::Null => return Some(Vec::new()),
            _ => {
                self.error(
                    Self::at(e),
                    format!(
                        "`{path}` must be a list like `- {example}`, got {}",
                        e.value.describe()
                    ),
                );
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, node) in items.iter().enumerate() {
            match item(self, node, &format!("{path}[{i}]")) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A mapping with exactly one key naming a kind (`platform: { local: ... }`).
    pub(super) fn one_of<'n>(
        &mut self,
        e: &'n Entry,
        path: &str,
        noun: &str,
        valid: &[&str],
        later: &[&str],
    ) -> Option<&'n Entry> {
        let valid_list = match later {
            [] => format!("valid: {}", valid.join(", ")),
            [one] => format!("valid: {}; {one} is not yet supported", valid.join(", ")),
            _ => format!(
                "valid: {}; {} are not yet supported",
                valid.join(", "),
                later.join(" and ")
            ),
        };
        let entries = match &e.value.value {
            Value::Map(entries) if !entries.is_empty() => entries,
            Value::Null | Value::Map(_) => {
                self.error(
                    e.key_pos,
                    format!(
                        "`{path}` must name one {noun}, like `{}:` ({valid_list})",
                        valid[0]
                    ),
                );
                return None;
            }
            _ => {
                let mut message = format!(
                    "`{path}` must be a mapping with one key naming the {noun}, like `{}:` ({valid_list}), got {}",
                    valid[0],
                    e.value.describe()
                );
                if let Some(text) = e.value.scalar_text()
                    && valid.contains(&text.as_str())
                {
                    message.push_str(&format!(
                        "; write `{path}:` then `{text}:` indented below it"
                    ));
                }
                self.error(Self::at(e), message);
                return None;
            }
        };
        let mut chosen: Option<&Entry> = None;
        for entry in entries {
            let key = entry.key.as_str();
            if valid.contains(&key) {
                match chosen {
                    None => chosen = Some(entry),
                    Some(first) if first.key == key => self.error(
                        entry.key_pos,
                        format!(
                            "duplicate field `{key}`: it is already set on line {}",
                            first.key_pos.line
                        ),
                    ),
                    Some(first) => self.error(
                        entry.key_pos,
                        format!(
                            "`{path}` must name exactly one {noun}, got `{}` and `{key}`",
                            first.key
                        ),
                    ),
                }
            } else if later.contains(&key) {
                self.error(
                    entry.key_pos,
                    format!(
                        "{noun} `{key}` is not yet supported (valid: {})",
                        valid.join(", ")
                    ),
                );
            } else {
                let mut all = valid.to_vec();
                all.extend_from_slice(later);
                self.error(
                    entry.key_pos,
                    format!(
                        "unknown {noun} `{key}`{}{} ({valid_list})",
                        suggestion(key, &all),
                        elsewhere(key, valid)
                    ),
                );
            }
        }
        chosen
    }
}

/// `"; did you mean `x`?"` when one of `valid` is close to `got`, else `""`.
pub(super) fn suggestion(got: &str, valid: &[&str]) -> String {
    did_you_mean(got, valid)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// The entry of `valid` closest to `got`, if close enough: the same but for case,
/// `-` and `_`, or a Levenshtein distance of at most a third of the length, or a
/// Jaro-Winkler similarity of at least 0.88.
pub(in crate::parse) fn did_you_mean<'v>(got: &str, valid: &[&'v str]) -> Option<&'v str> {
    let norm = |s: &str| s.to_lowercase().replace(['-', ' '], "_");
    let got = norm(got);
    if let Some(v) = valid.iter().find(|v| norm(v) == got) {
        return Some(v);
    }
    valid
        .iter()
        .map(|v| {
            let n = norm(v);
            (
                *v,
                strsim::levenshtein(&got, &n),
                strsim::jaro_winkler(&got, &n),
                n.chars().count(),
            )
        })
        .filter(|&(_, lev, jw, len)| lev <= (len.max(got.chars().count()) / 3).max(1) || jw >= 0.88)
        .min_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)))
        .map(|(v, ..)| v)
}

/// `"; `path` belongs in `health`"` when `key` is a field of another section.
fn elsewhere(key: &str, here: &[&str]) -> String {
    if here.contains(&key) {
        return String::new();
    }
    let homes: Vec<&str> = super::HOMES
        .iter()
        .filter(|(_, fields)| fields.contains(&key))
        .map(|(name, _)| *name)
        .collect();
    match homes.as_slice() {
        [] => String::new(),
        [one] => format!("; `{key}` belongs in {one}"),
        [first @ .., last] => format!("; `{key}` belongs in {} or {last}", first.join(", ")),
    }
}
