//! `hooks` (commands before the deploy, after a promotion, on a rollback) and
//! `migrations` (up, down, whether a rollback runs down, and the scratch database
//! the up -> down -> up check runs against).

use std::path::Path;
use std::time::Duration;

use super::Checker;
use crate::parse::node::{Entry, Node, Value};
use crate::types::{HookCommand, HooksSpec, MigrationValidation, MigrationsSpec, defaults};

pub(super) const HOOKS: &[&str] = &["before_deploy", "after_promotion", "on_rollback"];
pub(super) const HOOK_COMMAND: &[&str] = &["run", "timeout", "workdir"];
pub(super) const MIGRATIONS: &[&str] = &["up", "down", "reversible", "validate"];
pub(super) const VALIDATE: &[&str] = &["database_url"];

const RUN_EXAMPLE: &str = r#"["./scripts/notify.sh", "--quiet"]"#;
const HOOK_EXAMPLE: &str = r#"{ run: ["./scripts/notify.sh"], timeout: 1m }"#;

impl Checker<'_> {
    pub(super) fn hooks(&mut self, e: &Entry) -> Option<HooksSpec> {
        let f = self.fields(&e.value, "hooks", HOOKS)?;
        let list = |c: &mut Self, name: &str| {
            c.optional(&f, name, Vec::new(), |c, e| c.hook_list(e, name))
        };
        let before_deploy = list(self, "before_deploy");
        let after_promotion = list(self, "after_promotion");
        let on_rollback = list(self, "on_rollback");
        Some(HooksSpec {
            before_deploy: before_deploy?,
            after_promotion: after_promotion?,
            on_rollback: on_rollback?,
        })
    }

    fn hook_list(&mut self, e: &Entry, name: &str) -> Option<Vec<HookCommand>> {
        self.mappings(
            e,
            &format!("hooks.{name}"),
            HOOK_EXAMPLE,
            |c, node, path| c.hook_command(node, path, defaults::HOOK_TIMEOUT),
        )
    }

    /// `{ run, timeout, workdir }` at `path`; `timeout` defaults to `default_timeout`.
    fn hook_command(
        &mut self,
        node: &Node,
        path: &str,
        default_timeout: Duration,
    ) -> Option<HookCommand> {
        if !matches!(node.value, Value::Map(_)) {
            self.error(
                node.pos,
                format!(
                    "`{path}` must be a mapping like `{HOOK_EXAMPLE}`, got {}",
                    node.describe()
                ),
            );
            return None;
        }
        let f = self.fields(node, path, HOOK_COMMAND)?;
        let run = self.require(
            &f,
            path,
            node.pos,
            "run",
            &format!("the argv to run, e.g. {RUN_EXAMPLE}"),
        );
        let run = run.and_then(|e| self.argv(e));
        let timeout = self.optional(&f, "timeout", default_timeout, Self::positive_duration);
        let workdir = match f.get("workdir") {
            Some(e) => self.path(e),
            None => Some(self.resolve(Path::new(defaults::WORKDIR))),
        };
        Some(HookCommand {
            run: run?,
            timeout: timeout?,
            workdir: workdir?,
        })
    }

    pub(super) fn migrations(&mut self, e: &Entry) -> Option<MigrationsSpec> {
        let path = "migrations";
        let f = self.fields(&e.value, path, MIGRATIONS)?;
        let up = self.require(
            &f,
            path,
            e.key_pos,
            "up",
            "the command that applies the migration, e.g. `{ run: [\"npm\", \"run\", \"migrate:up\"] }`",
        );
        let up = up.and_then(|e| self.migration_command(e));
        let down = self.optional(&f, "down", None, |c, e| c.migration_command(e).map(Some));
        let reversible = self.optional(&f, "reversible", false, Self::boolean);
        let validate = self.optional(&f, "validate", None, |c, e| c.validate(e).map(Some));

        let has_down = f.get("down").is_some();
        if let (Some(true), Some(e)) = (reversible, f.get("reversible"))
            && !has_down
        {
            self.error(
                Self::at(e),
                "`reversible: true` needs `down`, the command that reverts the migration on \
                 rollback; add `down: { run: [...] }` or set `reversible: false`",
            );
            return None;
        }
        if let (Some(e), false) = (f.get("validate"), has_down) {
            self.error(
                e.key_pos,
                "`validate` runs up, down and up again, so it needs `down`, the command that \
                 reverts the migration; add `down: { run: [...] }` or leave `validate` out",
            );
            return None;
        }
        Some(MigrationsSpec {
            up: up?,
            down: down?,
            reversible: reversible?,
            validate: validate?,
        })
    }

    fn migration_command(&mut self, e: &Entry) -> Option<HookCommand> {
        let path = format!("migrations.{}", e.key);
        if e.value.is_null() {
            self.error(
                Self::at(e),
                format!("`{path}` must be a command like `{HOOK_EXAMPLE}`, got nothing"),
            );
            return None;
        }
        self.hook_command(&e.value, &path, defaults::MIGRATION_TIMEOUT)
    }

    fn validate(&mut self, e: &Entry) -> Option<MigrationValidation> {
        let path = "migrations.validate";
        let f = self.fields(&e.value, path, VALIDATE)?;
        let url = self.require(
            &f,
            path,
            e.key_pos,
            "database_url",
            "the scratch database to check against, e.g. `postgresql://127.0.0.1:5432/scratch`",
        );
        let url = url.and_then(|e| self.database_url(e));
        Some(MigrationValidation { database_url: url? })
    }

    fn database_url(&mut self, e: &Entry) -> Option<String> {
        let text = e.value.scalar_text();
        if let Some(url) = &text
            && let Some((scheme, rest)) = url.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
            && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Some(url.clone());
        }
        self.error(
            Self::at(e),
            format!(
                "`database_url` must be a URL like `postgresql://user@127.0.0.1:5432/scratch` \
                 (given to the migration commands as DATABASE_URL), got {}",
                e.value.describe()
            ),
        );
        None
    }
}
