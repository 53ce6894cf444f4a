use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

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
                    mirror: None,
                },
                Step {
                    weight: pct(50.0),
                    pause: Pause::For(secs(30)),
                    mirror: None,
                },
                Step {
                    weight: pct(100.0),
                    pause: Pause::For(secs(30)),
                    mirror: None,
                },
            ],
            baseline: Baseline::Stable,
            sticky: None,
        }),
        analysis: AnalysisSpec {
            interval: secs(5),
            min_requests: 20,
            failure_limit: 2,
            inconclusive_limit: 6,
            metrics: MetricRules {
                error_rate: Some(ErrorRateRule {
                    max: Some(pct(5.0)),
                    max_over_stable: None,
                }),
                latency_p50: None,
                latency_p95: None,
                latency_p99: None,
                apdex: None,
                custom: Vec::new(),
            },
            sequential: Some(SequentialSpec {
                alpha: pct(1.0),
                errors: true,
                latency_quantile: Some(pct(95.0)),
            }),
            comparison: Some(ComparisonSpec {
                confidence: pct(99.0),
                tolerance: pct(10.0),
                min_samples: 50,
            }),
            logs: Some(LogCheckSpec {
                new_errors: LogAction::Warn,
                rate_factor: 3.0,
                min_count: 3,
            }),
            source: crate::MetricSource::Builtin,
        },
        proxy: ProxySpec {
            max_header_size: 65_536,
            header_read_timeout: secs(10),
            idle_timeout: secs(60),
            tunnel_idle_timeout: Some(secs(3600)),
            max_connections: 10_000,
            max_requests_per_instance: 0,
            max_body_size: None,
            threads: 0,
        },
        api: ApiSpec {
            read_auth: false,
            allow_remote_open_reads: false,
        },
        approvals: None,
        windows: None,
        hooks: HooksSpec::default(),
        migrations: None,
        notifications: NotificationsSpec::default(),
        gates: vec![],
        smoke: vec![],
        environment: None,
        environments: vec![],
        logs: LogsSpec {
            max_size: 10 * 1024 * 1024,
            keep: 3,
            keep_runs: 20,
        },
    };
    assert_eq!(c, expected);
    assert_eq!(c.api, ApiSpec::default());
    assert_eq!(c.logs, LogsSpec::default());
    // The `Default` impls and `defaults` agree with what parsing fills in.
    assert_eq!(c.proxy, ProxySpec::default());
    assert_eq!(c.health, HealthCheck::default());
    assert_eq!(c.strategy, StrategySpec::default());
    assert_eq!(c.analysis, AnalysisSpec::default());
    assert_eq!(canary(&c).steps, defaults::CANARY_STEPS);
    assert_eq!(canary(&c).baseline, defaults::BASELINE);
    assert_eq!(canary(&c).sticky, defaults::STICKY);
}

#[test]
fn blue_green_defaults() {
    let bg = ok(&format!("{MINIMAL}strategy:\n  blue_green:\n"));
    assert_eq!(
        *blue_green(&bg),
        BlueGreenSpec {
            auto_promote: true,
            preview_listen: None,
            smoke_checks: vec![],
            preview_analysis: None,
            scale_down_delay: secs(30),
        }
    );
    assert_eq!(*blue_green(&bg), BlueGreenSpec::default());
    assert_eq!(bg.strategy.name(), "blue_green");
    // Everything but the strategy is as in the minimal config.
    assert_eq!(
        Config {
            strategy: StrategySpec::default(),
            ..bg
        },
        ok(MINIMAL)
    );

    let src =
        format!("{MINIMAL}strategy:\n  blue_green:\n    smoke_checks:\n      - path: /ready\n");
    assert_eq!(
        blue_green(&ok(&src)).smoke_checks,
        [SmokeCheck {
            method: "GET".into(),
            path: "/ready".into(),
            headers: BTreeMap::new(),
            status: 200,
            body_contains: None,
            max_latency: None,
            json: BTreeMap::new(),
        }]
    );
    assert_eq!(defaults::SMOKE_METHOD, "GET");
    assert_eq!(defaults::SMOKE_STATUS, 200);
}

