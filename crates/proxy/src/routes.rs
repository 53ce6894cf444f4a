//! The route table: which versions serve, on which addresses, and how traffic is
//! split between them. Plain data; the proxy holds it in an `ArcSwap` and reads a
//! snapshot per request (like linkerd2-proxy's `distribute`), so replacing it never
//! blocks a request and never changes one that already started.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::HeaderValue;
use http::uri::Authority;

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
    /// Made once for every request: the authority of each instance's upstream URI
    /// (`None` if an address is not a valid one), by position in `instances`...
    authorities: Arc<[(SocketAddr, Option<Authority>)]>,
    /// ... and `version` as the response header value (`None` if it is not a
    /// valid one). Both are checked against the public fields before use, in case
    /// those were changed after [`Backend::new`].
    version_header: Option<HeaderValue>,
}

impl Backend {
    /// A version served by `instances`, measured into `stats`.
    ///
    /// Round-robin starts at the first instance for the first backend built over
    /// `stats`, and at a random one for every later backend over the same `stats`
    /// (the route changes of a version that already serves), so that frequent
    /// rebuilds do not send more traffic to the first instance than to the others.
    pub fn new(
        version: impl Into<String>,
        instances: Vec<SocketAddr>,
        stats: Arc<VersionStats>,
    ) -> Backend {
        let version = version.into();
        let start = if stats.first_route() || instances.is_empty() {
            0
        } else {
            fastrand::usize(..instances.len())
        };
        let authorities = instances
            .iter()
            .map(|&addr| (addr, Authority::try_from(addr.to_string()).ok()))
            .collect();
        Backend {
            version_header: HeaderValue::from_str(&version).ok(),
            version,
            instances,
            stats,
            cursor: Arc::new(AtomicUsize::new(start)),
            authorities,
        }
    }

    /// The next instance in round-robin order, `None` without instances.
    pub fn next_instance(&self) -> Option<SocketAddr> {
        self.next().map(|(_, addr)| addr)
    }

    /// The next instance in round-robin order and its position in `instances`.
    pub(crate) fn next(&self) -> Option<(usize, SocketAddr)> {
        if self.instances.is_empty() {
            return None;
        }
        let i = self.cursor.fetch_add(1, Ordering::Relaxed) % self.instances.len();
        Some((i, self.instances[i]))
    }

    /// The URI authority of `addr`, the instance at position `i`.
    pub(crate) fn authority(&self, i: usize, addr: SocketAddr) -> Option<Authority> {
        match self.authorities.get(i) {
            Some((cached, authority)) if *cached == addr => authority.clone(),
            _ => Authority::try_from(addr.to_string()).ok(),
        }
    }

    /// `version` as a header value, `None` if it is not a valid one.
    pub(crate) fn version_header(&self) -> Option<HeaderValue> {
        match &self.version_header {
            Some(value) if value.as_bytes() == self.version.as_bytes() => Some(value.clone()),
            _ => HeaderValue::from_str(&self.version).ok(),
        }
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

    pub(crate) fn serving(&self, role: Role) -> Option<&Backend> {
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
    fn rebuilds_over_the_same_stats_start_round_robin_anywhere() {
        fastrand::seed(7);
        let stats = VersionStats::new();
        let instances: Vec<SocketAddr> = (1..=3)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        // The first backend of a version starts at its first instance.
        let first = Backend::new("v1", instances.clone(), Arc::clone(&stats));
        assert_eq!(first.next_instance().unwrap().port(), 1);

        // Each route change builds the backend anew; its first pick is spread.
        let mut firsts = [0usize; 3];
        for _ in 0..3000 {
            let rebuilt = Backend::new("v1", instances.clone(), Arc::clone(&stats));
            let port = rebuilt.next_instance().unwrap().port();
            firsts[usize::from(port) - 1] += 1;
            // And goes on round-robin from there.
            let next = rebuilt.next_instance().unwrap().port();
            assert_eq!(next, port % 3 + 1);
        }
        assert!(
            firsts.iter().all(|&n| (800..=1200).contains(&n)),
            "first picks per instance over 3000 rebuilds: {firsts:?}"
        );

        // A single instance, or none, is still fine.
        let one = Backend::new("v1", instances[..1].to_vec(), Arc::clone(&stats));
        assert_eq!(one.next_instance().unwrap().port(), 1);
        assert_eq!(Backend::new("v1", vec![], stats).next_instance(), None);
    }

    #[test]
    fn cached_header_and_authorities_follow_the_public_fields() {
        let mut b = backend("v1", &[1, 2]);
        assert_eq!(b.version_header().unwrap(), "v1");
        let (i, addr) = b.next().unwrap();
        assert_eq!(b.authority(i, addr).unwrap(), addr.to_string().as_str());

        // Fields changed after `new` win over what was cached.
        b.version = "v2".into();
        assert_eq!(b.version_header().unwrap(), "v2");
        b.version = "bad\nversion".into();
        assert_eq!(b.version_header(), None);
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        b.instances = vec![v6];
        let (i, addr) = b.next().unwrap();
        assert_eq!(addr, v6);
        assert_eq!(b.authority(i, addr).unwrap(), "[::1]:8080");
        assert_eq!(backend("bad\nversion", &[1]).version_header(), None);
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
