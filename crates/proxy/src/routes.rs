//! The route table: which versions serve, in which roles, on which instances, and
//! how requests are spread over them. Plain data; the proxy holds it in an
//! `ArcSwap` and reads a snapshot per request (like linkerd2-proxy's `distribute`
//! and Gateway API's `backendRefs`), so replacing it never blocks a request and
//! never changes one that already started.
//!
//! A table is a list of weighted [`Backend`]s. A request goes to one of them at
//! random in proportion to their weights, among those with an instance; one with
//! weight 0 is reached only by requests that pin it (by role or version) with the
//! `x-cutover-version` header. A sticky table sends a client that carries its
//! cookie back to the version it got before, as long as that version serves. A
//! table may also mirror a share of one role's requests to another version.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::HeaderValue;

use crate::endpoint::Endpoint;
use crate::mirror::Mirror;
use crate::stats::VersionStats;

/// The canary weight that sends all traffic to the canary, in basis points, for
/// [`Routes::split`].
pub const FULL_WEIGHT: u16 = 10_000;

/// One version in one role, with its instances and where its measurements go.
#[derive(Clone)]
pub struct Backend {
    /// The version string, echoed in `x-cutover-version` on every response it serves.
    pub version: String,
    /// The part it plays (`stable`, `canary`, `baseline`, `preview`, ...): a
    /// request may pin it by this name.
    pub role: String,
    /// Its share of the requests that pin nothing, relative to the other backends'
    /// (0: reached only by requests that pin it).
    pub weight: u32,
    pub stats: Arc<VersionStats>,
    /// Instances, served round-robin. A backend without instances counts as absent.
    endpoints: Arc<[Arc<Endpoint>]>,
    /// Round-robin position, shared by clones of this backend.
    cursor: Arc<AtomicUsize>,
    /// `version` as the response header value, made once (`None` if it is not a
    /// valid one); checked against `version` before use, in case that was changed
    /// after the backend was built.
    version_header: Option<HeaderValue>,
}

impl Backend {
    /// A version served by `instances` (fresh endpoints), measured into `stats`, in
    /// the role `stable` with weight 1.
    pub fn new(
        version: impl Into<String>,
        instances: Vec<SocketAddr>,
        stats: Arc<VersionStats>,
    ) -> Backend {
        let endpoints = instances.into_iter().map(Endpoint::new).collect();
        Backend::with_endpoints(version, endpoints, stats)
    }

    /// A version served by `endpoints`, which may be shared with other tables (so
    /// that their in-flight counts and drains outlive a route change).
    ///
    /// Round-robin starts at the first instance for the first backend built over
    /// `stats`, and at a random one for every later backend over the same `stats`
    /// (the route changes of a version that already serves), so that frequent
    /// rebuilds do not send more traffic to the first instance than to the others.
    pub fn with_endpoints(
        version: impl Into<String>,
        endpoints: Vec<Arc<Endpoint>>,
        stats: Arc<VersionStats>,
    ) -> Backend {
        let version = version.into();
        let start = if stats.first_route() || endpoints.is_empty() {
            0
        } else {
            fastrand::usize(..endpoints.len())
        };
        Backend {
            version_header: HeaderValue::from_str(&version).ok(),
            version,
            role: "stable".to_owned(),
            weight: 1,
            stats,
            endpoints: endpoints.into(),
            cursor: Arc::new(AtomicUsize::new(start)),
        }
    }

    /// The same backend in `role`.
    pub fn role(mut self, role: impl Into<String>) -> Backend {
        self.role = role.into();
        self
    }

    /// The same backend with `weight`.
    pub fn weight(mut self, weight: u32) -> Backend {
        self.weight = weight;
        self
    }

    /// Its instances' addresses, in order.
    pub fn instances(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.endpoints.iter().map(|e| e.addr())
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// The next instance in round-robin order, `None` without instances.
    pub fn next_instance(&self) -> Option<SocketAddr> {
        self.next().map(|e| e.addr())
    }

    /// The next instance in round-robin order.
    pub(crate) fn next(&self) -> Option<&Arc<Endpoint>> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.cursor.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        Some(&self.endpoints[i])
    }

    /// `version` as a header value, `None` if it is not a valid one.
    pub(crate) fn version_header(&self) -> Option<HeaderValue> {
        match &self.version_header {
            Some(value) if value.as_bytes() == self.version.as_bytes() => Some(value.clone()),
            _ => HeaderValue::from_str(&self.version).ok(),
        }
    }

