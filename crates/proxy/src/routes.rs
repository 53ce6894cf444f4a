//! The route table: which versions serve, on which addresses, and how traffic is
//! split between them. Plain data; the proxy holds it in an `ArcSwap` and reads a
//! snapshot per request (like linkerd2-proxy's `distribute`), so replacing it never
//! blocks a request and never changes one that already started.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::stats::VersionStats;

/// The canary weight that sends all traffic to the canary, in basis points.
pub const FULL_WEIGHT: u16 = 10_000;

/// One version of the app: its instances and where its measurements go.
#[derive(Clone)]
pub struct Backend {
    /// The version string, echoed in `x-cutover-version` on every response it serves.
    pub version: String,
    /// Instances, served round-robin. A backend without instances counts as absent.
    pub instances: Vec<SocketAddr>,
    pub stats: Arc<VersionStats>,
    /// Round-robin position, shared by clones of this backend.
    cursor: Arc<AtomicUsize>,
}

impl Backend {
    pub fn new(
        version: impl Into<String>,
        instances: Vec<SocketAddr>,
        stats: Arc<VersionStats>,
    ) -> Backend {
        Backend {
            version: version.into(),
            instances,
            stats,
            cursor: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The next instance in round-robin order, `None` without instances.
    pub fn next_instance(&self) -> Option<SocketAddr> {
        if self.instances.is_empty() {
            return None;
        }
        let i = self.cursor.fetch_add(1, Ordering::Relaxed);
        Some(self.instances[i % self.instances.len()])
    }

    fn is_serving(&self) -> bool {
        !self.instances.is_empty()
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("version", &self.version)
            .field("instances", &self.instances)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Which role a request was routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Stable,
    Canary,
}

/// The route table. `canary_weight` is in basis points (0..=10000; larger values
/// count as 10000): the share of requests sent to the canary when both serve.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    pub stable: Option<Backend>,
    pub canary: Option<Backend>,
    pub canary_weight: u16,
}

/// Why a request could not be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoRoute {
    /// No version has any instance.
    NothingServing,
    /// The pinned version is not serving; carries the pin and what is serving.
    PinnedAbsent { pinned: String, serving: String },
}

impl Routes {
    /// Only a stable version, taking all traffic.
    pub fn stable_only(stable: Backend) -> Routes {
        Routes {
            stable: Some(stable),
            canary: None,
            canary_weight: 0,
        }
    }

    fn serving(&self, role: Role) -> Option<&Backend> {
        match role {
            Role::Stable => self.stable.as_ref(),
            Role::Canary => self.canary.as_ref(),
        }
        .filter(|b| b.is_serving())
    }

    /// Picks the backend for one request. `pin` is the value of the
    /// `x-cutover-version` request header, if any: `stable`, `canary` (any case), or
    /// an exact version string.
    pub(crate) fn choose(&self, pin: Option<&str>) -> Result<(Role, &Backend), NoRoute> {
        if let Some(pin) = pin {
            let pin = pin.trim();
            let role = if pin.eq_ignore_ascii_case("stable") {
                Some(Role::Stable)
            } else if pin.eq_ignore_ascii_case("canary") {
                Some(Role::Canary)
            } else {
                [Role::Stable, Role::Canary]
                    .into_iter()
                    .find(|&r| self.serving(r).is_some_and(|b| b.version == pin))
            };
            return role
                .and_then(|r| self.serving(r).map(|b| (r, b)))
                .ok_or_else(|| NoRoute::PinnedAbsent {
                    pinned: pin.to_owned(),
                    serving: self.describe_serving(),
                });
        }
        match (self.serving(Role::Stable), self.serving(Role::Canary)) {
            (None, None) => Err(NoRoute::NothingServing),
            (Some(stable), None) => Ok((Role::Stable, stable)),
            (None, Some(canary)) => Ok((Role::Canary, canary)),
            (Some(stable), Some(canary)) => {
                let weight = self.canary_weight.min(FULL_WEIGHT);
                if fastrand::u16(0..FULL_WEIGHT) < weight {
                    Ok((Role::Canary, canary))
                } else {
                    Ok((Role::Stable, stable))
                }
            }
        }
    }

    /// `v1 (stable), v2 (canary)`, or `none`.
    pub(crate) fn describe_serving(&self) -> String {
        let parts: Vec<String> = [(Role::Stable, "stable"), (Role::Canary, "canary")]
            .into_iter()
            .filter_map(|(r, name)| self.serving(r).map(|b| format!("{} ({name})", b.version)))
            .collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(version: &str, ports: &[u16]) -> Backend {
        let instances = ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect();
        Backend::new(version, instances, VersionStats::new())
    }

    #[test]
    fn round_robin_is_shared_by_clones() {
        let b = backend("v1", &[1, 2, 3]);
        let c = b.clone();
        let ports: Vec<u16> = (0..6)
            .map(|i| {
                if i % 2 == 0 { &b } else { &c }
                    .next_instance()
                    .unwrap()
                    .port()
            })
            .collect();
        assert_eq!(ports, [1, 2, 3, 1, 2, 3]);
        assert_eq!(backend("v1", &[]).next_instance(), None);
    }

    #[test]
    fn empty_backends_count_as_absent() {
        let routes = Routes {
            stable: Some(backend("v1", &[])),
            canary: Some(backend("v2", &[1])),
            canary_weight: 0,
        };
        let (role, b) = routes.choose(None).unwrap();
        assert_eq!((role, b.version.as_str()), (Role::Canary, "v2"));
        assert_eq!(routes.describe_serving(), "v2 (canary)");
        assert_eq!(
            Routes::default().choose(None).unwrap_err(),
            NoRoute::NothingServing
        );
        assert_eq!(Routes::default().describe_serving(), "none");
    }

    #[test]
    fn pins_by_role_or_version() {
        let routes = Routes {
            stable: Some(backend("v1", &[1])),
            canary: Some(backend("v2", &[2])),
            canary_weight: 0,
        };
        assert_eq!(routes.choose(Some("Canary")).unwrap().0, Role::Canary);
        assert_eq!(routes.choose(Some("v2")).unwrap().0, Role::Canary);
        assert_eq!(routes.choose(Some("stable")).unwrap().0, Role::Stable);
        assert_eq!(routes.choose(Some("v1")).unwrap().0, Role::Stable);
        assert_eq!(
            routes.choose(Some("v3")).unwrap_err(),
            NoRoute::PinnedAbsent {
                pinned: "v3".into(),
                serving: "v1 (stable), v2 (canary)".into()
            }
        );
        let stable_only = Routes::stable_only(backend("v1", &[1]));
        assert!(matches!(
            stable_only.choose(Some("canary")),
            Err(NoRoute::PinnedAbsent { .. })
        ));
    }

    #[test]
    fn weights_beyond_full_mean_all_canary() {
        let routes = Routes {
            stable: Some(backend("v1", &[1])),
            canary: Some(backend("v2", &[2])),
            canary_weight: u16::MAX,
        };
        assert!((0..1000).all(|_| routes.choose(None).unwrap().0 == Role::Canary));
    }
}
