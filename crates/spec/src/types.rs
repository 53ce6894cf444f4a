//! The validated configuration. Every field here has already been checked and
//! defaulted by [`crate::parse`]; see `DEFAULTS` in the README for the defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::hooks::*;
pub use crate::notifications::*;
use crate::source::{CustomRule, MetricSource};

/// A whole, valid `cutover.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The application's name; one rollout per app at a time.
    pub app: String,
    /// Where the built-in proxy listens (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Where the store, the daemon's address file and receipts live (default `.cutover`
    /// beside the config file).
    pub state_dir: PathBuf,
    pub platform: PlatformSpec,
    pub health: HealthCheck,
    pub strategy: StrategySpec,
    pub analysis: AnalysisSpec,
    pub proxy: ProxySpec,
    pub api: ApiSpec,
    /// Who must approve a deploy before traffic moves; `None`: nobody.
    pub approvals: Option<crate::ApprovalsSpec>,
    /// When deploys may move traffic; `None`: at any time.
    pub windows: Option<crate::WindowsSpec>,
    /// Commands run before the deploy, after a promotion and on a rollback (default none).
    pub hooks: HooksSpec,
    /// The database migration the new version needs (default none).
    pub migrations: Option<MigrationsSpec>,
    /// Webhooks and GitHub deployments told of the run (default none).
    pub notifications: NotificationsSpec,
    /// The quality gates run before a deploy starts (default none).
    pub gates: Vec<crate::Gate>,
    /// The smoke tests run against an environment before production traffic moves
    /// (default none).
    pub smoke: Vec<crate::SmokeTest>,
    pub logs: LogsSpec,
    /// The environment this config is for (`--env`; by default the last one), when
    /// the file defines `environments`; `None` when it does not.
    pub environment: Option<String>,
    /// Every environment the file defines, in the order a version goes through
    /// them (empty when it defines none).
    pub environments: Vec<EnvironmentSpec>,
}

impl Config {
    /// The environment a deploy to this one goes through first: the one defined
    /// right before it (`staging` before `production`), if any.
    pub fn earlier_environment(&self) -> Option<&EnvironmentSpec> {
        let name = self.environment.as_deref()?;
        let at = self.environments.iter().position(|e| e.name == name)?;
        at.checked_sub(1).map(|before| &self.environments[before])
    }
}

/// One of `environments:`: a place the service runs, with its own daemon, proxy,
/// instances and state, sharing the service definition. Its entry in the file is
/// laid over the top-level settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentSpec {
    pub name: String,
    /// Where its proxy listens (a port of 0: wherever its daemon got one, which
    /// its `daemon.json` says).
    pub listen: SocketAddr,
    /// Its own state directory, where its daemon writes `daemon.json` and its
    /// token: by default `<state_dir>/<name>`, and for the last environment
    /// `state_dir` itself (so adding environments keeps production's history).
    pub state_dir: PathBuf,
    /// The smoke tests a later environment's deploy runs against this one (its
    /// `smoke:`, the top-level list unless its entry sets one).
    pub smoke: Vec<crate::SmokeTest>,
    /// A hotfix to a later environment skips this one (`skip_on_hotfix`, default
    /// false: hotfixes go through it too).
    pub skip_on_hotfix: bool,
}

/// How each instance's output is kept (`logs:`; every field optional): one file
/// per instance, rotated when it grows past `max_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogsSpec {
    /// The size, in bytes, past which a log file is rotated (default 10 MiB, at
    /// least 4 KiB).
    pub max_size: u64,
    /// Rotated files kept beside it, `.1` the newest (default 3; 0 keeps none).
    pub keep: u32,
    /// Runs whose log folders are kept, those started last (default 20, at least 1); an
    /// older run's folder goes once none of its files belongs to a release that
    /// still serves. The folder of what the daemon starts outside runs stays.
    pub keep_runs: u32,
}

impl Default for LogsSpec {
    fn default() -> Self {
        LogsSpec {
            max_size: defaults::LOG_MAX_SIZE,
            keep: defaults::LOG_KEEP,
            keep_runs: defaults::LOG_KEEP_RUNS,
        }
    }
}

/// Who may use the daemon's HTTP API (`api:`; every field optional). Requests that
/// change something always need the daemon's token; these settings say whether
/// reads do too. A daemon takes them up only when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSpec {
    /// Reads (`GET`) need the token too (default false: reads are open on loopback).
    pub read_auth: bool,
    /// An API listening beyond loopback may keep its reads open (default false: such a
    /// daemon refuses to start unless `read_auth` is on).
    pub allow_remote_open_reads: bool,
}

