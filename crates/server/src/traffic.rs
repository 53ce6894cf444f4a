//! The built-in proxy behind the engine's [`Traffic`] and [`MetricsSource`] traits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cutover_analysis::Sample;
use cutover_engine::traffic::{MetricsCursor, MetricsSource, Split, Target, Traffic};
use cutover_proxy::{Backend, Proxy, Routes, Snapshot, VersionStats};

/// The proxy, with one [`VersionStats`] per version it ever routed to, kept across
/// route changes so a version's measurements do not reset when its weight moves.
pub struct ProxyTraffic {
    proxy: Proxy,
    stats: Mutex<HashMap<String, Arc<VersionStats>>>,
    /// The backend last built per version: reused while its instances are the same,
    /// so a weight change does not restart its round-robin.
    backends: Mutex<HashMap<String, Backend>>,
}

impl ProxyTraffic {
    pub fn new(proxy: Proxy) -> ProxyTraffic {
        ProxyTraffic {
            proxy,
            stats: Mutex::new(HashMap::new()),
            backends: Mutex::new(HashMap::new()),
        }
    }

    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    fn stats(&self, version: &str) -> Arc<VersionStats> {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats
            .entry(version.to_owned())
            .or_insert_with(VersionStats::new)
            .clone()
    }

    fn backend(&self, target: &Target) -> Backend {
        let mut backends = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = backends.get(&target.version)
            && b.instances == target.instances
        {
            return b.clone();
        }
        let b = Backend::new(
            target.version.clone(),
            target.instances.clone(),
            self.stats(&target.version),
        );
        backends.insert(target.version.clone(), b.clone());
        b
    }

    /// Requests and failed responses per version since the daemon started.
    pub fn totals(&self) -> Vec<(String, u64, u64)> {
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = stats
            .iter()
            .map(|(v, s)| (v.clone(), s.totals().0, s.totals().1))
            .collect();
        out.sort();
        out
    }
}

#[async_trait]
impl Traffic for ProxyTraffic {
    fn apply(&self, split: &Split) {
        self.proxy.set_routes(Routes {
            stable: split.stable.as_ref().map(|t| self.backend(t)),
            canary: split.canary.as_ref().map(|t| self.backend(t)),
            canary_weight: split.canary_weight_bp,
        });
    }

    async fn drain(&self, version: &str, timeout: Duration) -> bool {
        self.stats(version).wait_idle(timeout).await
    }
}

impl MetricsSource for ProxyTraffic {
    fn cursor(&self, version: &str) -> Box<dyn MetricsCursor> {
        let stats = self.stats(version);
        let last = stats.snapshot();
        Box::new(ProxyCursor { stats, last })
    }
}

/// Windows cut from the proxy's cumulative counters: exact, whatever the interval.
struct ProxyCursor {
    stats: Arc<VersionStats>,
    last: Snapshot,
}

impl MetricsCursor for ProxyCursor {
    fn next_window(&mut self) -> Sample {
        let now = self.stats.snapshot();
        let window = now.since(&self.last);
        self.last = now;
        window
    }
}
