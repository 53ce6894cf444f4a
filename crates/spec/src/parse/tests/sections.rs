use super::*;

// ---- platform and strategy kinds ----

#[test]
fn platform_kinds() {
    let src = "app: shop\nplatform:\n  kubernetes: {}\n";
    assert_eq!(
        error(src),
        "cutover.yaml:3:3: platform `kubernetes` is not yet supported (valid: local, docker)"
    );
    let src = "app: shop\nplatform:\n  locl: {}\n";
    assert_eq!(
        error(src),
        "cutover.yaml:3:3: unknown platform `locl`; did you mean `local`? \
         (valid: local, docker; kubernetes is not yet supported)"
    );
    let src = "app: shop\nplatform:\n";
    assert_eq!(
        error(src),
        "cutover.yaml:2:1: `platform` must name one platform, like `local:` \
         (valid: local, docker; kubernetes is not yet supported)"
    );
    let src = "app: shop\nplatform: local\n";
    assert_eq!(
        error(src),
        "cutover.yaml:2:11: `platform` must be a mapping with one key naming the platform, like `local:` \
         (valid: local, docker; kubernetes is not yet supported), got `local`; \
         write `platform:` then `local:` indented below it"
    );
    // A field indented one level too little.
    let src = "app: shop\nplatform:\n  local:\n  command: [x]\n";
    assert_eq!(
        errors(src),
        [
            r#"cutover.yaml:3:3: `platform.local` is missing the required field `command` (the argv to run, e.g. ["./server", "--port", "${PORT}"])"#,
            "cutover.yaml:4:3: unknown platform `command`; `command` belongs in `platform.local` \
             or `platform.docker` (valid: local, docker; kubernetes is not yet supported)",
        ]
    );
}

/// A config whose `strategy:` is `body` (its first line is line 4), with `instances`.
fn strategy(instances: u32, body: &str) -> String {
    format!(
        "app: shop\nplatform: {{ local: {{ command: [x, \"${{PORT}}\"], instances: {instances} }} }}\nstrategy:\n{body}"
    )
}

#[test]
fn strategy_kinds() {
    let kind = |body: &str| ok(&strategy(1, body)).strategy.name();
    assert_eq!(kind("  canary:\n"), "canary");
    assert_eq!(kind("  blue_green: {}\n"), "blue_green");
    assert_eq!(kind("  rolling:\n"), "rolling");
    assert_eq!(
        error(&strategy(1, "  Canary: {}\n")),
        "cutover.yaml:4:3: unknown strategy `Canary`; did you mean `canary`? \
         (valid: canary, blue_green, rolling)"
    );
    assert_eq!(
        error(&strategy(1, "  blue-green: {}\n")),
        "cutover.yaml:4:3: unknown strategy `blue-green`; did you mean `blue_green`? \
         (valid: canary, blue_green, rolling)"
    );
    assert_eq!(
        error(&strategy(1, "  canary: {}\n  rolling: {}\n")),
        "cutover.yaml:5:3: `strategy` must name exactly one strategy, got `canary` and `rolling`"
    );
    assert_eq!(
        error(&strategy(1, "  {}\n")),
        "cutover.yaml:3:1: `strategy` must name one strategy, like `canary:` \
         (valid: canary, blue_green, rolling)"
    );
    assert_eq!(
        error(&strategy(1, "  rolling\n")),
        "cutover.yaml:4:3: `strategy` must be a mapping with one key naming the strategy, like \
         `canary:` (valid: canary, blue_green, rolling), got `rolling`; write `strategy:` then \
         `rolling:` indented below it"
    );
    // A field of one strategy under another says where it belongs.
    assert_eq!(
        error(&strategy(1, "  blue_green:\n    max_surge: 1\n")),
        "cutover.yaml:5:5: unknown field `max_surge` in `strategy.blue_green`; `max_surge` belongs \
         in `strategy.rolling` (valid: auto_promote, preview_listen, smoke_checks, \
         preview_analysis, scale_down_delay)"
    );
    assert_eq!(
        error(&strategy(1, "  rolling:\n    steps: []\n")),
        "cutover.yaml:5:5: unknown field `steps` in `strategy.rolling`; `steps` belongs in \
         `strategy.canary` (valid: max_surge, max_unavailable, pause)"
    );
}

// ---- canary options ----

