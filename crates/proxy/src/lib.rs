//! The traffic-splitting reverse proxy in front of an app's versions, and the
//! per-version measurements the engine judges a canary by. It speaks HTTP/1.1 to
//! clients (and cleartext HTTP/2 to those that open with it) and HTTP/1.1 to
//! instances.
//!
//! The proxy forwards each request to one of the versions in a [`Routes`] table,
//! a list of weighted backends (each a version in a role), which the engine swaps
//! atomically ([`Proxy::set_routes`]), streams
//! bodies both ways, names the serving version in an `x-cutover-version` response
//! header, and records status and latency into that version's [`VersionStats`]
//! (and, as an error, an upstream body that fails after the headers), from which
//! the engine takes a [`cutover_analysis::Sample`] per analysis window. A request
//! that fails through the client's fault (its body cut short, the client gone, or
//! its upload stalled) is answered 400 or 408 and not recorded at all, so a client
//! cannot raise a version's error rate by breaking its own requests.
//! A request may pin a version with the `x-cutover-version` request header
//! (a role such as `stable` or `canary`, or the exact version string). Each
//! instance is an [`Endpoint`] that counts its requests in flight, so one instance
//! can be drained while the rest of its version serves on.
//! An HTTP/1.1 upgrade (a WebSocket) is passed through: on the instance's `101`
//! both connections are spliced both ways, counted as one request of the version
//! that stays in flight while open (a drain waits for it, and cuts it at its
//! timeout). A table may [`Mirror`] a share of the stable's requests to another
//! version: copies whose answers are measured under that version's own stats and
//! discarded, never delaying the live request.
//! Limits on what clients may ask of it ([`ProxyOptions`]: head size, head and
//! idle timeouts, connections, requests per instance, body size) are answered by
//! the proxy itself (431, 408, 503, 413, or a close), and none of those answers
//! counts against a version either.
//!
//! This crate knows nothing of rollouts: it must not depend on the engine, the spec,
//! the store, the platform or the server crates (only on `cutover-analysis` for the
//! `Sample` type). Policy (which weights, when to shift, what to judge) lives in the
//! engine; this crate only carries traffic and counts it.
//!
//! ```
//! use cutover_proxy::{Backend, Proxy, ProxyOptions, Routes, VersionStats};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let proxy = Proxy::bind("127.0.0.1:0".parse()?, ProxyOptions::default()).await?;
//! let (v1, v2) = (VersionStats::new(), VersionStats::new());
//! proxy.set_routes(Routes::split(
//!     Backend::new("v1", vec!["127.0.0.1:8081".parse()?], v1.clone()),
//!     Backend::new("v2", vec!["127.0.0.1:8082".parse()?], v2.clone()),
//!     500, // 5% to v2
//! ));
//! let start = v2.snapshot();
//! // ... traffic flows to proxy.local_addr() for an analysis window ...
//! let end = v2.snapshot();
//! let canary = end.since(&start); // the next window starts at `end`
//! println!("v2: {} requests, {} errors, p99 {:?}", canary.requests, canary.errors, canary.p99);
//! proxy.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The tests exercise behaviour only: nothing in them is timed or benchmarked, and
//! no assertion depends on how fast the machine is.

mod client_io;
mod endpoint;
mod forward;
mod headers;
mod mirror;
mod pool;
mod probe;
mod response_body;
mod routes;
mod server;
mod stats;
mod tunnel;
mod upload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

pub use endpoint::Endpoint;
pub use headers::VERSION_HEADER;
pub use mirror::{DEFAULT_MIRROR_MAX_BODY, DEFAULT_MIRROR_MAX_IN_FLIGHT, Mirror, MirrorCounts};
pub use probe::{PROBE_BODY_LIMIT, ProbeAnswer, probe};
pub use routes::{Backend, FULL_WEIGHT, Routes};
pub use stats::{Snapshot, VersionStats};

