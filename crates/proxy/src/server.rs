//! The accept loop and the serving threads: one connection task per client
//! (HTTP/1.1, or HTTP/2 for a client that opens with it), watched for graceful
//! shutdown, each on a [`ClientIo`] that times its heads and idle time, and
//! counted against [`ProxyOptions::max_connections`]. A client beyond the limit is
//! still accepted and read, and answered 503 with `Connection: close` (HTTP/2:
//! `GOAWAY`): a client told why is better off than one left in the listen backlog.
//!
//! Connections are served on the runtime that bound the proxy, or, with
//! [`ProxyOptions::threads`] set, thread per core as Pingora and Envoy do: each
//! serving thread runs a current-thread runtime of its own, and a connection
//! lives on one thread from its accept to its close, with its requests, the
//! upstream connections they open (the pool keeps a shard per thread), their
//! mirrored copies and its tunnel. No task moves between threads and no thread
//! wakes another on the hot path, which a work-stealing runtime may do for any
//! request. The accept loop runs on the caller's runtime and hands each
//! connection to the thread serving the fewest: one listening socket, so the bind
//! means what it always did (a second daemon on the same address is refused,
//! which `SO_REUSEPORT` would let share it), and the threads stay balanced however
//! the connections arrive. It is off by default: a connection cannot move off a
//! busy thread, and on the benchmark its p99 is longer (`bench/README.md`).
//! Connections are served with upgrades: a `101` hands the socket to a tunnel
//! ([`crate::tunnel`]), and the connection's task ends.
//!
//! A client that opens with the HTTP/2 preface (prior knowledge, cleartext) is
//! served HTTP/2, its requests forwarded as HTTP/1.1 like any other; each of its
//! streams runs in a task of its own on the connection's thread. The other way to
//! cleartext HTTP/2, an HTTP/1.1 request asking to upgrade to `h2c`, is answered
//! over HTTP/1.1, as RFC 9113 §3.1 lets a server do (and deprecates the upgrade):
//! see [`crate::headers::upgrade_protocol`].

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::ProxyOptions;
use crate::client_io::{ClientIo, ConnState, Counted, Protocol, Timeouts, Watched};
use crate::endpoint::Gauge;
use crate::forward::{Shared, handle, plain};
use crate::headers::client_ip_value;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// hyper's own limit on its read buffer when not told otherwise (8 KiB plus 100
/// reads of 4 KiB): kept, so that a lower head limit does not shrink the buffer
/// bodies stream through.
const HYPER_MAX_BUF: usize = 8192 + 4096 * 100;