#[test]
fn canary_baseline_and_sticky() {
    let options = |o: &str| ok(&strategy(1, &format!("  canary:\n{o}")));
    let c = options("    baseline: fresh\n    sticky: cookie\n");
    assert_eq!(
        (canary(&c).baseline, canary(&c).sticky),
        (Baseline::Fresh, Some(Sticky::Cookie))
    );
    assert_eq!(canary(&c).steps, defaults::CANARY_STEPS);
    let c = options("    baseline: stable\n    sticky: none\n");
    assert_eq!(
        (canary(&c).baseline, canary(&c).sticky),
        (Baseline::Stable, None)
    );

    let bad = |o: &str| errors(&strategy(1, &format!("  canary:\n{o}")));
    assert_eq!(
        bad("    baseline: fressh\n    sticky: cookies\n"),
        [
            "cutover.yaml:5:15: `baseline` must be `stable` or `fresh`, got `fressh`; \
             did you mean `fresh`?",
            "cutover.yaml:6:13: `sticky` must be `cookie` or `none`, got `cookies`; \
             did you mean `cookie`?",
        ]
    );
    assert_eq!(
        bad("    baseline: [stable]\n    sticky: true\n    sticky_by: cookie\n"),
        [
            "cutover.yaml:5:15: `baseline` must be `stable` or `fresh`, got a list",
            "cutover.yaml:6:13: `sticky` must be `cookie` or `none`, got `true`",
            "cutover.yaml:7:5: unknown field `sticky_by` in `strategy.canary`; did you mean \
             `sticky`? (valid: steps, baseline, sticky)",
        ]
    );
    assert_eq!(
        bad("    sticky:\n"),
        ["cutover.yaml:5:5: `sticky` must be `cookie` or `none`, got nothing"]
    );
}

// ---- blue-green ----

/// A config with `strategy.blue_green` set to `body` (its first line is line 5).
fn blue_green_with(body: &str) -> String {
    strategy(1, &format!("  blue_green:\n{body}"))
}

#[test]
fn blue_green_mistakes() {
    assert_eq!(
        errors(&blue_green_with(
            "    auto_promote: yes\n    preview_listen: 8081\n    smoke_checks: /ready\n    \
             preview_analysis: 0s\n    scale_down_delay: 30\n    auto_promot: false\n"
        )),
        [
            "cutover.yaml:5:19: `auto_promote` must be `true` or `false`, got `yes`",
            "cutover.yaml:6:21: `preview_listen` must be an IP address and port like \
             `127.0.0.1:8080` or `[::1]:8080`, got `8081`; did you mean `127.0.0.1:8081`?",
            "cutover.yaml:7:19: `smoke_checks` must be a list of checks like \
             `- { path: /ready, status: 200 }`, got `/ready`",
            "cutover.yaml:8:23: `preview_analysis` must be longer than 0s, got `0s`",
            "cutover.yaml:9:23: invalid duration `30`: expected a duration like `500ms`, `30s` \
             or `2m` (a bare number has no unit)",
            "cutover.yaml:10:5: unknown field `auto_promot` in `strategy.blue_green`; did you \
             mean `auto_promote`? (valid: auto_promote, preview_listen, smoke_checks, \
             preview_analysis, scale_down_delay)",
        ]
    );
}

#[test]
fn preview_listen_must_differ_from_listen() {
    let src = |listen: &str, preview: &str| {
        format!(
            "app: shop\nlisten: {listen}\nplatform: {{ local: {{ command: [x, \"${{PORT}}\"] }} }}\n\
             strategy:\n  blue_green:\n    preview_listen: {preview}\n"
        )
    };
    assert_eq!(
        error(&src("127.0.0.1:8080", "127.0.0.1:8080")),
        "cutover.yaml:6:21: `preview_listen` must differ from `listen`: 127.0.0.1:8080 and \
         127.0.0.1:8080 would take the same port; give the preview a port of its own, like \
         `127.0.0.1:8081`"
    );
    // The default `listen` counts, and so does a port taken on every address.
    let default_listen = blue_green_with("    preview_listen: 0.0.0.0:8080\n");
    assert_eq!(
        error(&default_listen),
        "cutover.yaml:5:21: `preview_listen` must differ from `listen`: 0.0.0.0:8080 and \
         127.0.0.1:8080 would take the same port; give the preview a port of its own, like \
         `0.0.0.0:8081`"
    );
    assert!(error(&src("'[::]:65535'", "'[::1]:65535'")).ends_with("like `[::1]:65534`"));
    // Another port, another address, or ports picked by the OS: fine.
    for (listen, preview) in [
        ("127.0.0.1:8080", "127.0.0.1:8081"),
        ("127.0.0.1:8080", "127.0.0.2:8080"),
        ("127.0.0.1:0", "127.0.0.1:0"),
    ] {
        let c = ok(&src(listen, preview));
        assert_eq!(
            blue_green(&c).preview_listen,
            Some(preview.parse().unwrap())
        );
    }
    // An invalid `listen` is reported once, and not compared.
    assert_eq!(errors(&src("8080", "127.0.0.1:8080")).len(), 1);
}

