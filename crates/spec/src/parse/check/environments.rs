//! `environments`: the places a version goes through in order (`staging`, then
//! `production`), each an entry laid over the top-level settings. Every
//! environment's settings are checked, whichever one the config is read for, so
//! `cutover validate` finds a mistake in `staging` while production is asked about.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Checker, valid_app_name};
use crate::parse::node::{Entry, Node, Pos, Value};
use crate::types::{Config, EnvironmentSpec, StrategySpec, defaults};

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
                         leave out `--env` (and unset CUTOVER_ENV)"
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
        let last = defined.last().map(|d| d.name.clone());
        let mut specs = Vec::with_capacity(defined.len());
        let mut configs = Vec::with_capacity(defined.len());
        let mut config = None;
        let mut all_valid = true;
        let lookup = self.env;
        for d in &defined {
            let merged = own_kinds(&shared, &d.overlay).overlay(&d.overlay);
            // Only the environment asked for needs its `${env:NAME}` secrets: the
            // others are checked as written, so no daemon needs another's keys.
            self.env = if d.name == chosen { lookup } else { None };
            let checked = self.config(&merged);
            self.env = lookup;
            let Some(mut c) = checked else {
                all_valid = false;
                continue;
            };
            if !d.sets_state_dir && last.as_deref() != Some(d.name.as_str()) {
                c.state_dir = c.state_dir.join(&d.name);
            }
            if let Some(github) = &mut c.notifications.github
                && !sets(&merged, &["notifications", "github", "environment"])
            {
                // GitHub's deployments are told which environment they are in.
                github.environment = d.name.clone();
            }
            specs.push(EnvironmentSpec {
                name: d.name.clone(),
                listen: c.listen,
                state_dir: c.state_dir.clone(),
                smoke: c.smoke.clone(),
                skip_on_hotfix: d.skip_on_hotfix,
            });
            configs.push(listens(&c));
            if d.name == chosen {
                config = Some(c);
            }
        }
        if !all_valid {
            return None;
        }
        self.apart(&defined, &specs, &configs);
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
                        entry.key, first.entry.key_pos.line
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
                sets_state_dir: f.get("state_dir").is_some_and(|e| !e.value.is_null()),
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

    /// Two environments never share an address they listen on (unless the OS
    /// picks each port) or a state directory: their daemons would fight over it.
    fn apart(
        &mut self,
        defined: &[Defined<'_>],
        specs: &[EnvironmentSpec],
        listens: &[Vec<(&'static str, SocketAddr)>],
    ) {
        let mut taken: Vec<(SocketAddr, &str)> = Vec::new();
        let mut dirs: BTreeMap<&PathBuf, &str> = BTreeMap::new();
        for ((d, spec), addrs) in defined.iter().zip(specs).zip(listens) {
            for (field, addr) in addrs {
                let clash = taken
                    .iter()
                    .find(|(other, name)| *name != d.name && same_socket(*other, *addr));
                if let Some((other_addr, other)) = clash {
                    self.error(
                        d.entry.key_pos,
                        format!(
                            "environments `{other}` and `{}` both listen on {}: give each its own `{field}`",
                            d.name,
                            if other_addr.ip().is_unspecified() { *other_addr } else { *addr }
                        ),
                    );
                }
            }
            taken.extend(addrs.iter().map(|(_, a)| (*a, d.name.as_str())));
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

/// The addresses a config's daemon listens on, each with the setting that says it:
/// the proxy's, and blue-green's preview's.
fn listens(config: &Config) -> Vec<(&'static str, SocketAddr)> {
    let mut out = vec![("listen", config.listen)];
    if let StrategySpec::BlueGreen(bg) = &config.strategy
        && let Some(preview) = bg.preview_listen
    {
        out.push(("strategy.blue_green.preview_listen", preview));
    }
    out
}

/// Whether two listen addresses would take the same socket: the same port, on the
/// same address or with either on all addresses (`0.0.0.0`, `[::]`). Port 0 is
/// picked by the OS, so never the same.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The sections that name one kind (`platform: { local: ... }`): an environment
/// naming another kind than the top level replaces the whole section rather than
/// merging into it.
const KINDS: &[&str] = &["platform", "strategy"];

/// `shared` without the kind sections `overlay` names another kind in.
fn own_kinds(shared: &Node, overlay: &Node) -> Node {
    let mut base = shared.clone();
    for section in KINDS {
        let (Some(mine), Some(theirs)) = (overlay.get(section), shared.get(section)) else {
            continue;
        };
        if let (Value::Map(mine), Value::Map(theirs)) = (&mine.value.value, &theirs.value.value)
            && !mine.iter().any(|m| theirs.iter().any(|t| t.key == m.key))
        {
            base = base.without(section);
        }
    }
    base
}

/// Whether `node` has a value at `path` (nested mapping keys).
fn sets(node: &Node, path: &[&str]) -> bool {
    let mut at = node;
    for key in path {
        match at.get(key) {
            Some(e) if !e.value.is_null() => at = &e.value,
            _ => return false,
        }
    }
    true
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
