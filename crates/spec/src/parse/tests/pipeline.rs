//! `hooks`, `migrations` and `notifications`.

use std::path::PathBuf;

use super::*;

#[test]
fn hooks_and_migrations_parse_with_their_defaults() {
    let c = ok(&format!(
        r#"{MINIMAL}hooks:
  before_deploy:
    - {{ run: ["./check.sh", "--strict"], timeout: 30s, workdir: scripts }}
  on_rollback:
    - run: ["sh", "-c", "echo ${{CUTOVER_REASON}}"]
migrations:
  up: {{ run: ["psql", "-f", "up.sql"] }}
  down: {{ run: ["psql", "-f", "down.sql"], timeout: 1m }}
  reversible: true
  validate: {{ database_url: "postgresql://me@127.0.0.1:5432/scratch" }}
"#
    ));
    assert_eq!(
        c.hooks,
        HooksSpec {
            before_deploy: vec![HookCommand {
                run: vec!["./check.sh".into(), "--strict".into()],
                timeout: secs(30),
                workdir: PathBuf::from("scripts"),
            }],
            after_promotion: vec![],
            on_rollback: vec![HookCommand {
                // Taken as written: the shell expands it, not cutover.
                run: vec!["sh".into(), "-c".into(), "echo ${CUTOVER_REASON}".into()],
                timeout: defaults::HOOK_TIMEOUT,
                workdir: PathBuf::from("."),
            }],
        }
    );
    let m = c.migrations.expect("migrations");
    assert_eq!(m.up.timeout, defaults::MIGRATION_TIMEOUT);
    assert_eq!(m.down.expect("down").timeout, secs(60));
    assert!(m.reversible);
    assert_eq!(
        m.validate.expect("validate").database_url,
        "postgresql://me@127.0.0.1:5432/scratch"
    );
    assert_eq!(ok(MINIMAL).migrations, None);
    assert!(ok(MINIMAL).hooks.is_empty());
}

#[test]
fn a_reversible_migration_needs_down() {
    assert_eq!(
        error(&format!(
            "{MINIMAL}migrations:\n  up: {{ run: [\"./up\"] }}\n  reversible: true\n"
        )),
        "cutover.yaml:7:15: `reversible: true` needs `down`, the command that reverts the \
         migration on rollback; add `down: { run: [...] }` or set `reversible: false`"
    );
    let e = error(&format!(
        "{MINIMAL}migrations:\n  up: {{ run: [\"./up\"] }}\n  validate: {{ database_url: \"postgresql://h/db\" }}\n"
    ));
    assert!(
        e.starts_with("cutover.yaml:7:3: `validate` runs up, down and up again"),
        "{e}"
    );
    // A `down` without `reversible` only serves the validation.
    let c = ok(&format!(
        "{MINIMAL}migrations:\n  up: {{ run: [\"./up\"] }}\n  down: {{ run: [\"./down\"] }}\n"
    ));
    assert!(!c.migrations.expect("migrations").reversible);
}

#[test]
fn hook_commands_are_argv_lists() {
    assert_eq!(
        error(&format!(
            "{MINIMAL}hooks:\n  before_deploy:\n    - {{ run: \"./check.sh --strict\" }}\n"
        )),
        "cutover.yaml:7:14: `run` must be a list of strings (the argv; no shell splits it, write \
         [\"sh\", \"-c\", \"...\"] for one), like [\"cargo\", \"test\"], got `./check.sh --strict`; \
         did you mean [\"./check.sh\", \"--strict\"]?"
    );
    let e = error(&format!(
        "{MINIMAL}hooks:\n  before_deploy:\n    - {{ timeout: 1s }}\n"
    ));
    assert!(
        e.starts_with(
            "cutover.yaml:7:7: `hooks.before_deploy[0]` is missing the required field `run`"
        ),
        "{e}"
    );
    let e = error(&format!("{MINIMAL}hooks:\n  before_deploi: []\n"));
    assert!(e.contains("did you mean `before_deploy`"), "{e}");
    let e = error(&format!(
        "{MINIMAL}hooks:\n  on_rollback:\n    - {{ run: [\"./r\"], timeout: 0s }}\n"
    ));
    assert!(e.contains("`timeout` must be longer than 0s"), "{e}");
    let e = error(&format!(
        "{MINIMAL}migrations:\n  up: {{ run: [\"./up\"] }}\n  down: {{ run: [\"./down\"] }}\n  validate: {{ database_url: scratch }}\n"
    ));
    assert!(e.contains("`database_url` must be a URL like"), "{e}");
}