/// The limits of the built-in proxy, which protect it and the instances behind it
/// from its clients (`proxy:`; every field optional). A daemon takes them up only
/// when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxySpec {
    /// The largest request head (request line and headers), in bytes; beyond it,
    /// 431 (default 64 KiB, from 1 KiB to 1 MiB).
    pub max_header_size: u64,
    /// How long a request head may take to arrive; then 408 and close (default 10s,
    /// more than 0).
    pub header_read_timeout: Duration,
    /// How long a client connection may idle between requests before it is closed
    /// (default 60s, more than 0).
    pub idle_timeout: Duration,
    /// How long an upgraded connection (a WebSocket) may pass no byte either way
    /// before it is closed (default 1h; `None`: no limit).
    pub tunnel_idle_timeout: Option<Duration>,
    /// Client connections served at once; one more is answered 503 and closed
    /// (default 10000; 0 is no limit).
    pub max_connections: u32,
    /// Requests in flight to one instance at once; beyond it the version's other
    /// instances are tried, then 503 (default 0: no limit).
    pub max_requests_per_instance: u32,
    /// The largest request body, in bytes; beyond it, 413 (default `None`: no limit).
    pub max_body_size: Option<u64>,
    /// Threads of its own the proxy serves connections on, each with a runtime
    /// of its own, a connection staying on one (thread per core; up to
    /// [`defaults::MAX_PROXY_THREADS`]). Default 0: served on the daemon's runtime.
    pub threads: u32,
}

/// Where versions run: `local` processes (the default) or `docker` containers;
/// `kubernetes` will be a sibling, switched on by configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum PlatformSpec {
    Local(LocalSpec),
    Docker(DockerSpec),
}

impl PlatformSpec {
    /// The platform's name, as the config spells it (`local`, `docker`).
    pub fn kind(&self) -> &'static str {
        match self {
            PlatformSpec::Local(_) => "local",
            PlatformSpec::Docker(_) => "docker",
        }
    }

    /// How many instances each version runs with.
    pub fn instances(&self) -> u32 {
        match self {
            PlatformSpec::Local(l) => l.instances,
            PlatformSpec::Docker(d) => d.instances,
        }
    }

    /// How long in-flight requests get before an instance is stopped.
    pub fn drain_timeout(&self) -> Duration {
        match self {
            PlatformSpec::Local(l) => l.drain_timeout,
            PlatformSpec::Docker(d) => d.drain_timeout,
        }
    }

    /// The local processes' settings, when versions run as local processes.
    pub fn local(&self) -> Option<&LocalSpec> {
        match self {
            PlatformSpec::Local(l) => Some(l),
            PlatformSpec::Docker(_) => None,
        }
    }

    /// How long a new instance may take to become healthy.
    pub fn startup_timeout(&self) -> Duration {
        match self {
            PlatformSpec::Local(l) => l.startup_timeout,
            PlatformSpec::Docker(d) => d.startup_timeout,
        }
    }
}

/// Versions run as child processes of the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSpec {
    /// argv; `${PORT}` and `${VERSION}` are replaced in every element. Never empty.
    pub command: Vec<String>,
    /// Extra environment; values may use `${PORT}` and `${VERSION}` too.
    pub env: BTreeMap<String, String>,
    /// Working directory, resolved against the config file's directory.
    pub workdir: PathBuf,
    /// Processes per version, round-robin behind the proxy (default 1, at least 1).
    pub instances: u32,
    /// How long a new version may take to become healthy (default 30s).
    pub startup_timeout: Duration,
    /// How long to wait for in-flight requests before stopping a version (default 10s).
    pub drain_timeout: Duration,
}

/// Versions run as containers of a Docker daemon, through its Engine API.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSpec {
    /// The image: a tag where `${VERSION}` is replaced (`registry/app:${VERSION}`),
    /// or a digest (`app@sha256:...`).
    pub image: String,
    /// Replaces the image's command when set; `${PORT}` and `${VERSION}` are replaced
    /// in every element. Never empty when set.
    pub command: Option<Vec<String>>,
    /// Extra environment; values may use `${PORT}` and `${VERSION}`. `PORT` and
    /// `VERSION` are always set.
    pub env: BTreeMap<String, String>,
    /// How the service's port is reached from 127.0.0.1.
    pub network: DockerNetwork,
    /// Memory limit in bytes (default none).
    pub memory: Option<u64>,
    /// CPU limit, in CPUs (`1.5`; default none).
    pub cpus: Option<f64>,
    /// Containers per version (default 1, at least 1).
    pub instances: u32,
    /// How long a new container may take to become healthy (default 30s).
    pub startup_timeout: Duration,
    /// How long to wait for in-flight requests before stopping a version (default 10s).
    pub drain_timeout: Duration,
    /// How long a container gets after SIGTERM before it is killed (default 10s).
    pub stop_grace: Duration,
    /// When to pull the image (default `missing`).
    pub pull: PullPolicy,
    /// What says a container is healthy (default `http`).
    pub healthcheck: HealthSource,
    /// The daemon's socket, `unix:///path`; `None`: `DOCKER_HOST`, else
    /// `unix:///var/run/docker.sock`.
    pub host: Option<String>,
}

