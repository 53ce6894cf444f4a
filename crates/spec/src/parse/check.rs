//! Walks the YAML tree, collects every mistake, and builds the validated [`Config`]
//! with the defaults from [`crate::defaults`].
//!
//! Conventions for messages: say what is wrong and what would be valid; name a
//! setting by its key (`weight`) when the line and column already pin it, and by
//! its full path (`platform.local`) when talking about a whole section.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::node::{Entry, Node, Pos, Value};
use crate::types::{
    AnalysisSpec, CanarySpec, Config, ErrorRateRule, HealthCheck, LatencyRule, LocalSpec,
    MetricRules, Pause, Percent, PlatformSpec, Step, StrategySpec, defaults,
};

const TOP: &[&str] = &[
    "app",
    "listen",
    "state_dir",
    "platform",
    "health",
    "strategy",
    "analysis",
];
const PLATFORMS: &[&str] = &["local"];
const PLATFORMS_LATER: &[&str] = &["docker", "kubernetes"];
const LOCAL: &[&str] = &[
    "command",
    "env",
    "workdir",
    "instances",
    "startup_timeout",
    "drain_timeout",
];
const HEALTH: &[&str] = &[
    "path",
    "interval",
    "timeout",
    "healthy_threshold",
    "unhealthy_threshold",
];
const STRATEGIES: &[&str] = &["canary"];
const STRATEGIES_LATER: &[&str] = &["blue_green", "rolling"];
const CANARY: &[&str] = &["steps"];
const STEP: &[&str] = &["weight", "pause"];
const ANALYSIS: &[&str] = &[
    "interval",
    "min_requests",
    "failure_limit",
    "inconclusive_limit",
    "metrics",
];
const METRICS: &[&str] = &["error_rate", "latency_p50", "latency_p95", "latency_p99"];
const ERROR_RATE: &[&str] = &["max", "max_over_stable"];
const LATENCY: &[&str] = &["max", "max_ratio"];

/// Where each field lives, to say "`path` belongs in `health`" when it is misplaced.
const HOMES: &[(&str, &[&str])] = &[
    ("the top level", TOP),
    ("`platform`", PLATFORMS),
    ("`platform.local`", LOCAL),
    ("`health`", HEALTH),
    ("`strategy`", STRATEGIES),
    ("`strategy.canary`", CANARY),
    ("each of `strategy.canary.steps`", STEP),
    ("`analysis`", ANALYSIS),
    ("`analysis.metrics`", METRICS),
    ("`analysis.metrics.error_rate`", ERROR_RATE),
    ("a latency metric", LATENCY),
];

const COMMAND_EXAMPLE: &str = r#"["./server", "--port", "${PORT}"]"#;
const DURATION_EXPECTED: &str = "expected a duration like `500ms`, `30s` or `2m`";
const UNTIL_PROMOTED: &str = "until-promoted";

type Errors = Vec<(Pos, String)>;

/// Check `root` and build the config, or return every mistake found.
pub(super) fn config(root: &Node, base: &Path) -> Result<Config, Errors> {
    let mut c = Checker {
        errors: Vec::new(),
        base,
    };
    match c.config(root) {
        Some(config) if c.errors.is_empty() => Ok(config),
        _ => {
            if c.errors.is_empty() {
                // Every `None` above comes with an error; this is only a safety net.
                c.errors.push((root.pos, "invalid config".to_owned()));
            }
            Err(c.errors)
        }
    }
}

struct Checker<'b> {
    errors: Errors,
    base: &'b Path,
}

/// The known fields of one mapping, first occurrence of each.
struct Fields<'n> {
    entries: Vec<&'n Entry>,
    /// Keys that are not valid here (already reported).
    unknown: Vec<&'n str>,
}

impl<'n> Fields<'n> {
    fn empty() -> Self {
        Fields {
            entries: Vec::new(),
            unknown: Vec::new(),
        }
    }
    fn get(&self, name: &str) -> Option<&'n Entry> {
        self.entries.iter().copied().find(|e| e.key == name)
    }
}