#[test]
fn webhooks_and_github_parse_with_their_defaults() {
    let c = ok(&format!(
        r#"{MINIMAL}notifications:
  webhooks:
    - url: http://127.0.0.1:9000/hook
    - url: http://chat.internal/services/T1/B2
      format: slack
      events: [rolled_back, run_started]
      secret: s3cret
    - {{ url: "http://127.0.0.1:9000/x", secret_env: HOOK_SECRET }}
  github:
    repository: acme/shop
    token_env: GITHUB_TOKEN
    api_url: http://127.0.0.1:9001/api/v3/
"#
    ));
    let n = &c.notifications;
    assert_eq!(n.webhooks.len(), 3);
    assert_eq!(
        n.webhooks[0],
        WebhookSpec {
            url: "http://127.0.0.1:9000/hook".into(),
            format: WebhookFormat::Json,
            events: NotificationKind::ALL.to_vec(),
            secret: None,
        }
    );
    assert_eq!(n.webhooks[1].format, WebhookFormat::Slack);
    assert_eq!(
        n.webhooks[1].events,
        [NotificationKind::RunStarted, NotificationKind::RolledBack]
    );
    assert_eq!(
        n.webhooks[1].secret,
        Some(SecretSource::Literal(Redacted::new("s3cret")))
    );
    assert_eq!(
        n.webhooks[2].secret,
        Some(SecretSource::Env("HOOK_SECRET".into()))
    );
    assert_eq!(
        n.github,
        Some(GitHubSpec {
            owner: "acme".into(),
            repo: "shop".into(),
            token_env: "GITHUB_TOKEN".into(),
            api_url: "http://127.0.0.1:9001/api/v3".into(),
            environment: "production".into(),
        })
    );
}

#[test]
fn a_secret_never_shows_in_debug_output() {
    let c = ok(&format!(
        "{MINIMAL}notifications:\n  webhooks:\n    - {{ url: \"http://h/x\", secret: hunter2-key }}\n"
    ));
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("Redacted(***)"), "{shown}");
}

#[test]
fn https_is_refused_because_this_build_has_no_tls() {
    // As long as `defaults::HTTPS_SUPPORTED` is false.
    let e = error(&format!(
        "{MINIMAL}notifications:\n  webhooks:\n    - url: https://hooks.slack.com/services/T/B/X\n"
    ));
    assert_eq!(
        e,
        "cutover.yaml:7:12: `url` `https://hooks.slack.com/services/T/B/X`: this build of \
         cutover has no TLS, so it cannot send to `https://` URLs; use an `http://` URL (for \
         example a local relay that forwards over TLS)"
    );
    // GitHub's default API URL is https too: without `api_url`, the section is refused.
    let e = error(&format!(
        "{MINIMAL}notifications:\n  github: {{ repository: acme/shop, token_env: GH_TOKEN }}\n"
    ));
    assert!(
        e.starts_with("cutover.yaml:6:3: `notifications.github` has no `api_url`"),
        "{e}"
    );
    assert!(e.contains("has no TLS"), "{e}");
}

#[test]
fn webhook_mistakes_say_what_would_be_valid() {
    let e = error(&format!(
        "{MINIMAL}notifications:\n  webhooks:\n    - {{ url: \"http://h/x\", events: [promotd] }}\n"
    ));
    assert_eq!(
        e,
        "cutover.yaml:7:37: unknown event `promotd`; did you mean `promoted`? (valid: \
         run_started, stage_finished, waiting_for_approval, promoted, rolled_back)"
    );
    let e = error(&format!(
        "{MINIMAL}notifications:\n  webhooks:\n    - {{ url: \"http://h/x\", format: teams }}\n"
    ));
    assert!(
        e.contains("`format` must be `json` or `slack`, got `teams`"),
        "{e}"
    );
    let e = error(&format!(
        "{MINIMAL}notifications:\n  webhooks:\n    - {{ url: \"http://h/x\", secret: a, secret_env: B }}\n"
    ));
    assert!(e.contains("has both `secret` and `secret_env`"), "{e}");
    let e = error(&format!(
        "{MINIMAL}notifications:\n  webhooks:\n    - {{ url: \"http://h/x\", secret: \"${{env:KEY}}\" }}\n"
    ));
    assert!(e.contains("write `secret_env: NAME` instead"), "{e}");
    assert!(!e.contains("KEY"), "a secret is never echoed: {e}");
    let e = error(&format!(
        "{MINIMAL}notifications:\n  webhooks:\n    - {{ url: \"ftp://h/x\" }}\n"
    ));
    assert!(e.contains("the scheme `ftp` is not supported"), "{e}");
    let e = error(&format!(
        "{MINIMAL}notifications:\n  github: {{ repository: shop, token_env: T, api_url: \"http://h\" }}\n"
    ));
    assert!(e.contains("`repository` must be `owner/name`"), "{e}");
    let e = error(&format!(
        "{MINIMAL}notifications:\n  github: {{ repository: a/b, token_env: \"my token\", api_url: \"http://h\" }}\n"
    ));
    assert!(
        e.contains("`token_env` must name an environment variable"),
        "{e}"
    );
}

#[test]
fn the_starters_commented_pipeline_parses_when_uncommented() {
    let start = STARTER.find("# hooks:").expect("the starter shows hooks");
    let block: String = STARTER[start..]
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        // Options and their comments, not the prose above each section.
        .filter(|l| l.starts_with(|c: char| c == ' ' || c.is_ascii_lowercase()))
        .map(|l| format!("{l}\n"))
        .collect();
    let c = ok(&format!("{MINIMAL}{block}"));
    assert_eq!(c.hooks.on_rollback.len(), 1);
    assert!(c.migrations.is_some());
    assert_eq!(c.notifications.webhooks.len(), 1);
    assert!(c.notifications.github.is_some());
}
