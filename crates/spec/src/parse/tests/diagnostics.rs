use super::*;

// ---- the examples from the spec of this crate ----

#[test]
fn example_unknown_field_with_suggestion() {
    let src = r#"app: shop
platform:
  local:
    command: ["./shop", "--port", "${PORT}"]
health:
    path: /healthz
    healthy_treshold: 2
"#;
    assert_eq!(
        error(src),
        "cutover.yaml:7:5: unknown field `healthy_treshold` in `health`; did you mean \
         `healthy_threshold`? (valid: path, interval, timeout, healthy_threshold, unhealthy_threshold)"
    );
}

#[test]
fn example_weight_out_of_range() {
    let src = r#"app: shop
platform:
  local:
    command: ["./shop", "--port", "${PORT}"]
strategy:
  canary:
    steps:
      - weight: 10%
        pause: 30s
      - weight: 50%
        pause: 30s
      - weight: 150%
        pause: 30s
"#;
    assert_eq!(
        error(src),
        "cutover.yaml:12:17: `weight` must be a percentage between 0% and 100% like `25%`, got `150%`"
    );
}

#[test]
fn example_invalid_duration() {
    let src = "app: shop\nhealth:\n  timeout: 3 parsecs\nplatform: { local: { command: [x, \"${PORT}\"] } }\n";
    assert_eq!(
        error(src),
        "cutover.yaml:3:12: invalid duration `3 parsecs`: expected a duration like `500ms`, `30s` or `2m`"
    );
}

#[test]
fn example_missing_required_field_points_at_enclosing_mapping() {
    let src = "app: shop\nlisten: 127.0.0.1:8080\nplatform:\n  local:\n    instances: 2\n";
    assert_eq!(
        error(src),
        r#"cutover.yaml:4:3: `platform.local` is missing the required field `command` (the argv to run, e.g. ["./server", "--port", "${PORT}"])"#
    );
    // Also when `local` has nothing under it at all.
    let src = "app: shop\nplatform:\n  local:\n";
    assert!(
        error(src).starts_with(
            "cutover.yaml:3:3: `platform.local` is missing the required field `command`"
        )
    );
}

#[test]
fn missing_top_level_fields_point_at_the_top_mapping() {
    let src = "# a comment\n\nlisten: 127.0.0.1:9000\n";
    assert_eq!(
        errors(src),
        [
            "cutover.yaml:3:1: the config is missing the required field `app` (the application's name, e.g. `shop`)",
            "cutover.yaml:3:1: the config is missing the required field `platform` (where versions run, \
             e.g. `platform: { local: { command: [\"./server\"] } }`)",
        ]
    );
}

// ---- collecting every mistake, with exact positions ----

#[test]
fn every_mistake_in_a_file_is_reported_in_file_order() {
    let src = r#"app: My Shop
listen: localhost:8080
platform:
  local:
    command: "./shop --port ${PORT}"
    env: { GREETING: "hi from ${VERSON}" }
    instances: 0
health:
  path: healthz
  healthy_treshold: 2
strategy:
  canary:
    steps:
      - weight: 10
      - weight: 60%
        pause: until_promoted
      - weight: 40%
analysis:
  failure_limit: 0
  metrics:
    latency_p90: { max: 1s }
path: /x
"#;
    assert_eq!(
        errors(src),
        [
            "cutover.yaml:1:6: `app` must be 1-63 characters of lowercase letters, digits and `-`, \
             starting with a letter (like `shop`), got `My Shop`; did you mean `my-shop`?",
            "cutover.yaml:2:9: `listen` must be an IP address and port like `127.0.0.1:8080` or \
             `[::1]:8080`, got `localhost:8080`; did you mean `127.0.0.1:8080`?",
            r#"cutover.yaml:5:14: `command` must be a list of strings (the argv; no shell splits it), like ["./server", "--port", "${PORT}"], got `./shop --port ${PORT}`; did you mean ["./shop", "--port", "${PORT}"]?"#,
            "cutover.yaml:6:31: unknown placeholder `${VERSON}` in `env.GREETING`; did you mean \
             `${VERSION}`? (valid: ${PORT}, ${VERSION})",
            "cutover.yaml:7:16: `instances` must be a whole number from 1 to 64, got `0`",
            "cutover.yaml:9:9: `path` must be a URL path starting with `/`, like `/healthz`, got \
             `healthz`; did you mean `/healthz`?",
            "cutover.yaml:10:3: unknown field `healthy_treshold` in `health`; did you mean \
             `healthy_threshold`? (valid: path, interval, timeout, healthy_threshold, unhealthy_threshold)",
            "cutover.yaml:14:17: `weight` must be a percentage like `10%`, got the bare number `10`; \
             write it as `10%`",
            "cutover.yaml:16:16: invalid duration `until_promoted`: expected a duration like `500ms`, \
             `30s` or `2m`, or `until-promoted` to wait for `cutover promote`; did you mean `until-promoted`?",
            "cutover.yaml:17:17: `weight` 40% is lower than the previous step's 60%: weights must never decrease",
            "cutover.yaml:19:18: `failure_limit` must be a whole number of at least 1, got `0`",
            "cutover.yaml:21:5: unknown field `latency_p90` in `analysis.metrics`; did you mean \
             `latency_p50`? (valid: error_rate, latency_p50, latency_p95, latency_p99, apdex)",
            "cutover.yaml:22:1: unknown field `path` at the top level; `path` belongs in `health`, \
             each of `strategy.blue_green.smoke_checks` or each HTTP check of `smoke` (valid: app, \
             listen, state_dir, platform, health, strategy, analysis, proxy, api, approvals, windows, \
             hooks, migrations, notifications, gates, smoke, logs, environments)",
        ]
    );
}