/// How a container's port is reached (`platform.docker.network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerNetwork {
    /// `host` (the default): the container shares the host's network, and listens on
    /// `${PORT}`, a free port of 127.0.0.1 picked per instance.
    Host,
    /// `published`: the container listens on `port` in a network of its own, published
    /// on a free port of 127.0.0.1 picked per instance.
    Published {
        /// The port the service listens on inside the container (default 8080).
        port: u16,
    },
}

/// When the image is pulled (`platform.docker.pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// `missing` (the default): only when the daemon does not have it.
    Missing,
    /// `always`: before every release.
    Always,
    /// `never`: a missing image is an error.
    Never,
}

/// What says a container is healthy (`platform.docker.healthcheck`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthSource {
    /// `http` (the default): cutover's HTTP check, as configured under `health`.
    Http,
    /// `image`: the image's own `HEALTHCHECK`, as the daemon reports it.
    Image,
}

/// The HTTP health check run against every instance.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// Request path, starting with `/` (default `/healthz`).
    pub path: String,
    /// Time between checks (default 1s).
    pub interval: Duration,
    /// Per-check timeout (default 1s).
    pub timeout: Duration,
    /// Consecutive successes before an instance is ready (default 1).
    pub healthy_threshold: u32,
    /// Consecutive failures before a serving instance is unhealthy (default 3).
    pub unhealthy_threshold: u32,
}

/// How traffic moves to a new version (default: a canary with the default steps).
#[derive(Debug, Clone, PartialEq)]
pub enum StrategySpec {
    /// `strategy: { canary: ... }`: shift weight step by step, analysing at each.
    Canary(CanarySpec),
    /// `strategy: { blue_green: ... }`: start the new version beside the old, switch all
    /// traffic at once.
    BlueGreen(BlueGreenSpec),
    /// `strategy: { rolling: ... }`: replace instances in batches.
    Rolling(RollingSpec),
}

impl StrategySpec {
    /// The strategy's key in `cutover.yaml`: `canary`, `blue_green` or `rolling`.
    pub fn name(&self) -> &'static str {
        match self {
            StrategySpec::Canary(_) => "canary",
            StrategySpec::BlueGreen(_) => "blue_green",
            StrategySpec::Rolling(_) => "rolling",
        }
    }
}

/// Canary: shift weight to the new version step by step, analysing at each.
#[derive(Debug, Clone, PartialEq)]
pub struct CanarySpec {
    /// Never empty; weights never decrease. Default: 10% 30s, 50% 30s, 100% 30s.
    pub steps: Vec<Step>,
    /// What the canary is judged against (default [`Baseline::Stable`]).
    pub baseline: Baseline,
    /// How a client is kept on the version it first got (default `None`: every request
    /// is routed on its own).
    pub sticky: Option<Sticky>,
}

/// What a canary's numbers are compared with. YAML `baseline: stable | fresh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The stable version's instances, which also serve the rest of the traffic (the default).
    Stable,
    /// A fresh instance of the stable version, started beside the canary with the same
    /// share of traffic, so that both are equally warm.
    Fresh,
}

/// Session affinity for a canary. YAML `sticky: cookie` (or `sticky: none` for `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sticky {
    /// A cookie set by the proxy keeps a client on the version it was first sent to.
    Cookie,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Share of traffic sent to the new version during this step (0% only with a
    /// mirror).
    pub weight: Percent,
    pub pause: Pause,
    /// Share of the requests routed to the stable version that are also copied to
    /// the new version (`mirror: 20%`), their answers measured and discarded; the
    /// new version is then judged on those copies when `weight` is 0%. `None`
    /// (the default) copies nothing.
    pub mirror: Option<Percent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// Stay at this weight, analysing, for this long.
    For(Duration),
    /// Stay at this weight, analysing, until `cutover promote`.
    UntilPromoted,
}

