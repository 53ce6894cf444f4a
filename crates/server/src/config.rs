//! The config file, read again for every run: validated when the run starts, and
//! refused when it changes what cannot change while the daemon runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cutover_api::ConfigCheck;
use cutover_engine::RunConfig;
use cutover_proxy::ProxyOptions;
use cutover_spec::{ApiSpec, Config, ProxySpec, StrategySpec};

/// Where the daemon's config lives, and what of it is fixed until a restart.
pub struct ConfigSource {
    path: PathBuf,
    /// The environment the daemon serves, when the file defines environments.
    environment: Option<String>,
    fixed: Fixed,
}

/// The settings a running daemon cannot take up: its sockets, its state
/// directory, its kind of platform, its proxies' limits, who may use its API.
#[derive(Debug, Clone, PartialEq)]
struct Fixed {
    listen: SocketAddr,
    preview_listen: Option<SocketAddr>,
    state_dir: PathBuf,
    platform: &'static str,
    proxy: ProxySpec,
    api: ApiSpec,
}

impl Fixed {
    fn of(config: &Config) -> Fixed {
        Fixed {
            listen: config.listen,
            preview_listen: preview_listen(config),
            state_dir: config.state_dir.clone(),
            platform: config.platform.kind(),
            proxy: config.proxy,
            api: config.api,
        }
    }

    /// Each fixed setting `other` changes, in words.
    fn changes(&self, other: &Fixed) -> Vec<String> {
        let mut out = Vec::new();
        if self.listen != other.listen {
            out.push(format!("`listen` {} -> {}", self.listen, other.listen));
        }
        if self.preview_listen != other.preview_listen {
            let show = |a: Option<SocketAddr>| a.map_or("none".to_owned(), |a| a.to_string());
            out.push(format!(
                "`strategy.blue_green.preview_listen` {} -> {}",
                show(self.preview_listen),
                show(other.preview_listen)
            ));
        }
        if self.state_dir != other.state_dir {
            out.push(format!(
                "`state_dir` {} -> {}",
                self.state_dir.display(),
                other.state_dir.display()
            ));
        }
        if self.platform != other.platform {
            out.push(format!(
                "`platform` {} -> {}",
                self.platform, other.platform
            ));
        }
        let (was, now) = (&self.proxy, &other.proxy);
        let body = |size: Option<u64>| size.map_or("none".to_owned(), |s| format!("{s}B"));
        let limit = |d: Option<Duration>| d.map_or("none".to_owned(), |d| format!("{d:?}"));
        for (field, changed) in [
            (
                "max_header_size",
                (was.max_header_size != now.max_header_size)
                    .then(|| format!("{}B -> {}B", was.max_header_size, now.max_header_size)),
            ),
            (
                "header_read_timeout",
                (was.header_read_timeout != now.header_read_timeout).then(|| {
                    format!(
                        "{:?} -> {:?}",
                        was.header_read_timeout, now.header_read_timeout
                    )
                }),
            ),
            (
                "idle_timeout",
                (was.idle_timeout != now.idle_timeout)
                    .then(|| format!("{:?} -> {:?}", was.idle_timeout, now.idle_timeout)),
            ),
            (
                "tunnel_idle_timeout",
                (was.tunnel_idle_timeout != now.tunnel_idle_timeout).then(|| {
                    format!(
                        "{} -> {}",
                        limit(was.tunnel_idle_timeout),
                        limit(now.tunnel_idle_timeout)
                    )
                }),
            ),
            (
                "max_connections",
                (was.max_connections != now.max_connections)
                    .then(|| format!("{} -> {}", was.max_connections, now.max_connections)),
            ),
            (
                "max_requests_per_instance",
                (was.max_requests_per_instance != now.max_requests_per_instance).then(|| {
                    format!(
                        "{} -> {}",
                        was.max_requests_per_instance, now.max_requests_per_instance
                    )
                }),
            ),
            (
                "max_body_size",
                (was.max_body_size != now.max_body_size)
                    .then(|| format!("{} -> {}", body(was.max_body_size), body(now.max_body_size))),
            ),
            (
                "threads",
                (was.threads != now.threads).then(|| format!("{} -> {}", was.threads, now.threads)),
            ),
        ] {
            if let Some(change) = changed {
                out.push(format!("`proxy.{field}` {change}"));
            }
        }
        let (was, now) = (&self.api, &other.api);
        for (field, was, now) in [
            ("read_auth", was.read_auth, now.read_auth),
            (
                "allow_remote_open_reads",
                was.allow_remote_open_reads,
                now.allow_remote_open_reads,
            ),
        ] {
            if was != now {
                out.push(format!("`api.{field}` {was} -> {now}"));
            }
        }
        out
    }
}

/// The options the daemon's proxies run with: the timeouts of the proxy crate's
/// defaults, the limits of `proxy:`.
pub(crate) fn proxy_options(spec: &ProxySpec) -> ProxyOptions {
    let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    ProxyOptions {
        max_header_size: usize::try_from(spec.max_header_size).unwrap_or(usize::MAX),
        header_read_timeout: spec.header_read_timeout,
        idle_timeout: spec.idle_timeout,
        tunnel_idle_timeout: spec.tunnel_idle_timeout,
        max_connections: count(spec.max_connections),
        max_requests_per_instance: count(spec.max_requests_per_instance),
        max_body_size: spec.max_body_size,
        threads: count(spec.threads),
        ..ProxyOptions::default()
    }
}