/// The answer to a client beyond [`ProxyOptions::max_connections`].
fn at_capacity(limit: usize) -> Response<crate::response_body::ProxyBody> {
    let mut response = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        &format!("cutover: the proxy is at its limit of {limit} client connections; try again\n"),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A connection hyper serves, which can be asked to finish the request in
/// progress (HTTP/2: its open streams, after a `GOAWAY`) and close.
trait Graceful: Future<Output = hyper::Result<()>> {
    fn shut_down(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B, E> Graceful for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Serves `conn` until it ends; once `stop` turns true (or its sender is gone),
/// asks it to finish the request in progress and close. (hyper-util's
/// `GracefulShutdown` cannot watch a connection that allows upgrades.)
async fn until_stopped(conn: impl Graceful, mut stop: watch::Receiver<bool>) -> hyper::Result<()> {
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => return done,
        _ = stop.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().shut_down();
    conn.await
}

/// Serves `io` with `service` in the protocol its first bytes name, until it
/// ends or a stop. A `refused` connection is closed after the requests it sent
/// before it could be told: over HTTP/1.1 the first (`refusing` does not keep
/// alive), over HTTP/2 those its client opened before the `GOAWAY` reached it.
async fn serve_io<S, B>(
    mut io: ClientIo,
    state: Arc<ConnState>,
    how: Arc<Serving>,
    refused: bool,
    service: S,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match io.sniff().await {
        Protocol::Http1 => {
            let builder = if refused { &how.refusing } else { &how.builder };
            let conn = builder.serve_connection(TokioIo::new(io), service);
            until_stopped(conn.with_upgrades(), how.stop.clone()).await
        }
        Protocol::Http2 => {
            state.speaks_h2();
            let conn = how.h2.serve_connection(TokioIo::new(io), service);
            if refused {
                // Told at once: `GOAWAY`, then answers to the streams it opened
                // before that reached it.
                let mut conn = std::pin::pin!(conn);
                conn.as_mut().shut_down();
                return conn.await;
            }
            until_stopped(conn, how.stop.clone()).await
        }
    }
}

/// One connection counted in a [`Gauge`] until dropped.
struct Counting(Arc<Gauge>);

impl Drop for Counting {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// A connection the accept loop hands to a serving thread.
struct Accepted {
    stream: Handover,
    peer: std::net::SocketAddr,
    /// Beyond [`ProxyOptions::max_connections`]: answered 503 and closed.
    refused: bool,
}

/// A client's socket on its way to the worker that serves it.
enum Handover {
    /// To a worker on the accept loop's runtime: as it is.
    Here(TcpStream),
    /// To a thread of its own: off the accept loop's reactor, to be registered
    /// with that thread's.
    Moved(std::net::TcpStream),
}

/// A serving thread, as the accept loop sees it.
struct Worker {
    /// On the accept loop's runtime (no thread of its own).
    here: bool,
    accepted: mpsc::UnboundedSender<Accepted>,
    /// Connections it serves now (refused ones not counted).
    serving: Arc<Gauge>,
    /// Sent when the thread has finished serving, its grace period included.
    finished: oneshot::Receiver<()>,
}

/// The serving threads' runtimes, built before anything listens, so that a
/// machine that cannot start them fails the bind, not the first request. None:
/// connections are served on the runtime that bound the proxy.
pub(crate) struct Runtimes(Vec<ServingRuntime>);

impl Runtimes {
    /// `threads` current-thread runtimes (0: none, see [`ProxyOptions::threads`]).
    pub(crate) fn build(threads: usize) -> std::io::Result<Runtimes> {
        (0..threads)
            .map(|_| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|runtime| ServingRuntime(Some(runtime)))
            })
            .collect::<std::io::Result<_>>()
            .map(Runtimes)
    }
}

/// A serving thread's runtime until its thread runs it. Dropped unused (the
/// thread did not start, or the proxy's task was dropped before it ran), it is
/// shut down in the background: a runtime dropped the usual way blocks, which
/// the async code that drops this one may not.
pub(crate) struct ServingRuntime(Option<Runtime>);

impl Drop for ServingRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// What each connection is served with, on whichever thread.
struct Serving {
    shared: Arc<Shared>,
    builder: http1::Builder,
    refusing: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    timeouts: Timeouts,
    limit: usize,
    stop: watch::Receiver<bool>,
}

/// Accepts connections until `stop` changes (or its sender is dropped), handing
/// each to the serving thread with the fewest; then stops accepting, and returns
/// once every thread has let its open connections finish their current request
/// (for up to the response timeout) and dropped whatever was left.
pub(crate) async fn serve(
    listener: TcpListener,
    runtimes: Runtimes,
    shared: Arc<Shared>,
    mut open: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    options: ProxyOptions,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // `Watched` times heads and idle connections instead: hyper's timer also
        // runs while a connection idles, so it could not tell the two apart.
        .header_read_timeout(None)
        .max_header_size(options.max_header_size)
        .max_buf_size(options.max_header_size.max(HYPER_MAX_BUF));
    let mut refusing = builder.clone();
    refusing.keep_alive(false);
    // Its streams are spawned on the runtime the connection is served on.
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_size).unwrap_or(u32::MAX));
    let serving = Arc::new(Serving {
        shared: Arc::clone(&shared),
        builder,
        refusing,
        h2,
        timeouts: Timeouts {
            header_read: options.header_read_timeout,
            idle: options.idle_timeout,
        },
        limit: options.max_connections,
        stop: stop.clone(),
    });
    let grace = options.response_timeout;
    let port = listener.local_addr().map_or(0, |addr| addr.port());
    let mut workers: Vec<Worker> = if runtimes.0.is_empty() {
        vec![spawn_worker(Arc::clone(&serving), grace)]
    } else {
        runtimes
            .0
            .into_iter()
            .enumerate()
            .filter_map(|(index, runtime)| {
                start_worker(port, index, runtime, Arc::clone(&serving), grace)
            })
            .collect()
    };
    drop(serving);
    if workers.is_empty() {
        tracing::error!("cutover proxy: no serving thread could start; serving nothing");
        return;
    }

    // Until opened, connections wait in the listen backlog: a client is answered
    // late, not refused and not told that nothing serves.
    let opened = tokio::select! {
        _ = open.wait_for(|open| *open) => true,
        _ = stop.changed() => false,
    };
    if opened {
        accept(
            &listener,
            &workers,
            &shared,
            &mut stop,
            options.max_connections,
        )
        .await;
    }

    drop(listener);
    // No more connections: each thread finishes what it serves, then ends.
    let finished: Vec<_> = workers
        .drain(..)
        .map(|Worker { finished, .. }| finished)
        .collect();
    for finished in finished {
        let _ = finished.await;
    }
}

