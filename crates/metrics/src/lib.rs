//! Metric sources for the engine's analysis windows, picked by a run's config
//! (`analysis.source`): the built-in proxy's exact windows by default, or
//! Prometheus (PromQL over its HTTP API), a JSON web endpoint, a command, or
//! Datadog's metrics query API.
//!
//! Each implements the engine's [`MetricsSource`]: a cursor per version and role
//! whose every window is one query per metric (the window's end, its length as
//! `{{interval}}`), assembled into a [`cutover_analysis::Sample`]. Whatever goes
//! wrong (no series, NaN, an empty answer, an HTTP error, a timeout, an
//! unreachable server, a refused query) is a [`SourceError`] naming the config
//! field, and the engine judges that window inconclusive.
//!
//! It depends on the engine's traits only, never on the proxy or a platform;
//! HTTP is reqwest without TLS, so `https://` is refused when the config is read.
//!
//! ```no_run
//! # fn f(builtin: std::sync::Arc<dyn cutover_engine::traffic::MetricsSource>, config: &cutover_spec::Config) {
//! use cutover_engine::traffic::MetricsFactory;
//! let sources = cutover_metrics::Sources::new(builtin);
//! let source = sources.source(config); // what `analysis.source` says
//! let cursor = source.cursor("v2", cutover_api::Role::Canary);
//! # }
//! ```

mod check;
mod command;
mod datadog;
mod http;
mod json_path;
mod prometheus;
#[cfg(feature = "testing")]
pub mod real_prometheus;
mod template;
#[cfg(test)]
mod testing;
mod web;
mod window;

use std::sync::Arc;

use cutover_engine::traffic::{MetricsFactory, MetricsSource};
use cutover_spec::{Config, MetricSource};

pub use check::{QueryCheck, check_queries};
pub use cutover_analysis::{SourceError, SourceFault};

/// Makes each run's source from its config; the built-in one is shared.
pub struct Sources {
    builtin: Arc<dyn MetricsSource>,
}

impl Sources {
    /// Sources with `builtin` (the proxy's own windows) as the default.
    pub fn new(builtin: Arc<dyn MetricsSource>) -> Sources {
        Sources { builtin }
    }
}

impl MetricsFactory for Sources {
    fn source(&self, config: &Config) -> Arc<dyn MetricsSource> {
        let app = config.app.clone();
        match &config.analysis.source {
            MetricSource::Builtin => Arc::clone(&self.builtin),
            MetricSource::Prometheus(p) => window::source(prometheus::Prometheus::new(p), app),
            MetricSource::Web(w) => window::source(web::Web::new(w), app),
            MetricSource::Command(c) => window::source(command::Command::new(c), app),
            MetricSource::Datadog(d) => window::source(datadog::Datadog::new(d), app),
        }
    }
}
