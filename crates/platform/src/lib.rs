//! Where versions run: [`LocalPlatform`], which runs each release (some instances
//! of a version) as local child processes, and [`DockerPlatform`], which runs them
//! as containers of a Docker daemon; both implement the engine's [`Platform`]
//! trait, and share the supervision of instances ([`SupervisedRelease`]). It must not depend on the proxy: the engine hands it names,
//! versions and counts, and gets addresses back.
//!
//! Each instance gets a free port on 127.0.0.1 (`${PORT}` in the configured command
//! and environment, and `PORT` in the environment, beside `VERSION`), its own
//! process group, and a log file named after its release; it is ready once its HTTP
//! health check passes, and followed by that check for as long as it runs; one that
//! exits while its release serves is restarted, on a fresh port, with a backoff.
//! Releases grow and shrink an instance at a time ([`Release::add_instances`],
//! [`Release::detach`]). Nothing started here outlives its [`Release`]: stopping
//! sends SIGTERM then SIGKILL to the whole process group, dropping kills it, and
//! [`kill_all_children`] kills every group still running, for the daemon's signal
//! handler and the panic hook of [`install_panic_hook`].
//!
//! A daemon that dies without any of that (SIGKILL, OOM) leaves its children running
//! in their groups: [`persist_children_to`] keeps a file listing them, and which
//! instance each one runs. The next daemon reads it as [`Leftovers`] before writing
//! its own, hands them to its platform, adopts the releases it still wants
//! ([`Platform::adopt`]: same processes, same addresses, supervised from then on),
//! and stops the rest ([`Platform::stop_unadopted`]).
//!
//! ```no_run
//! # async fn f(spec: cutover_spec::LocalSpec, health: cutover_spec::HealthCheck) -> std::io::Result<()> {
//! use cutover_engine::platform::{Platform, ReleaseSpec};
//! use cutover_platform::{Leftovers, LocalPlatform, persist_children_to};
//!
//! let children = std::path::PathBuf::from("state/children.json");
//! let leftovers = Leftovers::read(&children)?;
//! persist_children_to(children)?;
//! let platform = LocalPlatform::new(spec, health, "state/logs".into()).with_leftovers(leftovers);
//! let v1 = ReleaseSpec { name: "v1".into(), version: "v1".into(), instances: platform.instances() };
//! let release = match platform.adopt(&v1).await {
//!     Ok(Some(release)) => release,
//!     _ => platform.start(&v1).await.expect("v1 starts"),
//! };
//! for line in platform.stop_unadopted().await {
//!     eprintln!("stopped {line}, left running by an earlier daemon");
//! }
//! # drop(release); Ok(()) }
//! ```
//!
//! [`Platform`]: cutover_engine::platform::Platform
//! [`Platform::adopt`]: cutover_engine::platform::Platform::adopt
//! [`Platform::stop_unadopted`]: cutover_engine::platform::Platform::stop_unadopted
//! [`Release`]: cutover_engine::platform::Release
//! [`Release::add_instances`]: cutover_engine::platform::Release::add_instances
//! [`Release::detach`]: cutover_engine::platform::Release::detach

mod adopt;
mod docker;
mod health;
mod instance;
mod leftovers;
mod local;
pub mod log_files;
mod logs;
mod ports;
mod process;
mod reaper;
mod release;
mod startup;

pub use docker::DockerPlatform;
pub use leftovers::Leftovers;
pub use local::LocalPlatform;
pub use log_files::{FileCursor, LogFiles, LogWriter};
pub use reaper::{install_panic_hook, kill_all_children, persist_children_to};
pub use release::SupervisedRelease;