/// Accepts connections until `stop` changes (or its sender is dropped), handing
/// each to the worker serving the fewest, or, beyond `limit` (0: none), to be
/// refused by it.
async fn accept(
    listener: &TcpListener,
    workers: &[Worker],
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
    limit: usize,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(worker) = workers.iter().min_by_key(|w| w.serving.get()) else { break };
                    // Upgraded connections (WebSockets) left their HTTP task: counted apart.
                    let open = workers.iter().map(|w| w.serving.get()).sum::<usize>() + shared.tunnels.open();
                    let refused = limit != 0 && open >= limit;
                    if refused {
                        tracing::debug!(%peer, limit, "client connection beyond the limit; answering 503");
                    } else {
                        // Counted here, so the next accept already sees it.
                        worker.serving.enter();
                    }
                    let handover = if worker.here {
                        Ok(Handover::Here(stream))
                    } else {
                        stream.into_std().map(Handover::Moved)
                    };
                    match handover {
                        Ok(stream) => {
                            if worker.accepted.send(Accepted { stream, peer, refused }).is_err() {
                                // Only if its thread died (a panic): said, not hidden.
                                if !refused {
                                    worker.serving.leave();
                                }
                                tracing::error!(%peer, "cutover proxy: a serving thread is gone; connection dropped");
                            }
                        }
                        Err(e) => {
                            if !refused {
                                worker.serving.leave();
                            }
                            tracing::warn!(%peer, error = %e, "cutover proxy: handing a connection over failed");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cutover proxy: accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
}

/// Serves connections in a task on this runtime (no thread of its own).
fn spawn_worker(serving: Arc<Serving>, grace: Duration) -> Worker {
    let (accepted, incoming) = mpsc::unbounded_channel();
    let counted = Arc::new(Gauge::default());
    let (done, finished) = oneshot::channel();
    let gauge = Arc::clone(&counted);
    tokio::spawn(async move {
        run_worker(incoming, gauge, serving, grace).await;
        let _ = done.send(());
    });
    Worker {
        here: true,
        accepted,
        serving: counted,
        finished,
    }
}

/// Starts serving thread `index` on `runtime`, named `proxy:PORT#INDEX` (for
/// `top -H` and the tests): it serves the connections sent to it until the accept
/// loop is gone, then lets them finish for up to `grace`.
/// `None` if the thread could not start (said in the log).
fn start_worker(
    port: u16,
    index: usize,
    mut runtime: ServingRuntime,
    serving: Arc<Serving>,
    grace: Duration,
) -> Option<Worker> {
    let (accepted, incoming) = mpsc::unbounded_channel();
    let counted = Arc::new(Gauge::default());
    let (done, finished) = oneshot::channel();
    let gauge = Arc::clone(&counted);
    let spawned = std::thread::Builder::new()
        .name(format!("proxy:{port}#{index}"))
        .spawn(move || {
            let Some(runtime) = runtime.0.take() else {
                return;
            };
            runtime.block_on(run_worker(incoming, gauge, serving, grace));
            // Dropping the runtime drops what it still ran (tunnels already cut).
            drop(runtime);
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cutover proxy: serving thread {index} could not start");
        return None;
    }
    Some(Worker {
        here: false,
        accepted,
        serving: counted,
        finished,
    })
}

/// One serving thread's loop: a task per connection handed to it, reaped as they
/// end; once the accept loop is gone, a grace period for those still open, then
/// the tunnels, within what is left of it.
async fn run_worker(
    mut incoming: mpsc::UnboundedReceiver<Accepted>,
    serving: Arc<Gauge>,
    how: Arc<Serving>,
    grace: Duration,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = incoming.recv() => match accepted {
                Some(accepted) => serve_connection(&mut connections, accepted, &serving, &how),
                None => break,
            },
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let open = connections.len();
    if open > 0 {
        tracing::debug!(
            open,
            "cutover proxy: waiting for open connections to finish"
        );
    }
    let deadline = tokio::time::Instant::now() + grace;
    let finished = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout_at(deadline, finished).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "cutover proxy: connections still open after {grace:?}; closing them"
        );
    }
    connections.shutdown().await;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    how.shared.tunnels.close(left).await;
}

/// Spawns the task serving one connection, on this thread.
fn serve_connection(
    connections: &mut JoinSet<()>,
    accepted: Accepted,
    serving: &Arc<Gauge>,
    how: &Arc<Serving>,
) {
    let Accepted {
        stream,
        peer,
        refused,
    } = accepted;
    // Counted by the accept loop; released when this connection ends.
    let counted = (!refused).then(|| Counting(Arc::clone(serving)));
    let stream = match stream {
        Handover::Here(stream) => stream,
        Handover::Moved(stream) => match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cutover proxy: serving a connection failed");
                return;
            }
        },
    };
    // Small requests and responses should not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let state = Arc::new(ConnState::default());
    let io = ClientIo::new(stream, Arc::clone(&state));
    let requests = Arc::clone(&state);
    let serve = Arc::clone(how);
    if refused {
        let limit = how.limit;
        let service = service_fn(move |_req| {
            let finished = requests.start();
            let response = at_capacity(limit).map(|b| Counted::new(b, finished));
            std::future::ready(Ok::<_, std::convert::Infallible>(response))
        });
        let conn = serve_io(io, Arc::clone(&state), serve, true, service);
        let conn = Watched::new(conn, state, how.timeouts);
        connections.spawn(async move {
            let _ = conn.await;
        });
        return;
    }
    let shared = Arc::clone(&how.shared);
    let client_ip = client_ip_value(peer);
    let service = service_fn(move |req| {
        let finished = requests.start();
        let answer = handle(&shared, &client_ip, req);
        async move {
            let Ok(response) = answer.await;
            Ok::<_, std::convert::Infallible>(response.map(|b| Counted::new(b, finished)))
        }
    });
    let conn = serve_io(io, Arc::clone(&state), serve, false, service);
    let conn = Watched::new(conn, state, how.timeouts);
    connections.spawn(async move {
        match conn.await {
            Some(Err(e)) => {
                tracing::debug!(%peer, error = %e, "client connection ended with an error")
            }
            None => tracing::debug!(%peer, "client connection closed by a timeout"),
            Some(Ok(())) => {}
        }
        drop(counted);
    });
}
