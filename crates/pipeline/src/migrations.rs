//! Database migrations: `up` before traffic moves, `down` on rollback when the config
//! marks the migration reversible, and a gate that runs up -> down -> up against a
//! scratch database to show that the way back works before it is needed.
//!
//! cutover does not speak to databases: the migration is the user's own commands
//! (`npm run migrate:up`, `alembic upgrade head`, `psql -f up.sql`, ...). The
//! validation gives them the scratch database as `DATABASE_URL`; the production
//! runs get the daemon's environment, with the run's facts added.

use cutover_spec::{HookCommand, MigrationsSpec};
use serde::{Deserialize, Serialize};

use crate::command::{CommandResult, CommandRun, run_command};
use crate::hooks::RunFacts;

/// Which way a migration command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// One migration command run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationReport {
    pub direction: Direction,
    pub result: CommandResult,
}

impl MigrationReport {
    pub fn passed(&self) -> bool {
        self.result.succeeded()
    }

    /// The `migrations.md` receipt of a production run.
    pub fn to_markdown(&self) -> String {
        let verdict = if self.passed() { "passed" } else { "FAILED" };
        format!(
            "## Migration `{}`: {verdict}\n\n{}",
            self.direction.as_str(),
            self.result.to_markdown()
        )
    }
}

/// Run `migrations.up`, with `CUTOVER_STAGE=migrate_up`; its output goes to
/// `migrations/up.log`. The caller runs it before any traffic moves, and blocks the
/// run when it fails.
pub async fn migrate_up(spec: &MigrationsSpec, facts: &RunFacts) -> MigrationReport {
    let env = facts.env("migrate_up");
    run_migration(Direction::Up, &spec.up, &env, facts, "migrations/up.log").await
}

/// Run `migrations.down` if the migration is reversible (else `None`: a rollback
/// leaves the schema as `up` made it), with `CUTOVER_STAGE=migrate_down`; its output
/// goes to `migrations/down.log`.
pub async fn migrate_down(spec: &MigrationsSpec, facts: &RunFacts) -> Option<MigrationReport> {
    let down = spec.down.as_ref().filter(|_| spec.reversible)?;
    let env = facts.env("migrate_down");
    Some(run_migration(Direction::Down, down, &env, facts, "migrations/down.log").await)
}

/// What the up -> down -> up check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The scratch database, its password hidden.
    pub database: String,
    /// The steps that ran, in order; the first failure ends the check.
    pub steps: Vec<MigrationReport>,
}

/// The check's steps.
const STEPS: [Direction; 3] = [Direction::Up, Direction::Down, Direction::Up];

impl ValidationReport {
    /// All three steps ran and succeeded.
    pub fn passed(&self) -> bool {
        self.steps.len() == STEPS.len() && self.steps.iter().all(MigrationReport::passed)
    }

    /// The `migration-validation-report.md` receipt.
    pub fn to_markdown(&self) -> String {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let mut out = format!(
            "# Migration validation: {verdict}\n\nUp, down and up again against the scratch \
             database `{}` (given to the commands as `DATABASE_URL`).\n\n",
            self.database
        );
        for (i, step) in self.steps.iter().enumerate() {
            let verdict = if step.passed() { "passed" } else { "FAILED" };
            out.push_str(&format!(
                "## {}. `{}`: {verdict}\n\n{}\n",
                i + 1,
                step.direction.as_str(),
                step.result.to_markdown()
            ));
        }
        for (i, direction) in STEPS.iter().enumerate().skip(self.steps.len()) {
            out.push_str(&format!(
                "## {}. `{}`: not run, an earlier step failed\n\n",
                i + 1,
                direction.as_str()
            ));
        }
        out
    }
}

/// Run up, down and up again against `migrations.validate.database_url` (given as
/// `DATABASE_URL`, with `CUTOVER_STAGE=validate_migrations`), stopping at the first
/// failure; the logs go to `migrations/validate-<n>-<up|down>.log`. `None` when the
/// config asks for no validation.
pub async fn validate_migrations(
    spec: &MigrationsSpec,
    facts: &RunFacts,
) -> Option<ValidationReport> {
    let validation = spec.validate.as_ref()?;
    // The config check makes `validate` come with `down`.
    let down = spec.down.as_ref()?;
    let mut env = facts.env("validate_migrations");
    env.push(("DATABASE_URL".to_owned(), validation.database_url.clone()));
    let mut report = ValidationReport {
        database: redact_password(&validation.database_url),
        steps: Vec::new(),
    };
    for (i, direction) in STEPS.into_iter().enumerate() {
        let command = match direction {
            Direction::Up => &spec.up,
            Direction::Down => down,
        };
        let log = format!("migrations/validate-{}-{}.log", i + 1, direction.as_str());
        let step = run_migration(direction, command, &env, facts, &log).await;
        let passed = step.passed();
        report.steps.push(step);
        if !passed {
            break;
        }
    }
    Some(report)
}

async fn run_migration(
    direction: Direction,
    command: &HookCommand,
    env: &[(String, String)],
    facts: &RunFacts,
    log: &str,
) -> MigrationReport {
    let result = run_command(CommandRun {
        argv: &command.run,
        workdir: &command.workdir,
        timeout: command.timeout,
        env,
        receipts_dir: &facts.receipts_dir,
        log,
    })
    .await;
    tracing::info!(
        direction = direction.as_str(),
        result = %result.summary(),
        "migration command ended"
    );
    MigrationReport { direction, result }
}

/// `scheme://user:secret@host/db` -> `scheme://user:***@host/db`; anything else as is.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn a_database_password_is_hidden() {
        assert_eq!(
            redact_password("postgresql://app:p@ss:w0rd@127.0.0.1:5432/db?sslmode=disable"),
            "postgresql://app:***@127.0.0.1:5432/db?sslmode=disable"
        );
        assert_eq!(
            redact_password("postgresql://app@127.0.0.1/db"),
            "postgresql://app@127.0.0.1/db"
        );
        assert_eq!(redact_password("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
