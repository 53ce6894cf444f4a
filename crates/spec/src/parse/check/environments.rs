//! `environments`: the places a version goes through in order (`staging`, then
//! `production`), each an entry laid over the top-level settings. Every
//! environment's settings are checked, whichever one the config is read for, so
//! `cutover validate` finds a mistake in `staging` while production is asked about.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Checker, valid_app_name};
use crate::parse::node::{Entry, Node, Pos, Value};
use crate::types::{Config, EnvironmentSpec, defaults};

/// What an environment's entry may set: any top-level setting but `app` and
/// `environments`, and `skip_on_hotfix`.
pub(super) const ENVIRONMENT: &[&str] = &[
    "listen",
    "state_dir",
    "platform",
    "health",
    "strategy",
    "analysis",
    "proxy",
    "api",
    "approvals",
    "windows",
    "hooks",
    "migrations",
    "notifications",
    "gates",
    "smoke",
    "logs",
    "skip_on_hotfix",
];

/// One entry of `environments`, as written.
struct Defined<'n> {
    name: String,
    pos: Pos,
    /// The entry with `skip_on_hotfix` taken out: what is laid over the top level.
    overlay: Node,
    sets_state_dir: bool,
    skip_on_hotfix: bool,
    entry: &'n Entry,
}

impl Checker<'_> {
    /// The config of the file's root: for the environment `wanted` (by default
    /// the last one) when it defines `environments`, else the root as it is.
    pub(super) fn root(&mut self, root: &Node, wanted: Option<&str>) -> Option<Config> {
        let Some(entry) = root.get("environments") else {
            if let Some(name) = wanted {
                self.error(
                    Pos::default(),
                    format!(
                        "there is no environment `{name}`: the config defines no `environments`; \
                         leave out `--env`"
                    ),
                );
                return None;
            }
            return self.config(root);
        };
        let defined = self.defined(entry)?;
        let chosen = match wanted {
            Some(name) => name.to_owned(),
            None => defined.last()?.name.clone(),
        };
        if !defined.iter().any(|d| d.name == chosen) {
            let names: Vec<&str> = defined.iter().map(|d| d.name.as_str()).collect();
            self.error(
                Pos::default(),
                format!(
                    "there is no environment `{chosen}`: the config defines {}",
                    names.join(", ")
                ),
            );
        }
        let shared = root.without("environments");
        let mut specs = Vec::with_capacity(defined.len());
        let mut config = None;
        let mut all_valid = true;
        for d in &defined {
            let Some(mut c) = self.config(&shared.overlay(&d.overlay)) else {
                all_valid = false;
                continue;
            };
            if !d.sets_state_dir {
                c.state_dir = c.state_dir.join(&d.name);
            }
            specs.push(EnvironmentSpec {
                name: d.name.clone(),
                listen: c.listen,
                state_dir: c.state_dir.clone(),
                skip_on_hotfix: d.skip_on_hotfix,
            });
            if d.name == chosen {
                config = Some(c);
            }
        }
        if !all_valid {
            return None;
        }
        self.apart(&defined, &specs);
        let mut config = config?;
        config.environment = Some(chosen);
        config.environments = specs;
        Some(config)
    }

    /// The entries of `environments`, in order, each name and entry checked.
    fn defined<'n>(&mut self, e: &'n Entry) -> Option<Vec<Defined<'n>>> {
        let example = "`environments: { staging: { listen: \"127.0.0.1:9080\" }, production: {} }`";
        let Value::Map(entries) = &e.value.value else {
            self.error(
                Self::at(e),
                format!(
                    "`environments` must be a mapping of environment names to their settings, \
                     like {example}, got {}",
                    e.value.describe()
                ),
            );
            return None;
        };
        if entries.is_empty() {
            self.error(
                Self::at(e),
                format!("`environments` defines no environment: name at least one, like {example}"),
            );
            return None;
        }
        let mut out: Vec<Defined<'n>> = Vec::with_capacity(entries.len());
        let mut ok = true;
        for entry in entries {
            if !valid_app_name(&entry.key) {
                self.error(
                    entry.key_pos,
                    format!(
                        "environment name `{}` must be 1-{} characters of lowercase letters, digits \
                         and `-`, starting with a letter (like `staging`)",
                        entry.key,
                        defaults::APP_MAX_LEN
                    ),
                );
                ok = false;
                continue;
            }
            if let Some(first) = out.iter().find(|d| d.name == entry.key) {
                self.error(
                    entry.key_pos,
                    format!(
                        "duplicate environment `{}`: it is already defined on line {}",
                        entry.key, first.pos.line
                    ),
                );
                ok = false;
                continue;
            }
            let path = format!("environments.{}", entry.key);
            let Some(f) = self.fields(&entry.value, &path, ENVIRONMENT) else {
                ok = false;
                continue;
            };
            let skip_on_hotfix = match f.get("skip_on_hotfix") {
                Some(s) => match self.boolean(s) {
                    Some(b) => b,
                    None => {
                        ok = false;
                        continue;
                    }
                },
                None => false,
            };
            let overlay = entry.value.without("skip_on_hotfix");
            out.push(Defined {
                name: entry.key.clone(),
                pos: entry.key_pos,
                sets_state_dir: f.get("state_dir").is_some(),
                overlay: match overlay.value {
                    // `staging:` with nothing after it: the top-level settings as they are.
                    Value::Null => Node {
                        value: Value::Map(Vec::new()),
                        ..overlay
                    },
                    _ => overlay,
                },
                skip_on_hotfix,
                entry,
            });
        }
        ok.then_some(out)
    }

    /// Two environments never share a proxy address (unless the OS picks each
    /// port) or a state directory: their daemons would fight over it.
    fn apart(&mut self, defined: &[Defined<'_>], specs: &[EnvironmentSpec]) {
        let mut listens: BTreeMap<std::net::SocketAddr, &str> = BTreeMap::new();
        let mut dirs: BTreeMap<&PathBuf, &str> = BTreeMap::new();
        for (d, spec) in defined.iter().zip(specs) {
            if spec.listen.port() != 0
                && let Some(other) = listens.insert(spec.listen, &d.name)
            {
                self.error(
                    d.entry.key_pos,
                    format!(
                        "environments `{other}` and `{}` both listen on {}: give each its own `listen`",
                        d.name, spec.listen
                    ),
                );
            }
            if let Some(other) = dirs.insert(&spec.state_dir, &d.name) {
                self.error(
                    d.entry.key_pos,
                    format!(
                        "environments `{other}` and `{}` both keep their state in {}: give each its \
                         own `state_dir`",
                        d.name,
                        spec.state_dir.display()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_may_set_every_top_level_setting_but_app() {
        let mut expected: Vec<&str> = super::super::TOP
            .iter()
            .copied()
            .filter(|k| !matches!(*k, "app" | "environments"))
            .collect();
        expected.push("skip_on_hotfix");
        assert_eq!(ENVIRONMENT, expected.as_slice());
    }
}
