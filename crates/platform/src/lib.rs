//! Where versions run. Today: [`LocalPlatform`], which runs each version as local
//! child processes, and implements the engine's [`Platform`] trait.
//!
//! Each instance of a version gets a free port on 127.0.0.1 (`${PORT}` in the
//! configured command and environment), its own process group, and a log file; it is
//! ready once its HTTP health check passes, and followed by that check for as long
//! as it runs; one that exits while its version serves is restarted, on a fresh
//! port, with a backoff. Nothing started here outlives its [`Release`]: stopping
//! sends SIGTERM then SIGKILL to the whole process group, dropping kills it, and
//! [`kill_all_children`] kills every group still running, for the daemon's signal
//! handler and the panic hook of [`install_panic_hook`].
//!
//! A daemon that dies without any of that (SIGKILL, OOM) leaves its children running
//! in their groups: [`persist_children_to`] keeps a file listing them, which the next
//! daemon hands to [`kill_leftovers`] before starting anything.
//!
//! [`Platform`]: cutover_engine::platform::Platform
//! [`Release`]: cutover_engine::platform::Release

mod health;
mod instance;
mod local;
mod logs;
mod ports;
mod process;
mod reaper;
mod release;

pub use local::LocalPlatform;
pub use reaper::{install_panic_hook, kill_all_children, kill_leftovers, persist_children_to};
pub use release::LocalRelease;
