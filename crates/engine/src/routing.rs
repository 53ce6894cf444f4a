//! Which versions get traffic and how much, derived from the releases' live health,
//! and applied to the traffic layer as one [`Split`].

use std::sync::Arc;

use tokio::sync::watch;

use crate::engine::{Inner, VersionStatus, lock};
use crate::platform::{Release, ReleaseHealth};
use crate::traffic::{Split, Target};

/// The routing intent: the split is computed from it and the ready instances.
#[derive(Default)]
pub(crate) struct Routing {
    pub(crate) stable: Option<Routed>,
    pub(crate) canary: Option<Routed>,
    /// The canary's share, in basis points; meaningless without a canary.
    pub(crate) weight_bp: u16,
}

pub(crate) struct Routed {
    pub(crate) version: String,
    pub(crate) health: watch::Receiver<ReleaseHealth>,
}

impl Routed {
    pub(crate) fn of(release: &dyn Release) -> Routed {
        Routed {
            version: release.version().to_owned(),
            health: release.health(),
        }
    }

    fn target(&self) -> Target {
        Target {
            version: self.version.clone(),
            instances: self.health.borrow().ready.clone(),
        }
    }

    fn status(&self) -> VersionStatus {
        let h = self.health.borrow();
        VersionStatus {
            version: self.version.clone(),
            ready_instances: h.ready.len(),
            first_problem: h.problem.clone(),
        }
    }
}

impl Routing {
    pub(crate) fn stable_version(&self) -> Option<String> {
        self.stable.as_ref().map(|r| r.version.clone())
    }

    fn weight(&self) -> u16 {
        if self.canary.is_some() {
            self.weight_bp
        } else {
            0
        }
    }

    pub(crate) fn split(&self) -> Split {
        Split {
            stable: self.stable.as_ref().map(Routed::target),
            canary: self.canary.as_ref().map(Routed::target),
            canary_weight_bp: self.weight(),
        }
    }

    pub(crate) fn status(&self) -> (Option<VersionStatus>, Option<VersionStatus>, u16) {
        (
            self.stable.as_ref().map(Routed::status),
            self.canary.as_ref().map(Routed::status),
            self.weight(),
        )
    }
}

impl Inner {
    /// Changes the routing intent and applies the resulting split.
    pub(crate) fn route(&self, change: impl FnOnce(&mut Routing)) {
        let mut routing = lock(&self.routing);
        change(&mut routing);
        // Applied under the lock so two reroutes cannot overtake each other.
        self.traffic.apply(&routing.split());
    }

    /// Re-applies the split whenever the version's ready instances change, until the
    /// release stops reporting.
    pub(crate) fn follow_health(self: &Arc<Self>, mut health: watch::Receiver<ReleaseHealth>) {
        let inner = Arc::downgrade(self);
        tokio::spawn(async move {
            while health.changed().await.is_ok() {
                match inner.upgrade() {
                    Some(inner) => inner.route(|_| {}),
                    None => break,
                }
            }
        });
    }

    /// Makes `release` the stable version with all traffic; returns the one it
    /// replaced, which no longer gets any. `follow` is false for a promoted canary,
    /// whose health is already followed.
    pub(crate) async fn install_stable(
        self: &Arc<Self>,
        release: Box<dyn Release>,
        follow: bool,
    ) -> Option<Box<dyn Release>> {
        let routed = Routed::of(&*release);
        if follow {
            self.follow_health(routed.health.clone());
        }
        let mut releases = self.releases.lock().await;
        self.route(|r| {
            r.stable = Some(routed);
            r.canary = None;
            r.weight_bp = 0;
        });
        releases.stable.replace(release)
    }

    /// Makes `release` the canary, at weight 0 until a step sets one.
    pub(crate) async fn install_canary(self: &Arc<Self>, release: Box<dyn Release>) {
        let routed = Routed::of(&*release);
        self.follow_health(routed.health.clone());
        // Owned before routed: nothing can drop a release that has a route.
        let mut releases = self.releases.lock().await;
        releases.canary = Some(release);
        self.route(|r| {
            r.canary = Some(routed);
            r.weight_bp = 0;
        });
    }
}
