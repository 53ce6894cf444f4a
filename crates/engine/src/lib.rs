//! The rollout engine: the state machine that moves traffic from the stable version
//! of an app to a new one, judges the new one, and promotes or rolls back.
//!
//! It depends on traits, not on concrete platforms: [`platform::Platform`] starts
//! versions, [`traffic::Traffic`] sets the split, [`traffic::MetricsSource`] says how
//! each version did. The built-in proxy and local processes implement them in other
//! crates; tests implement them in memory and run every strategy with paused tokio
//! time. Decisions are pure functions in [`canary`]; every transition is written to
//! the store before it is acted on, so a restarted daemon settles what was in flight.
//!
//! ```no_run
//! # async fn f(engine: cutover_engine::Engine) -> Result<(), cutover_engine::EngineError> {
//! let started = engine.deploy("v2")?;
//! let mut events = engine.subscribe();
//! while let Ok(event) = events.recv().await {
//!     if event.run_id == started.run_id && event.is_final() {
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod canary;
mod engine;
pub mod events;
pub mod platform;
pub mod receipts;
mod rollout;
mod routing;
pub mod traffic;

pub use engine::{
    ActiveStatus, Control, Engine, EngineError, RunStarted, STOP_GRACE, Status, VersionStatus,
};
pub use events::RunEvent;

#[cfg(test)]
mod tests;
