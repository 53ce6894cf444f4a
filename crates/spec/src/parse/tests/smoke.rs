use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::{JsonScalar, SmokeCommand, SmokeTest};

/// `MINIMAL` with `smoke:` set to `items` (its first line is line 5).
fn smoke(items: &str) -> Result<Vec<SmokeTest>, Vec<String>> {
    let src = format!("{MINIMAL}smoke:\n{items}");
    match parse(&src, "cutover.yaml") {
        Ok(c) => Ok(c.smoke),
        Err(e) => Err(e.diagnostics.iter().map(ToString::to_string).collect()),
    }
}

#[test]
fn no_smoke_tests_by_default() {
    assert_eq!(ok(MINIMAL).smoke, []);
    assert_eq!(smoke(""), Ok(vec![]));
}

#[test]
fn http_checks_and_commands() {
    let src = r#"  - path: /api/status
    headers: { Accept: application/json }
    json: { status: ok, "data.items.0.id": 7, ratio: 0.5, ready: true, error: null }
    max_latency: 300ms
  - { method: POST, path: /orders, status: 201, body_contains: created }
  - run: [npm, run, test:smoke]
  - { name: k6, run: [k6, run, smoke.js], timeout: 2m, workdir: load, env: { VUS: "2" } }
"#;
    let got = smoke(src).unwrap_or_else(|e| panic!("{e:#?}"));
    let json: BTreeMap<String, JsonScalar> = [
        ("status", JsonScalar::String("ok".into())),
        ("data.items.0.id", JsonScalar::Number(7.0)),
        ("ratio", JsonScalar::Number(0.5)),
        ("ready", JsonScalar::Bool(true)),
        ("error", JsonScalar::Null),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let get = SmokeCheck {
        method: "GET".into(),
        path: "/api/status".into(),
        headers: [("Accept".to_owned(), "application/json".to_owned())].into(),
        status: 200,
        body_contains: None,
        max_latency: Some(Duration::from_millis(300)),
        json,
    };
    let post = SmokeCheck {
        method: "POST".into(),
        path: "/orders".into(),
        headers: BTreeMap::new(),
        status: 201,
        body_contains: Some("created".into()),
        max_latency: None,
        json: BTreeMap::new(),
    };
    assert_eq!(
        got,
        [
            SmokeTest::Http(get),
            SmokeTest::Http(post),
            SmokeTest::Command(SmokeCommand {
                name: "npm run test:smoke".into(),
                run: vec!["npm".into(), "run".into(), "test:smoke".into()],
                timeout: defaults::SMOKE_COMMAND_TIMEOUT,
                workdir: PathBuf::from("."),
                env: BTreeMap::new(),
            }),
            SmokeTest::Command(SmokeCommand {
                name: "k6".into(),
                run: vec!["k6".into(), "run".into(), "smoke.js".into()],
                timeout: secs(120),
                workdir: PathBuf::from("load"),
                env: [("VUS".to_owned(), "2".to_owned())].into(),
            }),
        ]
    );
}

#[test]
fn smoke_mistakes_point_at_the_place() {
    assert_eq!(
        smoke("  - { path: ready, json: [status] }\n  - { run: [x], path: /ready }\n").unwrap_err(),
        [
            "cutover.yaml:6:13: `path` must be a URL path starting with `/`, like `/healthz`, got \
             `ready`; did you mean `/ready`?",
            "cutover.yaml:6:26: `json` must be a mapping of field paths to the values they must \
             equal, like `{ status: ok, \"data.items.0.id\": 7 }`, got a list",
            "cutover.yaml:7:17: unknown field `path` in `smoke[1]`; `path` belongs in `health`, \
             each of `strategy.blue_green.smoke_checks` or each HTTP check of `smoke` (valid: \
             name, run, timeout, workdir, env)",
        ]
    );
    assert_eq!(
        smoke("  - path: /\n    json: { \"a..b\": 1, items: [1] }\n").unwrap_err(),
        [
            "cutover.yaml:7:13: invalid JSON field path `a..b`: give object keys and list indexes \
             joined by `.`, like `data.items.0.id`",
            "cutover.yaml:7:31: `json.items` must be a string, a number, `true`, `false` or \
             `null`, got a list; name a field inside it instead, like `items.0`",
        ]
    );
    assert_eq!(
        smoke("  - { status: 200 }\n  - 7\n").unwrap_err(),
        [
            "cutover.yaml:6:5: `smoke[0]` is missing the required field `path` (the request path, \
             starting with `/`, e.g. `/ready`)",
            "cutover.yaml:7:5: `smoke[1]` must be a mapping like `{ path: /ready, status: 200 }`, \
             got `7`",
        ]
    );
}

#[test]
fn json_is_checked_only_in_the_smoke_list() {
    let src = format!(
        "{MINIMAL}strategy:\n  blue_green:\n    smoke_checks:\n      - {{ path: /, json: {{ a: 1 }} }}\n"
    );
    assert_eq!(
        error(&src),
        "cutover.yaml:8:20: unknown field `json` in `strategy.blue_green.smoke_checks[0]`; \
         `json` belongs in each HTTP check of `smoke` (valid: method, path, headers, status, \
         body_contains, max_latency)"
    );
}
