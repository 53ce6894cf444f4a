//! The proxy's upstream connections: HTTP/1.1 over hyper's `client::conn::http1`,
//! kept alive and reused, one [`Pool`] per instance.
//!
//! A request takes an idle connection of its instance, or opens one, and sends on
//! it; the connection comes back when the response body has ended (a response
//! without a body: at once), carried there by the response body the client reads
//! ([`crate::response_body::ProxyBody`]). A connection whose response failed or was
//! abandoned, that switched protocols, or that is still taking its request's body
//! when the response ends (an instance that answered early), is never put back:
//! hyper closes it. So an idle connection is ready, or about to be.
//!
//! The idle connections are kept in a few shards, each behind its own `Mutex`,
//! picked by a per-thread index: a thread returns to and takes from its own shard,
//! so threads rarely meet on a lock; a thread whose shard is empty looks into the
//! others (without waiting on a busy one) before it opens a connection. A shard is a
//! stack: the connection used last is used next, and the ones idle longest sit at
//! the bottom, where those idle beyond [`IDLE_TIMEOUT`] are closed whenever a
//! connection is taken from or comes back to that shard. The fast path takes the
//! newest ready connection, looking past ones not ready yet.
//!
//! A drained instance's idle connections are closed at once, and no connection
//! comes back to it after ([`crate::endpoint::Endpoint::put_back`]).
//!
//! A request sent on a reused connection that the instance closed meanwhile
//! (hyper hands the request back unsent) is sent again on another connection.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::stats::thread_index;
use crate::upload::{BodyError, RequestBody};

/// How long a connection may sit idle in the pool before it is closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Number of shards of idle connections per instance (see the module doc).
const SHARDS: usize = 8;

/// A connection to an instance, ready for its next request when idle.
pub(crate) type Sender = http1::SendRequest<UpstreamBody>;

/// A request body on its way to an instance: a client's, streamed through, or a
/// mirrored copy, whole.
pub(crate) enum UpstreamBody {
    Streamed(RequestBody),
    Copied(Full<Bytes>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpstreamBody::Streamed(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Copied(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|r| r.map_err(|never| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Streamed(body) => body.is_end_stream(),
            UpstreamBody::Copied(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Streamed(body) => body.size_hint(),
            UpstreamBody::Copied(body) => body.size_hint(),
        }
    }
}

/// Why a request got no response from its instance.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// No connection could be opened (refused, unreachable, or not within the
    /// connect timeout).
    Connect(io::Error),
    /// The connection failed (or the request body did) before the response head
    /// was complete.
    Request(hyper::Error),
}

impl UpstreamError {
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "tcp connect error: {e}"),
            UpstreamError::Request(_) => f.write_str("the upstream request failed"),
        }
    }
}

impl StdError for UpstreamError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            UpstreamError::Connect(_) => None,
            UpstreamError::Request(e) => Some(e),
        }
    }
}

/// One idle connection, since when.
struct Idle {
    sender: Sender,
    since: Instant,
}

/// The idle connections to one instance (see the module doc).
#[derive(Default)]
pub(crate) struct Pool {
    shards: [Mutex<Vec<Idle>>; SHARDS],
}

/// Why a request sent on an idle connection got no response head.
pub(crate) enum Unsent {
    /// It was not sent: the instance had closed the connection meanwhile. Send it
    /// again, on another connection (boxed: rare, and the usual outcome stays small).
    Again(Box<Request<UpstreamBody>>),
    Failed(hyper::Error),
}

/// A response head and the connection it came on, to be
/// [put back](Pool::put_back) once the response body has ended.
pub(crate) type Answered = (Response<Incoming>, Sender);

