//! The config file, read again for every run: validated when the run starts, and
//! refused when it changes what cannot change while the daemon runs.

use std::net::SocketAddr;
use std::path::PathBuf;

use cutover_api::ConfigCheck;
use cutover_engine::RunConfig;
use cutover_spec::{Config, StrategySpec};

/// Where the daemon's config lives, and what of it is fixed until a restart.
pub struct ConfigSource {
    path: PathBuf,
    fixed: Fixed,
}

/// The settings a running daemon cannot take up: its sockets, its state
/// directory, its kind of platform.
#[derive(Debug, Clone, PartialEq)]
struct Fixed {
    listen: SocketAddr,
    preview_listen: Option<SocketAddr>,
    state_dir: PathBuf,
    platform: &'static str,
}

impl Fixed {
    fn of(config: &Config) -> Fixed {
        Fixed {
            listen: config.listen,
            preview_listen: preview_listen(config),
            state_dir: config.state_dir.clone(),
            platform: config.platform.kind(),
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
        out
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
            fixed: Fixed::of(&started.config),
        }
    }

    /// Reads and validates the file as it is now.
    pub fn load(&self) -> Result<RunConfig, LoadError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| LoadError {
            message: format!("could not read {}: {e}", self.path.display()),
            restart_needed: false,
        })?;
        let config =
            cutover_spec::parse(&text, &self.path.to_string_lossy()).map_err(|e| LoadError {
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
        let config = match cutover_spec::parse(&text, &self.path.to_string_lossy()) {
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
        ] {
            if changed {
                check.changes.push(section.to_owned());
            }
        }
        check
    }
}
