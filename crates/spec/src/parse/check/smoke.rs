//! `smoke`: the smoke tests run against an environment, HTTP checks (those of
//! `strategy.blue_green.smoke_checks` plus `json`) and commands (`run`).

use std::collections::BTreeMap;
use std::path::Path;

use super::Checker;
use crate::parse::node::{Entry, Node, Value};
use crate::smoke::{JsonScalar, SmokeCommand, SmokeTest};
use crate::types::defaults;

/// The fields of an HTTP smoke test: a smoke check's, and the JSON fields it expects.
pub(super) const SMOKE_HTTP: &[&str] = &[
    "method",
    "path",
    "headers",
    "status",
    "body_contains",
    "json",
    "max_latency",
];
/// The fields of a command smoke test.
pub(super) const SMOKE_COMMAND: &[&str] = &["name", "run", "timeout", "workdir", "env"];

const SMOKE_EXAMPLE: &str = "{ path: /ready, status: 200 }";

impl Checker<'_> {
    pub(super) fn smoke(&mut self, e: &Entry) -> Option<Vec<SmokeTest>> {
        let items = self.list(e, SMOKE_EXAMPLE)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let path = format!("smoke[{i}]");
            let Some(item) = item else {
                ok = false;
                continue;
            };
            let test = if item.get("run").is_some() {
                self.smoke_command(item, &path).map(SmokeTest::Command)
            } else {
                self.smoke_check(item, &path, SMOKE_HTTP)
                    .map(SmokeTest::Http)
            };
            match test {
                Some(test) => out.push(test),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn smoke_command(&mut self, item: &Node, path: &str) -> Option<SmokeCommand> {
        let f = self.fields(item, path, SMOKE_COMMAND)?;
        let run = f.get("run").and_then(|e| self.argv(e));
        let name = match (f.get("name"), &run) {
            (Some(e), _) => self.text(e, "what the receipt calls the test"),
            (None, Some(run)) => Some(run.join(" ")),
            (None, None) => None,
        };
        let timeout = self.optional(
            &f,
            "timeout",
            defaults::SMOKE_COMMAND_TIMEOUT,
            Self::positive_duration,
        );
        let workdir = match f.get("workdir") {
            Some(e) => self.path(e),
            None => Some(self.resolve(Path::new(defaults::WORKDIR))),
        };
        let env = self.optional(&f, "env", BTreeMap::new(), |c, e| c.env(e, false));
        Some(SmokeCommand {
            name: name?,
            run: run?,
            timeout: timeout?,
            workdir: workdir?,
            env: env?,
        })
    }

    /// `json`: field paths and the scalar each must equal.
    pub(super) fn json_fields(&mut self, e: &Entry) -> Option<BTreeMap<String, JsonScalar>> {
        let entries = match &e.value.value {
            Value::Map(entries) => entries,
            Value::Null => return Some(BTreeMap::new()),
            _ => {
                self.error(
                    Self::at(e),
                    format!(
                        "`json` must be a mapping of field paths to the values they must equal, \
                         like `{{ status: ok, \"data.items.0.id\": 7 }}`, got {}",
                        e.value.describe()
                    ),
                );
                return None;
            }
        };
        let mut fields = BTreeMap::new();
        let mut ok = true;
        for entry in entries {
            let key = entry.key.as_str();
            if fields.contains_key(key) {
                self.error(entry.key_pos, format!("duplicate JSON field `{key}`"));
                ok = false;
                continue;
            }
            if key.is_empty() || key.split('.').any(str::is_empty) {
                self.error(
                    entry.key_pos,
                    format!(
                        "invalid JSON field path `{key}`: give object keys and list indexes \
                         joined by `.`, like `data.items.0.id`"
                    ),
                );
                ok = false;
            }
            let value = match &entry.value.value {
                Value::Null => JsonScalar::Null,
                Value::Bool(b) => JsonScalar::Bool(*b),
                Value::Int(i) => JsonScalar::Number(*i as f64),
                Value::Float(f) => JsonScalar::Number(*f),
                Value::Str(s) => JsonScalar::String(s.clone()),
                Value::Seq(_) | Value::Map(_) => {
                    self.error(
                        entry.value.pos,
                        format!(
                            "`json.{key}` must be a string, a number, `true`, `false` or `null`, \
                             got {}; name a field inside it instead, like `{key}.0`",
                            entry.value.describe()
                        ),
                    );
                    ok = false;
                    continue;
                }
            };
            fields.insert(key.to_owned(), value);
        }
        ok.then_some(fields)
    }
}
