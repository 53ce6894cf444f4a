//! Where versions run (`platform.local`: the command, its environment, directory and
//! timeouts; `platform.docker` is in `docker.rs`) and how their health is checked
//! (`health`).

use std::collections::BTreeMap;
use std::path::Path;

use super::Checker;
use crate::parse::node::{Entry, Value};
use crate::types::{HealthCheck, LocalSpec, PlatformSpec, defaults};

pub(super) const PLATFORMS: &[&str] = &["local", "docker"];
const PLATFORMS_LATER: &[&str] = &["kubernetes"];
pub(super) const LOCAL: &[&str] = &[
    "command",
    "env",
    "workdir",
    "instances",
    "startup_timeout",
    "drain_timeout",
];
pub(super) const HEALTH: &[&str] = &[
    "path",
    "interval",
    "timeout",
    "healthy_threshold",
    "unhealthy_threshold",
];

const COMMAND_EXAMPLE: &str = r#"["./server", "--port", "${PORT}"]"#;

impl Checker<'_> {
    pub(super) fn platform(&mut self, e: &Entry) -> Option<PlatformSpec> {
        let kind = self.one_of(e, "platform", "platform", PLATFORMS, PLATFORMS_LATER)?;
        match kind.key.as_str() {
            "local" => self.local(kind).map(PlatformSpec::Local),
            "docker" => self.docker(kind).map(PlatformSpec::Docker),
            _ => unreachable!("one_of returns only valid kinds"),
        }
    }

    fn local(&mut self, e: &Entry) -> Option<LocalSpec> {
        let path = "platform.local";
        let f = self.fields(&e.value, path, LOCAL)?;
        let command = self.require(
            &f,
            path,
            e.key_pos,
            "command",
            &format!("the argv to run, e.g. {COMMAND_EXAMPLE}"),
        );
        let command = command.and_then(|e| self.command(e));
        let env = match f.get("env") {
            Some(e) => self.env(e, true),
            None => Some(BTreeMap::new()),
        };
        let workdir = match f.get("workdir") {
            Some(e) => self.path(e),
            None => Some(self.resolve(Path::new(defaults::WORKDIR))),
        };
        let instances = match f.get("instances") {
            Some(e) => self
                .whole(e, 1, defaults::MAX_INSTANCES.into())
                .map(|n| n as u32),
            None => Some(defaults::INSTANCES),
        };
        let startup_timeout = match f.get("startup_timeout") {
            Some(e) => self.positive_duration(e),
            None => Some(defaults::STARTUP_TIMEOUT),
        };
        let drain_timeout = match f.get("drain_timeout") {
            Some(e) => self.duration(e),
            None => Some(defaults::DRAIN_TIMEOUT),
        };
        if let (Some(command), Some(env), Some(e)) = (&command, &env, f.get("command")) {
            self.uses_port(e, command, env);
        }
        Some(LocalSpec {
            command: command?,
            env: env?,
            workdir: workdir?,
            instances: instances?,
            startup_timeout: startup_timeout?,
            drain_timeout: drain_timeout?,
        })
    }

    pub(super) fn health(&mut self, e: &Entry) -> Option<HealthCheck> {
        let f = self.fields(&e.value, "health", HEALTH)?;
        let d = HealthCheck::default();
        let path = match f.get("path") {
            Some(e) => self.url_path(e),
            None => Some(d.path),
        };
        let interval = self.optional(&f, "interval", d.interval, Self::positive_duration);
        let timeout = self.optional(&f, "timeout", d.timeout, Self::positive_duration);
        let healthy = self.optional(&f, "healthy_threshold", d.healthy_threshold, Self::count);
        let unhealthy = self.optional(
            &f,
            "unhealthy_threshold",
            d.unhealthy_threshold,
            Self::count,
        );
        Some(HealthCheck {
            path: path?,
            interval: interval?,
            timeout: timeout?,
            healthy_threshold: healthy?,
            unhealthy_threshold: unhealthy?,
        })
    }

    /// A service never told its port would listen elsewhere, and the deploy would only
    /// fail once `startup_timeout` ran out.
    pub(super) fn uses_port(
        &mut self,
        e: &Entry,
        command: &[String],
        env: &BTreeMap<String, String>,
    ) {
        let port = "${PORT}";
        if command.iter().chain(env.values()).any(|s| s.contains(port)) {
            return;
        }
        self.error(
            Self::at(e),
            format!(
                "neither `command` nor `env` uses `{port}`, so the service would not know which \
                 port to listen on; add `{port}` to `command`, like {COMMAND_EXAMPLE}, or, if the \
                 service reads the `PORT` environment variable, say so with \
                 `env: {{ PORT: \"{port}\" }}`"
            ),
        );
    }

    pub(super) fn command(&mut self, e: &Entry) -> Option<Vec<String>> {
        let items = match &e.value.value {
            Value::Seq(items) if !items.is_empty() => items,
            Value::Seq(_) | Value::Null => {
                self.error(
                    Self::at(e),
                    "`command` must not be empty: give at least the program to run, like [\"./server\"]",
                );
                return None;
            }
            Value::Str(s) => {
                let mut message = format!(
                    "`command` must be a list of strings (the argv; no shell splits it), like {COMMAND_EXAMPLE}, got {}",
                    e.value.describe()
                );
                if !s.contains(['"', '\'', '\\']) && !s.trim().is_empty() {
                    let words: Vec<String> =
                        s.split_whitespace().map(|w| format!("\"{w}\"")).collect();
                    message.push_str(&format!("; did you mean [{}]?", words.join(", ")));
                }
                self.error(Self::at(e), message);
                return None;
            }
            _ => {
                self.error(
                    Self::at(e),
                    format!(
                        "`command` must be a list of strings (the argv), like {COMMAND_EXAMPLE}, got {}",
                        e.value.describe()
                    ),
                );
                return None;
            }
        };
        let mut argv = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item.scalar_text() {
                Some(arg) if i == 0 && arg.trim().is_empty() => {
                    self.error(
                        item.pos,
                        "`command[0]` must name the program to run, got an empty string",
                    );
                    ok = false;
                }
                Some(arg) => {
                    ok &= self.placeholders(item, &arg, &format!("`command[{i}]`"));
                    argv.push(arg);
                }
                None => {
                    self.error(
                        item.pos,
                        format!("`command[{i}]` must be a string, got {}", item.describe()),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(argv)
    }

    /// An `env:` mapping; `placeholders` says whether its values may use `${PORT}` and
    /// `${VERSION}` (a version's environment) or are taken as written (a gate's).
    pub(super) fn env(
        &mut self,
        e: &Entry,
        placeholders: bool,
    ) -> Option<BTreeMap<String, String>> {
        let entries = match &e.value.value {
            Value::Map(entries) => entries,
            Value::Null => return Some(BTreeMap::new()),
            _ => {
                self.error(
                    Self::at(e),
                    format!(
                        "`env` must be a mapping of variable names to values, like `{{ GREETING: \"hi\" }}`, got {}",
                        e.value.describe()
                    ),
                );
                return None;
            }
        };
        let mut env = BTreeMap::new();
        let mut lines: BTreeMap<&str, usize> = BTreeMap::new();
        let mut ok = true;
        for entry in entries {
            let name = entry.key.as_str();
            if let Some(line) = lines.get(name) {
                self.error(
                    entry.key_pos,
                    format!(
                        "duplicate environment variable `{name}`: it is already set on line {line}"
                    ),
                );
                ok = false;
                continue;
            }
            lines.insert(name, entry.key_pos.line);
            if name.is_empty() || name.contains(['=', '\0']) {
                self.error(
                    entry.key_pos,
                    format!(
                        "invalid environment variable name `{name}`: it must be non-empty and contain no `=`"
                    ),
                );
                ok = false;
            }
            match entry.value.scalar_text() {
                Some(value) => {
                    if placeholders {
                        ok &= self.placeholders(&entry.value, &value, &format!("`env.{name}`"));
                    }
                    env.insert(name.to_owned(), value);
                }
                None if entry.value.is_null() => {
                    self.error(
                        Self::at(entry),
                        format!("`env.{name}` has no value; write `{name}: \"\"` for an empty one"),
                    );
                    ok = false;
                }
                None => {
                    self.error(
                        entry.value.pos,
                        format!(
                            "`env.{name}` must be a string, got {}",
                            entry.value.describe()
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(env)
    }
}