impl Pool {
    /// Sends `req` at once on an idle connection that is ready, if there is one
    /// (the usual case under load): what is left is waiting for the answer, a
    /// small future. Without one, `req` is handed back, for [`Pool::send`].
    #[allow(clippy::result_large_err)] // handed back as it came, not copied
    pub(crate) fn send_on_idle(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<impl Future<Output = Result<Answered, Unsent>> + Send + use<>, Request<UpstreamBody>>
    {
        let Some(mut sender) = self.take(Sender::is_ready) else {
            return Err(req);
        };
        let answer = sender.try_send_request(req);
        Ok(async move {
            match answer.await {
                Ok(response) => Ok((response, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => Err(Unsent::Again(Box::new(unsent))),
                    None => Err(Unsent::Failed(e.into_error())),
                },
            }
        })
    }

    /// Sends `req` to `addr` on an idle connection once it is ready, or on a new
    /// one (opened within `connect_timeout`).
    pub(crate) async fn send(
        &self,
        addr: SocketAddr,
        connect_timeout: Duration,
        mut req: Request<UpstreamBody>,
    ) -> Result<Answered, UpstreamError> {
        loop {
            let (mut sender, reused) = match self.take(|_| true) {
                Some(sender) => (sender, true),
                None => (connect(addr, connect_timeout).await?, false),
            };
            // An idle connection is ready, or about to be: its last response ended,
            // and hyper takes the next request as soon as its task has seen that.
            if let Err(e) = sender.ready().await {
                if reused {
                    continue;
                }
                return Err(UpstreamError::Request(e));
            }
            match sender.try_send_request(req).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut e) => match e.take_message() {
                    // Not sent: the instance closed the idle connection meanwhile.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(UpstreamError::Request(e.into_error())),
                },
            }
        }
    }

    /// An idle connection that is still open, not idle beyond [`IDLE_TIMEOUT`]
    /// and passes `usable`, if there is one: this thread's shard's newest such,
    /// else one of another shard not locked just now.
    fn take(&self, usable: fn(&Sender) -> bool) -> Option<Sender> {
        let now = Instant::now();
        let own = thread_index() % SHARDS;
        if let Some(sender) = pop_open(&mut lock(&self.shards[own]), usable, now) {
            return Some(sender);
        }
        (1..SHARDS).find_map(|i| match self.shards[(own + i) % SHARDS].try_lock() {
            Ok(mut idle) => pop_open(&mut idle, usable, now),
            Err(TryLockError::Poisoned(poisoned)) => {
                pop_open(&mut poisoned.into_inner(), usable, now)
            }
            Err(TryLockError::WouldBlock) => None,
        })
    }

    /// Keeps `sender`, whose last response has ended, for a later request; closes
    /// this shard's connections idle beyond [`IDLE_TIMEOUT`].
    pub(crate) fn put_back(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = lock(&self.shards[thread_index() % SHARDS]);
        expire(&mut idle, now);
        idle.push(Idle { sender, since: now });
    }

    /// Closes every idle connection (the instance is being drained).
    pub(crate) fn close_idle(&self) {
        for shard in &self.shards {
            // Dropped outside the lock.
            let closed = std::mem::take(&mut *lock(shard));
            drop(closed);
        }
    }
}

/// Closes the connections of `idle` (oldest first) idle beyond [`IDLE_TIMEOUT`].
fn expire(idle: &mut Vec<Idle>, now: Instant) {
    let expired = idle
        .iter()
        .take_while(|c| now.saturating_duration_since(c.since) > IDLE_TIMEOUT)
        .count();
    idle.drain(..expired);
}

/// The newest connection of `idle` that is still open and passes `usable`; the
/// expired and those closed on top are dropped, the others stay.
fn pop_open(idle: &mut Vec<Idle>, usable: fn(&Sender) -> bool, now: Instant) -> Option<Sender> {
    expire(idle, now);
    while idle.last().is_some_and(|c| c.sender.is_closed()) {
        idle.pop();
    }
    let at = idle
        .iter()
        .rposition(|c| !c.sender.is_closed() && usable(&c.sender))?;
    Some(idle.remove(at).sender)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only connections are behind these locks: still usable after a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Opens a connection to `addr` (without Nagle's delay, both ways small messages
/// go out at once) and spawns the task that drives it, upgrades allowed.
async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Sender, UpstreamError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(UpstreamError::Connect(e)),
        Err(_) => {
            return Err(UpstreamError::Connect(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {timeout:?}"),
            )));
        }
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(UpstreamError::Request)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(%addr, error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}