/// Where blue-green's preview listener is, if configured.
pub(crate) fn preview_listen(config: &Config) -> Option<SocketAddr> {
    match &config.strategy {
        StrategySpec::BlueGreen(bg) => bg.preview_listen,
        _ => None,
    }
}

/// Why the file cannot be used for a run.
#[derive(Debug)]
pub struct LoadError {
    pub message: String,
    /// It is valid, but changes a setting that needs a restart.
    pub restart_needed: bool,
}

impl ConfigSource {
    /// The config the daemon starts with fixes what cannot change.
    pub fn new(started: &RunConfig) -> ConfigSource {
        ConfigSource {
            path: started.path.clone(),
            environment: started.config.environment.clone(),
            fixed: Fixed::of(&started.config),
        }
    }

    /// The file's config for the daemon's environment.
    fn parse(&self, text: &str) -> Result<Config, cutover_spec::ConfigError> {
        cutover_spec::parse_environment(
            text,
            &self.path.to_string_lossy(),
            self.environment.as_deref(),
        )
    }

    /// Reads and validates the file as it is now.
    pub fn load(&self) -> Result<RunConfig, LoadError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| LoadError {
            message: format!("could not read {}: {e}", self.path.display()),
            restart_needed: false,
        })?;
        let config = self.parse(&text).map_err(|e| LoadError {
            message: format!("the config has mistakes, nothing was changed:\n{e}"),
            restart_needed: false,
        })?;
        let changes = self.fixed.changes(&Fixed::of(&config));
        if !changes.is_empty() {
            return Err(LoadError {
                message: format!(
                    "{} changed {}, which the running daemon cannot take up; restart it \
                     (`cutover serve`) to use them, or change them back. Nothing was changed.",
                    self.path.display(),
                    changes.join(", ")
                ),
                restart_needed: true,
            });
        }
        Ok(RunConfig {
            config,
            path: self.path.clone(),
            text,
        })
    }

    /// The file against `current`, the config of the latest run.
    pub fn check(&self, current: &RunConfig) -> ConfigCheck {
        let mut check = ConfigCheck {
            path: self.path.clone(),
            usable: false,
            errors: Vec::new(),
            restart_needed: Vec::new(),
            changes: Vec::new(),
        };
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) => {
                check.errors.push(format!("could not read it: {e}"));
                return check;
            }
        };
        let config = match self.parse(&text) {
            Ok(config) => config,
            Err(e) => {
                check.errors = e.diagnostics.iter().map(ToString::to_string).collect();
                return check;
            }
        };
        check.restart_needed = self.fixed.changes(&Fixed::of(&config));
        check.usable = check.restart_needed.is_empty();
        let was = &current.config;
        for (section, changed) in [
            ("app", config.app != was.app),
            ("platform", config.platform != was.platform),
            ("health", config.health != was.health),
            ("strategy", config.strategy != was.strategy),
            ("analysis", config.analysis != was.analysis),
            ("logs", config.logs != was.logs),
        ] {
            if changed {
                check.changes.push(section.to_owned());
            }
        }
        check
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MINIMAL: &str =
        "app: shop\nplatform: { local: { command: [\"./shop\", \"${PORT}\"] } }\n";

    fn config(extra: &str) -> Config {
        cutover_spec::parse(&format!("{MINIMAL}{extra}"), "cutover.yaml").unwrap()
    }

    #[test]
    fn the_proxy_options_are_those_of_the_proxy_section() {
        let o = proxy_options(&config("").proxy);
        let d = ProxyOptions::default();
        assert_eq!(
            (o.max_header_size, o.header_read_timeout, o.idle_timeout),
            (d.max_header_size, d.header_read_timeout, d.idle_timeout)
        );
        assert_eq!(
            (
                o.max_connections,
                o.max_requests_per_instance,
                o.max_body_size
            ),
            (
                d.max_connections,
                d.max_requests_per_instance,
                d.max_body_size
            )
        );
        let spec = config(
            "proxy:\n  max_header_size: 8KiB\n  header_read_timeout: 3s\n  idle_timeout: 5s\n  \
             max_connections: 7\n  max_requests_per_instance: 2\n  max_body_size: 1MiB\n",
        );
        let o = proxy_options(&spec.proxy);
        assert_eq!(o.max_header_size, 8192);
        assert_eq!(o.header_read_timeout, Duration::from_secs(3));
        assert_eq!(o.idle_timeout, Duration::from_secs(5));
        assert_eq!((o.max_connections, o.max_requests_per_instance), (7, 2));
        assert_eq!(o.max_body_size, Some(1 << 20));
        assert_eq!(o.response_timeout, d.response_timeout);
    }

    #[test]
    fn a_changed_proxy_section_needs_a_restart() {
        let was = Fixed::of(&config(""));
        assert!(was.changes(&Fixed::of(&config("proxy: {}\n"))).is_empty());
        let now = Fixed::of(&config(
            "proxy:\n  max_connections: 5\n  max_body_size: 1KiB\n  idle_timeout: 2s\n",
        ));
        assert_eq!(
            was.changes(&now),
            [
                "`proxy.idle_timeout` 60s -> 2s",
                "`proxy.max_connections` 10000 -> 5",
                "`proxy.max_body_size` none -> 1024B",
            ]
        );
    }

    #[test]
    fn a_changed_api_section_needs_a_restart() {
        let was = Fixed::of(&config(""));
        assert!(
            was.changes(&Fixed::of(&config("api: { read_auth: false }\n")))
                .is_empty()
        );
        let now = Fixed::of(&config("api: { read_auth: true }\n"));
        assert_eq!(was.changes(&now), ["`api.read_auth` false -> true"]);
    }
}