/// Blue-green: start the new (green) version beside the old (blue), check it, then switch
/// every request to it at once.
#[derive(Debug, Clone, PartialEq)]
pub struct BlueGreenSpec {
    /// Switch as soon as green passes its checks; when false, wait for `cutover promote`
    /// (default true).
    pub auto_promote: bool,
    /// An extra proxy address that sends every request to green before the switch
    /// (default none; never the same as `listen`).
    pub preview_listen: Option<SocketAddr>,
    /// Requests run against green before the switch; all must pass (default none).
    pub smoke_checks: Vec<SmokeCheck>,
    /// How long green's own numbers on preview traffic are analysed, against the absolute
    /// limits of `analysis.metrics`, before the switch (default none: no preview analysis).
    pub preview_analysis: Option<Duration>,
    /// How long blue keeps running after the switch while post-promotion analysis watches
    /// green, so a rollback is instant (default 30s; may be 0).
    pub scale_down_delay: Duration,
}

/// One request run against a version: against green before a blue-green switch
/// (`strategy.blue_green.smoke_checks`), or against an environment (`smoke:`).
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeCheck {
    /// The HTTP method, one of [`defaults::SMOKE_METHODS`] (default `GET`).
    pub method: String,
    /// Request path, starting with `/` (required).
    pub path: String,
    /// Request headers; names are valid HTTP header names (default none).
    pub headers: BTreeMap<String, String>,
    /// The status the response must have, 100 to 599 (default 200).
    pub status: u16,
    /// Text the response body must contain (default none: the body is not checked).
    pub body_contains: Option<String>,
    /// The longest the response may take, more than 0 (default none: no limit).
    pub max_latency: Option<Duration>,
    /// Fields of the JSON response body and the values they must equal, by a path of
    /// object keys and list indexes joined by `.` (`data.items.0.id`). Only in the
    /// top-level `smoke:` list (default none: the body need not be JSON).
    pub json: BTreeMap<String, crate::JsonScalar>,
}

/// Rolling: replace the old version's instances with the new one's in batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollingSpec {
    /// How many instances may run above `platform.local.instances` during the rollout
    /// (default 1). At least one of this and `max_unavailable` resolves to more than 0.
    pub max_surge: Count,
    /// How many of `platform.local.instances` may be out of service during the rollout
    /// (default 0).
    pub max_unavailable: Count,
    /// How long the new version's instances are analysed after each batch before the next
    /// (default 10s).
    pub pause: Duration,
}

/// A number of instances: absolute (YAML `1`) or a share of `platform.local.instances`
/// from 0% to 100% (YAML `25%`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Count {
    /// This many instances.
    Absolute(u32),
    /// This share of the instances, rounded as [`Count::surge`] and
    /// [`Count::unavailable`] say.
    Percent(Percent),
}

impl Count {
    /// As a surge over `instances`: a percentage rounds up, like Kubernetes' `maxSurge`.
    /// Not clamped.
    pub fn surge(self, instances: u32) -> u32 {
        match self {
            Count::Absolute(n) => n,
            Count::Percent(p) => p.of(instances).div_ceil(10_000) as u32,
        }
    }

    /// As instances out of service out of `instances`: a percentage rounds down, like
    /// Kubernetes' `maxUnavailable`. Not clamped.
    pub fn unavailable(self, instances: u32) -> u32 {
        match self {
            Count::Absolute(n) => n,
            Count::Percent(p) => (p.of(instances) / 10_000) as u32,
        }
    }
}

impl std::fmt::Display for Count {
    /// `3` or `25%`, as written in `cutover.yaml`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::Absolute(n) => write!(f, "{n}"),
            Count::Percent(p) => write!(f, "{p}"),
        }
    }
}

/// A share between 0% and 100%, stored as a fraction in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Percent(f64);

impl Percent {
    /// `None` unless `fraction` is finite and within `0.0..=1.0`.
    pub fn from_fraction(fraction: f64) -> Option<Percent> {
        (fraction.is_finite() && (0.0..=1.0).contains(&fraction)).then_some(Percent(fraction))
    }
    pub fn fraction(self) -> f64 {
        self.0
    }
    /// Basis points (0..=10000), what the proxy's weighted choice uses.
    pub fn basis_points(self) -> u16 {
        (self.0 * 10_000.0).round() as u16
    }
    /// `n` times this share, in basis points of one: exact, so that rounding a share of
    /// instances up or down never trips on `0.07 * 100 = 7.000000000000001`.
    fn of(self, n: u32) -> u64 {
        u64::from(self.basis_points()) * u64::from(n)
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = self.0 * 100.0;
        if (pct - pct.round()).abs() < 1e-9 {
            write!(f, "{}%", pct.round())
        } else {
            write!(f, "{pct:.2}%")
        }
    }
}

