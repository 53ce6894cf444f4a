//! The stages a careful team runs around a rollout, each one a self-contained
//! piece the engine sequences: quality gates (commands, and readers for the
//! reports they write), smoke tests against an environment, hooks, database
//! migrations, and notifications of what happened.
//!
//! Every stage returns a report that is data (serialized into the run's JSON) and
//! renders itself as the Markdown receipt a person reads; none of them decides what
//! the run does next, the engine does. So this crate depends on the validated
//! config (`cutover-spec`) and nothing else of cutover: not the engine, the store,
//! the proxy or the server.
//!
//! - [`gates::run`]: every `gates:` entry at once, each report read by
//!   [`reports`], to a [`gates::GatesReport`] (`gates.md`);
//! - [`smoke::run`]: the `smoke:` list against one environment, to a
//!   [`smoke::SmokeReport`] (`smoke-test-results.md`).
//!
//! ```
//! let summary = cutover_pipeline::reports::lcov::read(b"SF:src/lib.rs\nDA:1,1\nDA:2,0\nend_of_record\n")
//!     .unwrap();
//! assert_eq!((summary.lines_covered, summary.lines_valid), (1, 2));
//! ```

mod command;
pub mod gates;
pub mod reports;
pub mod smoke;

pub use command::{Exit, KILL_GRACE};