#[test]
fn preview_analysis_needs_an_absolute_limit() {
    let src = |metrics: &str| {
        format!(
            "{}analysis:\n  metrics:\n{metrics}",
            blue_green_with("    preview_analysis: 1m\n")
        )
    };
    assert_eq!(
        error(&src(
            "    error_rate: { max_over_stable: 1% }\n    latency_p95: { max_ratio: 2 }\n"
        )),
        "cutover.yaml:5:23: `preview_analysis` judges green against the absolute limits of \
         `analysis.metrics` (`error_rate.max`, `latency_*.max`), but none is set; add one, like \
         `error_rate: { max: 5% }`, or leave `preview_analysis` out"
    );
    ok(&src("    latency_p99: { max: 1s }\n"));
    ok(&src("    error_rate: { max: 1% }\n"));
    // Without a preview analysis, relative limits alone are fine.
    ok(&format!(
        "{}analysis:\n  metrics:\n    error_rate: {{ max_over_stable: 1% }}\n",
        blue_green_with("")
    ));
}

// ---- smoke checks ----

/// `strategy.blue_green.smoke_checks` set to `items` (its first line is line 6).
fn smoke_checks(items: &str) -> Result<Vec<SmokeCheck>, Vec<String>> {
    let src = blue_green_with(&format!("    smoke_checks:\n{items}"));
    match parse(&src, "cutover.yaml") {
        Ok(c) => Ok(blue_green(&c).smoke_checks.clone()),
        Err(e) => Err(e.diagnostics.iter().map(ToString::to_string).collect()),
    }
}

#[test]
fn smoke_check_shapes() {
    assert_eq!(smoke_checks(""), Ok(vec![]));
    assert_eq!(smoke_checks("      []\n").map(|c| c.len()), Ok(0));
    assert_eq!(
        smoke_checks("      - /ready\n      - { status: 204 }\n      -\n").unwrap_err(),
        [
            "cutover.yaml:6:9: `strategy.blue_green.smoke_checks[0]` must be a mapping like \
             `{ path: /ready, status: 200 }`, got `/ready`",
            "cutover.yaml:7:9: `strategy.blue_green.smoke_checks[1]` is missing the required \
             field `path` (the request path, starting with `/`, e.g. `/ready`)",
            "cutover.yaml:8:8: `strategy.blue_green.smoke_checks[2]` must be a mapping like \
             `{ path: /ready, status: 200 }`, got nothing",
        ]
    );
    assert_eq!(
        smoke_checks("      - path: /ready\n        statuss: 204\n        timeout: 1s\n")
            .unwrap_err(),
        [
            "cutover.yaml:7:9: unknown field `statuss` in `strategy.blue_green.smoke_checks[0]`; \
             did you mean `status`? (valid: method, path, headers, status, body_contains, max_latency)",
            "cutover.yaml:8:9: unknown field `timeout` in `strategy.blue_green.smoke_checks[0]`; \
             `timeout` belongs in `health`, `approvals`, each of `gates` or each command of `smoke` \
             (valid: \
             method, path, headers, status, body_contains, max_latency)",
        ]
    );
}

#[test]
fn smoke_check_values() {
    assert_eq!(
        smoke_checks(
            "      - { method: get, path: ready, status: 600 }\n      - { method: FETCH, path: /, \
             status: 99, max_latency: 0ms, body_contains: [ok] }\n"
        )
        .unwrap_err(),
        [
            "cutover.yaml:6:19: `method` must be `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE` \
             or `OPTIONS`, got `get`; did you mean `GET`?",
            "cutover.yaml:6:30: `path` must be a URL path starting with `/`, like `/healthz`, \
             got `ready`; did you mean `/ready`?",
            "cutover.yaml:6:45: `status` must be a whole number from 100 to 599, got `600`",
            "cutover.yaml:7:19: `method` must be `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE` \
             or `OPTIONS`, got `FETCH`",
            "cutover.yaml:7:43: `status` must be a whole number from 100 to 599, got `99`",
            "cutover.yaml:7:60: `max_latency` must be longer than 0s, got `0ms`",
            "cutover.yaml:7:80: `body_contains` must be a string (text the response body must \
             contain), got a list",
        ]
    );
    let c = smoke_checks(
        "      - { method: OPTIONS, path: /, status: 100 }\n      - { path: /x, status: 599 }\n",
    )
    .unwrap();
    assert_eq!((c[0].method.as_str(), c[0].status), ("OPTIONS", 100));
    assert_eq!(c[1].status, 599);
}

