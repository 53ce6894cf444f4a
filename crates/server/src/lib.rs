//! The daemon (`cutover serve`): it owns the proxy, the platform, the store and the
//! engine of one app, and serves the HTTP API the CLI talks to and the web dashboard.
//!
//! This is the only crate that knows every concrete part; the engine sees them
//! through its traits (see [`traffic::ProxyTraffic`]).
//!
//! ```no_run
//! # async fn f(config: cutover_engine::RunConfig) -> Result<(), cutover_server::ServeError> {
//! let daemon = cutover_server::Daemon::start(config, "127.0.0.1:0".parse().unwrap()).await?;
//! println!("API on {}", daemon.api_addr());
//! daemon.run_until_signal().await;
//! # Ok(()) }
//! ```

mod api;
pub mod auth;
pub mod config;
mod daemon;
mod dashboard;
mod environments;
mod logs;
mod metrics;
#[cfg(feature = "openapi")]
pub mod openapi;
mod prometheus;
mod runs;
mod streams;
pub mod traffic;

pub use api::ApiError;
pub use cutover_engine::RunConfig;
pub use cutover_metrics::{QueryCheck, check_queries};
pub use daemon::{Daemon, DaemonInfo, ServeError};