/// Timeouts of the proxy's upstream requests, and the limits that protect the
/// proxy and the instances behind it from its clients. Every limit is answered,
/// never a crash; none of those answers counts against a version.
#[derive(Debug, Clone, Copy)]
pub struct ProxyOptions {
    /// Limit on connecting to an instance (then 502). Default 2s.
    pub connect_timeout: Duration,
    /// Limit on waiting for an instance's response headers after the whole request
    /// was sent (for a request without a body: from the start, connecting
    /// included), and on an instance taking none of a request body for that long
    /// (then 504, an error of the version). While the proxy waits for the client's
    /// request body, the client has this long between pieces of it (then 408, not
    /// recorded); a slow but steady upload is not limited. Also the grace period of
    /// [`Proxy::shutdown`]. Default 30s.
    pub response_timeout: Duration,
    /// Limit on a request's head (request line and headers), in bytes: beyond it,
    /// hyper answers `431 Request Header Fields Too Large` and closes the
    /// connection. Default 64 KiB.
    pub max_header_size: usize,
    /// Limit on receiving a whole request head, from its first byte (or from the
    /// connection's start, for its first request): against slowloris. When it
    /// passes, a client that had sent part of a head gets `408 Request Timeout`
    /// with `Connection: close`, one that had sent nothing gets no answer; either
    /// way the connection is closed. Default 10s.
    pub header_read_timeout: Duration,
    /// How long a client connection may sit idle between requests (after a
    /// response, before the first byte of the next request); then it is closed,
    /// without an answer, as HTTP/1.1 allows for keep-alive. Default 60s.
    pub idle_timeout: Duration,
    /// How long an upgraded connection (a WebSocket) may pass no byte either way;
    /// then both its sockets are closed, and its request ends (`None`: no limit).
    /// Default 1h.
    pub tunnel_idle_timeout: Option<Duration>,
    /// Client connections served at once. One beyond it is still accepted, read,
    /// and answered `503 Service Unavailable` with `Connection: close` and a short
    /// text saying the proxy is at its limit, then closed (0: no limit); such a
    /// connection is not counted, and lasts at most the header read timeout if its
    /// client sends nothing. Upgraded connections (WebSockets) count too, for as
    /// long as they are open. Default 10000.
    pub max_connections: usize,
    /// Requests in flight to one instance at once (0: no limit). A request that
    /// finds its instance full tries the version's other instances; when all are
    /// full it is answered `503` by the proxy, not counted against the version.
    /// Default 0.
    pub max_requests_per_instance: usize,
    /// Limit on a request body, in bytes (`None`: no limit). A `Content-Length`
    /// above it is answered `413 Payload Too Large` before anything is sent
    /// upstream; a streamed body that passes it is cut off upstream and answered
    /// 413. Neither counts against the version; the connection is closed. Default
    /// `None`.
    pub max_body_size: Option<u64>,
    /// Threads serving client connections, each with a current-thread runtime of
    /// its own (0: served on the runtime that bound the proxy). A connection stays
    /// on one thread from its accept to its close, with its upstream connections,
    /// so no request wakes another thread; the accept loop, on the runtime that
    /// bound the proxy, hands each new connection to the thread serving the fewest.
    /// Set to the number of cores for a thread-per-core proxy (see
    /// `bench/README.md` for what it gains and costs). Default 0.
    pub threads: usize,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(30),
            max_header_size: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            tunnel_idle_timeout: Some(Duration::from_secs(3600)),
            max_connections: 10_000,
            max_requests_per_instance: 0,
            max_body_size: None,
            threads: 0,
        }
    }
}

/// Errors of the proxy itself (upstream failures become 502/504 responses instead).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listen address is taken, not local, or not allowed.
    #[error(
        "the proxy cannot listen on {addr} (`listen` in the config; another program may hold it)"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The serving threads' runtimes could not be built (out of threads or file
    /// descriptors).
    #[error("the proxy cannot start its serving threads")]
    Threads(#[source] std::io::Error),
}

/// A running proxy. Cheap to clone; clones share the listener and route table.
/// When the last clone is dropped without [`Proxy::shutdown`], the proxy stops
/// accepting and shuts down in the background.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    local_addr: SocketAddr,
    shared: Arc<forward::Shared>,
    open: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    /// Binds and starts serving in a spawned tokio task, with no routes yet (every
    /// request answered 503 until [`Proxy::set_routes`]).
    pub async fn bind(addr: SocketAddr, options: ProxyOptions) -> Result<Proxy, ProxyError> {
        let proxy = Proxy::bind_closed(addr, options).await?;
        proxy.open();
        Ok(proxy)
    }

    /// Binds, but accepts no connection until [`Proxy::open`]: clients that
    /// connect meanwhile wait in the listen backlog. For a daemon that restores
    /// its routes before it answers anyone.
    pub async fn bind_closed(addr: SocketAddr, options: ProxyOptions) -> Result<Proxy, ProxyError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ProxyError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ProxyError::Bind { addr, source })?;
        let runtimes = server::Runtimes::build(options.threads).map_err(ProxyError::Threads)?;
        let shared = Arc::new(forward::Shared::new(&options));
        let (open, open_rx) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(server::serve(
            listener,
            runtimes,
            Arc::clone(&shared),
            open_rx,
            stop_rx,
            options,
        ));
        tracing::debug!(%local_addr, "cutover proxy listening");
        Ok(Proxy {
            inner: Arc::new(Inner {
                local_addr,
                shared,
                open,
                stop,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// Starts accepting connections (see [`Proxy::bind_closed`]); idempotent.
    pub fn open(&self) {
        self.inner.open.send_replace(true);
    }

    /// The address the proxy listens on (with the OS-assigned port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Atomically replaces the route table: the next request uses it; in-flight
    /// requests finish where they started.
    pub fn set_routes(&self, routes: Routes) {
        self.inner.shared.routes.store(Arc::new(routes));
    }

    /// The current route table.
    pub fn routes(&self) -> Arc<Routes> {
        self.inner.shared.routes.load_full()
    }

    /// Stops accepting; requests in progress may finish, for up to
    /// [`ProxyOptions::response_timeout`], after which their connections are
    /// closed. Upgraded connections (WebSockets) get what is left of the same
    /// grace, then are cut. Returns when the proxy has stopped; later calls return
    /// at once.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let mut task = self.inner.task.lock().await;
        if let Some(task) = task.take()
            && let Err(e) = task.await
            && e.is_panic()
        {
            tracing::error!("cutover proxy: the accept loop panicked: {e}");
        }
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}