#[test]
fn display_is_one_diagnostic_per_line() {
    let src = "app: shop\nplatform: { local: { command: [x, \"${PORT}\"], instances: 0, drain_timeout: 5 } }\n";
    let err = parse(src, "dir/cutover.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "dir/cutover.yaml:2:58: `instances` must be a whole number from 1 to 64, got `0`\n\
         dir/cutover.yaml:2:76: invalid duration `5`: expected a duration like `500ms`, `30s` or `2m` \
         (a bare number has no unit)"
    );
    let d = &err.diagnostics[0];
    assert_eq!(
        (d.file.as_str(), d.line, d.col),
        ("dir/cutover.yaml", 2, 58)
    );
    // It is a std error.
    let _: &dyn std::error::Error = &err;
}

#[test]
fn columns_count_characters_not_bytes() {
    let src = "app: shop\nplatform:\n  local:\n    command: [x, \"${PORT}\"]\n    env: { GRÜẞE: \"¡hola ${HOST}!\" }\n";
    assert_eq!(
        error(src),
        "cutover.yaml:5:26: unknown placeholder `${HOST}` in `env.GRÜẞE` (valid: ${PORT}, ${VERSION})"
    );
}

#[test]
fn placeholders() {
    let cmd = |c: &str| format!("app: shop\nplatform:\n  local:\n    command: {c}\n");
    assert_eq!(
        error(&cmd(r#"["./x", "--port=${port}"]"#)),
        "cutover.yaml:4:30: unknown placeholder `${port}` in `command[1]`; did you mean `${PORT}`? \
         (valid: ${PORT}, ${VERSION})"
    );
    assert_eq!(
        error(&cmd(r#"["./x", "${PORT"]"#)),
        "cutover.yaml:4:23: unterminated placeholder `${PORT` in `command[1]` (valid: ${PORT}, ${VERSION})"
    );
    // Several in one string, all reported.
    assert_eq!(errors(&cmd(r#"["./x", "${A}:${B}:${PORT}"]"#)).len(), 2);
    // Plain `$` and `$PORT` are left alone.
    let c = ok(&cmd(r#"["sh", "-c", "exec ./x --port $PORT ${PORT} $$"]"#));
    assert_eq!(
        c.platform.local().unwrap().command[2],
        "exec ./x --port $PORT ${PORT} $$"
    );
}

#[test]
fn syntax_errors_stop_at_the_first_with_a_position() {
    assert_eq!(
        error("app: shop\nplatform:\n\tlocal: {}\n"),
        "cutover.yaml:3:2: invalid YAML: tabs disallowed within this context (block indentation); \
         indent with spaces, not tabs"
    );
    let e = error("app: \"shop\nplatform: {}\n");
    assert!(e.starts_with("cutover.yaml:1:6: invalid YAML: "), "{e}");
    let e = error("app: shop\n---\napp: other\n");
    assert!(e.starts_with("cutover.yaml:3:1: invalid YAML: "), "{e}");
}

#[test]
fn duplicate_keys_are_all_reported() {
    let src = "app: shop\napp: shop\nplatform:\n  local:\n    command: [x, \"${PORT}\"]\n    command: [y]\n    env:\n      A: 1\n      A: 2\n";
    assert_eq!(
        errors(src),
        [
            "cutover.yaml:2:1: duplicate field `app`: it is already set on line 1",
            "cutover.yaml:6:5: duplicate field `command`: it is already set on line 5",
            "cutover.yaml:9:7: duplicate environment variable `A`: it is already set on line 8",
        ]
    );
}

#[test]
fn empty_and_non_mapping_documents() {
    for src in ["", "# nothing here\n", "~\n"] {
        assert_eq!(
            error(src),
            "cutover.yaml:1:1: the config is empty: it needs at least `app` and `platform` \
             (run `cutover init` for a commented starter)"
        );
    }
    assert_eq!(
        error("- app: shop\n"),
        "cutover.yaml:1:1: the config must be a mapping of settings (valid: app, listen, state_dir, \
         platform, health, strategy, analysis, proxy, api, approvals, windows, hooks, migrations, \
         notifications, gates, smoke, logs, environments), got a list"
    );
}

// ---- unknown fields and suggestions ----

#[test]
fn unknown_fields_everywhere() {
    const HEAD: &str = "app: shop\nplatform:\n  local:\n    command: [x, \"${PORT}\"]\n";
    let cases = [
        (
            "aap: shop\n",
            "cutover.yaml:5:1: unknown field `aap` at the top level; did you mean `app`?",
        ),
        (
            "    commnd: [x]\n",
            "cutover.yaml:5:5: unknown field `commnd` in `platform.local`; did you mean `command`?",
        ),
        (
            "strategy:\n  canary:\n    step: []\n",
            "cutover.yaml:7:5: unknown field `step` in `strategy.canary`; did you mean `steps`?",
        ),
        (
            "analysis:\n  min-requests: 5\n",
            "cutover.yaml:6:3: unknown field `min-requests` in `analysis`; did you mean `min_requests`?",
        ),
        (
            "analysis:\n  metrics:\n    error_rate: { mx: 1% }\n",
            "cutover.yaml:7:19: unknown field `mx` in `analysis.metrics.error_rate`; did you mean `max`?",
        ),
        (
            "analysis:\n  metrics:\n    latency_p50: { maxRatio: 1 }\n",
            "cutover.yaml:7:20: unknown field `maxRatio` in `analysis.metrics.latency_p50`; did you mean `max_ratio`?",
        ),
        (
            "health:\n  zzz: 1\n",
            "cutover.yaml:6:3: unknown field `zzz` in `health` (valid: path,",
        ),
        (
            "health:\n  steps: []\n",
            "cutover.yaml:6:3: unknown field `steps` in `health`; `steps` belongs in `strategy.canary` (valid:",
        ),
        (
            "strategy:\n  canary:\n    basline: fresh\n",
            "cutover.yaml:7:5: unknown field `basline` in `strategy.canary`; did you mean `baseline`?",
        ),
        (
            "strategy:\n  blue_green:\n    scale_down: 1s\n",
            "cutover.yaml:7:5: unknown field `scale_down` in `strategy.blue_green`; did you mean `scale_down_delay`?",
        ),
        (
            "strategy:\n  blue_green:\n    smoke_checks:\n      - { path: /, body_contain: ok }\n",
            "cutover.yaml:8:20: unknown field `body_contain` in `strategy.blue_green.smoke_checks[0]`; did you mean `body_contains`?",
        ),
        (
            "strategy:\n  rolling:\n    maxUnavailable: 1\n",
            "cutover.yaml:7:5: unknown field `maxUnavailable` in `strategy.rolling`; did you mean `max_unavailable`?",
        ),
        (
            "health:\n  smoke_checks: []\n",
            "cutover.yaml:6:3: unknown field `smoke_checks` in `health`; `smoke_checks` belongs in `strategy.blue_green` (valid:",
        ),
        (
            "strategy:\n  canary:\n    max_surge: 1\n",
            "cutover.yaml:7:5: unknown field `max_surge` in `strategy.canary`; `max_surge` belongs in `strategy.rolling` (valid:",
        ),
    ];
    for (extra, expected) in cases {
        let all = errors(&format!("{HEAD}{extra}"));
        assert!(
            all.len() == 1 && all[0].starts_with(expected),
            "{extra:?}: expected {expected:?}, got {all:#?}"
        );
    }
}

#[test]
fn suggestions() {
    use crate::parse::check::did_you_mean;
    let fields = [
        "path",
        "interval",
        "timeout",
        "healthy_threshold",
        "unhealthy_threshold",
    ];
    assert_eq!(
        did_you_mean("healthy_treshold", &fields),
        Some("healthy_threshold")
    );
    assert_eq!(
        did_you_mean("Healthy-Threshold", &fields),
        Some("healthy_threshold")
    );
    assert_eq!(did_you_mean("intervall", &fields), Some("interval"));
    assert_eq!(did_you_mean("pth", &fields), Some("path"));
    assert_eq!(did_you_mean("color", &fields), None);
    assert_eq!(did_you_mean("x", &fields), None);
}
