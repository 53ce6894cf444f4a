//! The stages a careful team runs around a rollout, each one a self-contained
//! piece the engine sequences: quality gates (commands, and readers for the
//! reports they write), smoke tests against an environment, hooks, database
//! migrations, and notifications of what happened.
//!
//! Every stage returns a report that is data (serialized into the run's JSON) and
//! renders itself as the Markdown receipt a person reads; none of them decides what
//! the run does next, the engine does. So this crate depends on the validated
//! config (`cutover-spec`) and nothing else of cutover: not the engine, the store,
//! the proxy or the server. It runs commands ([`command`]) and speaks HTTP.
//!
//! - [`gates::run`]: every `gates:` entry at once, each report read by
//!   [`reports`], to a [`gates::GatesReport`] (`gates.md`);
//! - [`smoke::run`]: the `smoke:` list against one environment, to a
//!   [`smoke::SmokeReport`] (`smoke-test-results.md`);
//! - [`run_hook`], [`migrate_up`], [`migrate_down`], [`validate_migrations`]: the
//!   commands around the rollout, to reports for `hooks.md` and `migrations.md`;
//! - [`Notifier`]: webhooks and GitHub deployments, told in the background, to a
//!   [`NotificationsReport`] (`notifications.md`).
//!
//! ```
//! let summary = cutover_pipeline::reports::lcov::read(b"SF:src/lib.rs\nDA:1,1\nDA:2,0\nend_of_record\n")
//!     .unwrap();
//! assert_eq!((summary.lines_covered, summary.lines_valid), (1, 2));
//! ```
//!
//! ```no_run
//! # async fn example(config: &cutover_spec::Config, facts: cutover_pipeline::RunFacts) {
//! use cutover_pipeline::{DeliveryPolicy, HookPoint, Notification, Notifier, run_hook};
//! use cutover_spec::NotificationKind;
//!
//! let env = |name: &str| std::env::var(name).ok();
//! let notifier = Notifier::start(&config.notifications, DeliveryPolicy::default(), &env, None);
//! notifier.notify(Notification::new(NotificationKind::RunStarted, &facts));
//! let hook = run_hook(HookPoint::BeforeDeploy, &config.hooks.before_deploy, &facts).await;
//! if !hook.passed() {
//!     // blocked: write hook.to_markdown() to hooks.md, exit 4
//! }
//! let report = notifier.finish(std::time::Duration::from_secs(30)).await;
//! std::fs::write(facts.receipts_dir.join("notifications.md"), report.to_markdown()).ok();
//! # }
//! ```

pub mod command;
mod delivery;
pub mod gates;
mod github;
mod hooks;
mod migrations;
mod notify;
pub mod reports;
mod retry;
pub mod signature;
pub mod smoke;

pub use command::{Exit, KILL_GRACE};
pub use delivery::{DeliveryRecord, DeliveryResult, NotificationsReport, Notifier, RequestRecord};
pub use github::{API_VERSION as GITHUB_API_VERSION, DeploymentState, GitHub, state_for};
pub use hooks::{HookPoint, HookReport, RunFacts, run_hook};
pub use migrations::{
    Direction, MigrationReport, ValidationReport, migrate_down, migrate_up, validate_migrations,
};
pub use notify::Notification;
pub use retry::{Attempt, DeliveryPolicy};