#[test]
fn smoke_check_headers() {
    let headers = |h: &str| smoke_checks(&format!("      - path: /\n        headers:\n{h}"));
    let c = headers(
        "          Accept: \"*/*\"\n          X-Count: 3\n          \"x~weird!#$%&'*+.^_`|\": on\n",
    )
    .unwrap();
    assert_eq!(
        c[0].headers
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
        ["Accept=*/*", "X-Count=3", "x~weird!#$%&'*+.^_`|=on"]
    );
    assert_eq!(
        headers(
            "          X Bad: 1\n          Accept: a\n          accept: b\n          X-List: [a]\n          \
             X-Empty:\n          \"X-Colon:\": c\n          X-Break: \"a\\nb\"\n"
        )
        .unwrap_err(),
        [
            "cutover.yaml:8:11: invalid header name `X Bad`: use letters, digits and `-`, like \
             `X-Request-Id` (also allowed: ! # $ % & ' * + . ^ _ ` | ~; no spaces or `:`)",
            "cutover.yaml:10:11: duplicate header `accept`: it is already set on line 9 \
             (header names ignore case)",
            "cutover.yaml:11:19: `headers.X-List` must be a string, got a list",
            "cutover.yaml:12:11: `headers.X-Empty` has no value; write `X-Empty: \"\"` for an empty one",
            "cutover.yaml:13:11: invalid header name `X-Colon:`: use letters, digits and `-`, like \
             `X-Request-Id` (also allowed: ! # $ % & ' * + . ^ _ ` | ~; no spaces or `:`)",
            "cutover.yaml:14:20: `headers.X-Break` must be one line of text, without control characters",
        ]
    );
    assert_eq!(
        headers("          Accept\n").unwrap_err(),
        [
            "cutover.yaml:8:11: `headers` must be a mapping of header names to values, like \
             `{ Accept: application/json }`, got `Accept`"
        ]
    );
}

// ---- rolling ----

#[test]
fn rolling_counts() {
    let rolling_with = |o: &str| strategy(1, &format!("  rolling:\n{o}"));
    let r = ok(&rolling_with(
        "    max_surge: 10\n    max_unavailable: '2'\n",
    ));
    // A bare number is a number of instances, not a percentage; none is clamped here.
    assert_eq!(
        (rolling(&r).max_surge, rolling(&r).max_unavailable),
        (Count::Absolute(10), Count::Absolute(2))
    );
    assert_eq!(
        errors(&rolling_with(
            "    max_surge: 1.5\n    max_unavailable: 150%\n    pause: soon\n    max_surg: 1\n"
        )),
        [
            "cutover.yaml:5:16: `max_surge` must be a whole number of instances like `1`, or a \
             share of `platform.local.instances` like `25%`, got `1.5`",
            "cutover.yaml:6:22: `max_unavailable` must be a percentage between 0% and 100% like \
             `25%`, got `150%`",
            "cutover.yaml:7:12: invalid duration `soon`: expected a duration like `500ms`, `30s` \
             or `2m`",
            "cutover.yaml:8:5: unknown field `max_surg` in `strategy.rolling`; did you mean \
             `max_surge`? (valid: max_surge, max_unavailable, pause)",
        ]
    );
    assert_eq!(
        error(&rolling_with("    max_surge: -1\n")),
        "cutover.yaml:5:16: `max_surge` must be a whole number of instances like `1`, or a \
         share of `platform.local.instances` like `25%`, got `-1`"
    );
    assert_eq!(
        error(&rolling_with("    max_unavailable:\n")),
        "cutover.yaml:5:5: `max_unavailable` must be a whole number of instances like `1`, or a \
         share of `platform.local.instances` like `25%`, got nothing"
    );
}

