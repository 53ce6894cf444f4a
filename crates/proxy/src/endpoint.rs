//! One instance of a version, as the proxy sees it: its address, the requests in
//! flight to it, and whether it is being drained.
//!
//! Draining closes a race the route table alone cannot: a request that loaded the
//! table just before the engine swapped it out may still pick an instance the new
//! table no longer has. So a request marks itself in flight on the instance *before*
//! it checks the instance's `retired` flag, and a drain sets the flag *before* it
//! reads the in-flight count (both sequentially consistent). Either the request sees
//! the flag and picks again from the new table, or the drain sees the request and
//! waits for it: no request reaches an instance after its drain has returned.
//!
//! An upgraded connection (a WebSocket) counts as a request in flight for as long
//! as it is open, so a drain waits for it too; when the drain's timeout passes, the
//! instance is closed and every upgraded connection to it is cut.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderValue;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::pool::Pool;

/// A count of things in progress that can be waited on to reach zero, without a
/// lock on the increment or decrement path.
#[derive(Default)]
pub(crate) struct Gauge {
    count: AtomicUsize,
    /// Tasks in [`Gauge::wait_idle`]: the last leaver only takes `idle`'s lock to
    /// wake them when there are some.
    waiters: AtomicUsize,
    idle: Notify,
}

impl Gauge {
    /// Counts one more; returns the count with it.
    pub(crate) fn enter(&self) -> usize {
        self.count.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn leave(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 && self.waiters.load(Ordering::SeqCst) > 0
        {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn get(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until the count is zero, or `timeout` passes; returns true if zero.
    pub(crate) async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        // Counted before the check below (both SeqCst, like `leave`'s decrement and
        // its read of the waiters), so either this sees the last leaver gone or that
        // leaver sees this waiter and notifies.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiters);
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registered before checking, so a leaver in between still wakes us.
            notified.as_mut().enable();
            if self.get() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.get() == 0;
            }
        }
    }
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One instance: an address to forward to, shared by every route table that
/// routes to it, so that its in-flight count, drain and kept-alive connections
/// survive route changes.
pub struct Endpoint {
    addr: SocketAddr,
    /// `Host` for a request without one, made once rather than per request; `None`
    /// cannot happen for a socket address.
    host: Option<HeaderValue>,
    /// Its idle upstream connections.
    pool: Pool,
    in_flight: Gauge,
    retired: AtomicBool,
    /// Set when a drain timed out: upgraded connections still open are cut.
    closed: watch::Sender<bool>,
}

impl Endpoint {
    pub fn new(addr: SocketAddr) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            addr,
            host: HeaderValue::try_from(addr.to_string()).ok(),
            pool: Pool::default(),
            in_flight: Gauge::default(),
            retired: AtomicBool::new(false),
            closed: watch::Sender::new(false),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn host_header(&self) -> Option<HeaderValue> {
        self.host.clone()
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Requests to this instance whose response has not finished yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Whether [`Endpoint::drain`] was called: no request starts on it any more.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// Refuses new requests from now on (a request that picked it from an old route
    /// table picks again) and waits until those in flight finish, at most `timeout`.
    /// Returns whether none is left. When some are, the upgraded connections among
    /// them (WebSockets) are closed: they are cut at the timeout rather than left
    /// open to an instance about to stop.
    ///
    /// # Guarantees
    /// Once it returned true, no request is or will be in flight to this instance.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.retired.store(true, Ordering::SeqCst);
        let idle = self.in_flight.wait_idle(timeout).await;
        if !idle {
            self.closed.send_replace(true);
        }
        // Its kept-alive connections are of no more use: closed now, not when they
        // expire (those of requests still in flight are not put back).
        self.pool.close_idle();
        idle
    }

    /// Keeps `connection`, whose last response has ended, for this instance's next
    /// request; closes it instead once the instance is being drained. Called
    /// before the request's in-flight guard drops, so a drain that waited for the
    /// request finds the connection in the pool, or it was never put there.
    pub(crate) fn put_back(&self, connection: crate::pool::Sender) {
        if !self.retired.load(Ordering::SeqCst) {
            self.pool.put_back(connection);
        }
    }

    /// Resolves once a drain of this instance timed out (see [`Endpoint::drain`]).
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut closed = self.closed.subscribe();
        async move {
            // An error means the endpoint is gone, and the tunnel holding it with it.
            let _ = closed.wait_for(|closed| *closed).await;
        }
    }

    /// Marks a request in flight, unless the instance is retired.
    #[cfg(test)]
    pub(crate) fn enter(self: &Arc<Self>) -> Option<EndpointGuard> {
        self.enter_within(0).ok()
    }

    /// Marks a request in flight, unless the instance is retired or already has
    /// `limit` requests in flight (0: no limit). One atomic add, and a subtract when
    /// refused: no lock.
    pub(crate) fn enter_within(self: &Arc<Self>, limit: usize) -> Result<EndpointGuard, Refused> {
        let count = self.in_flight.enter();
        let refused = if self.retired.load(Ordering::SeqCst) {
            Refused::Retired
        } else if limit != 0 && count > limit {
            Refused::Full
        } else {
            return Ok(EndpointGuard(Arc::clone(self)));
        };
        self.in_flight.leave();
        Err(refused)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .field("in_flight", &self.in_flight())
            .field("retired", &self.is_retired())
            .finish()
    }
}

/// Why [`Endpoint::enter_within`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The instance is being drained: pick from the current table again.
    Retired,
    /// The instance has its limit of requests in flight.
    Full,
}

/// One request in flight to an instance; dropping it ends the request there.
pub(crate) struct EndpointGuard(Arc<Endpoint>);

impl EndpointGuard {
    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        self.0.in_flight.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Arc<Endpoint> {
        Endpoint::new("127.0.0.1:1".parse().unwrap())
    }

    #[tokio::test]
    async fn a_drain_waits_for_requests_in_flight_and_refuses_new_ones() {
        let e = endpoint();
        let guard = e.enter().expect("not retired yet");
        assert_eq!(e.in_flight(), 1);
        let drain = tokio::spawn({
            let e = Arc::clone(&e);
            async move { e.drain(Duration::from_secs(30)).await }
        });
        while !e.is_retired() {
            tokio::task::yield_now().await;
        }
        assert!(e.enter().is_none(), "a retired instance takes no request");
        assert!(!drain.is_finished());
        drop(guard);
        assert!(drain.await.unwrap());
        assert_eq!(e.in_flight(), 0);
    }

    #[test]
    fn an_instance_at_its_limit_refuses_until_one_finishes() {
        let e = endpoint();
        let first = e.enter_within(2).unwrap();
        let _second = e.enter_within(2).unwrap();
        assert_eq!(e.enter_within(2).err(), Some(Refused::Full));
        assert_eq!(e.in_flight(), 2, "a refused request leaves no count behind");
        drop(first);
        assert!(e.enter_within(2).is_ok());
        assert!(e.enter_within(0).is_ok(), "0 is no limit");
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_gives_up_after_its_timeout() {
        let e = endpoint();
        let _guard = e.enter().unwrap();
        assert!(!e.drain(Duration::from_secs(5)).await);
        assert_eq!(e.in_flight(), 1);
    }
}
