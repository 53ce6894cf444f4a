use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::types::*;

const MINIMAL: &str = r#"app: shop
platform:
  local:
    command: ["./shop", "--port", "${PORT}"]
"#;

fn ok(src: &str) -> Config {
    parse(src, "cutover.yaml").unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

/// Every diagnostic, displayed.
fn errors(src: &str) -> Vec<String> {
    match parse(src, "cutover.yaml") {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(e) => {
            assert!(!e.diagnostics.is_empty());
            e.diagnostics.iter().map(ToString::to_string).collect()
        }
    }
}

/// The one diagnostic `src` produces.
fn error(src: &str) -> String {
    let mut all = errors(src);
    assert_eq!(all.len(), 1, "expected exactly one error, got {all:#?}");
    all.remove(0)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn pct(p: f64) -> Percent {
    Percent::from_percent(p).unwrap()
}

// ---- the examples from the spec of this crate ----

#[test]
fn example_unknown_field_with_suggestion() {
    let src = r#"app: shop
platform:
  local:
    command: ["./shop"]
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
    command: ["./shop"]
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
    let src = "app: shop\nhealth:\n  timeout: 3 parsecs\nplatform: { local: { command: [x] } }\n";
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

// ---- defaults, and the whole format ----

#[test]
fn minimal_config_gets_every_default() {
    let c = ok(MINIMAL);
    let expected = Config {
        app: "shop".into(),
        listen: "127.0.0.1:8080".parse().unwrap(),
        state_dir: PathBuf::from(".cutover"),
        platform: PlatformSpec::Local(LocalSpec {
            command: vec!["./shop".into(), "--port".into(), "${PORT}".into()],
            env: BTreeMap::new(),
            workdir: PathBuf::from("."),
            instances: 1,
            startup_timeout: secs(30),
            drain_timeout: secs(10),
        }),
        health: HealthCheck {
            path: "/healthz".into(),
            interval: secs(1),
            timeout: secs(1),
            healthy_threshold: 1,
            unhealthy_threshold: 3,
        },
        strategy: StrategySpec::Canary(CanarySpec {
            steps: vec![
                Step {
                    weight: pct(10.0),
                    pause: Pause::For(secs(30)),
                },
                Step {
                    weight: pct(50.0),
                    pause: Pause::For(secs(30)),
                },
                Step {
                    weight: pct(100.0),
                    pause: Pause::For(secs(30)),
                },
            ],
        }),
        analysis: AnalysisSpec {
            interval: secs(5),
            min_requests: 20,
            failure_limit: 1,
            inconclusive_limit: 6,
            metrics: MetricRules {
                error_rate: Some(ErrorRateRule {
                    max: Some(pct(5.0)),
                    max_over_stable: None,
                }),
                latency_p50: None,
                latency_p95: None,
                latency_p99: None,
            },
        },
    };
    assert_eq!(c, expected);
    // The `Default` impls and `defaults` agree with what parsing fills in.
    assert_eq!(c.health, HealthCheck::default());
    assert_eq!(c.strategy, StrategySpec::default());
    assert_eq!(c.analysis, AnalysisSpec::default());
    assert_eq!(c.strategy.canary().steps, defaults::CANARY_STEPS);
}

#[test]
fn empty_sections_mean_defaults() {
    let src = format!("{MINIMAL}health:\nstrategy:\nanalysis: {{}}\n");
    assert_eq!(ok(&src), ok(MINIMAL));
    let src = format!("{MINIMAL}strategy:\n  canary:\n");
    assert_eq!(ok(&src), ok(MINIMAL));
    let src = "app: shop\nplatform:\n  local:\n    command: [x]\n    env:\n";
    assert!(ok(src).platform.local().env.is_empty());
}

#[test]
fn full_config_round_trip() {
    let src = r#"# every field, none of them default
app: shop-2
listen: "[::1]:9090"
state_dir: /var/lib/cutover
platform:
  local:
    command: ["./shop", "--port", "${PORT}", "--version=${VERSION}", 8, true]
    env:
      GREETING: "hi from ${VERSION}"
      WORKERS: 4
      DEBUG: yes
      LISTEN_ON: ":${PORT}"
    workdir: bin
    instances: 3
    startup_timeout: 1m
    drain_timeout: 0s
health:
  path: /ready?deep=1
  interval: 500ms
  timeout: 250ms
  healthy_threshold: 2
  unhealthy_threshold: 5
strategy:
  canary:
    steps:
      - weight: 0.5%
        pause: 1h 30m
      - weight: 25%
        pause: until-promoted
      - { weight: 25%, pause: 2m }
      - weight: 100%
analysis:
  interval: 10s
  min_requests: 0
  failure_limit: 2
  inconclusive_limit: 12
  metrics:
    error_rate: { max: 2.5%, max_over_stable: 1% }
    latency_p50: { max: 200ms, max_ratio: 1.5 }
    latency_p95: { max: 300ms }
    latency_p99: { max_ratio: 2 }
"#;
    let c = parse(src, "deploy/cutover.yaml").unwrap_or_else(|e| panic!("{e}"));
    let expected = Config {
        app: "shop-2".into(),
        listen: "[::1]:9090".parse().unwrap(),
        state_dir: PathBuf::from("/var/lib/cutover"),
        platform: PlatformSpec::Local(LocalSpec {
            command: [
                "./shop",
                "--port",
                "${PORT}",
                "--version=${VERSION}",
                "8",
                "true",
            ]
            .map(String::from)
            .to_vec(),
            env: [
                ("GREETING", "hi from ${VERSION}"),
                ("WORKERS", "4"),
                ("DEBUG", "yes"),
                ("LISTEN_ON", ":${PORT}"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            workdir: PathBuf::from("deploy/bin"),
            instances: 3,
            startup_timeout: secs(60),
            drain_timeout: Duration::ZERO,
        }),
        health: HealthCheck {
            path: "/ready?deep=1".into(),
            interval: Duration::from_millis(500),
            timeout: Duration::from_millis(250),
            healthy_threshold: 2,
            unhealthy_threshold: 5,
        },
        strategy: StrategySpec::Canary(CanarySpec {
            steps: vec![
                Step {
                    weight: pct(0.5),
                    pause: Pause::For(secs(5400)),
                },
                Step {
                    weight: pct(25.0),
                    pause: Pause::UntilPromoted,
                },
                Step {
                    weight: pct(25.0),
                    pause: Pause::For(secs(120)),
                },
                Step {
                    weight: pct(100.0),
                    pause: Pause::For(defaults::STEP_PAUSE),
                },
            ],
        }),
        analysis: AnalysisSpec {
            interval: secs(10),
            min_requests: 0,
            failure_limit: 2,
            inconclusive_limit: 12,
            metrics: MetricRules {
                error_rate: Some(ErrorRateRule {
                    max: Some(pct(2.5)),
                    max_over_stable: Some(pct(1.0)),
                }),
                latency_p50: Some(LatencyRule {
                    max: Some(Duration::from_millis(200)),
                    max_ratio: Some(1.5),
                }),
                latency_p95: Some(LatencyRule {
                    max: Some(Duration::from_millis(300)),
                    max_ratio: None,
                }),
                latency_p99: Some(LatencyRule {
                    max: None,
                    max_ratio: Some(2.0),
                }),
            },
        },
    };
    assert_eq!(c, expected);
    assert_eq!(c.strategy.canary().steps[0].weight.basis_points(), 50);
}

#[test]
fn starter_parses_to_the_defaults() {
    let starter = parse(STARTER, "cutover.yaml").unwrap_or_else(|e| panic!("STARTER:\n{e}"));
    let minimal = ok(r#"app: my-app
platform:
  local:
    command: ["./server", "--port", "${PORT}"]
"#);
    assert_eq!(starter, minimal);
    // Every option appears in it.
    for key in [
        "app:",
        "listen:",
        "state_dir:",
        "platform:",
        "local:",
        "command:",
        "env:",
        "workdir:",
        "instances:",
        "startup_timeout:",
        "drain_timeout:",
        "health:",
        "path:",
        "interval:",
        "timeout:",
        "healthy_threshold:",
        "unhealthy_threshold:",
        "strategy:",
        "canary:",
        "steps:",
        "weight:",
        "pause:",
        "analysis:",
        "min_requests:",
        "failure_limit:",
        "inconclusive_limit:",
        "metrics:",
        "error_rate:",
        "max:",
        "max_over_stable:",
        "latency_p50:",
        "latency_p95:",
        "latency_p99:",
        "max_ratio:",
        "until-promoted",
    ] {
        assert!(STARTER.contains(key), "STARTER lacks {key}");
    }
    // Uncommenting the commented-out options keeps it valid.
    let uncommented: String = STARTER
        .lines()
        .map(|l| match l.trim_start().strip_prefix("# ") {
            Some(rest) if rest.starts_with("max_over_stable") || rest.starts_with("latency_") => {
                format!("{}{rest}\n", &l[..l.len() - l.trim_start().len()])
            }
            _ => format!("{l}\n"),
        })
        .collect();
    let c = parse(&uncommented, "cutover.yaml").unwrap_or_else(|e| panic!("{e}"));
    let m = &c.analysis.metrics;
    assert!(m.latency_p50.is_some() && m.latency_p95.is_some() && m.latency_p99.is_some());
    assert!(m.error_rate.unwrap().max_over_stable.is_some());
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
             `latency_p50`? (valid: error_rate, latency_p50, latency_p95, latency_p99)",
            "cutover.yaml:22:1: unknown field `path` at the top level; `path` belongs in `health` \
             (valid: app, listen, state_dir, platform, health, strategy, analysis)",
        ]
    );
}

#[test]
fn display_is_one_diagnostic_per_line() {
    let src = "app: shop\nplatform: { local: { command: [x], instances: 0, drain_timeout: 5 } }\n";
    let err = parse(src, "dir/cutover.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "dir/cutover.yaml:2:47: `instances` must be a whole number from 1 to 64, got `0`\n\
         dir/cutover.yaml:2:65: invalid duration `5`: expected a duration like `500ms`, `30s` or `2m` \
         (a bare number has no unit)"
    );
    let d = &err.diagnostics[0];
    assert_eq!(
        (d.file.as_str(), d.line, d.col),
        ("dir/cutover.yaml", 2, 47)
    );
    // It is a std error.
    let _: &dyn std::error::Error = &err;
}

#[test]
fn columns_count_characters_not_bytes() {
    let src = "app: shop\nplatform:\n  local:\n    command: [x]\n    env: { GRÜẞE: \"¡hola ${HOST}!\" }\n";
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
        c.platform.local().command[2],
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
    let src = "app: shop\napp: shop\nplatform:\n  local:\n    command: [x]\n    command: [y]\n    env:\n      A: 1\n      A: 2\n";
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
         platform, health, strategy, analysis), got a list"
    );
}

// ---- platform and strategy kinds ----

#[test]
fn platform_kinds() {
    let src = "app: shop\nplatform:\n  docker: {}\n";
    assert_eq!(
        error(src),
        "cutover.yaml:3:3: platform `docker` is not yet supported (valid: local)"
    );
    let src = "app: shop\nplatform:\n  kubernetes: {}\n";
    assert_eq!(
        error(src),
        "cutover.yaml:3:3: platform `kubernetes` is not yet supported (valid: local)"
    );
    let src = "app: shop\nplatform:\n  locl: {}\n";
    assert_eq!(
        error(src),
        "cutover.yaml:3:3: unknown platform `locl`; did you mean `local`? \
         (valid: local; docker and kubernetes are not yet supported)"
    );
    let src = "app: shop\nplatform:\n";
    assert_eq!(
        error(src),
        "cutover.yaml:2:1: `platform` must name one platform, like `local:` \
         (valid: local; docker and kubernetes are not yet supported)"
    );
    let src = "app: shop\nplatform: local\n";
    assert_eq!(
        error(src),
        "cutover.yaml:2:11: `platform` must be a mapping with one key naming the platform, like `local:` \
         (valid: local; docker and kubernetes are not yet supported), got `local`; \
         write `platform:` then `local:` indented below it"
    );
    // A field indented one level too little.
    let src = "app: shop\nplatform:\n  local:\n  command: [x]\n";
    assert_eq!(
        errors(src),
        [
            r#"cutover.yaml:3:3: `platform.local` is missing the required field `command` (the argv to run, e.g. ["./server", "--port", "${PORT}"])"#,
            "cutover.yaml:4:3: unknown platform `command`; `command` belongs in `platform.local` \
             (valid: local; docker and kubernetes are not yet supported)",
        ]
    );
}

#[test]
fn strategy_kinds() {
    let base = "app: shop\nplatform: { local: { command: [x] } }\n";
    assert_eq!(
        error(&format!("{base}strategy:\n  blue_green: {{}}\n")),
        "cutover.yaml:4:3: strategy `blue_green` is not yet supported (valid: canary)"
    );
    assert_eq!(
        error(&format!("{base}strategy:\n  rolling: {{}}\n")),
        "cutover.yaml:4:3: strategy `rolling` is not yet supported (valid: canary)"
    );
    assert_eq!(
        error(&format!("{base}strategy:\n  Canary: {{}}\n")),
        "cutover.yaml:4:3: unknown strategy `Canary`; did you mean `canary`? \
         (valid: canary; blue_green and rolling are not yet supported)"
    );
}

// ---- steps ----

fn steps(list: &str) -> Result<Vec<Step>, Vec<String>> {
    let src = format!(
        "app: shop\nplatform: {{ local: {{ command: [x] }} }}\nstrategy:\n  canary:\n    steps: {list}\n"
    );
    parse(&src, "cutover.yaml")
        .map(|c| c.strategy.canary().steps.clone())
        .map_err(|e| e.diagnostics.iter().map(|d| d.message.clone()).collect())
}

#[test]
fn weights_never_decrease() {
    let s = steps("[{weight: 10%}, {weight: 10%}, {weight: 100%}]").unwrap();
    assert_eq!(
        s.iter().map(|s| s.weight).collect::<Vec<_>>(),
        [pct(10.0), pct(10.0), pct(100.0)]
    );
    assert_eq!(
        steps("[{weight: 50%}, {weight: 20%}, {weight: 30%}, {weight: 10%}]").unwrap_err(),
        [
            "`weight` 20% is lower than the previous step's 50%: weights must never decrease",
            "`weight` 30% is lower than the previous step's 50%: weights must never decrease",
            "`weight` 10% is lower than the previous step's 50%: weights must never decrease",
        ]
    );
    // An invalid weight does not become the one the next is compared with.
    assert_eq!(
        steps("[{weight: 20%}, {weight: 200%}, {weight: 30%}]").unwrap_err(),
        ["`weight` must be a percentage between 0% and 100% like `25%`, got `200%`"]
    );
    assert_eq!(
        steps("[{weight: 0%}]").unwrap_err(),
        ["`weight` must be more than 0%: every step sends some traffic to the new version"]
    );
}

#[test]
fn steps_shape() {
    assert_eq!(
        steps("[]").unwrap_err(),
        ["`steps` must list at least one step, e.g. `- { weight: 100%, pause: 30s }`"]
    );
    assert_eq!(
        steps("[{pause: 1s, wieght: 5%}]").unwrap_err(),
        // Not also "missing the required field `weight`": the typo says it.
        [
            "unknown field `wieght` in `strategy.canary.steps[0]`; did you mean `weight`? (valid: weight, pause)"
        ]
    );
    assert_eq!(
        steps("10%").unwrap_err(),
        ["`steps` must be a list of steps like `- { weight: 10%, pause: 30s }`, got `10%`"]
    );
    let s = steps("[{weight: 1%, pause: until-promoted}, {weight: 2%, pause: 0s}]").unwrap();
    assert_eq!(s[0].pause, Pause::UntilPromoted);
    assert_eq!(s[1].pause, Pause::For(Duration::ZERO));
    assert_eq!(
        steps("[{weight: 1%, pause: forever}]").unwrap_err(),
        [
            "invalid duration `forever`: expected a duration like `500ms`, `30s` or `2m`, \
          or `until-promoted` to wait for `cutover promote`"
        ]
    );
}

// ---- percentages ----

/// Parses `v` as an `error_rate.max`.
fn percent(v: &str) -> Result<Percent, String> {
    // Where the value starts; an empty value is blamed on its key, `max`.
    let at = if v.is_empty() { (6, 7) } else { (6, 12) };
    let src = format!(
        "app: shop\nplatform: {{ local: {{ command: [x] }} }}\nanalysis:\n  metrics:\n    error_rate:\n      max: {v}\n"
    );
    match parse(&src, "cutover.yaml") {
        Ok(c) => Ok(c.analysis.metrics.error_rate.unwrap().max.unwrap()),
        Err(e) => {
            assert_eq!(e.diagnostics.len(), 1, "{e}");
            assert_eq!((e.diagnostics[0].line, e.diagnostics[0].col), at, "{e}");
            Err(e.diagnostics[0].message.clone())
        }
    }
}

#[test]
fn percent_edge_cases() {
    assert_eq!(percent("10%"), Ok(pct(10.0)));
    assert_eq!(percent("0.5%"), Ok(pct(0.5)));
    assert_eq!(percent("100%"), Ok(pct(100.0)));
    assert_eq!(percent("100.0%"), Ok(pct(100.0)));
    assert_eq!(percent("0%"), Ok(pct(0.0)));
    assert_eq!(percent(".5%"), Ok(pct(0.5)));
    assert_eq!(percent("12.25%"), Ok(pct(12.25)));
    assert_eq!(percent("'7%'"), Ok(pct(7.0)));
    assert_eq!(percent("10 %"), Ok(pct(10.0)));
    assert_eq!(percent("0.01%").unwrap().basis_points(), 1);
    assert_eq!(percent("100%").unwrap().basis_points(), 10_000);

    let out_of_range = |got: &str| {
        format!("`max` must be a percentage between 0% and 100% like `25%`, got `{got}`")
    };
    for bad in [
        "100.1%",
        "-5%",
        "150%",
        "abc%",
        "5%%",
        "1e2%",
        "1.2.3%",
        "nan%",
        "inf%",
        "5 percent",
    ] {
        assert_eq!(percent(bad), Err(out_of_range(bad)), "{bad}");
    }
    // A plain `%` is a YAML directive; quoted, it is a bad percentage.
    assert_eq!(percent("'%'"), Err(out_of_range("%")));
    assert_eq!(
        percent("10"),
        Err(
            "`max` must be a percentage like `10%`, got the bare number `10`; write it as `10%`"
                .into()
        )
    );
    assert_eq!(
        percent("'10'"),
        Err(
            "`max` must be a percentage like `10%`, got the bare number `10`; write it as `10%`"
                .into()
        )
    );
    assert_eq!(
        percent("0.05"),
        Err("`max` must be a percentage like `10%`, got the bare number `0.05`; write it as `0.05%`, \
             or `5%` if you meant a fraction of 1"
            .into())
    );
    assert_eq!(
        percent("[5%]"),
        Err("`max` must be a percentage between 0% and 100% like `25%`, got a list".into())
    );
    assert_eq!(
        percent(""),
        Err("`max` must be a percentage between 0% and 100% like `25%`, got nothing".into())
    );
}

#[test]
fn percent_helpers() {
    assert_eq!(Percent::from_percent(25.0).unwrap().fraction(), 0.25);
    assert_eq!(Percent::from_percent(100.5), None);
    assert_eq!(Percent::from_percent(f64::NAN), None);
    assert_eq!(pct(25.0).to_string(), "25%");
    assert_eq!(pct(0.5).to_string(), "0.50%");
}

// ---- durations ----

/// Parses `v` as `health.interval`.
fn interval(v: &str) -> Result<Duration, String> {
    // Where the value starts; an empty value is blamed on its key, `interval`.
    let at = if v.is_empty() { (4, 3) } else { (4, 13) };
    let src =
        format!("app: shop\nplatform: {{ local: {{ command: [x] }} }}\nhealth:\n  interval: {v}\n");
    match parse(&src, "cutover.yaml") {
        Ok(c) => Ok(c.health.interval),
        Err(e) => {
            assert_eq!(e.diagnostics.len(), 1, "{e}");
            assert_eq!((e.diagnostics[0].line, e.diagnostics[0].col), at, "{e}");
            Err(e.diagnostics[0].message.clone())
        }
    }
}

#[test]
fn duration_edge_cases() {
    assert_eq!(interval("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(interval("30s"), Ok(secs(30)));
    assert_eq!(interval("2m"), Ok(secs(120)));
    assert_eq!(interval("1h"), Ok(secs(3600)));
    assert_eq!(interval("1h 30m"), Ok(secs(5400)));
    assert_eq!(interval("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(interval("\"10s\""), Ok(secs(10)));

    let expected = "expected a duration like `500ms`, `30s` or `2m`";
    assert_eq!(
        interval("0s"),
        Err("`interval` must be longer than 0s, got `0s`".into())
    );
    assert_eq!(
        interval("30"),
        Err(format!(
            "invalid duration `30`: {expected} (a bare number has no unit)"
        ))
    );
    assert_eq!(
        interval("1.5"),
        Err(format!(
            "invalid duration `1.5`: {expected} (a bare number has no unit)"
        ))
    );
    assert_eq!(
        interval("-1s"),
        Err(format!("invalid duration `-1s`: {expected}"))
    );
    assert_eq!(
        interval("3 parsecs"),
        Err(format!("invalid duration `3 parsecs`: {expected}"))
    );
    assert_eq!(
        interval("''"),
        Err(format!("invalid duration an empty string: {expected}"))
    );
    assert_eq!(
        interval("{}"),
        Err(format!("invalid duration: {expected}, got a mapping"))
    );
    assert_eq!(
        interval(""),
        Err(format!("invalid duration: {expected}, got nothing"))
    );

    // drain_timeout may be zero; startup_timeout may not.
    let src = "app: shop\nplatform:\n  local:\n    command: [x]\n    drain_timeout: 0s\n    startup_timeout: 0ms\n";
    assert_eq!(
        error(src),
        "cutover.yaml:6:22: `startup_timeout` must be longer than 0s, got `0ms`"
    );
}

// ---- the other values ----

#[test]
fn app_names() {
    let app = |name: &str| {
        parse(
            &format!("app: {name}\nplatform: {{ local: {{ command: [x] }} }}\n"),
            "c.yaml",
        )
    };
    for good in ["a", "shop", "shop-2", "a-b-c", &"a".repeat(63)] {
        assert_eq!(app(good).unwrap().app, good);
    }
    for bad in [
        "Shop",
        "2shop",
        "-shop",
        "shop_2",
        "shöp",
        "''",
        &"a".repeat(64),
        "123",
    ] {
        let e = app(bad).unwrap_err();
        assert!(
            e.diagnostics[0]
                .message
                .starts_with("`app` must be 1-63 characters"),
            "{bad}: {e}"
        );
    }
    assert!(
        app("shop_2")
            .unwrap_err()
            .to_string()
            .ends_with("did you mean `shop-2`?")
    );
}

#[test]
fn listen_addresses() {
    let listen = |v: &str| {
        parse(
            &format!("app: shop\nlisten: {v}\nplatform: {{ local: {{ command: [x] }} }}\n"),
            "c.yaml",
        )
    };
    assert_eq!(
        listen("0.0.0.0:80").unwrap().listen,
        "0.0.0.0:80".parse().unwrap()
    );
    assert_eq!(
        listen("'[::]:8080'").unwrap().listen,
        "[::]:8080".parse().unwrap()
    );
    assert!(
        listen("8080")
            .unwrap_err()
            .to_string()
            .ends_with("got `8080`; did you mean `127.0.0.1:8080`?")
    );
    assert!(listen("127.0.0.1").is_err());
    assert!(listen("127.0.0.1:99999").is_err());
}

#[test]
fn numbers() {
    let local =
        |extra: &str| format!("app: shop\nplatform:\n  local:\n    command: [x]\n    {extra}\n");
    assert_eq!(ok(&local("instances: 64")).platform.local().instances, 64);
    assert_eq!(
        error(&local("instances: 65")),
        "cutover.yaml:5:16: `instances` must be a whole number from 1 to 64, got `65`"
    );
    assert_eq!(
        error(&local("instances: 1.5")),
        "cutover.yaml:5:16: `instances` must be a whole number from 1 to 64, got `1.5`"
    );
    assert_eq!(
        error(&local("instances: many")),
        "cutover.yaml:5:16: `instances` must be a whole number from 1 to 64, got `many`"
    );
    let analysis = |extra: &str| format!("{MINIMAL}analysis:\n  {extra}\n");
    assert_eq!(ok(&analysis("min_requests: 0")).analysis.min_requests, 0);
    assert_eq!(
        error(&analysis("min_requests: -1")),
        "cutover.yaml:6:17: `min_requests` must be a whole number (0 or more), got `-1`"
    );
    assert_eq!(
        error(&analysis("inconclusive_limit: 0")),
        "cutover.yaml:6:23: `inconclusive_limit` must be a whole number of at least 1, got `0`"
    );
}

#[test]
fn command_shapes() {
    let cmd = |c: &str| format!("app: shop\nplatform:\n  local:\n    command: {c}\n");
    assert_eq!(
        error(&cmd("[]")),
        "cutover.yaml:4:14: `command` must not be empty: give at least the program to run, like [\"./server\"]"
    );
    assert_eq!(
        error(&cmd("[\"\", x]")),
        "cutover.yaml:4:15: `command[0]` must name the program to run, got an empty string"
    );
    assert_eq!(
        error(&cmd("[x, {a: 1}]")),
        "cutover.yaml:4:18: `command[1]` must be a string, got a mapping"
    );
    let block = "app: shop\nplatform:\n  local:\n    command:\n      - ./shop\n      - --port\n      - ${PORT}\n";
    assert_eq!(
        ok(block).platform.local().command,
        ["./shop", "--port", "${PORT}"]
    );
}

#[test]
fn metrics_rules() {
    let metrics = |m: &str| format!("{MINIMAL}analysis:\n  metrics:\n{m}");
    assert_eq!(
        error(&metrics("")),
        "cutover.yaml:6:3: `analysis.metrics` has no metrics: give at least one (valid: error_rate, \
         latency_p50, latency_p95, latency_p99), or leave `metrics` out for the default \
         `error_rate: { max: 5% }`"
    );
    assert_eq!(
        error(&metrics("    latency_p95: {}\n")),
        "cutover.yaml:7:5: `analysis.metrics.latency_p95` needs at least one of `max` or `max_ratio`, \
         e.g. `max: 300ms`"
    );
    assert_eq!(
        error(&metrics("    error_rate:\n")),
        "cutover.yaml:7:5: `analysis.metrics.error_rate` needs at least one of `max` or \
         `max_over_stable`, e.g. `max: 5%`"
    );
    assert_eq!(
        error(&metrics("    latency_p99: { max_ratio: -2 }\n")),
        "cutover.yaml:7:31: `max_ratio` must be a number greater than 0 like `1.5` \
         (the canary's value over the stable's), got `-2`"
    );
    assert_eq!(
        error(&metrics("    latency_p99: { max: 0ms }\n")),
        "cutover.yaml:7:25: `max` must be longer than 0s, got `0ms`"
    );
    // Only latency given: no default error rate sneaks in.
    let m = ok(&metrics("    latency_p99: { max: 1s }\n"))
        .analysis
        .metrics;
    assert_eq!(m.error_rate, None);
    assert_eq!(
        m.latency_p99,
        Some(LatencyRule {
            max: Some(secs(1)),
            max_ratio: None
        })
    );
}

#[test]
fn env_values_keep_their_text() {
    let src = "app: shop\nplatform:\n  local:\n    command: [x]\n    env:\n      A: 0x10\n      B: 1.50\n      C: on\n      D: ''\n      E:\n";
    assert_eq!(
        error(src),
        "cutover.yaml:10:7: `env.E` has no value; write `E: \"\"` for an empty one"
    );
    let env = ok(&src.replace("      E:\n", ""))
        .platform
        .local()
        .env
        .clone();
    assert_eq!(env["A"], "0x10");
    assert_eq!(env["B"], "1.50");
    assert_eq!(env["C"], "on");
    assert_eq!(env["D"], "");
}

#[test]
fn unknown_fields_everywhere() {
    const HEAD: &str = "app: shop\nplatform:\n  local:\n    command: [x]\n";
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
    use super::check::did_you_mean;
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

// ---- paths and files ----

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let with = |extra: &str, file: &str| {
        let src = format!("app: shop\n{extra}platform:\n  local:\n    command: [x]\n");
        let c = parse(&src, file).unwrap_or_else(|e| panic!("{e}"));
        (c.state_dir, c.platform.local().workdir.clone())
    };
    assert_eq!(with("", "cutover.yaml"), (".cutover".into(), ".".into()));
    assert_eq!(with("", "./cutover.yaml"), (".cutover".into(), ".".into()));
    assert_eq!(
        with("", "deploy/cutover.yaml"),
        ("deploy/.cutover".into(), "deploy".into())
    );
    assert_eq!(
        with("", "/srv/shop/cutover.yaml"),
        ("/srv/shop/.cutover".into(), "/srv/shop".into())
    );
    assert_eq!(
        with("state_dir: ./state\n", "/srv/shop/cutover.yaml"),
        ("/srv/shop/state".into(), "/srv/shop".into())
    );
    assert_eq!(
        with("state_dir: /var/lib/x\n", "deploy/cutover.yaml").0,
        PathBuf::from("/var/lib/x")
    );
    assert_eq!(
        with("state_dir: ../state\n", "deploy/cutover.yaml").0,
        PathBuf::from("deploy/../state")
    );
    let src = "app: shop\nplatform:\n  local:\n    command: [x]\n    workdir: ./bin\n";
    assert_eq!(
        parse(src, "deploy/c.yaml")
            .unwrap()
            .platform
            .local()
            .workdir,
        Path::new("deploy/bin")
    );
}

#[test]
fn load_reads_the_file_and_names_it_on_error() {
    let dir = std::env::temp_dir().join(format!("cutover-spec-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cutover.yaml");
    std::fs::write(&path, MINIMAL).unwrap();
    let c = load(&path).unwrap();
    assert_eq!(c.state_dir, dir.join(".cutover"));
    assert_eq!(c.platform.local().workdir, dir);

    std::fs::write(&path, "app: shop\nplatform:\n  local: {}\n").unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(e.diagnostics[0].file, path.display().to_string());
    assert_eq!((e.diagnostics[0].line, e.diagnostics[0].col), (3, 3));

    let missing = dir.join("nope.yaml");
    let e = load(&missing).unwrap_err();
    assert_eq!(e.diagnostics.len(), 1);
    assert_eq!(e.diagnostics[0].line, 0);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cannot read the config file: no such file; run `cutover init` to write a commented starter",
            missing.display()
        )
    );

    std::fs::write(&path, b"app: \xff\n").unwrap();
    let e = load(&path).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("cannot read the config file: it is not UTF-8 text"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn aliases_and_merge_keys_work() {
    let src = r#"app: shop
platform:
  local:
    command: ["./shop"]
    env: &env { A: "1" }
strategy:
  canary:
    steps:
      - &step { weight: 10%, pause: 1s }
      - <<: *step
        weight: 100%
"#;
    let c = ok(src);
    assert_eq!(
        c.strategy.canary().steps[1],
        Step {
            weight: pct(100.0),
            pause: Pause::For(secs(1))
        }
    );
}
