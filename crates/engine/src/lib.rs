//! The rollout engine: moves traffic from the stable version of an app to a new
//! one by a strategy (canary, blue-green, rolling), judges the new one, and
//! promotes or rolls back.
//!
//! It depends on traits, not on concrete platforms: [`platform::Platform`] starts
//! releases, [`traffic::Traffic`] sets the split, [`traffic::MetricsSource`] says
//! how each version did, [`logs::LogSource`] what each one logged,
//! [`traffic::Prober`] runs smoke checks, [`environments::Environments`] reaches
//! the daemons of the config's other environments. The built-in proxy
//! and local processes implement them in other crates; tests implement them in
//! memory and run every strategy with paused tokio time.
//!
//! A strategy is a pure function from the run's state and one observation to the
//! new state and the actions to take ([`strategy`], with one file per strategy);
//! the executor writes the new state to the store, then acts, so a restarted
//! daemon adopts what still runs and carries the run on from the record.
//!
//! ```no_run
//! # async fn f(engine: cutover_engine::Engine) -> Result<(), cutover_engine::EngineError> {
//! let config = engine.config();
//! let started = engine.deploy("v2", Default::default(), (*config).clone())?;
//! let mut events = engine.subscribe();
//! while let Ok(event) = events.recv().await {
//!     if event.run_id == started.run_id && event.is_final() {
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod blue_green;
pub mod canary;
mod chart;
mod engine;
pub mod environments;
pub mod events;
pub mod judging;
pub mod logs;
pub mod pipeline;
pub mod platform;
pub mod receipts;
mod recovery;
mod releases;
pub mod rolling;
mod routing;
mod run;
pub mod state;
pub mod strategy;
mod supervise;
pub mod traffic;
pub mod windows;

pub use engine::{
    AppStatus, Control, Engine, EngineError, EngineParts, PlatformFactory, RunConfig, STOP_GRACE,
    recorded_config_text,
};

#[cfg(test)]
mod tests;