/// How the new version is judged against the stable one.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisSpec {
    /// Length of one analysis window (default 5s).
    pub interval: Duration,
    /// Requests the canary must have served in a window before it is judged (default 20).
    pub min_requests: u64,
    /// Failed windows that trigger a rollback (default 2).
    pub failure_limit: u32,
    /// Consecutive inconclusive windows after which the rollout gives up and rolls
    /// back, because it never promotes on missing data (default 6).
    pub inconclusive_limit: u32,
    /// At least one rule is always present (default: error_rate max 5%).
    pub metrics: MetricRules,
    /// Anytime-valid tests after every window; `None` when turned off.
    pub sequential: Option<SequentialSpec>,
    /// The comparison of each step's latencies at its end; `None` when off.
    pub comparison: Option<ComparisonSpec>,
    /// The canary's error log templates against its baseline's; `None` when off.
    pub logs: Option<LogCheckSpec>,
    /// Where the windows' numbers come from (default: the built-in proxy). With
    /// any other source there are no latency histograms, so the comparison, the
    /// latency sequential test and Apdex are off.
    pub source: MetricSource,
}

/// `analysis.logs`: error templates in the canary's output that are new, or more
/// frequent than in its baseline's, per analysis step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogCheckSpec {
    /// What such a template does to a window (default warn).
    pub new_errors: LogAction,
    /// A template the baseline logs too is a finding when the canary logs it more
    /// than this many times as often, per request (default 3, more than 1).
    pub rate_factor: f64,
    /// Lines of a template the canary must have logged in the step before it is a
    /// finding (default 3, at least 1).
    pub min_count: u64,
}

impl Default for LogCheckSpec {
    fn default() -> Self {
        defaults::LOG_CHECK
    }
}

/// What a log check's finding does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAction {
    /// Fails the window, like a limit.
    Fail,
    /// Recorded with the window, which it does not fail.
    Warn,
    /// Listed in the receipts only.
    Off,
}

/// `analysis.sequential`: the tests that may roll a canary back after any window,
/// their false-alarm chance bounded however often they look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SequentialSpec {
    /// The chance, over the whole run, that a canary as good as its baseline is
    /// rolled back by these tests (shared equally between them).
    pub alpha: Percent,
    /// Test the error rate.
    pub errors: bool,
    /// Test the share of requests slower than this quantile of the baseline's
    /// latency; `None` turns the latency test off.
    pub latency_quantile: Option<Percent>,
}

impl Default for SequentialSpec {
    fn default() -> Self {
        defaults::SEQUENTIAL
    }
}

impl Default for ComparisonSpec {
    fn default() -> Self {
        defaults::COMPARISON
    }
}

/// `analysis.comparison`: at the end of each step, the step's latencies on both
/// sides compared with the Mann-Whitney U test (Kayenta's test).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComparisonSpec {
    /// A difference is significant when its p-value is below `1 - confidence`.
    pub confidence: Percent,
    /// How much slower the canary may be: the step fails when its latencies are
    /// significantly higher than the baseline's times `1 + tolerance` (0.1: 10%).
    pub tolerance: Percent,
    /// Requests needed on each side to compare; fewer leaves the step undecided.
    pub min_samples: u64,
}

/// The metrics a rollout is judged on; absent means not judged.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricRules {
    pub error_rate: Option<ErrorRateRule>,
    pub latency_p50: Option<LatencyRule>,
    pub latency_p95: Option<LatencyRule>,
    pub latency_p99: Option<LatencyRule>,
    pub apdex: Option<ApdexRule>,
    /// Custom metrics of `analysis.source`, with their limits.
    pub custom: Vec<CustomRule>,
}

/// The Apdex score, `(satisfied + tolerating / 2) / requests`: a request is
/// satisfied within `threshold`, tolerating within four times it, and frustrated
/// beyond or when it failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApdexRule {
    /// The satisfied threshold, T.
    pub threshold: Duration,
    /// The canary's score must be at least this (0..=1).
    pub min: f64,
}

/// Share of responses that are 5xx (including the proxy's own 502/504).
/// At least one of the limits is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorRateRule {
    /// The canary's error rate must not exceed this.
    pub max: Option<Percent>,
    /// The canary's error rate must not exceed the stable's by more than this many
    /// percentage points.
    pub max_over_stable: Option<Percent>,
}

/// A latency quantile. At least one of the limits is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyRule {
    /// The canary's quantile must not exceed this.
    pub max: Option<Duration>,
    /// The canary's quantile must not exceed the stable's times this (> 0).
    pub max_ratio: Option<f64>,
}

