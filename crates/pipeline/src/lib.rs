//! The stages a careful team runs around a rollout, each one a self-contained
//! piece the engine sequences: quality gates (commands, and readers for the
//! reports they write), smoke tests against an environment, hooks, database
//! migrations, and notifications of what happened.
//!
//! Every stage returns a report that is data (serialized into the run's JSON) and
//! renders itself as the Markdown receipt a person reads; none of them decides what
//! the run does next, the engine does.

mod command;
pub mod gates;
pub mod reports;
pub mod smoke;

pub use command::{Exit, KILL_GRACE};
