//! Tests of [`parse`](super::parse) and [`load`](super::load), through the public
//! API, by area:
//!
//! - `diagnostics`: the examples from the spec, collecting every mistake with its
//!   exact position, unknown fields and suggestions;
//! - `format`: the defaults, the whole format, the starter, paths and files;
//! - `sections`: the platform and strategy kinds, and canary steps;
//! - `values`: percentages, durations, and the other values;
//! - `proxy`: the proxy's limits and their sizes;
//! - `api`: who may read the daemon's API;
//! - `pipeline`: hooks, migrations and notifications;
//! - `gates`: the quality gates and their reports;
//! - `smoke`: the smoke tests run against an environment.
//! - `logs`: how instances' output is kept, and the log check.
//! - `docker`: `platform.docker`;
//! - `environments`: environments laid over the top level.

mod api;
mod approval;
mod diagnostics;
mod docker;
mod environments;
mod format;
mod gates;
mod logs;
mod pipeline;
mod proxy;
mod sections;
mod smoke;
mod source;
mod values;

use std::time::Duration;

use super::*;
use crate::approval::*;
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

fn canary(c: &Config) -> &CanarySpec {
    match &c.strategy {
        StrategySpec::Canary(canary) => canary,
        other => panic!("expected a canary, got {other:#?}"),
    }
}

fn blue_green(c: &Config) -> &BlueGreenSpec {
    match &c.strategy {
        StrategySpec::BlueGreen(bg) => bg,
        other => panic!("expected blue_green, got {other:#?}"),
    }
}

fn rolling(c: &Config) -> &RollingSpec {
    match &c.strategy {
        StrategySpec::Rolling(r) => r,
        other => panic!("expected rolling, got {other:#?}"),
    }
}
