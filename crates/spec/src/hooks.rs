//! The commands run around a rollout: hooks at fixed points of a run, and the
//! database migrations run before traffic moves (and undone on rollback).

use std::path::PathBuf;
use std::time::Duration;

/// `hooks:`: commands run at fixed points of a run (every list may be empty).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HooksSpec {
    /// Before anything starts; a failure blocks the run.
    pub before_deploy: Vec<HookCommand>,
    /// Once the new version is promoted; a failure is only reported.
    pub after_promotion: Vec<HookCommand>,
    /// Once a run has rolled back (the documents' `ROLLBACK_SCRIPT`); a failure is
    /// only reported.
    pub on_rollback: Vec<HookCommand>,
}

impl HooksSpec {
    /// No hook at all.
    pub fn is_empty(&self) -> bool {
        self.before_deploy.is_empty()
            && self.after_promotion.is_empty()
            && self.on_rollback.is_empty()
    }
}

/// One command: `{ run: [argv], timeout, workdir }`. No shell runs it unless the argv
/// says so (`["sh", "-c", "..."]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCommand {
    /// argv, taken as written: nothing is substituted in it (the run's facts are in
    /// the environment). Never empty.
    pub run: Vec<String>,
    /// How long it may run before its whole process group is killed (default
    /// [`defaults::HOOK_TIMEOUT`](crate::defaults::HOOK_TIMEOUT), or
    /// [`defaults::MIGRATION_TIMEOUT`](crate::defaults::MIGRATION_TIMEOUT) for a
    /// migration).
    pub timeout: Duration,
    /// Working directory, resolved against the config file's directory (default: that
    /// directory).
    pub workdir: PathBuf,
}

/// `migrations:`: the schema change a version needs, run before traffic moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationsSpec {
    /// Applies the migration.
    pub up: HookCommand,
    /// Reverts it; present whenever `reversible` is.
    pub down: Option<HookCommand>,
    /// `down` runs on rollback (default false: a rollback leaves the schema as `up`
    /// made it).
    pub reversible: bool,
    /// A gate that runs up, down and up again against a scratch database (needs `down`).
    pub validate: Option<MigrationValidation>,
}

/// `migrations.validate`: the scratch database the up -> down -> up check runs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationValidation {
    /// Given to the migration commands as `DATABASE_URL`. Never the production
    /// database: the check reverts what it applies.
    pub database_url: String,
}
