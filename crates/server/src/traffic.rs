//! The built-in proxy behind the engine's [`Traffic`], [`MetricsSource`] and
//! [`Prober`] traits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use cutover_analysis::{Sample, SourceError};
use cutover_api::SmokeResult;
use cutover_engine::traffic::{self, MetricsCursor, MetricsSource, Prober, Role, Split, Traffic};
use cutover_proxy::{
    Backend, Endpoint, Mirror, MirrorCounts, Proxy, Routes, Snapshot, VERSION_HEADER, VersionStats,
};
use cutover_spec::SmokeCheck;

/// The proxy, with one [`VersionStats`] per version and role it ever routed to,
/// kept across route changes so measurements do not reset when a weight moves, and
/// one [`Endpoint`] per instance, so a drain sees every request to it whichever
/// route table the request was routed by.
pub struct ProxyTraffic {
    proxy: Proxy,
    /// Blue-green's preview address: every request there goes to the preview.
    preview: Option<Proxy>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    stats: HashMap<(String, Role), Arc<VersionStats>>,
    /// The backend last built per version and role: reused while its instances are
    /// the same, so a weight change does not restart its round-robin.
    backends: HashMap<(String, Role), Backend>,
    /// The instances of the current split.
    endpoints: HashMap<SocketAddr, Arc<Endpoint>>,
    /// Instances taken out of the split that an older route table, a request in
    /// flight or a drain may still hold; forgotten once nothing else does.
    leaving: HashMap<SocketAddr, Arc<Endpoint>>,
    /// The mirror last applied, per version it copies to: its bound on copies in
    /// flight and its counts carry over route changes.
    mirrors: HashMap<String, Mirror>,
    /// What the mirrors taken out of the split did, per version, so the counts
    /// since the daemon started never go back when a mirror is made anew.
    retired_mirrors: HashMap<String, MirrorCounts>,
}

