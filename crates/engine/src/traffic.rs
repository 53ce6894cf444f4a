//! What the engine needs from the traffic layer: set the split, tell how each version
//! did, and wait for a version's in-flight requests to finish. The built-in proxy
//! implements both traits; Prometheus or a Gateway API would implement them later.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use cutover_analysis::Sample;

/// Where one version's traffic goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub version: String,
    /// Ready instances only; empty means the version takes no traffic.
    pub instances: Vec<SocketAddr>,
}

/// The whole routing decision for an app, applied atomically.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    pub stable: Option<Target>,
    pub canary: Option<Target>,
    /// Share of requests sent to the canary, in basis points (0..=10000).
    pub canary_weight_bp: u16,
}

#[async_trait]
pub trait Traffic: Send + Sync + 'static {
    /// Replaces the split.
    ///
    /// # Guarantees
    /// Atomic: a request is routed either by the old split or by the new one, and
    /// requests already in flight finish where they started. Idempotent.
    fn apply(&self, split: &Split);

    /// Waits until no request to `version` is in flight, at most `timeout`.
    /// Returns whether it got there.
    async fn drain(&self, version: &str, timeout: Duration) -> bool;
}

/// Per-version measurements of what the traffic layer saw.
pub trait MetricsSource: Send + Sync + 'static {
    /// Starts measuring `version` from now on.
    fn cursor(&self, version: &str) -> Box<dyn MetricsCursor>;
}

/// Successive windows of one version's measurements.
///
/// # Guarantees
/// Windows are exact and do not overlap: every request completed after the cursor
/// was made lands in exactly one window.
pub trait MetricsCursor: Send {
    /// What the version did since the previous call, or since the cursor was made.
    fn next_window(&mut self) -> Sample;
}
