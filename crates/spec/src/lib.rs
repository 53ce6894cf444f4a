//! `cutover.yaml`: the configuration types, parsing with `file:line:col` errors,
//! validation and defaults.
//!
//! This crate is pure: it never does IO beyond reading the one file it is asked to
//! load, and it never depends on tokio, HTTP or the store. Every other crate takes a
//! validated [`Config`] from here, so nothing downstream re-checks the input.
//!
//! ```
//! let yaml = "app: shop\nplatform:\n  local:\n    command: [\"./shop\", \"--port\", \"${PORT}\"]\n";
//! let config = cutover_spec::parse(yaml, "cutover.yaml").unwrap();
//! assert_eq!(config.app, "shop");
//! assert_eq!(config.strategy.name(), "canary");
//! let cutover_spec::StrategySpec::Canary(canary) = &config.strategy else {
//!     unreachable!("canary is the default strategy")
//! };
//! assert_eq!(canary.steps.len(), 3);
//! ```

mod approval;
mod gates;
mod hooks;
mod notifications;
mod parse;
mod smoke;
mod source;
mod types;

pub use approval::*;
pub use gates::*;
pub use parse::{
    ConfigError, Diagnostic, STARTER, load, load_environment, load_environment_without_secrets,
    load_without_secrets, parse, parse_environment, parse_with_env,
};
pub use smoke::*;
pub use source::*;
pub use types::*;