impl ProxyTraffic {
    pub fn new(proxy: Proxy, preview: Option<Proxy>) -> ProxyTraffic {
        ProxyTraffic {
            proxy,
            preview,
            state: Mutex::new(State::default()),
        }
    }

    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// The preview proxy, if one listens.
    pub fn preview(&self) -> Option<&Proxy> {
        self.preview.as_ref()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stats of every version and role the proxy ever routed to, sorted.
    pub fn stats(&self) -> Vec<(String, Role, Arc<VersionStats>)> {
        let mut out: Vec<_> = (self.state().stats.iter())
            .map(|((version, role), stats)| (version.clone(), *role, stats.clone()))
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }

    /// Every instance in the current routes, with its version and role, sorted.
    pub fn routed_instances(&self) -> Vec<(String, Role, SocketAddr)> {
        let state = self.state();
        let mut out: Vec<_> = (state.backends.iter())
            .flat_map(|((version, role), backend)| {
                (backend.endpoints().iter()).map(|e| (version.clone(), *role, e.addr()))
            })
            .collect();
        out.sort();
        out
    }

    /// What the mirrors did per version they copied to, since the daemon started,
    /// sorted by version.
    pub fn mirror_counts(&self) -> Vec<(String, MirrorCounts)> {
        let state = self.state();
        let mut per_version = state.retired_mirrors.clone();
        for (version, mirror) in &state.mirrors {
            add_counts(
                per_version.entry(version.clone()).or_default(),
                mirror.counts(),
            );
        }
        let mut out: Vec<_> = per_version.into_iter().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Requests and failed responses per version (all roles but the shadow's
    /// mirrored copies, which no client sent) since the daemon started.
    pub fn totals(&self) -> Vec<(String, u64, u64)> {
        let mut per_version: HashMap<String, (u64, u64)> = HashMap::new();
        let state = self.state();
        let served = state
            .stats
            .iter()
            .filter(|((_, role), _)| *role != Role::Shadow);
        for ((version, _), stats) in served {
            let (requests, errors) = stats.totals();
            let t = per_version.entry(version.clone()).or_default();
            t.0 += requests;
            t.1 += errors;
        }
        let mut out: Vec<_> = per_version
            .into_iter()
            .map(|(v, (requests, errors))| (v, requests, errors))
            .collect();
        out.sort();
        out
    }
}

fn add_counts(total: &mut MirrorCounts, more: MirrorCounts) {
    total.mirrored += more.mirrored;
    total.skipped_full += more.skipped_full;
    total.skipped_too_large += more.skipped_too_large;
}

impl State {
    fn stats(&mut self, version: &str, role: Role) -> Arc<VersionStats> {
        self.stats
            .entry((version.to_owned(), role))
            .or_insert_with(VersionStats::new)
            .clone()
    }

    /// The endpoint of `addr`: the one already routed to or leaving, unless it
    /// was drained (a later instance on the same port is a new one).
    fn endpoint(&mut self, addr: SocketAddr) -> Arc<Endpoint> {
        let known = self.endpoints.get(&addr).or(self.leaving.get(&addr));
        let e = match known {
            Some(e) if !e.is_retired() => e.clone(),
            _ => Endpoint::new(addr),
        };
        self.leaving.remove(&addr);
        self.endpoints.insert(addr, e.clone());
        e
    }

    fn backend(&mut self, target: &traffic::Backend) -> Backend {
        let key = (target.version.clone(), target.role);
        let endpoints: Vec<_> = target
            .instances
            .iter()
            .map(|&addr| self.endpoint(addr))
            .collect();
        if let Some(b) = self.backends.get(&key)
            && b.endpoints().len() == endpoints.len()
            && b.endpoints()
                .iter()
                .zip(&endpoints)
                .all(|(a, b)| Arc::ptr_eq(a, b))
        {
            return b.clone().weight(target.weight);
        }
        let stats = self.stats(&target.version, target.role);
        let b = Backend::with_endpoints(target.version.clone(), endpoints, stats)
            .role(target.role.as_str());
        self.backends.insert(key, b.clone());
        b.weight(target.weight)
    }

    /// The proxy's mirror for `mirror`: copies of the stable's requests to its
    /// instances, measured as the version's [`Role::Shadow`].
    fn mirror(&mut self, mirror: &traffic::Mirror) -> Mirror {
        let shadow = traffic::Backend {
            version: mirror.version.clone(),
            role: Role::Shadow,
            instances: mirror.instances.clone(),
            weight: 0,
        };
        let target = self.backend(&shadow);
        let made = match self.mirrors.get(&mirror.version) {
            Some(known) => known.retarget(target, mirror.share_bp),
            None => Mirror::new(Role::Stable.as_str(), target, mirror.share_bp),
        };
        self.mirrors.insert(mirror.version.clone(), made.clone());
        made
    }
}

#[async_trait]
impl Traffic for ProxyTraffic {
    fn apply(&self, split: &Split) {
        let mut state = self.state();
        let routes = Routes {
            backends: split.backends.iter().map(|b| state.backend(b)).collect(),
            sticky_cookie: split.sticky_cookie.clone(),
            mirror: split.mirror.as_ref().map(|m| state.mirror(m)),
        };
        // Instances no longer routed to are kept for their drain while anything
        // else still holds them: a request that loaded an older table can only
        // reach an instance through that table's endpoint, so one nothing holds
        // any more can never be reached again, and a drain has nothing to wait for.
        let mirrored = split.mirror.iter().flat_map(|m| m.instances.iter());
        let routed: Vec<SocketAddr> = (split.backends.iter())
            .flat_map(|b| b.instances.iter())
            .chain(mirrored)
            .copied()
            .collect();
        let left: Vec<SocketAddr> = (state.endpoints.keys())
            .filter(|addr| !routed.contains(addr))
            .copied()
            .collect();
        for addr in left {
            if let Some(e) = state.endpoints.remove(&addr) {
                state.leaving.insert(addr, e);
            }
        }
        state.leaving.retain(|_, e| Arc::strong_count(e) > 1);
        let shadow = split
            .mirror
            .as_ref()
            .map(|m| (m.version.as_str(), Role::Shadow));
        state.backends.retain(|(version, role), _| {
            shadow == Some((version.as_str(), *role))
                || (split.backends.iter()).any(|b| b.version == *version && b.role == *role)
        });
        let State {
            mirrors,
            retired_mirrors,
            ..
        } = &mut *state;
        mirrors.retain(|version, mirror| {
            let kept = split.mirror.as_ref().is_some_and(|m| m.version == *version);
            if !kept {
                add_counts(
                    retired_mirrors.entry(version.clone()).or_default(),
                    mirror.counts(),
                );
            }
            kept
        });
        // Under the lock, so two applies cannot overtake each other.
        if let Some(preview) = &self.preview {
            let previews = routes
                .backends
                .iter()
                .filter(|b| b.role == Role::Preview.as_str())
                .map(|b| b.clone().weight(1))
                .collect();
            preview.set_routes(Routes {
                backends: previews,
                sticky_cookie: None,
                mirror: None,
            });
        }
        self.proxy.set_routes(routes);
    }

    async fn drain(&self, instances: &[SocketAddr], timeout: Duration) -> bool {
        let endpoints: Vec<Arc<Endpoint>> = {
            let state = self.state();
            instances
                .iter()
                .filter_map(|addr| state.endpoints.get(addr).or(state.leaving.get(addr)))
                .cloned()
                .collect()
        };
        let drains = endpoints.iter().map(|e| e.drain(timeout));
        futures_util::future::join_all(drains)
            .await
            .into_iter()
            .all(|drained| drained)
    }
}

impl MetricsSource for ProxyTraffic {
    fn cursor(&self, version: &str, role: Role) -> Box<dyn MetricsCursor> {
        let stats = self.state().stats(version, role);
        let last = stats.snapshot();
        Box::new(ProxyCursor { stats, last })
    }
}

/// Windows cut from the proxy's cumulative counters: exact, whatever the interval.
struct ProxyCursor {
    stats: Arc<VersionStats>,
    last: Snapshot,
}

#[async_trait]
impl MetricsCursor for ProxyCursor {
    /// Never fails and never waits: the counters are in memory.
    async fn next_window(&mut self) -> Result<Sample, SourceError> {
        let now = self.stats.snapshot();
        let window = now.since(&self.last);
        self.last = now;
        Ok(window)
    }
}

/// Smoke checks go through the proxy itself, pinned to the role, so they reach
/// the version as clients would and are measured like any request.
#[async_trait]
impl Prober for ProxyTraffic {
    async fn probe(&self, check: &SmokeCheck, role: Role) -> SmokeResult {
        let name = format!("{} {}", check.method, check.path);
        let mut headers: Vec<(String, String)> = check
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        headers.push((VERSION_HEADER.to_owned(), role.as_str().to_owned()));
        let timeout = check
            .max_latency
            .map_or(PROBE_TIMEOUT, |l| l.max(PROBE_TIMEOUT));
        let answer = cutover_proxy::probe(
            self.proxy.local_addr(),
            &check.method,
            &check.path,
            &headers,
            timeout,
        )
        .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(problem) => {
                return SmokeResult {
                    check: name,
                    passed: false,
                    status: None,
                    latency_ms: None,
                    problem: Some(problem),
                };
            }
        };
        let status = answer.status.as_u16();
        let latency_ms = answer.latency.as_millis() as u64;
        let mut problems = Vec::new();
        if status != check.status {
            problems.push(format!("status {status}, expected {}", check.status));
        }
        if let Some(text) = &check.body_contains
            && !String::from_utf8_lossy(&answer.body).contains(text.as_str())
        {
            problems.push(format!("the body does not contain {text:?}"));
        }
        if let Some(max) = check.max_latency
            && answer.latency > max
        {
            problems.push(format!(
                "answered in {latency_ms} ms, more than the {} ms allowed",
                max.as_millis()
            ));
        }
        SmokeResult {
            check: name,
            passed: problems.is_empty(),
            status: Some(status),
            latency_ms: Some(latency_ms),
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    }
}

/// How long a smoke check may take without a `max_latency` of its own (or with a
/// shorter one: the check then fails on its latency, not on a timeout).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use cutover_engine::traffic::Mirror;
    use cutover_proxy::ProxyOptions;

    use super::*;

    /// An HTTP server on 127.0.0.1 answering `body`, counting its requests.
    async fn upstream(body: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&count);
        let app = axum::Router::new().fallback(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::future::ready(body)
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, count)
    }

    fn backend(version: &str, role: Role, addr: SocketAddr, weight: u32) -> traffic::Backend {
        traffic::Backend {
            version: version.into(),
            role,
            instances: vec![addr],
            weight,
        }
    }

    #[tokio::test]
    async fn a_split_s_mirror_copies_the_stable_s_requests_measured_as_the_shadow() {
        let (v1, _) = upstream("one").await;
        let (v2, copies) = upstream("two").await;
        let proxy = Proxy::bind("127.0.0.1:0".parse().unwrap(), ProxyOptions::default())
            .await
            .unwrap();
        let traffic = ProxyTraffic::new(proxy.clone(), None);
        let mut shadow = traffic.cursor("v2", Role::Shadow);
        let mut canary = traffic.cursor("v2", Role::Canary);
        traffic.apply(&Split {
            backends: vec![
                backend("v1", Role::Stable, v1, 10_000),
                backend("v2", Role::Canary, v2, 0),
            ],
            sticky_cookie: None,
            mirror: Some(Mirror {
                version: "v2".into(),
                instances: vec![v2],
                share_bp: 10_000,
            }),
        });
        for _ in 0..5 {
            let answer = cutover_proxy::probe(proxy.local_addr(), "GET", "/", &[], PROBE_TIMEOUT)
                .await
                .unwrap();
            assert_eq!(answer.body, "one");
        }
        let mut judged = 0;
        let deadline = tokio::time::Instant::now() + PROBE_TIMEOUT;
        while judged < 5 && tokio::time::Instant::now() < deadline {
            judged += shadow.next_window().await.unwrap().requests;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(judged, 5, "the shadow's windows");
        assert_eq!(copies.load(Ordering::SeqCst), 5);
        assert_eq!(
            canary.next_window().await.unwrap().requests,
            0,
            "no client reached v2"
        );
        // The copies are no client's traffic.
        let totals = vec![("v1".to_owned(), 5, 0), ("v2".to_owned(), 0, 0)];
        assert_eq!(traffic.totals(), totals);
        proxy.shutdown().await;
    }
}
