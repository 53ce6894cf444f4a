use std::path::PathBuf;

use super::*;

/// Staging with one instance of its own and no approvals; production as the top
/// level says.
const TWO: &str = r#"app: shop
listen: 127.0.0.1:8080
platform:
  local:
    command: ["./shop", "--port", "${PORT}"]
    instances: 3
    env: { MODE: live }
approvals: { from: [alice] }
environments:
  staging:
    listen: 127.0.0.1:9080
    platform: { local: { instances: 1, env: { MODE: test } } }
    approvals:
    skip_on_hotfix: true
  production:
"#;

fn for_env(src: &str, env: Option<&str>) -> Result<Config, Vec<String>> {
    parse_environment(src, "cutover.yaml", env)
        .map_err(|e| e.diagnostics.iter().map(ToString::to_string).collect())
}

fn local(config: &Config) -> &LocalSpec {
    match &config.platform {
        PlatformSpec::Local(l) => l,
        other => panic!("expected a local platform, got {other:?}"),
    }
}

#[test]
fn no_environments_by_default() {
    let config = ok(MINIMAL);
    assert_eq!(config.environment, None);
    assert!(config.environments.is_empty());
    assert!(config.earlier_environment().is_none());
    let refused = for_env(MINIMAL, Some("staging")).unwrap_err();
    assert_eq!(
        refused,
        [
            "cutover.yaml: there is no environment `staging`: the config defines no `environments`; leave out `--env` (and unset CUTOVER_ENV)"
        ]
    );
}

#[test]
fn an_environment_is_laid_over_the_top_level() {
    let staging = for_env(TWO, Some("staging")).unwrap();
    assert_eq!(staging.environment.as_deref(), Some("staging"));
    assert_eq!(staging.listen, "127.0.0.1:9080".parse().unwrap());
    assert_eq!(local(&staging).instances, 1);
    // Mappings merge key by key: the command stays, the variable is staging's.
    assert_eq!(local(&staging).command, ["./shop", "--port", "${PORT}"]);
    assert_eq!(
        local(&staging).env.get("MODE").map(String::as_str),
        Some("test")
    );
    // A setting set to nothing takes its default again.
    assert_eq!(staging.approvals, None);
    assert_eq!(staging.state_dir, PathBuf::from(".cutover/staging"));

    // Production, the last one, is the default.
    let production = for_env(TWO, None).unwrap();
    assert_eq!(production.environment.as_deref(), Some("production"));
    assert_eq!(production.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(local(&production).instances, 3);
    assert!(production.approvals.is_some());
    // The last one keeps `state_dir` itself: adding environments keeps its history.
    assert_eq!(production.state_dir, PathBuf::from(".cutover"));
    assert_eq!(production, ok(TWO));

    let names: Vec<&str> = production
        .environments
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["staging", "production"]);
    let earlier = production.earlier_environment().unwrap();
    assert_eq!(earlier.name, "staging");
    assert_eq!(earlier.listen, "127.0.0.1:9080".parse().unwrap());
    assert_eq!(earlier.state_dir, PathBuf::from(".cutover/staging"));
    assert!(earlier.skip_on_hotfix);
    assert!(staging.earlier_environment().is_none());
}

#[test]
fn an_unknown_environment_names_the_defined_ones() {
    assert_eq!(
        for_env(TWO, Some("prod")).unwrap_err(),
        ["cutover.yaml: there is no environment `prod`: the config defines staging, production"]
    );
}

#[test]
fn every_environment_is_checked_whichever_is_asked_for() {
    let src = TWO.replace("instances: 1,", "instances: lots,");
    let got = for_env(&src, Some("production")).unwrap_err();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].starts_with("cutover.yaml:12:37: "), "{got:#?}");
    assert!(got[0].contains("instances"), "{got:#?}");

    // A mistake in a shared setting is reported once, not once per environment.
    let src = TWO.replace("instances: 3", "instances: -3");
    let got = for_env(&src, None).unwrap_err();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].starts_with("cutover.yaml:6:16: "), "{got:#?}");
}

#[test]
fn environments_are_kept_apart() {
    let src = TWO.replace("    listen: 127.0.0.1:9080\n", "");
    assert_eq!(
        for_env(&src, None).unwrap_err(),
        [
            "cutover.yaml:14:3: environments `staging` and `production` both listen on 127.0.0.1:8080: give each its own `listen`"
        ]
    );
    let src = format!("{TWO}    state_dir: .cutover/staging\n    listen: 127.0.0.1:7080\n");
    assert_eq!(
        for_env(&src, None).unwrap_err(),
        [
            "cutover.yaml:15:3: environments `staging` and `production` both keep their state in .cutover/staging: give each its own `state_dir`"
        ]
    );
    // Ports the OS picks never clash.
    let src = TWO
        .replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0")
        .replace("listen: 127.0.0.1:9080", "listen: 127.0.0.1:0");
    assert!(for_env(&src, None).is_ok());
}