impl Percent {
    /// `None` unless `percent` is finite and within `0.0..=100.0` (so `25.0` is 25%).
    pub fn from_percent(percent: f64) -> Option<Percent> {
        Percent::from_fraction(percent / 100.0)
    }
}

impl Default for ProxySpec {
    fn default() -> Self {
        ProxySpec {
            max_header_size: defaults::MAX_HEADER_SIZE,
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            idle_timeout: defaults::IDLE_TIMEOUT,
            tunnel_idle_timeout: defaults::TUNNEL_IDLE_TIMEOUT,
            max_connections: defaults::MAX_CONNECTIONS,
            max_requests_per_instance: defaults::MAX_REQUESTS_PER_INSTANCE,
            max_body_size: defaults::MAX_BODY_SIZE,
            threads: defaults::PROXY_THREADS,
        }
    }
}

impl Default for ApiSpec {
    fn default() -> Self {
        ApiSpec {
            read_auth: defaults::READ_AUTH,
            allow_remote_open_reads: defaults::ALLOW_REMOTE_OPEN_READS,
        }
    }
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: defaults::HEALTH_PATH.to_owned(),
            interval: defaults::HEALTH_INTERVAL,
            timeout: defaults::HEALTH_TIMEOUT,
            healthy_threshold: defaults::HEALTHY_THRESHOLD,
            unhealthy_threshold: defaults::UNHEALTHY_THRESHOLD,
        }
    }
}

impl Default for CanarySpec {
    fn default() -> Self {
        CanarySpec {
            steps: defaults::CANARY_STEPS.to_vec(),
            baseline: defaults::BASELINE,
            sticky: defaults::STICKY,
        }
    }
}

impl Default for BlueGreenSpec {
    fn default() -> Self {
        BlueGreenSpec {
            auto_promote: defaults::AUTO_PROMOTE,
            preview_listen: None,
            smoke_checks: Vec::new(),
            preview_analysis: None,
            scale_down_delay: defaults::SCALE_DOWN_DELAY,
        }
    }
}

impl Default for RollingSpec {
    fn default() -> Self {
        RollingSpec {
            max_surge: defaults::MAX_SURGE,
            max_unavailable: defaults::MAX_UNAVAILABLE,
            pause: defaults::ROLLING_PAUSE,
        }
    }
}

impl Default for StrategySpec {
    fn default() -> Self {
        StrategySpec::Canary(CanarySpec::default())
    }
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        AnalysisSpec {
            interval: defaults::ANALYSIS_INTERVAL,
            min_requests: defaults::MIN_REQUESTS,
            failure_limit: defaults::FAILURE_LIMIT,
            inconclusive_limit: defaults::INCONCLUSIVE_LIMIT,
            metrics: defaults::metrics(),
            sequential: Some(defaults::SEQUENTIAL),
            comparison: Some(defaults::COMPARISON),
            logs: Some(defaults::LOG_CHECK),
            source: MetricSource::Builtin,
        }
    }
}

/// Every default and limit of `cutover.yaml`, in one place. [`crate::parse`] fills in
/// these values for whatever the file leaves out, and [`crate::STARTER`] spells them out.
pub mod defaults {
    use std::ops::RangeInclusive;
    use std::time::Duration;

    use super::{
        Baseline, ComparisonSpec, Count, ErrorRateRule, LogAction, LogCheckSpec, MetricRules,
        Pause, Percent, SequentialSpec, Step, Sticky, WebhookFormat,
    };

    /// `listen`: where the built-in proxy listens.
    pub const LISTEN: &str = "127.0.0.1:8080";
    /// `state_dir`, relative to the config file's directory.
    pub const STATE_DIR: &str = ".cutover";
    /// `platform.local.workdir`, relative to the config file's directory (so: that directory).
    pub const WORKDIR: &str = ".";

    /// `app` is 1 to this many characters of `[a-z0-9-]`, starting with a letter.
    pub const APP_MAX_LEN: usize = 63;

    /// `platform.local.instances`.
    pub const INSTANCES: u32 = 1;
    /// The most `platform.local.instances` may be.
    pub const MAX_INSTANCES: u32 = 64;
    /// `platform.local.startup_timeout`.
    pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
    /// `platform.local.drain_timeout`.
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
    /// `platform.docker.stop_grace`.
    pub const STOP_GRACE: Duration = Duration::from_secs(10);
    /// The port a container listens on with `platform.docker.network: published`.
    pub const CONTAINER_PORT: u16 = 8080;
    /// `platform.docker.host` when neither it nor `DOCKER_HOST` is set.
    pub const DOCKER_HOST: &str = "unix:///var/run/docker.sock";
    /// The placeholders that `platform.local.command` and `env` values may use.
    pub const PLACEHOLDERS: [&str; 2] = ["PORT", "VERSION"];

