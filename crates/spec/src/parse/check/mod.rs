//! Walks the YAML tree, collects every mistake, and builds the validated [`Config`]
//! with the defaults from [`crate::defaults`].
//!
//! One `Checker` walks the whole tree and collects the mistakes; its methods are
//! spread over this module by what they check:
//!
//! - here: the entry `config`, the collector, and the top level (`app`, `listen`,
//!   `state_dir` and the paths resolved against the config file's directory);
//! - `fields`: mappings: known, unknown (with "did you mean") and repeated fields,
//!   required fields, and sections that name one kind (`platform: { local: ... }`);
//! - `values`: durations, percentages, whole numbers in a range, ratios, booleans,
//!   words, strings, URL paths and the `${...}` placeholders;
//! - `platform`: `platform.local` and `health`;
//! - `strategy`: which strategy, and `strategy.canary` with its steps;
//! - `blue_green`: `strategy.blue_green` and its smoke checks;
//! - `rolling`: `strategy.rolling`;
//! - `analysis`: `analysis` and its metric rules;
//! - `source`: `analysis.source`, its queries, custom metrics and `${env:NAME}` values;
//! - `proxy`: `proxy`, the built-in proxy's limits;
//! - `api`: `api`, who may read the daemon's HTTP API;
//! - `approval`: `approvals` (the quorum a deploy waits for) and `windows`;
//! - `hooks`: `hooks` and `migrations`, the commands run around a rollout;
//! - `notifications`: `notifications`, its webhooks and GitHub deployments;
//! - `gates`: `gates`, the commands and reports checked before a deploy, and a
//!   command's argv;
//! - `smoke`: `smoke`, the HTTP checks and commands run against an environment;
//! - `environments`: `environments`, each laid over the top level and checked.
//!
//! Checks that need two sections (a rolling strategy and the number of instances, a
//! preview analysis and the metrics' limits) run in `config` once both have parsed;
//! the strategy is handed the top-level `listen`, which a preview must not share.
//!
//! Conventions for messages: say what is wrong and what would be valid; name a
//! setting by its key (`weight`) when the line and column already pin it, and by
//! its full path (`platform.local`) when talking about a whole section.

mod analysis;
mod api;
mod approval;
mod blue_green;
mod docker;
mod environments;
mod fields;
mod gates;
mod hooks;
mod logs;
mod notifications;
mod platform;
mod proxy;
mod rolling;
mod smoke;
mod source;
mod strategy;
mod values;

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use super::node::{Entry, Node, Pos};
use crate::types::{
    AnalysisSpec, ApiSpec, Config, HealthCheck, HooksSpec, LogsSpec, NotificationsSpec, ProxySpec,
    StrategySpec, defaults,
};

// The suggestion rule is also unit-tested on its own.
#[cfg(test)]
pub(super) use fields::did_you_mean;

const TOP: &[&str] = &[
    "app",
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
    "environments",
];

/// Where each field lives, to say "`path` belongs in `health`" when it is misplaced.
const HOMES: &[(&str, &[&str])] = &[
    ("the top level", TOP),
    ("`platform`", platform::PLATFORMS),
    ("`platform.local`", platform::LOCAL),
    ("`platform.docker`", docker::DOCKER),
    ("`health`", platform::HEALTH),
    ("`strategy`", strategy::STRATEGIES),
    ("`strategy.canary`", strategy::CANARY),
    ("each of `strategy.canary.steps`", strategy::STEP),
    ("`strategy.blue_green`", blue_green::BLUE_GREEN),
    (
        "each of `strategy.blue_green.smoke_checks`",
        blue_green::SMOKE_CHECK,
    ),
    ("`strategy.rolling`", rolling::ROLLING),
    ("`analysis`", analysis::ANALYSIS),
    ("`analysis.metrics`", analysis::METRICS),
    ("`analysis.metrics.error_rate`", analysis::ERROR_RATE),
    ("a latency metric", analysis::LATENCY),
    ("`proxy`", proxy::PROXY),
    ("`api`", api::API),
    ("`approvals`", approval::APPROVALS),
    ("`approvals.hotfix`", approval::QUORUM),
    ("`windows`", approval::WINDOWS),
    ("each of `windows.allow`", approval::WINDOW),
    ("each of `windows.freezes`", approval::FREEZE),
    ("`hooks`", hooks::HOOKS),
    ("`migrations`", hooks::MIGRATIONS),
    ("`migrations.validate`", hooks::VALIDATE),
    ("`notifications`", notifications::NOTIFICATIONS),
    ("each of `notifications.webhooks`", notifications::WEBHOOK),
    ("`notifications.github`", notifications::GITHUB),
    ("each of `gates`", gates::GATE),
    ("a gate's `report`", gates::REPORT),
    ("each HTTP check of `smoke`", smoke::SMOKE_HTTP),
    ("each command of `smoke`", smoke::SMOKE_COMMAND),
    ("`logs`", logs::LOGS),
    ("`analysis.logs`", logs::LOG_CHECK),
    ("each of `environments`", environments::ENVIRONMENT),
];

