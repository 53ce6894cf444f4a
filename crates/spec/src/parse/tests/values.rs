use super::*;

// ---- percentages ----

/// Parses `v` as an `error_rate.max`.
fn percent(v: &str) -> Result<Percent, String> {
    // Where the value starts; an empty value is blamed on its key, `max`.
    let at = if v.is_empty() { (6, 7) } else { (6, 12) };
    let src = format!(
        "app: shop\nplatform: {{ local: {{ command: [x, \"${{PORT}}\"] }} }}\nanalysis:\n  metrics:\n    error_rate:\n      max: {v}\n"
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

// ---- counts of instances ----

#[test]
fn count_rounding() {
    let p = |v| Count::Percent(pct(v));
    // Surge rounds up, unavailable rounds down, like Kubernetes.
    for (count, instances, surge, unavailable) in [
        (p(10.0), 3, 1, 0),
        (p(50.0), 3, 2, 1),
        (p(20.0), 3, 1, 0),
        (p(25.0), 4, 1, 1),
        (p(25.0), 10, 3, 2),
        (p(33.33), 3, 1, 0),
        (p(100.0), 3, 3, 3),
        (p(0.0), 3, 0, 0),
        (p(50.0), 0, 0, 0),
        // No float noise: 7% of 100 is 7, not 7.000000000000001 rounded up.
        (p(7.0), 100, 7, 7),
        (p(0.5), 64, 1, 0),
    ] {
        assert_eq!(
            (count.surge(instances), count.unavailable(instances)),
            (surge, unavailable),
            "{count} of {instances}"
        );
    }
    // Absolute counts pass through, unclamped: the engine clamps.
    assert_eq!(Count::Absolute(5).surge(3), 5);
    assert_eq!(Count::Absolute(5).unavailable(3), 5);
    assert_eq!(Count::Absolute(0).surge(3), 0);
    assert_eq!(Count::Absolute(2).to_string(), "2");
    assert_eq!(p(25.0).to_string(), "25%");
}

// ---- durations ----

/// Parses `v` as `health.interval`.
fn interval(v: &str) -> Result<Duration, String> {
    // Where the value starts; an empty value is blamed on its key, `interval`.
    let at = if v.is_empty() { (4, 3) } else { (4, 13) };
    let src = format!(
        "app: shop\nplatform: {{ local: {{ command: [x, \"${{PORT}}\"] }} }}\nhealth:\n  interval: {v}\n"
    );
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
    let src = "app: shop\nplatform:\n  local:\n    command: [x, \"${PORT}\"]\n    drain_timeout: 0s\n    startup_timeout: 0ms\n";
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
            &format!("app: {name}\nplatform: {{ local: {{ command: [x, \"${{PORT}}\"] }} }}\n"),
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
            &format!(
                "app: shop\nlisten: {v}\nplatform: {{ local: {{ command: [x, \"${{PORT}}\"] }} }}\n"
            ),
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
    let local = |extra: &str| {
        format!("app: shop\nplatform:\n  local:\n    command: [x, \"${{PORT}}\"]\n    {extra}\n")
    };
    assert_eq!(
        ok(&local("instances: 64"))
            .platform
            .local()
            .unwrap()
            .instances,
        64
    );
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
        ok(block).platform.local().unwrap().command,
        ["./shop", "--port", "${PORT}"]
    );
}

#[test]
fn command_without_port_is_refused_instead_of_timing_out() {
    let local = |rest: &str| format!("app: shop\nplatform:\n  local:\n    command: {rest}\n");
    let refused = "neither `command` nor `env` uses `${PORT}`, so the service would not know \
                   which port to listen on; add `${PORT}` to `command`, like \
                   [\"./server\", \"--port\", \"${PORT}\"], or, if the service reads the `PORT` \
                   environment variable, say so with `env: { PORT: \"${PORT}\" }`";
    assert_eq!(
        error(&local("[./shop]")),
        format!("cutover.yaml:4:14: {refused}")
    );
    // `$PORT` for a shell is not `${PORT}`; the env var must be asked for.
    assert_eq!(
        error(&local(
            "[sh, -c, \"exec ./shop --port $PORT\"]\n    env: { A: \"${VERSION}\" }"
        )),
        format!("cutover.yaml:4:14: {refused}")
    );
    assert_eq!(
        error(&local("\n      - ./shop\n      - --port=8080")),
        format!("cutover.yaml:5:7: {refused}")
    );
    // `${PORT}` only in `env` is enough.
    let c = ok(&local("[./shop]\n    env: { PORT: \"${PORT}\" }"));
    assert_eq!(c.platform.local().unwrap().env["PORT"], "${PORT}");
    ok(&local(
        "[./shop]\n    env: { LISTEN: \"127.0.0.1:${PORT}\" }",
    ));
    ok(&local("[./shop, \"--listen=:${PORT}\"]"));
    // Not said on top of another mistake in `command` or `env`.
    assert_eq!(
        error(&local("[./shop]\n    env: { PORT: \"${PROT}\" }")),
        "cutover.yaml:5:19: unknown placeholder `${PROT}` in `env.PORT`; did you mean `${PORT}`? \
         (valid: ${PORT}, ${VERSION})"
    );
}

#[test]
fn metrics_rules() {
    let metrics = |m: &str| format!("{MINIMAL}analysis:\n  metrics:\n{m}");
    assert_eq!(
        error(&metrics("")),
        "cutover.yaml:6:3: `analysis.metrics` has no metrics: give at least one (valid: error_rate, \
         latency_p50, latency_p95, latency_p99, apdex), or leave `metrics` out for the default \
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
    let src = "app: shop\nplatform:\n  local:\n    command: [x, \"${PORT}\"]\n    env:\n      A: 0x10\n      B: 1.50\n      C: on\n      D: ''\n      E:\n";
    assert_eq!(
        error(src),
        "cutover.yaml:10:7: `env.E` has no value; write `E: \"\"` for an empty one"
    );
    let env = ok(&src.replace("      E:\n", ""))
        .platform
        .local()
        .unwrap()
        .env
        .clone();
    assert_eq!(env["A"], "0x10");
    assert_eq!(env["B"], "1.50");
    assert_eq!(env["C"], "on");
    assert_eq!(env["D"], "");
}

#[test]
fn judge_settings() {
    let analysis = |a: &str| format!("{MINIMAL}analysis:\n{a}");
    let c = ok(&analysis("  sequential: false\n  comparison: false\n"));
    assert_eq!((c.analysis.sequential, c.analysis.comparison), (None, None));
    let c = ok(&analysis(
        "  sequential: true\n  comparison: { tolerance: 25% }\n",
    ));
    assert_eq!(c.analysis.sequential, Some(SequentialSpec::default()));
    assert_eq!(c.analysis.comparison.unwrap().tolerance, pct(25.0));
    let c = ok(&analysis("  sequential: { latency_quantile: false }\n"));
    assert_eq!(c.analysis.sequential.unwrap().latency_quantile, None);
    assert_eq!(
        error(&analysis("  sequential: { alpha: 0% }\n")),
        "cutover.yaml:6:24: `alpha` must be more than 0% and less than 100%, e.g. 1%"
    );
    assert_eq!(
        error(&analysis("  comparison: { confidence: 100% }\n")),
        "cutover.yaml:6:29: `confidence` must be more than 0% and less than 100%, e.g. 99%"
    );
    assert_eq!(
        error(&analysis("  sequential: { alfa: 1% }\n")),
        "cutover.yaml:6:17: unknown field `alfa` in `analysis.sequential` \
         (valid: alpha, errors, latency_quantile)"
    );
    let metrics = |m: &str| analysis(&format!("  metrics:\n    apdex: {m}\n"));
    let c = ok(&metrics("{ threshold: 100ms, min: 0.9 }"));
    assert_eq!(
        c.analysis.metrics.apdex,
        Some(ApdexRule {
            threshold: Duration::from_millis(100),
            min: 0.9
        })
    );
    assert_eq!(
        error(&metrics("{ threshold: 100ms }")),
        "cutover.yaml:7:5: `analysis.metrics.apdex` needs both `threshold` and `min`, \
         e.g. `{ threshold: 100ms, min: 0.9 }`"
    );
    assert_eq!(
        error(&metrics("{ threshold: 100ms, min: 90% }")),
        "cutover.yaml:7:37: `analysis.metrics.apdex.min` is a score from 0 to 1, e.g. 0.9; got `90%`"
    );
}
