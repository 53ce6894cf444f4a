//! Which releases get traffic and how much: the routing intent (a list of
//! [`Route`]s) and the releases' live health make the [`Split`] the traffic layer
//! applies, again whenever a release's ready instances change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use cutover_api::{Role, Share, format_bp};
use tokio::sync::watch;

use crate::engine::{Inner, lock};
use crate::platform::ReleaseHealth;
use crate::state::{Route, Weight};
use crate::traffic::{Backend, Mirror, Split};

/// The routing intent and what it needs to become a split.
#[derive(Default)]
pub(crate) struct Routing {
    pub(crate) routes: Vec<Route>,
    pub(crate) sticky_cookie: Option<String>,
    /// Each running release's health, by name.
    pub(crate) health: HashMap<String, watch::Receiver<ReleaseHealth>>,
    /// The split last applied.
    pub(crate) applied: Split,
    /// Every address of each running release that an applied split held, by
    /// release name: what its drain must wait for, even an instance that has left
    /// `ready` since (requests may still be in flight to it).
    pub(crate) routed: HashMap<String, Vec<SocketAddr>>,
}

impl Routing {
    /// The split the intent means with the instances ready now, with the mirror of
    /// the first route that mirrors, if it has a ready instance.
    ///
    /// When no route with weight has a ready instance, the stable route takes the
    /// traffic if it can: a failing canary or a weight of 0 never leaves requests
    /// with nowhere to go while the stable version serves. A preview never gets
    /// unpinned traffic.
    pub(crate) fn split(&self) -> Split {
        let ready = |release: &str| {
            self.health
                .get(release)
                .map(|h| h.borrow().ready.clone())
                .unwrap_or_default()
        };
        let mut backends: Vec<Backend> = self
            .routes
            .iter()
            .map(|r| {
                let instances = ready(&r.release);
                let weight = match r.weight {
                    Weight::Fixed(w) => w,
                    Weight::PerReadyInstance => instances.len() as u32,
                };
                Backend {
                    version: r.version.clone(),
                    role: r.role,
                    instances,
                    weight,
                }
            })
            .collect();
        let served = backends
            .iter()
            .any(|b| b.weight > 0 && !b.instances.is_empty());
        if !served
            && let Some(stable) = backends
                .iter_mut()
                .find(|b| b.role == Role::Stable && !b.instances.is_empty())
        {
            stable.weight = 1;
        }
        let mirror = self
            .routes
            .iter()
            .find(|r| r.mirror_bp > 0)
            .map(|r| Mirror {
                version: r.version.clone(),
                instances: ready(&r.release),
                share_bp: r.mirror_bp.min(10_000),
            })
            .filter(|m| !m.instances.is_empty());
        Split {
            backends,
            sticky_cookie: self.sticky_cookie.clone(),
            mirror,
        }
    }

    pub(crate) fn stable_version(&self) -> Option<String> {
        self.routes
            .iter()
            .find(|r| r.role == Role::Stable)
            .map(|r| r.version.clone())
    }
}

/// The cookie a sticky run of `app` keeps its clients on their version with.
pub(crate) fn sticky_cookie(app: &str) -> String {
    format!("cutover-{app}")
}

/// Every backend's share of the split, for events and status.
pub(crate) fn shares(split: &Split) -> Vec<Share> {
    split
        .backends
        .iter()
        .map(|b| Share {
            version: b.version.clone(),
            role: b.role,
            weight_bp: split.share_bp(b.role),
            ready: b.instances.len() as u32,
        })
        .collect()
}

/// `90% of traffic to v1 (stable), 10% to v2 (canary)`.
pub(crate) fn describe(shares: &[Share]) -> String {
    let parts: Vec<String> = shares
        .iter()
        .filter(|s| s.weight_bp > 0)
        .map(|s| format!("{} to {} ({})", format_bp(s.weight_bp), s.version, s.role))
        .collect();
    let pinned: Vec<String> = shares
        .iter()
        .filter(|s| s.weight_bp == 0)
        .map(|s| format!("{} ({})", s.version, s.role))
        .collect();
    let mut out = if parts.is_empty() {
        "no traffic routed".to_owned()
    } else {
        format!("traffic: {}", parts.join(", "))
    };
    if !pinned.is_empty() {
        out.push_str(&format!("; pinned requests only: {}", pinned.join(", ")));
    }
    out
}

impl Inner {
    /// Replaces the routing intent and applies the resulting split, which it returns.
    pub(crate) fn set_routes(&self, routes: Vec<Route>, sticky_cookie: Option<String>) -> Split {
        let mut routing = lock(&self.routing);
        routing.routes = routes;
        routing.sticky_cookie = sticky_cookie;
        Self::apply(&self.traffic, &mut routing)
    }

    /// Applies the split again from the releases' health now.
    pub(crate) fn reroute(&self) -> Split {
        Self::apply(&self.traffic, &mut lock(&self.routing))
    }

    fn apply(traffic: &Arc<dyn crate::traffic::Traffic>, routing: &mut Routing) -> Split {
        let split = routing.split();
        // Applied under the lock so two reroutes cannot overtake each other.
        if split != routing.applied {
            traffic.apply(&split);
            // `split` has one backend per route, in the same order.
            for (route, backend) in routing.routes.iter().zip(&split.backends) {
                let routed = routing.routed.entry(route.release.clone()).or_default();
                for addr in &backend.instances {
                    if !routed.contains(addr) {
                        routed.push(*addr);
                    }
                }
            }
            routing.applied = split.clone();
        }
        split
    }

    /// The health of the running release `name`.
    pub(crate) fn health_of(&self, name: &str) -> Option<watch::Receiver<ReleaseHealth>> {
        lock(&self.routing).health.get(name).cloned()
    }

    /// The share of unpinned traffic on `version` (any role), in basis points.
    pub(crate) fn share_of(&self, version: &str) -> u16 {
        let routing = lock(&self.routing);
        let split = &routing.applied;
        let roles: Vec<Role> = split
            .backends
            .iter()
            .filter(|b| b.version == version)
            .map(|b| b.role)
            .collect();
        roles
            .iter()
            .map(|&r| split.share_bp(r))
            .sum::<u16>()
            .min(10_000)
    }

    pub(crate) fn stable_version(&self) -> Option<String> {
        lock(&self.routing).stable_version()
    }

    /// Re-applies the split whenever a release's ready instances change, until the
    /// release stops reporting.
    pub(crate) fn follow_health(
        self: &Arc<Self>,
        name: String,
        mut health: watch::Receiver<ReleaseHealth>,
    ) {
        lock(&self.routing).health.insert(name, health.clone());
        let inner = Arc::downgrade(self);
        tokio::spawn(async move {
            while health.changed().await.is_ok() {
                match inner.upgrade() {
                    Some(inner) => {
                        inner.reroute();
                    }
                    None => break,
                }
            }
        });
    }
}