type Errors = Vec<(Pos, String)>;

/// Check `root` and build the config (for the environment `environment`, when
/// the file defines `environments`), or return every mistake found, each once.
pub(super) fn config(
    root: &Node,
    base: &Path,
    env: Env<'_>,
    environment: Option<&str>,
) -> Result<Config, Errors> {
    let mut c = Checker {
        errors: Vec::new(),
        base,
        env,
    };
    match c.root(root, environment) {
        Some(config) if c.errors.is_empty() => Ok(config),
        _ => {
            if c.errors.is_empty() {
                // Every `None` above comes with an error; this is only a safety net.
                c.errors.push((root.pos, "invalid config".to_owned()));
            }
            // A shared setting is checked once per environment: say it once.
            let mut seen = std::collections::HashSet::new();
            c.errors.retain(|e| seen.insert(e.clone()));
            Err(c.errors)
        }
    }
}

/// Looks up an environment variable, for `${env:NAME}`; `None`: leave them unresolved.
pub(super) type Env<'e> = Option<&'e dyn Fn(&str) -> Option<String>>;

struct Checker<'b> {
    errors: Errors,
    base: &'b Path,
    env: Env<'b>,
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

    // ---- the top level ----

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
            Some(e) => self.strategy(e, listen),
            None => Some(StrategySpec::default()),
        };
        let analysis = match f.get("analysis") {
            Some(e) => self.analysis(e),
            None => Some(AnalysisSpec::default()),
        };
        let proxy = match f.get("proxy") {
            Some(e) => self.proxy(e),
            None => Some(ProxySpec::default()),
        };
        let api = match f.get("api") {
            Some(e) => self.api(e),
            None => Some(ApiSpec::default()),
        };
        let approvals = self.optional(&f, "approvals", None, |c, e| c.approvals(e).map(Some));
        let windows = self.optional(&f, "windows", None, |c, e| c.windows(e).map(Some));
        let hooks = match f.get("hooks") {
            Some(e) => self.hooks(e),
            None => Some(HooksSpec::default()),
        };
        let migrations = match f.get("migrations") {
            Some(e) => self.migrations(e).map(Some),
            None => Some(None),
        };
        let notifications = match f.get("notifications") {
            Some(e) => self.notifications(e),
            None => Some(NotificationsSpec::default()),
        };
        let gates = self.optional(&f, "gates", Vec::new(), Self::gates);
        let smoke = self.optional(&f, "smoke", Vec::new(), Self::smoke);
        let logs = match f.get("logs") {
            Some(e) => self.logs(e),
            None => Some(LogsSpec::default()),
        };

        if let Some(e) = f.get("strategy") {
            if let (Some(platform), Some(StrategySpec::Rolling(rolling))) = (&platform, &strategy) {
                self.rolling_progress(e, rolling, platform.instances());
            }
            if let (Some(StrategySpec::BlueGreen(bg)), Some(analysis)) = (&strategy, &analysis)
                && bg.preview_analysis.is_some()
            {
                self.preview_has_limits(e, analysis);
            }
        }

        Some(Config {
            app: app?,
            listen: listen?,
            state_dir: state_dir?,
            platform: platform?,
            health: health?,
            strategy: strategy?,
            analysis: analysis?,
            proxy: proxy?,
            api: api?,
            approvals: approvals?,
            windows: windows?,
            hooks: hooks?,
            migrations: migrations?,
            notifications: notifications?,
            gates: gates?,
            smoke: smoke?,
            logs: logs?,
            environment: None,
            environments: Vec::new(),
        })
    }

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

    /// An address to listen on: `listen`, or another field named by `e`'s key.
    fn listen(&mut self, e: &Entry) -> Option<SocketAddr> {
        let text = e.value.scalar_text();
        if let Some(addr) = text.as_deref().and_then(|t| t.trim().parse().ok()) {
            return Some(addr);
        }
        let mut message = format!(
            "`{}` must be an IP address and port like `127.0.0.1:8080` or `[::1]:8080`, got {}",
            e.key,
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
}

pub(super) fn valid_app_name(name: &str) -> bool {
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
