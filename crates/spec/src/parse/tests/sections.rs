use super::*;

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

/// A config whose `strategy:` is `body` (its first line is line 4), with `instances`.
fn strategy(instances: u32, body: &str) -> String {
    format!(
        "app: shop\nplatform: {{ local: {{ command: [x, \"${{PORT}}\"], instances: {instances} }} }}\nstrategy:\n{body}"
    )
}

#[test]
fn strategy_kinds() {
    let base = "app: shop\nplatform: { local: { command: [x, \"${PORT}\"] } }\n";
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