#[test]
fn empty_sections_mean_defaults() {
    let src = format!("{MINIMAL}health:\nstrategy:\nanalysis: {{}}\n");
    assert_eq!(ok(&src), ok(MINIMAL));
    let src = format!("{MINIMAL}strategy:\n  canary:\n");
    assert_eq!(ok(&src), ok(MINIMAL));
    let src = "app: shop\nplatform:\n  local:\n    command: [x, \"${PORT}\"]\n    env:\n";
    assert!(ok(src).platform.local().unwrap().env.is_empty());
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
    baseline: fresh
    sticky: cookie
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
    apdex: { threshold: 120ms, min: 0.85 }
  sequential: { alpha: 0.5%, errors: false, latency_quantile: 99% }
  comparison: { confidence: 95%, tolerance: 20%, min_samples: 200 }
  logs: { new_errors: fail, rate_factor: 2.5, min_count: 1 }
proxy:
  max_header_size: 16KiB
  header_read_timeout: 5s
  idle_timeout: 2m
  tunnel_idle_timeout: none
  max_connections: 0
  max_requests_per_instance: 100
  max_body_size: 10MiB
  threads: 2
api:
  read_auth: true
  allow_remote_open_reads: true
approvals:
  required: 2
  from: [alice, bob, carol@example.com]
  timeout: 8h
  hotfix: { from: [dana] }
windows:
  timezone: Europe/Berlin
  allow:
    - { days: [mon-thu], hours: "09:00-17:00" }
    - { days: fri-mon, hours: "22:00-02:00" }
  freezes:
    - { from: 2026-12-20, until: 2027-01-04, reason: year-end freeze }
    - { from: "2026-11-27 18:00", until: 2026-11-28T06:00, reason: sale }
logs:
  max_size: 1MiB
  keep: 0
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
                    mirror: None,
                },
                Step {
                    weight: pct(25.0),
                    pause: Pause::UntilPromoted,
                    mirror: None,
                },
                Step {
                    weight: pct(25.0),
                    pause: Pause::For(secs(120)),
                    mirror: None,
                },
                Step {
                    weight: pct(100.0),
                    pause: Pause::For(defaults::STEP_PAUSE),
                    mirror: None,
                },
            ],
            baseline: Baseline::Fresh,
            sticky: Some(Sticky::Cookie),
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
                apdex: Some(ApdexRule {
                    threshold: Duration::from_millis(120),
                    min: 0.85,
                }),
                custom: Vec::new(),
            },
            sequential: Some(SequentialSpec {
                alpha: pct(0.5),
                errors: false,
                latency_quantile: Some(pct(99.0)),
            }),
            comparison: Some(ComparisonSpec {
                confidence: pct(95.0),
                tolerance: pct(20.0),
                min_samples: 200,
            }),
            logs: Some(LogCheckSpec {
                new_errors: LogAction::Fail,
                rate_factor: 2.5,
                min_count: 1,
            }),
            source: crate::MetricSource::Builtin,
        },
        proxy: ProxySpec {
            max_header_size: 16 * 1024,
            header_read_timeout: secs(5),
            idle_timeout: secs(120),
            tunnel_idle_timeout: None,
            max_connections: 0,
            max_requests_per_instance: 100,
            max_body_size: Some(10 * 1024 * 1024),
            threads: 2,
        },
        api: ApiSpec {
            read_auth: true,
            allow_remote_open_reads: true,
        },
        approvals: Some(ApprovalsSpec {
            standard: Quorum {
                required: 2,
                from: ["alice", "bob", "carol@example.com"]
                    .map(String::from)
                    .to_vec(),
            },
            hotfix: Quorum {
                required: 1,
                from: vec!["dana".into()],
            },
            timeout: secs(8 * 3600),
        }),
        windows: Some(WindowsSpec {
            timezone: "Europe/Berlin".into(),
            allow: vec![
                DeployWindow {
                    days: 0b1111,
                    from_minute: 9 * 60,
                    until_minute: 17 * 60,
                },
                DeployWindow {
                    days: 0b111_0001,
                    from_minute: 22 * 60,
                    until_minute: 2 * 60,
                },
            ],
            freezes: vec![
                Freeze {
                    from: jiff::civil::date(2026, 12, 20).at(0, 0, 0, 0),
                    until: jiff::civil::date(2027, 1, 5).at(0, 0, 0, 0),
                    reason: "year-end freeze".into(),
                },
                Freeze {
                    from: jiff::civil::date(2026, 11, 27).at(18, 0, 0, 0),
                    until: jiff::civil::date(2026, 11, 28).at(6, 0, 0, 0),
                    reason: "sale".into(),
                },
            ],
        }),
        hooks: HooksSpec::default(),
        migrations: None,
        notifications: NotificationsSpec::default(),
        gates: vec![],
        smoke: vec![],
        environment: None,
        environments: vec![],
        logs: LogsSpec {
            max_size: 1024 * 1024,
            keep: 0,
            keep_runs: 20,
        },
    };
    assert_eq!(c, expected);
    assert_eq!(canary(&c).steps[0].weight.basis_points(), 50);
}