    /// `health.path`.
    pub const HEALTH_PATH: &str = "/healthz";
    /// `health.interval`.
    pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
    /// `health.timeout`.
    pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
    /// `health.healthy_threshold`.
    pub const HEALTHY_THRESHOLD: u32 = 1;
    /// `health.unhealthy_threshold`.
    pub const UNHEALTHY_THRESHOLD: u32 = 3;

    /// `pause` of a canary step that does not say.
    pub const STEP_PAUSE: Duration = Duration::from_secs(30);
    /// `strategy.canary.steps`: 10% for 30s, 50% for 30s, 100% for 30s.
    pub const CANARY_STEPS: [Step; 3] = [
        Step {
            weight: Percent(0.10),
            pause: Pause::For(STEP_PAUSE),
            mirror: None,
        },
        Step {
            weight: Percent(0.50),
            pause: Pause::For(STEP_PAUSE),
            mirror: None,
        },
        Step {
            weight: Percent(1.0),
            pause: Pause::For(STEP_PAUSE),
            mirror: None,
        },
    ];

    /// `strategy.canary.baseline`: judge the canary against the stable version itself.
    pub const BASELINE: Baseline = Baseline::Stable;
    /// `strategy.canary.sticky`: none, every request is routed on its own.
    pub const STICKY: Option<Sticky> = None;

    /// `strategy.blue_green.auto_promote`: switch as soon as green passes its checks.
    pub const AUTO_PROMOTE: bool = true;
    /// `strategy.blue_green.scale_down_delay`.
    pub const SCALE_DOWN_DELAY: Duration = Duration::from_secs(30);
    /// `method` of a smoke check that does not say.
    pub const SMOKE_METHOD: &str = "GET";
    /// The methods a smoke check may use.
    pub const SMOKE_METHODS: [&str; 7] =
        ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    /// `status` of a smoke check that does not say.
    pub const SMOKE_STATUS: u16 = 200;

    /// The statuses a smoke check may expect.
    pub const SMOKE_STATUSES: RangeInclusive<u16> = 100..=599;

    /// `approvals.timeout`: how long a run waits for its quorum.
    pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
    /// `timeout` of a smoke command that does not say.
    pub const SMOKE_COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

    /// `timeout` of a gate that does not say.
    pub const GATE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
    /// `report.min_tests` of `junit`: a report in which no test ran fails.
    pub const JUNIT_MIN_TESTS: u64 = 1;
    /// A gate's `name` is 1 to this many characters of `[a-z0-9_-]`.
    pub const GATE_NAME_MAX_LEN: usize = 63;
    /// `report.severity` of `cargo_audit` and `npm_audit` when left out: any
    /// vulnerability fails.
    pub const AUDIT_SEVERITY: crate::Severity = crate::Severity::Low;
    /// `report.severity` of `sarif` when left out: warnings and errors fail, notes do not.
    pub const SARIF_SEVERITY: crate::SarifLevel = crate::SarifLevel::Warning;

    /// `strategy.rolling.max_surge`: one instance above the usual count at a time.
    pub const MAX_SURGE: Count = Count::Absolute(1);
    /// `strategy.rolling.max_unavailable`: never fewer instances serving than usual.
    pub const MAX_UNAVAILABLE: Count = Count::Absolute(0);
    /// `strategy.rolling.pause`.
    pub const ROLLING_PAUSE: Duration = Duration::from_secs(10);