#[test]
fn rolling_must_be_able_to_make_progress() {
    let rolling_with = |instances, o: &str| strategy(instances, &format!("  rolling:\n{o}"));
    // Both zero with the defaults' unavailable: blamed on the section.
    assert_eq!(
        error(&rolling_with(1, "    max_surge: 0\n")),
        "cutover.yaml:4:3: `max_surge` 0 and `max_unavailable` 0 both resolve to 0 for 1 instance \
         (`platform.local.instances`), so no instance could ever be replaced; at least one must \
         allow progress, e.g. `max_surge: 1`"
    );
    // With 3 instances, 10% surges by 1 (rounded up), 50% takes 1 out of service (rounded
    // down), 20% takes none.
    let r = ok(&rolling_with(
        3,
        "    max_surge: 10%\n    max_unavailable: 0\n",
    ));
    assert_eq!(rolling(&r).max_surge.surge(3), 1);
    let r = ok(&rolling_with(
        3,
        "    max_surge: 0\n    max_unavailable: 50%\n",
    ));
    assert_eq!(rolling(&r).max_unavailable.unavailable(3), 1);
    assert_eq!(
        error(&rolling_with(
            3,
            "    max_surge: 0%\n    max_unavailable: 20%\n"
        )),
        "cutover.yaml:6:22: `max_surge` 0% and `max_unavailable` 20% both resolve to 0 for 3 \
         instances (`platform.local.instances`), so no instance could ever be replaced; at least \
         one must allow progress, e.g. `max_surge: 1`"
    );
    // Everything out of service at once is allowed.
    ok(&rolling_with(
        3,
        "    max_surge: 0\n    max_unavailable: 100%\n",
    ));
    // Not checked when the platform or the strategy has mistakes of its own.
    assert_eq!(
        error(&rolling_with(0, "    max_surge: 0\n")),
        "cutover.yaml:2:58: `instances` must be a whole number from 1 to 64, got `0`"
    );
    assert_eq!(
        error(&rolling_with(1, "    max_surge: 0\n    pause: 1\n")),
        "cutover.yaml:6:12: invalid duration `1`: expected a duration like `500ms`, `30s` or `2m` \
         (a bare number has no unit)"
    );
}

// ---- steps ----

fn steps(list: &str) -> Result<Vec<Step>, Vec<String>> {
    let src = format!(
        "app: shop\nplatform: {{ local: {{ command: [x, \"${{PORT}}\"] }} }}\nstrategy:\n  canary:\n    steps: {list}\n"
    );
    parse(&src, "cutover.yaml")
        .map(|c| canary(&c).steps.clone())
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
        [
            "`weight` must be more than 0%: every step sends some traffic to the new version \
             (0% only with a `mirror`, e.g. `mirror: 20%`, copying a share of the stable's requests to it)"
        ]
    );
}

#[test]
fn a_step_may_mirror_and_with_a_mirror_weigh_nothing() {
    let s =
        steps("[{weight: 0%, mirror: 20%}, {weight: 10%, mirror: 0%}, {weight: 100%}]").unwrap();
    assert_eq!((s[0].weight, s[0].mirror), (pct(0.0), Some(pct(20.0))));
    assert_eq!(s[1].mirror, None, "0% mirrors nothing");
    assert_eq!(s[2].mirror, None, "the default");
    assert_eq!(
        steps("[{weight: 0%, mirror: 0%}]").unwrap_err(),
        [
            "`weight` must be more than 0%: every step sends some traffic to the new version \
             (0% only with a `mirror`, e.g. `mirror: 20%`, copying a share of the stable's requests to it)"
        ]
    );
    let src = "app: shop\nplatform: { local: { command: [x, \"${PORT}\"] } }\nstrategy:\n  canary:\n    \
               steps:\n      - weight: 0%\n        mirror: 120%\n";
    assert_eq!(
        error(src),
        "cutover.yaml:7:17: `mirror` must be a percentage between 0% and 100% like `25%`, got `120%`"
    );
    // A step's field: no other strategy has it.
    let blue_green = "app: shop\nplatform: { local: { command: [x, \"${PORT}\"] } }\nstrategy:\n  \
                      blue_green:\n    mirror: 20%\n";
    assert!(
        error(blue_green).starts_with("cutover.yaml:5:5: unknown field `mirror`"),
        "{}",
        error(blue_green)
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
            "unknown field `wieght` in `strategy.canary.steps[0]`; did you mean `weight`? (valid: weight, pause, mirror)"
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