#[test]
fn rolling_defaults() {
    let r = ok(&format!("{MINIMAL}strategy:\n  rolling: {{}}\n"));
    assert_eq!(
        *rolling(&r),
        RollingSpec {
            max_surge: Count::Absolute(1),
            max_unavailable: Count::Absolute(0),
            pause: secs(10),
        }
    );
    assert_eq!(*rolling(&r), RollingSpec::default());
    assert_eq!(r.strategy.name(), "rolling");
}

#[test]
fn blue_green_round_trip() {
    let src = format!(
        r#"{MINIMAL}strategy:
  blue_green:
    auto_promote: false
    preview_listen: "[::1]:9091"
    smoke_checks:
      - path: /ready
      - method: POST
        path: /orders?dry-run=1
        headers:
          Content-Type: application/json
          X-Retries: 3
          Authorization: ""
        status: 201
        body_contains: "\"id\":"
        max_latency: 250ms
      - {{ method: HEAD, path: /, status: 404, body_contains: 404 }}
    preview_analysis: 2m
    scale_down_delay: 0s
"#
    );
    let c = ok(&src);
    let check = |method: &str, path: &str, status| SmokeCheck {
        method: method.into(),
        path: path.into(),
        headers: BTreeMap::new(),
        status,
        body_contains: None,
        max_latency: None,
        json: BTreeMap::new(),
    };
    let expected = BlueGreenSpec {
        auto_promote: false,
        preview_listen: Some("[::1]:9091".parse().unwrap()),
        smoke_checks: vec![
            check("GET", "/ready", 200),
            SmokeCheck {
                headers: [
                    ("Content-Type", "application/json"),
                    ("X-Retries", "3"),
                    ("Authorization", ""),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
                body_contains: Some("\"id\":".into()),
                max_latency: Some(Duration::from_millis(250)),
                ..check("POST", "/orders?dry-run=1", 201)
            },
            SmokeCheck {
                body_contains: Some("404".into()),
                ..check("HEAD", "/", 404)
            },
        ],
        preview_analysis: Some(secs(120)),
        scale_down_delay: Duration::ZERO,
    };
    assert_eq!(*blue_green(&c), expected);
}

#[test]
fn rolling_round_trip() {
    let src = format!(
        "{MINIMAL}strategy:\n  rolling:\n    max_surge: 25%\n    max_unavailable: 2\n    pause: 1m\n"
    );
    assert_eq!(
        *rolling(&ok(&src)),
        RollingSpec {
            max_surge: Count::Percent(pct(25.0)),
            max_unavailable: Count::Absolute(2),
            pause: secs(60),
        }
    );
    let src = format!(
        "{MINIMAL}strategy:\n  rolling:\n    max_surge: 0\n    max_unavailable: 100%\n    pause: 0s\n"
    );
    assert_eq!(
        *rolling(&ok(&src)),
        RollingSpec {
            max_surge: Count::Absolute(0),
            max_unavailable: Count::Percent(pct(100.0)),
            pause: Duration::ZERO,
        }
    );
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
        "baseline:",
        "sticky:",
        "blue_green:",
        "auto_promote:",
        "preview_listen:",
        "smoke_checks:",
        "method:",
        "headers:",
        "status:",
        "body_contains:",
        "max_latency:",
        "preview_analysis:",
        "scale_down_delay:",
        "rolling:",
        "max_surge:",
        "max_unavailable:",
        "proxy:",
        "max_header_size:",
        "header_read_timeout:",
        "idle_timeout:",
        "tunnel_idle_timeout:",
        "max_connections:",
        "max_requests_per_instance:",
        "max_body_size:",
        "threads:",
        "api:",
        "read_auth:",
        "allow_remote_open_reads:",
        "approvals:",
        "hotfix:",
        "windows:",
        "timezone:",
        "freezes:",
        "hooks:",
        "before_deploy:",
        "after_promotion:",
        "on_rollback:",
        "run:",
        "migrations:",
        "up:",
        "down:",
        "reversible:",
        "validate:",
        "database_url:",
        "notifications:",
        "webhooks:",
        "url:",
        "format:",
        "events:",
        "secret_env:",
        "github:",
        "gates:",
        "smoke:",
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

/// STARTER with `strategy.canary` deleted and the commented-out `name` alternative
/// uncommented, as a user would switch; the other alternative is left out.
fn starter_with(name: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    let mut uncommenting = false;
    for line in STARTER.lines() {
        let header = line
            .strip_prefix("  # ")
            .or_else(|| line.strip_prefix("  "))
            .and_then(|l| l.strip_suffix(':'))
            .filter(|l| ["canary", "blue_green", "rolling"].contains(l));
        if let Some(kind) = header {
            uncommenting = kind == name;
            skipping = !uncommenting;
            if uncommenting {
                out.push_str(&format!("  {name}:\n"));
            }
            continue;
        }
        if uncommenting && let Some(rest) = line.strip_prefix("  #   ") {
            out.push_str(&format!("    {rest}\n"));
            continue;
        }
        if skipping && (line.starts_with("    ") || line.starts_with("  #   ")) {
            continue;
        }
        skipping = false;
        uncommenting = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `text` with every commented-out option uncommented: a `# ` before `key:`, `- key:`
/// or the continuation `  key:` of a list item.
fn uncomment_options(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let option = line.trim_start().strip_prefix("# ").filter(|rest| {
            let key = rest
                .strip_prefix("- ")
                .or_else(|| rest.strip_prefix("  "))
                .unwrap_or(rest);
            key.split_once(':').is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
        });
        match option {
            Some(rest) => out.push_str(&format!("{indent}{rest}\n")),
            None => out.push_str(&format!("{line}\n")),
        }
    }
    out
}

#[test]
fn starter_alternatives_parse() {
    let minimal = ok(MINIMAL);
    let with_defaults = |strategy| Config {
        app: "my-app".into(),
        platform: PlatformSpec::Local(LocalSpec {
            command: ["./server", "--port", "${PORT}"].map(String::from).to_vec(),
            ..minimal.platform.local().unwrap().clone()
        }),
        strategy,
        ..minimal.clone()
    };

    // As written, each alternative shows its defaults.
    let kinds = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("  ") && l.ends_with(':') && !l[2..].starts_with(' '))
            .map(|l| l.trim().to_owned())
            .filter(|l| l.contains("canary") || l.contains("blue_green") || l.contains("rolling"))
            .collect()
    };
    let text = starter_with("blue_green");
    assert_eq!(kinds(&text), ["blue_green:"], "{text}");
    let c = parse(&text, "cutover.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        c,
        with_defaults(StrategySpec::BlueGreen(BlueGreenSpec::default()))
    );

    let text = starter_with("rolling");
    assert_eq!(kinds(&text), ["rolling:"], "{text}");
    let c = parse(&text, "cutover.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        c,
        with_defaults(StrategySpec::Rolling(RollingSpec::default()))
    );

    // And the options commented out inside them are valid too.
    let text = uncomment_options(&starter_with("blue_green"));
    let c = parse(&text, "cutover.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let bg = blue_green(&c);
    assert_eq!(bg.preview_listen, Some("127.0.0.1:8081".parse().unwrap()));
    assert_eq!(bg.preview_analysis, Some(secs(60)));
    assert_eq!(
        bg.smoke_checks,
        [SmokeCheck {
            method: "GET".into(),
            path: "/ready".into(),
            headers: BTreeMap::new(),
            status: 200,
            body_contains: Some("ok".into()),
            max_latency: Some(Duration::from_millis(500)),
            json: BTreeMap::new(),
        }]
    );
    // The canary itself, with every option uncommented, is what it was, but for
    // the first step's mirror.
    let text = uncomment_options(&starter_with("canary"));
    let mut expected = defaults::CANARY_STEPS.to_vec();
    expected[0].mirror = Some(pct(20.0));
    let c = parse(&text, "cutover.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(canary(&c).steps, expected);
}

// ---- paths and files ----

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let with = |extra: &str, file: &str| {
        let src =
            format!("app: shop\n{extra}platform:\n  local:\n    command: [x, \"${{PORT}}\"]\n");
        let c = parse(&src, file).unwrap_or_else(|e| panic!("{e}"));
        (c.state_dir, c.platform.local().unwrap().workdir.clone())
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
    let src = "app: shop\nplatform:\n  local:\n    command: [x, \"${PORT}\"]\n    workdir: ./bin\n";
    assert_eq!(
        parse(src, "deploy/c.yaml")
            .unwrap()
            .platform
            .local()
            .unwrap()
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
    assert_eq!(c.platform.local().unwrap().workdir, dir);

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
    command: ["./shop", "--port", "${PORT}"]
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
        canary(&c).steps[1],
        Step {
            weight: pct(100.0),
            pause: Pause::For(secs(1)),
            mirror: None,
        }
    );
}