    fn is_serving(&self) -> bool {
        !self.endpoints.is_empty()
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("version", &self.version)
            .field("role", &self.role)
            .field("weight", &self.weight)
            .field("instances", &self.instances().collect::<Vec<_>>())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The route table.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    pub backends: Vec<Backend>,
    /// When set, requests that pin nothing stick to a version with a cookie of
    /// this name (see [`Routes`]).
    pub sticky_cookie: Option<String>,
    /// When set, a share of the requests routed by weight to one role is copied
    /// to another version (see [`Mirror`]).
    pub mirror: Option<Mirror>,
}

/// How a request was routed: the backend's position in the table, and whether
/// the response should (re)set the sticky cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Choice {
    pub(crate) index: usize,
    pub(crate) set_cookie: bool,
}

/// Why a request could not be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoRoute {
    /// No backend with weight has any instance.
    NothingServing,
    /// The pinned version is not serving; carries the pin and what is serving.
    PinnedAbsent { pinned: String, serving: String },
}

impl Routes {
    /// Only a stable version, taking all traffic.
    pub fn stable_only(stable: Backend) -> Routes {
        Routes {
            backends: vec![stable],
            sticky_cookie: None,
            mirror: None,
        }
    }

    /// A stable and a canary version, the canary taking `canary_bp` basis points of
    /// the requests (values above [`FULL_WEIGHT`] count as all of them).
    pub fn split(stable: Backend, canary: Backend, canary_bp: u16) -> Routes {
        let canary_bp = canary_bp.min(FULL_WEIGHT);
        Routes {
            backends: vec![
                stable
                    .role("stable")
                    .weight(u32::from(FULL_WEIGHT - canary_bp)),
                canary.role("canary").weight(u32::from(canary_bp)),
            ],
            sticky_cookie: None,
            mirror: None,
        }
    }

    /// The backend a request was routed to by [`Routes::choose`].
    pub(crate) fn backend(&self, index: usize) -> Option<&Backend> {
        self.backends.get(index)
    }

