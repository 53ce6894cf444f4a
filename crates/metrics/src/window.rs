//! A window read from a metrics system: one query per metric at the window's
//! end, assembled into a [`Sample`]. Shared by every source but the built-in one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use cutover_analysis::{Sample, SourceError, SourceFault};
use cutover_api::Role;
use cutover_engine::traffic::{MetricsCursor, MetricsSource};
use cutover_spec::Queries;

use crate::template::At;

/// One kind of metrics system: how to read one metric's query for a window.
#[async_trait]
pub(crate) trait Reader: Send + Sync + 'static {
    type Query: Send + Sync;
    /// The source's key in the config: `prometheus`, `web`, ...
    const NAME: &'static str;
    /// Where a metric's query is in the config, after `analysis.source.NAME.`.
    const QUERIES_AT: &'static str;

    fn queries(&self) -> &Queries<Self::Query>;

    /// The metric's value in the window `at`; `measure` says how values over
    /// parts of the window add up to it (for a source that reads several points).
    async fn read(
        &self,
        query: &Self::Query,
        measure: Measure,
        at: &At,
    ) -> Result<f64, SourceFault>;
}

/// What a metric's number is, so points across a window can be reduced to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    /// How much happened in the window (`requests`): the points add up.
    Count,
    /// A rate, a ratio, a latency or a custom metric's level: the points average.
    Level,
}

/// A [`MetricsSource`] over a [`Reader`].
pub(crate) fn source<R: Reader>(reader: R, app: String) -> Arc<dyn MetricsSource> {
    Arc::new(External {
        reader: Arc::new(reader),
        app,
    })
}

struct External<R> {
    reader: Arc<R>,
    app: String,
}

impl<R: Reader> MetricsSource for External<R> {
    fn cursor(&self, version: &str, role: Role) -> Box<dyn MetricsCursor> {
        Box::new(Cursor {
            reader: Arc::clone(&self.reader),
            app: self.app.clone(),
            version: version.to_owned(),
            role,
            last: SystemTime::now(),
        })
    }
}

/// Windows of one version and role: each from the end of the previous one to now.
struct Cursor<R> {
    reader: Arc<R>,
    app: String,
    version: String,
    role: Role,
    last: SystemTime,
}

#[async_trait]
impl<R: Reader> MetricsCursor for Cursor<R> {
    async fn next_window(&mut self) -> Result<Sample, SourceError> {
        let end = SystemTime::now();
        let at = At {
            app: self.app.clone(),
            version: self.version.clone(),
            role: self.role.as_str().to_owned(),
            interval: end.duration_since(self.last).unwrap_or(Duration::ZERO),
            end_unix: end
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        };
        // The next window starts here whatever this one gave: a failed window is
        // inconclusive, and never read twice.
        self.last = end;
        sample(self.reader.as_ref(), &at).await
    }
}

/// Every metric of the window. A version that served no request has no error
/// rate or latency: those are then absent, not faults.
pub(crate) async fn sample<R: Reader>(reader: &R, at: &At) -> Result<Sample, SourceError> {
    let queries = reader.queries();
    let fail = |metric: &str, fault| SourceError {
        field: format!("analysis.source.{}.{}{metric}", R::NAME, R::QUERIES_AT),
        version: at.version.clone(),
        role: at.role.clone(),
        fault,
    };
    let requests = reader
        .read(&queries.requests, Measure::Count, at)
        .await
        .map_err(|f| fail("requests", f))?;
    if !requests.is_finite() || requests < 0.0 {
        let fault = SourceFault::Invalid {
            message: format!("the request count is {requests}, not a count"),
        };
        return Err(fail("requests", fault));
    }
    let requests = requests.round() as u64;
    let read = async |metric: &str, query: Option<&R::Query>| -> Result<Option<f64>, SourceError> {
        let Some(query) = query else {
            return Ok(None);
        };
        match reader.read(query, Measure::Level, at).await {
            Ok(v) => Ok(Some(v)),
            Err(SourceFault::NaN | SourceFault::MissingSeries | SourceFault::Empty { .. })
                if requests == 0 =>
            {
                Ok(None)
            }
            Err(fault) => Err(fail(metric, fault)),
        }
    };
    let error_rate = read("error_rate", queries.error_rate.as_ref()).await?;
    let latency = |v: Option<f64>| v.filter(|s| *s >= 0.0).map(Duration::from_secs_f64);
    let p50 = latency(read("latency_p50", queries.latency_p50.as_ref()).await?);
    let p95 = latency(read("latency_p95", queries.latency_p95.as_ref()).await?);
    let p99 = latency(read("latency_p99", queries.latency_p99.as_ref()).await?);
    let mut custom = BTreeMap::new();
    for (name, query) in &queries.custom {
        if let Some(v) = read(name, Some(query)).await? {
            custom.insert(name.clone(), v);
        }
    }
    let errors = error_rate.map_or(0, |rate| {
        (rate.clamp(0.0, 1.0) * requests as f64).round() as u64
    });
    Ok(Sample {
        requests,
        errors,
        p50,
        p95,
        p99,
        latency: Default::default(),
        custom: Box::new(custom),
    })
}