    /// `analysis.interval`.
    pub const ANALYSIS_INTERVAL: Duration = Duration::from_secs(5);
    /// `analysis.min_requests`.
    pub const MIN_REQUESTS: u64 = 20;
    /// `analysis.failure_limit`: 2, because a per-window limit is looked at in every
    /// window: with 1, `bench/judge` rolled back 1.0-1.2% of healthy canaries (0.5%
    /// errors, 100 canary requests a window, 10 minutes), with 2, 0.2-0.5%, none by
    /// the limit. A clearly bad canary does not wait for the second window: the
    /// sequential tests roll it back at once.
    pub const FAILURE_LIMIT: u32 = 2;
    /// `analysis.inconclusive_limit`.
    pub const INCONCLUSIVE_LIMIT: u32 = 6;
    /// `analysis.sequential`. In `bench/judge`'s simulation (200 requests/s, 10% on
    /// the canary, 5 s windows) the default judge rolled back 0.5% -> 1% errors in a
    /// median of 180-200 s, +10% latency in 125-195 s, 5% errors in 10 s, and these
    /// tests 0.2-0.5% of healthy canaries.
    pub const SEQUENTIAL: SequentialSpec = SequentialSpec {
        alpha: Percent(0.01),
        errors: true,
        latency_quantile: Some(Percent(0.95)),
    };
    /// `analysis.logs`.
    pub const LOG_CHECK: LogCheckSpec = LogCheckSpec {
        new_errors: LogAction::Warn,
        rate_factor: 3.0,
        min_count: 3,
    };
    /// `logs.max_size`: a log file past it is rotated.
    pub const LOG_MAX_SIZE: u64 = 10 * 1024 * 1024;
    /// `logs.max_size` at least: smaller would rotate on every check.
    pub const LOG_MIN_SIZE: u64 = 4 * 1024;
    /// `logs.keep`: rotated files kept.
    pub const LOG_KEEP: u32 = 3;
    /// `logs.keep` at most.
    pub const LOG_MAX_KEEP: u32 = 100;
    /// Runs whose log folders are kept.
    pub const LOG_KEEP_RUNS: u32 = 20;
    /// The most `logs.keep_runs` may say.
    pub const LOG_MAX_KEEP_RUNS: u32 = 10_000;
    /// `analysis.comparison`.
    pub const COMPARISON: ComparisonSpec = ComparisonSpec {
        confidence: Percent(0.99),
        tolerance: Percent(0.10),
        min_samples: 50,
    };
    /// `analysis.metrics.error_rate.max` when `analysis.metrics` is left out.
    pub const ERROR_RATE_MAX: Percent = Percent(0.05);

    /// `proxy.max_header_size`: 64 KiB.
    pub const MAX_HEADER_SIZE: u64 = 64 * 1024;
    /// The sizes `proxy.max_header_size` may be: 1 KiB to 1 MiB.
    pub const HEADER_SIZES: RangeInclusive<u64> = 1024..=1024 * 1024;
    /// `proxy.header_read_timeout`.
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// `proxy.idle_timeout`.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// `proxy.tunnel_idle_timeout`: an hour, as HAProxy's guide sets `timeout
    /// tunnel` for WebSockets (nginx's 60s cuts quiet ones that ping less often).
    pub const TUNNEL_IDLE_TIMEOUT: Option<Duration> = Some(Duration::from_secs(3600));
    /// `proxy.max_connections` (0 is no limit).
    pub const MAX_CONNECTIONS: u32 = 10_000;
    /// `proxy.max_requests_per_instance`: no limit.
    pub const MAX_REQUESTS_PER_INSTANCE: u32 = 0;
    /// `proxy.max_body_size`: no limit.
    pub const MAX_BODY_SIZE: Option<u64> = None;
    /// `proxy.threads`: none of its own, the daemon's runtime serves.
    pub const PROXY_THREADS: u32 = 0;
    /// The most `proxy.threads` may be.
    pub const MAX_PROXY_THREADS: u16 = 256;

    /// `api.read_auth`: reads are open (on a loopback API).
    pub const READ_AUTH: bool = false;
    /// `api.allow_remote_open_reads`: an API beyond loopback must protect its reads.
    pub const ALLOW_REMOTE_OPEN_READS: bool = false;

    /// `timeout` of a hook command that does not say.
    pub const HOOK_TIMEOUT: Duration = Duration::from_secs(5 * 60);
    /// `timeout` of a migration command that does not say.
    pub const MIGRATION_TIMEOUT: Duration = Duration::from_secs(10 * 60);
    /// `format` of a webhook that does not say.
    pub const WEBHOOK_FORMAT: WebhookFormat = WebhookFormat::Json;
    /// `notifications.github.api_url`.
    pub const GITHUB_API_URL: &str = "https://api.github.com";
    /// `notifications.github.environment`.
    pub const GITHUB_ENVIRONMENT: &str = "production";
    /// Whether this build's HTTP client speaks TLS, so that webhooks and the GitHub API
    /// may be `https://` URLs. It does not (reqwest is built without a TLS stack), so
    /// such URLs are refused when the config is read; this is the one switch to turn
    /// when a TLS stack is added.
    pub const HTTPS_SUPPORTED: bool = false;
    /// How long one query of a metric source may take (`analysis.source.*.timeout`).
    pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(5);
    /// Where Datadog's API is when neither `site` nor `api_url` is given.
    pub const DATADOG_SITE: &str = "datadoghq.com";

    /// `analysis.metrics` when left out: `error_rate: { max: 5% }`.
    pub fn metrics() -> MetricRules {
        MetricRules {
            error_rate: Some(ErrorRateRule {
                max: Some(ERROR_RATE_MAX),
                max_over_stable: None,
            }),
            ..MetricRules::default()
        }
    }
}