    fn serving(&self) -> impl Iterator<Item = (usize, &Backend)> {
        self.backends
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_serving())
    }

    /// Picks the backend for one request. `pin` is the value of the
    /// `x-cutover-version` request header, if any: a role (`stable`, `canary`, ...;
    /// any case) or an exact version string. `sticky` is the value of the request's
    /// sticky cookie, if the table has one and the request carried it.
    pub(crate) fn choose(
        &self,
        pin: Option<&str>,
        sticky: Option<&str>,
    ) -> Result<Choice, NoRoute> {
        if let Some(pin) = pin {
            let pin = pin.trim();
            let found = self
                .serving()
                .find(|(_, b)| b.role.eq_ignore_ascii_case(pin))
                .or_else(|| self.serving().find(|(_, b)| b.version == pin));
            return match found {
                Some((index, _)) => Ok(Choice {
                    index,
                    set_cookie: false,
                }),
                None => Err(NoRoute::PinnedAbsent {
                    pinned: pin.to_owned(),
                    serving: self.describe_serving(),
                }),
            };
        }
        let weighted = || self.serving().filter(|(_, b)| b.weight > 0);
        if let Some(version) = sticky
            && let Some((index, _)) = weighted().find(|(_, b)| b.version == version)
        {
            return Ok(Choice {
                index,
                set_cookie: false,
            });
        }
        let total: u64 = weighted().map(|(_, b)| u64::from(b.weight)).sum();
        if total == 0 {
            return Err(NoRoute::NothingServing);
        }
        let mut point = fastrand::u64(0..total);
        let index = weighted()
            .find(|(_, b)| {
                let w = u64::from(b.weight);
                if point < w {
                    true
                } else {
                    point -= w;
                    false
                }
            })
            .map_or(0, |(i, _)| i);
        Ok(Choice {
            index,
            set_cookie: self.sticky_cookie.is_some(),
        })
    }

    /// `v1 (stable), v2 (canary)`, or `none`.
    pub(crate) fn describe_serving(&self) -> String {
        let parts: Vec<String> = self
            .serving()
            .map(|(_, b)| format!("{} ({})", b.version, b.role))
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

    fn chosen<'r>(routes: &'r Routes, pin: Option<&str>) -> &'r Backend {
        let choice = routes.choose(pin, None).unwrap();
        routes.backend(choice.index).unwrap()
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
    fn the_cached_header_follows_the_public_version() {
        let mut b = backend("v1", &[1, 2]);
        assert_eq!(b.version_header().unwrap(), "v1");
        b.version = "v2".into();
        assert_eq!(b.version_header().unwrap(), "v2");
        b.version = "bad\nversion".into();
        assert_eq!(b.version_header(), None);
        assert_eq!(backend("bad\nversion", &[1]).version_header(), None);
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        let e = Endpoint::new(v6);
        assert_eq!(e.host_header().unwrap(), "[::1]:8080");
    }

    #[test]
    fn empty_backends_count_as_absent() {
        let routes = Routes::split(backend("v1", &[]), backend("v2", &[1]), 1);
        assert_eq!(chosen(&routes, None).version, "v2");
        assert_eq!(routes.describe_serving(), "v2 (canary)");
        assert_eq!(
            Routes::default().choose(None, None).unwrap_err(),
            NoRoute::NothingServing
        );
        assert_eq!(Routes::default().describe_serving(), "none");
    }

    #[test]
    fn weight_zero_takes_only_pinned_requests() {
        let routes = Routes {
            backends: vec![
                backend("v1", &[]),
                backend("v2", &[2]).role("preview").weight(0),
            ],
            sticky_cookie: None,
            mirror: None,
        };
        assert_eq!(
            routes.choose(None, None).unwrap_err(),
            NoRoute::NothingServing
        );
        assert_eq!(chosen(&routes, Some("preview")).version, "v2");
        assert_eq!(chosen(&routes, Some("v2")).version, "v2");
    }

    #[test]
    fn pins_by_role_or_version() {
        let routes = Routes::split(backend("v1", &[1]), backend("v2", &[2]), 0);
        assert_eq!(chosen(&routes, Some("Canary")).role, "canary");
        assert_eq!(chosen(&routes, Some("v2")).role, "canary");
        assert_eq!(chosen(&routes, Some("stable")).role, "stable");
        assert_eq!(chosen(&routes, Some("v1")).role, "stable");
        assert_eq!(
            routes.choose(Some("v3"), None).unwrap_err(),
            NoRoute::PinnedAbsent {
                pinned: "v3".into(),
                serving: "v1 (stable), v2 (canary)".into()
            }
        );
        let stable_only = Routes::stable_only(backend("v1", &[1]));
        assert!(matches!(
            stable_only.choose(Some("canary"), None),
            Err(NoRoute::PinnedAbsent { .. })
        ));
    }

    #[test]
    fn two_backends_of_one_version_are_told_apart_by_role() {
        let routes = Routes {
            backends: vec![
                backend("v1", &[1]).role("stable").weight(8),
                backend("v1", &[2]).role("baseline").weight(1),
                backend("v2", &[3]).role("canary").weight(1),
            ],
            sticky_cookie: None,
            mirror: None,
        };
        let addr = |pin| chosen(&routes, Some(pin)).next_instance().unwrap().port();
        assert_eq!(addr("baseline"), 2);
        assert_eq!(addr("stable"), 1);
        // A version pin takes the first backend of that version.
        assert_eq!(addr("v1"), 1);
    }

    #[test]
    fn weights_are_honoured_within_a_statistical_tolerance() {
        fastrand::seed(11);
        let routes = Routes {
            backends: vec![
                backend("v1", &[1]).weight(3),
                backend("v2", &[2]).role("canary").weight(1),
                backend("v3", &[3]).role("preview").weight(0),
            ],
            sticky_cookie: None,
            mirror: None,
        };
        let n = 40_000;
        let mut counts = [0u32; 3];
        for _ in 0..n {
            counts[routes.choose(None, None).unwrap().index] += 1;
        }
        // 1/4 of 40000 is 10000, with a standard deviation of about 87.
        assert!((9_600..=10_400).contains(&counts[1]), "{counts:?}");
        assert_eq!(counts[2], 0, "weight 0 gets no unpinned request");
        assert_eq!(counts[0] + counts[1], n);
    }

    #[test]
    fn weights_beyond_full_mean_all_canary() {
        let routes = Routes::split(backend("v1", &[1]), backend("v2", &[2]), u16::MAX);
        assert!((0..1000).all(|_| chosen(&routes, None).role == "canary"));
    }

    #[test]
    fn a_sticky_cookie_keeps_a_client_on_its_version_while_it_serves() {
        let mut routes = Routes::split(backend("v1", &[1]), backend("v2", &[2]), 5_000);
        routes.sticky_cookie = Some("cutover-shop".into());
        // Every request the cookie names a serving version stays there, unset.
        for _ in 0..200 {
            let c = routes.choose(None, Some("v2")).unwrap();
            assert_eq!((c.index, c.set_cookie), (1, false));
        }
        // No cookie, or one naming a version that no longer serves: chosen by
        // weight, and the cookie is set.
        assert!(routes.choose(None, None).unwrap().set_cookie);
        assert!(routes.choose(None, Some("v0")).unwrap().set_cookie);
        // A pinned request neither reads nor sets it.
        let pinned = routes.choose(Some("stable"), Some("v2")).unwrap();
        assert_eq!((pinned.index, pinned.set_cookie), (0, false));
    }
}
