//! The running releases, owned by the engine so that no error path can drop one
//! (and with it its instances) while traffic still goes to it: taking one in,
//! growing and shrinking it, retiring it (routed away, drained, stopped).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cutover_api::Role;
use tracing::warn;

use crate::engine::{Inner, STOP_GRACE, lock};
use crate::platform::{PlatformError, Release, ReleaseSpec};

/// One running release, locked on its own while it grows or shrinks.
pub(crate) type Owned = Arc<tokio::sync::Mutex<Box<dyn Release>>>;

/// How retiring a release went.
pub(crate) struct Retired {
    /// No request was left in flight when it was stopped.
    pub(crate) drained: bool,
    pub(crate) instances: u32,
}

impl Inner {
    /// Takes a started (or adopted) release in, and follows its health.
    pub(crate) fn adopt_release(self: &Arc<Self>, release: Box<dyn Release>) {
        let name = release.name().to_owned();
        self.follow_health(name.clone(), release.health());
        let owned: Owned = Arc::new(tokio::sync::Mutex::new(release));
        if let Some(previous) = lock(&self.releases).insert(name.clone(), owned) {
            // Two releases under one name would be a bug in a strategy; keep the
            // old one's instances from running unowned.
            warn!(release = %name, "a release of this name was already running; stopping it");
            tokio::spawn(async move { previous.lock().await.stop(STOP_GRACE).await });
        }
    }

    fn owned(&self, name: &str) -> Option<Owned> {
        lock(&self.releases).get(name).cloned()
    }

    /// Starts `n` more instances of `name`; returns how many it runs then.
    pub(crate) async fn add_instances(&self, name: &str, n: u32) -> Result<u32, PlatformError> {
        let Some(owned) = self.owned(name) else {
            return Err(PlatformError::Stopped {
                release: name.to_owned(),
            });
        };
        let mut release = owned.lock().await;
        release.add_instances(n).await?;
        Ok(release.instance_count())
    }

    /// Takes `n` instances out of `name`: routed away at once, drained, stopped.
    /// Returns their addresses and how many instances it runs then.
    pub(crate) async fn remove_instances(
        &self,
        name: &str,
        n: u32,
        drain_timeout: Duration,
    ) -> (Vec<SocketAddr>, u32) {
        let Some(owned) = self.owned(name) else {
            return (Vec::new(), 0);
        };
        let mut release = owned.lock().await;
        let leaving = release.detach(n);
        // They left `ready` when detached; the split follows before the drain.
        self.reroute();
        self.traffic.drain(&leaving, drain_timeout).await;
        release.stop_detached(STOP_GRACE).await;
        // Stopped, their ports free for other instances: never to be drained again.
        if let Some(routed) = lock(&self.routing).routed.get_mut(name) {
            routed.retain(|a| !leaving.contains(a));
        }
        (leaving, release.instance_count())
    }

    /// Routes `name` away (if a route was left), drains and stops it. `None` if
    /// it was not running.
    pub(crate) async fn retire(&self, name: &str, drain_timeout: Duration) -> Option<Retired> {
        let addresses = {
            let mut routing = lock(&self.routing);
            // Whatever the proxy was ever given of it, and whatever is ready now.
            let mut addresses = routing.routed.remove(name).unwrap_or_default();
            routing.routes.retain(|r| r.release != name);
            if let Some(h) = routing.health.remove(name) {
                addresses.extend(h.borrow().ready.iter().copied());
            }
            addresses.sort();
            addresses.dedup();
            addresses
        };
        self.reroute();
        let owned = lock(&self.releases).remove(name)?;
        let mut release = owned.lock().await;
        let instances = release.instance_count();
        let drained = self.traffic.drain(&addresses, drain_timeout).await;
        release.stop(STOP_GRACE).await;
        Some(Retired { drained, instances })
    }

    /// The emergency exit, when a run cannot record what it does: traffic back to
    /// the stable route alone, then every other release drained and stopped,
    /// without touching the store.
    pub(crate) async fn evacuate(&self) {
        let keep: Vec<String> = {
            let mut routing = lock(&self.routing);
            routing.routes.retain(|r| r.role == Role::Stable);
            routing.routes.iter().map(|r| r.release.clone()).collect()
        };
        self.reroute();
        let others: Vec<String> = lock(&self.releases)
            .keys()
            .filter(|name| !keep.contains(name))
            .cloned()
            .collect();
        let timeout = self.drain_timeout();
        for name in others {
            self.retire(&name, timeout).await;
        }
    }

    /// Takes all traffic away, then drains and stops every release.
    pub(crate) async fn stop_serving(&self) {
        let names: Vec<String> = {
            let mut routing = lock(&self.routing);
            routing.routes.clear();
            lock(&self.releases).keys().cloned().collect()
        };
        self.reroute();
        let timeout = self.drain_timeout();
        for name in names {
            self.retire(&name, timeout).await;
        }
    }

    /// The stable release as it runs now, if any.
    pub(crate) fn stable_release(&self) -> Option<ReleaseSpec> {
        let route = lock(&self.routing)
            .routes
            .iter()
            .find(|r| r.role == Role::Stable)
            .cloned()?;
        let instances = self
            .owned(&route.release)
            .and_then(|o| o.try_lock().ok().map(|r| r.instance_count()))
            .unwrap_or_else(|| self.platform().instances());
        Some(ReleaseSpec {
            name: route.release,
            version: route.version,
            instances,
        })
    }

    /// Records what the app serves, for a restarted daemon to adopt.
    pub(crate) fn record_serving(&self) {
        let serving = crate::engine::Serving {
            stable: self.stable_release(),
        };
        if let Err(e) = self.store.set_serving(&self.app(), &serving) {
            warn!(error = %e, "could not record what the app serves");
        }
    }
}