impl Checker<'_> {
    /// Where to point for a mistake in the value of `e`: the value, or the key when
    /// the value is left empty (`interval:` with nothing after it).
    fn at(e: &Entry) -> Pos {
        if e.value.is_null() && e.value.raw.is_none() {
            e.key_pos
        } else {
            e.value.pos
        }
    }

    fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push((pos, message.into()));
    }

    // ---- sections ----

    fn config(&mut self, root: &Node) -> Option<Config> {
        if root.is_null() {
            self.error(
                Pos::START,
                "the config is empty: it needs at least `app` and `platform` \
                 (run `cutover init` for a commented starter)",
            );
            return None;
        }
        let f = self.fields(root, "", TOP)?;

        let app = self.require(
            &f,
            "",
            root.pos,
            "app",
            "the application's name, e.g. `shop`",
        );
        let app = app.and_then(|e| self.app(e));
        let listen = match f.get("listen") {
            Some(e) => self.listen(e),
            None => Some(
                defaults::LISTEN
                    .parse()
                    .expect("the default listen address parses"),
            ),
        };
        let state_dir = match f.get("state_dir") {
            Some(e) => self.path(e),
            None => Some(self.resolve(Path::new(defaults::STATE_DIR))),
        };
        let platform = self.require(
            &f,
            "",
            root.pos,
            "platform",
            "where versions run, e.g. `platform: { local: { command: [\"./server\"] } }`",
        );
        let platform = platform.and_then(|e| self.platform(e));
        let health = match f.get("health") {
            Some(e) => self.health(e),
            None => Some(HealthCheck::default()),
        };
        let strategy = match f.get("strategy") {
            Some(e) => self.strategy(e),
            None => Some(StrategySpec::default()),
        };
        let analysis = match f.get("analysis") {
            Some(e) => self.analysis(e),
            None => Some(AnalysisSpec::default()),
        };

        Some(Config {
            app: app?,
            listen: listen?,
            state_dir: state_dir?,
            platform: platform?,
            health: health?,
            strategy: strategy?,
            analysis: analysis?,
        })
    }

    fn platform(&mut self, e: &Entry) -> Option<PlatformSpec> {
        let kind = self.one_of(e, "platform", "platform", PLATFORMS, PLATFORMS_LATER)?;
        match kind.key.as_str() {
            "local" => self.local(kind).map(PlatformSpec::Local),
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
            Some(e) => self.env(e),
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
        Some(LocalSpec {
            command: command?,
            env: env?,
            workdir: workdir?,
            instances: instances?,
            startup_timeout: startup_timeout?,
            drain_timeout: drain_timeout?,
        })
    }

    fn health(&mut self, e: &Entry) -> Option<HealthCheck> {
        let f = self.fields(&e.value, "health", HEALTH)?;
        let d = HealthCheck::default();
        let path = match f.get("path") {
            Some(e) => self.health_path(e),
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

    fn strategy(&mut self, e: &Entry) -> Option<StrategySpec> {
        if e.value.is_null() {
            return Some(StrategySpec::default());
        }
        let kind = self.one_of(e, "strategy", "strategy", STRATEGIES, STRATEGIES_LATER)?;
        match kind.key.as_str() {
            "canary" => self.canary(kind).map(StrategySpec::Canary),
            _ => unreachable!("one_of returns only valid kinds"),
        }
    }

    fn canary(&mut self, e: &Entry) -> Option<CanarySpec> {
        let f = self.fields(&e.value, "strategy.canary", CANARY)?;
        let Some(steps) = f.get("steps") else {
            return Some(CanarySpec::default());
        };
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
            let weight = weight.and_then(|e| self.weight(e, previous));
            if let Some(w) = weight {
                previous = Some(w);
            }
            let pause = match f.get("pause") {
                Some(e) => self.pause(e),
                None => Some(Pause::For(defaults::STEP_PAUSE)),
            };
            match (weight, pause) {
                (Some(weight), Some(pause)) => out.push(Step { weight, pause }),
                _ => ok = false,
            }
        }
        ok.then_some(CanarySpec { steps: out })
    }

    fn analysis(&mut self, e: &Entry) -> Option<AnalysisSpec> {
        let f = self.fields(&e.value, "analysis", ANALYSIS)?;
        let d = AnalysisSpec::default();
        let interval = self.optional(&f, "interval", d.interval, Self::positive_duration);
        let min_requests = self.optional(&f, "min_requests", d.min_requests, |c, e| {
            c.whole(e, 0, u64::MAX)
        });
        let failure_limit = self.optional(&f, "failure_limit", d.failure_limit, Self::count);
        let inconclusive_limit =
            self.optional(&f, "inconclusive_limit", d.inconclusive_limit, Self::count);
        let metrics = match f.get("metrics") {
            Some(e) => self.metrics(e),
            None => Some(d.metrics),
        };
        Some(AnalysisSpec {
            interval: interval?,
            min_requests: min_requests?,
            failure_limit: failure_limit?,
            inconclusive_limit: inconclusive_limit?,
            metrics: metrics?,
        })
    }

    fn metrics(&mut self, e: &Entry) -> Option<MetricRules> {
        let f = self.fields(&e.value, "analysis.metrics", METRICS)?;
        if f.entries.is_empty() {
            // Unknown metrics were reported already; say what is missing only if
            // nothing else was written.
            if !matches!(&e.value.value, Value::Map(m) if !m.is_empty()) {
                self.error(
                    e.key_pos,
                    format!(
                        "`analysis.metrics` has no metrics: give at least one (valid: {}), \
                         or leave `metrics` out for the default `error_rate: {{ max: {} }}`",
                        METRICS.join(", "),
                        defaults::ERROR_RATE_MAX
                    ),
                );
            }
            return None;
        }
        let mut ok = true;
        let mut rules = MetricRules::default();
        for entry in &f.entries {
            let path = format!("analysis.metrics.{}", entry.key);
            if entry.key == "error_rate" {
                match self.error_rate(entry, &path) {
                    Some(rule) => rules.error_rate = Some(rule),
                    None => ok = false,
                }
            } else {
                match self.latency(entry, &path) {
                    Some(rule) => match entry.key.as_str() {
                        "latency_p50" => rules.latency_p50 = Some(rule),
                        "latency_p95" => rules.latency_p95 = Some(rule),
                        _ => rules.latency_p99 = Some(rule),
                    },
                    None => ok = false,
                }
            }
        }
        ok.then_some(rules)
    }

    fn error_rate(&mut self, e: &Entry, path: &str) -> Option<ErrorRateRule> {
        let f = self.fields(&e.value, path, ERROR_RATE)?;
        let max = f.get("max").map(|e| self.percent(e));
        let over = f.get("max_over_stable").map(|e| self.percent(e));
        if max.is_none() && over.is_none() {
            if !f.unknown.is_empty() {
                return None;
            }
            self.error(
                e.key_pos,
                format!(
                    "`{path}` needs at least one of `max` or `max_over_stable`, e.g. `max: 5%`"
                ),
            );
            return None;
        }
        Some(ErrorRateRule {
            max: if_valid(max)?,
            max_over_stable: if_valid(over)?,
        })
    }

    fn latency(&mut self, e: &Entry, path: &str) -> Option<LatencyRule> {
        let f = self.fields(&e.value, path, LATENCY)?;
        let max = f.get("max").map(|e| self.positive_duration(e));
        let ratio = f.get("max_ratio").map(|e| self.ratio(e));
        if max.is_none() && ratio.is_none() {
            if !f.unknown.is_empty() {
                return None;
            }
            self.error(
                e.key_pos,
                format!("`{path}` needs at least one of `max` or `max_ratio`, e.g. `max: 300ms`"),
            );
            return None;
        }
        Some(LatencyRule {
            max: if_valid(max)?,
            max_ratio: if_valid(ratio)?,
        })
    }

    // ---- mappings ----

    /// The known fields of the mapping `node` at `path` (`""` for the top level).
    /// Reports unknown and repeated fields. A null node is an empty mapping, so
    /// `health:` with everything commented out means all defaults.
    fn fields<'n>(&mut self, node: &'n Node, path: &str, valid: &[&str]) -> Option<Fields<'n>> {
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

    fn require<'n>(
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
    fn optional<T>(
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

    /// A mapping with exactly one key naming a kind (`platform: { local: ... }`).
    fn one_of<'n>(
        &mut self,
        e: &'n Entry,
        path: &str,
        noun: &str,
        valid: &[&str],
        later: &[&str],
    ) -> Option<&'n Entry> {
        let valid_list = format!(
            "valid: {}; {} are not yet supported",
            valid.join(", "),
            later.join(" and ")
        );
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

    // ---- values ----

    fn app(&mut self, e: &Entry) -> Option<String> {
        let text = e.value.scalar_text();
        if let Some(name) = &text
            && valid_app_name(name)
        {
            return Some(name.clone());
        }
        let mut message = format!(
            "`app` must be 1-{} characters of lowercase letters, digits and `-`, starting with a letter \
             (like `shop`), got {}",
            defaults::APP_MAX_LEN,
            e.value.describe()
        );
        if let Some(name) = text {
            let slug = slugify(&name);
            if valid_app_name(&slug) {
                message.push_str(&format!("; did you mean `{slug}`?"));
            }
        }
        self.error(Self::at(e), message);
        None
    }

    fn listen(&mut self, e: &Entry) -> Option<SocketAddr> {
        let text = e.value.scalar_text();
        if let Some(addr) = text.as_deref().and_then(|t| t.trim().parse().ok()) {
            return Some(addr);
        }
        let mut message = format!(
            "`listen` must be an IP address and port like `127.0.0.1:8080` or `[::1]:8080`, got {}",
            e.value.describe()
        );
        if let Some(t) = text {
            let t = t.trim();
            let port = t
                .strip_prefix("localhost:")
                .or_else(|| t.strip_prefix(':'))
                .unwrap_or(t);
            if port.parse::<u16>().is_ok() {
                message.push_str(&format!("; did you mean `127.0.0.1:{port}`?"));
            }
        }
        self.error(Self::at(e), message);
        None
    }

    /// A path, resolved against the config file's directory.
    fn path(&mut self, e: &Entry) -> Option<PathBuf> {
        match e.value.scalar_text() {
            Some(p) if !p.trim().is_empty() => Some(self.resolve(Path::new(&p))),
            _ => {
                self.error(
                    Self::at(e),
                    format!(
                        "`{}` must be a directory path (relative to the config file's directory), got {}",
                        e.key,
                        e.value.describe()
                    ),
                );
                None
            }
        }
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        };
        let cleaned: PathBuf = joined
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect();
        if cleaned.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            cleaned
        }
    }

    fn command(&mut self, e: &Entry) -> Option<Vec<String>> {
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

    fn env(&mut self, e: &Entry) -> Option<BTreeMap<String, String>> {
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
                    ok &= self.placeholders(&entry.value, &value, &format!("`env.{name}`"));
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

    /// Checks the `${...}` placeholders in `text`, the value of `node`.
    fn placeholders(&mut self, node: &Node, text: &str, what: &str) -> bool {
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

    fn health_path(&mut self, e: &Entry) -> Option<String> {
        let text = e.value.scalar_text();
        if let Some(p) = &text
            && p.starts_with('/')
            && !p.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Some(p.clone());
        }
        let mut message = format!(
            "`path` must be a URL path starting with `/`, like `{}`, got {}",
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

    fn duration(&mut self, e: &Entry) -> Option<Duration> {
        match parse_duration(&e.value) {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(Self::at(e), message);
                None
            }
        }
    }

    fn positive_duration(&mut self, e: &Entry) -> Option<Duration> {
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

    fn percent(&mut self, e: &Entry) -> Option<Percent> {
        match parse_percent(&e.key, &e.value) {
            Ok(p) => Some(p),
            Err(message) => {
                self.error(Self::at(e), message);
                None
            }
        }
    }

    /// A step's weight: above 0%, and not below the previous step's.
    fn weight(&mut self, e: &Entry, previous: Option<Percent>) -> Option<Percent> {
        let w = self.percent(e)?;
        if w.fraction() <= 0.0 {
            self.error(
                e.value.pos,
                "`weight` must be more than 0%: every step sends some traffic to the new version",
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

    /// A whole number in `min..=max`.
    fn whole(&mut self, e: &Entry, min: u64, max: u64) -> Option<u64> {
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
    fn count(&mut self, e: &Entry) -> Option<u32> {
        self.whole(e, 1, u32::MAX.into()).map(|n| n as u32)
    }

    fn ratio(&mut self, e: &Entry) -> Option<f64> {
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

// ---- free helpers (also unit-tested on their own) ----

/// An optional setting that was checked if present: `None` if it was present but
/// invalid, else whether it was given.
fn if_valid<T>(checked: Option<Option<T>>) -> Option<Option<T>> {
    match checked {
        None => Some(None),
        Some(value) => value.map(Some),
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

fn valid_app_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= defaults::APP_MAX_LEN
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `My App!` -> `my-app`: the closest valid app name, maybe.
fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    out.chars()
        .take(defaults::APP_MAX_LEN)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
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
pub(super) fn did_you_mean<'v>(got: &str, valid: &[&'v str]) -> Option<&'v str> {
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
    let homes: Vec<&str> = HOMES
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
