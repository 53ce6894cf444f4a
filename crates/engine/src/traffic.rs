//! What the engine needs from the traffic layer: set the routing decision, tell how
//! each version did, and wait for instances' in-flight requests to finish. The
//! built-in proxy implements both traits; a Gateway API or a service mesh would
//! implement them later.
//!
//! The routing decision is data: a [`Split`], a list of weighted [`Backend`]s,
//! each a version in a [`Role`] with its ready instances, applied atomically (the
//! shape of linkerd2-proxy's `distribute` and of Gateway API's `backendRefs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cutover_analysis::{Sample, SourceError};
use serde::{Deserialize, Serialize};

pub use cutover_api::Role;

/// One version in one role, and its share of the traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub version: String,
    pub role: Role,
    /// Ready instances only; empty means it takes no traffic.
    pub instances: Vec<SocketAddr>,
    /// Share of the requests that pin nothing, relative to the other backends'
    /// weights; 0 means only requests that pin it (by role or version) reach it.
    pub weight: u32,
}

/// A share of the stable version's requests copied to a version (a canary step's
/// `mirror`): its answers are measured as [`Role::Shadow`] and discarded, never
/// seen by a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirror {
    pub version: String,
    /// Ready instances only (never empty in a split).
    pub instances: Vec<SocketAddr>,
    /// Share of the requests routed to the stable version that are copied, in
    /// basis points (0..=10000).
    pub share_bp: u16,
}

/// The whole routing decision for an app, applied atomically.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Split {
    pub backends: Vec<Backend>,
    /// When set, a client keeps the version it first got during the run, by a
    /// cookie of this name.
    pub sticky_cookie: Option<String>,
    /// When set, a share of the stable's requests is copied to a version.
    #[serde(default)]
    pub mirror: Option<Mirror>,
}

impl Split {
    /// The backend in `role`, if any.
    pub fn get(&self, role: Role) -> Option<&Backend> {
        self.backends.iter().find(|b| b.role == role)
    }

    /// Whether requests that pin nothing can reach `version` (in any role).
    pub fn routes_to(&self, version: &str) -> bool {
        self.backends
            .iter()
            .any(|b| b.version == version && b.weight > 0 && !b.instances.is_empty())
    }

    /// The share of unpinned requests `role` gets, in basis points (0..=10000),
    /// counting only backends with ready instances.
    pub fn share_bp(&self, role: Role) -> u16 {
        let serving = |b: &&Backend| !b.instances.is_empty();
        let total: u64 = self
            .backends
            .iter()
            .filter(serving)
            .map(|b| u64::from(b.weight))
            .sum();
        let mine: u64 = self
            .backends
            .iter()
            .filter(serving)
            .filter(|b| b.role == role)
            .map(|b| u64::from(b.weight))
            .sum();
        (mine * 10_000).checked_div(total).unwrap_or(0) as u16
    }
}

#[async_trait]
pub trait Traffic: Send + Sync + 'static {
    /// Replaces the split.
    ///
    /// # Guarantees
    /// Atomic: a request is routed either by the old split or by the new one, and
    /// requests already in flight finish where they started. Idempotent.
    fn apply(&self, split: &Split);

    /// Waits until no request to any of `instances` is in flight, at most
    /// `timeout`, and closes them to new requests. Returns whether it got there.
    ///
    /// # Guarantees
    /// Once it returned true, no request is or will be sent to those instances,
    /// even one that read a split from before the one that removed them.
    async fn drain(&self, instances: &[SocketAddr], timeout: Duration) -> bool;
}

/// Makes the metrics source a run's config asks for (`analysis.source`).
pub trait MetricsFactory: Send + Sync + 'static {
    fn source(&self, config: &cutover_spec::Config) -> Arc<dyn MetricsSource>;
}

/// Per-version measurements: the traffic layer's own, or a metrics system's.
pub trait MetricsSource: Send + Sync + 'static {
    /// Starts measuring `version` in `role` from now on.
    fn cursor(&self, version: &str, role: Role) -> Box<dyn MetricsCursor>;
}

/// Successive windows of one version's measurements.
///
/// # Guarantees
/// Windows do not overlap: each call covers the time since the previous one (or
/// since the cursor was made). The built-in proxy's are exact: every request
/// completed after the cursor was made lands in exactly one window. A source
/// that queries another system returns within its configured timeout.
///
/// # Errors
/// A [`SourceError`] when the source could not say what the version did: the
/// window is then inconclusive, never a pass.
#[async_trait]
pub trait MetricsCursor: Send + Sync {
    /// What the version did since the previous call, or since the cursor was made.
    async fn next_window(&mut self) -> Result<Sample, SourceError>;
}

/// Sends smoke checks to a version in a role, the way clients reach it (through
/// the traffic layer, so the checks are measured like any request).
#[async_trait]
pub trait Prober: Send + Sync + 'static {
    /// Runs one check against `role`; never fails, a failure is in the result.
    async fn probe(&self, check: &cutover_spec::SmokeCheck, role: Role)
    -> cutover_api::SmokeResult;
}
