//! What the tests of every source share: a config around an `analysis.source`,
//! and a window to read.

use std::time::Duration;

use cutover_spec::Config;

use crate::template::At;

/// A valid config whose `analysis.source` is `source` (YAML, indented under it),
/// with `${env:NAME}` read from `env`.
pub(crate) fn config(source: &str, env: &[(&str, &str)]) -> Config {
    let yaml = format!(
        "app: shop\nplatform:\n  local:\n    command: [\"x\", \"${{PORT}}\"]\nanalysis:\n  \
         metrics:\n    error_rate: {{ max: 5% }}\n  source:\n{source}"
    );
    let lookup = |name: &str| {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    };
    match cutover_spec::parse_with_env(&yaml, "cutover.yaml", &lookup) {
        Ok(config) => config,
        Err(e) => panic!("{e}\n{yaml}"),
    }
}

/// A 5s window of v2 as the canary, ending now.
pub(crate) fn window() -> At {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    At {
        app: "shop".into(),
        version: "v2".into(),
        role: "canary".into(),
        interval: Duration::from_secs(5),
        end_unix: now.as_secs_f64(),
    }
}