#[test]
fn bad_environments_say_what_would_be_valid() {
    let base = MINIMAL;
    let cases = [
        (
            "environments: [staging]\n",
            "cutover.yaml:5:15: `environments` must be a mapping of environment names to their settings",
        ),
        (
            "environments: {}\n",
            "cutover.yaml:5:15: `environments` defines no environment: name at least one",
        ),
        (
            "environments: { Staging: {} }\n",
            "cutover.yaml:5:17: environment name `Staging` must be 1-63 characters",
        ),
        (
            "environments: { staging: { app: other } }\n",
            "cutover.yaml:5:28: unknown field `app` in `environments.staging`",
        ),
        (
            "environments:\n  staging: {}\n  staging: {}\n",
            "cutover.yaml:7:3: duplicate environment `staging`: it is already defined on line 6",
        ),
        (
            "environments: { staging: { skip_on_hotfix: maybe } }\n",
            "cutover.yaml:5:44: ",
        ),
    ];
    for (extra, expected) in cases {
        let got = errors(&format!("{base}{extra}"));
        assert_eq!(got.len(), 1, "{extra}: {got:#?}");
        assert!(got[0].starts_with(expected), "{extra}: {got:#?}");
    }
    // A misplaced field is pointed to where it belongs.
    let got = error(&format!("{base}skip_on_hotfix: true\n"));
    assert!(got.contains("each of `environments`"), "{got}");
}

#[test]
fn an_environment_naming_another_kind_replaces_the_section() {
    let src = TWO.replace(
        "    platform: { local: { instances: 1, env: { MODE: test } } }\n",
        "    platform: { docker: { image: \"shop:${VERSION}\", env: { PORT: \"${PORT}\" } } }\n    strategy: { blue_green: {} }\n",
    );
    let staging = for_env(&src, Some("staging")).unwrap();
    assert_eq!(staging.platform.kind(), "docker");
    assert_eq!(staging.strategy.name(), "blue_green");
    assert_eq!(local(&for_env(&src, None).unwrap()).instances, 3);
}

#[test]
fn only_the_environment_asked_for_needs_its_secrets() {
    // Staging reads its own Prometheus, whose address only its daemon is given.
    let src = TWO.replace(
        "    skip_on_hotfix: true\n",
        "    skip_on_hotfix: true\n    analysis: { source: { prometheus: { url: \"${env:CUTOVER_TEST_NEVER_SET_URL}\" } } }\n",
    );
    assert!(for_env(&src, None).is_ok(), "{:?}", for_env(&src, None));
    let refused = for_env(&src, Some("staging")).unwrap_err();
    assert!(
        refused
            .iter()
            .any(|e| e.contains("CUTOVER_TEST_NEVER_SET_URL")),
        "{refused:#?}"
    );
}

#[test]
fn each_environment_has_its_own_smoke_tests_and_github_environment() {
    let src = format!(
        "{}smoke: [{{ path: /ready }}]\nnotifications: {{ github: {{ repository: acme/shop, token_env: GH, api_url: \"http://127.0.0.1:9\" }} }}\n",
        TWO.replace("    skip_on_hotfix: true\n", "    skip_on_hotfix: true\n    smoke: [{ path: /staging-ready }, { path: /deep }]\n    state_dir:\n")
    );
    let production = for_env(&src, None).unwrap();
    let earlier = production.earlier_environment().unwrap();
    assert_eq!(earlier.smoke.len(), 2, "staging's own list");
    assert_eq!(production.smoke.len(), 1);
    // `state_dir:` left empty is the default, not the top level's.
    assert_eq!(earlier.state_dir, PathBuf::from(".cutover/staging"));
    let github = |c: &Config| c.notifications.github.clone().unwrap().environment;
    assert_eq!(github(&production), "production");
    assert_eq!(github(&for_env(&src, Some("staging")).unwrap()), "staging");
}

#[test]
fn preview_addresses_and_all_addresses_clash_too() {
    let preview = format!(
        "{}strategy: {{ blue_green: {{ preview_listen: \"127.0.0.1:8081\" }} }}\n",
        TWO
    );
    let got = for_env(&preview, None).unwrap_err();
    assert_eq!(
        got,
        [
            "cutover.yaml:15:3: environments `staging` and `production` both listen on 127.0.0.1:8081: give each its own `strategy.blue_green.preview_listen`"
        ]
    );
    let everywhere = TWO.replace("listen: 127.0.0.1:9080", "listen: 0.0.0.0:8080");
    let got = for_env(&everywhere, None).unwrap_err();
    assert_eq!(
        got,
        [
            "cutover.yaml:15:3: environments `staging` and `production` both listen on 0.0.0.0:8080: give each its own `listen`"
        ]
    );
}
