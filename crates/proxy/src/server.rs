//! The accept loop: one HTTP/1.1 connection task per client, watched for graceful
//! shutdown, each on a [`ClientIo`] that times its heads and idle time, and
//! counted against [`ProxyOptions::max_connections`]. A client beyond the limit
//! is still accepted and read, and answered 503 with `Connection: close`: a
//! client told why is better off than one left in the listen backlog.
//! Connections are served with upgrades: a `101` hands the socket to a tunnel
//! ([`crate::tunnel`]), and the connection's task ends.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::ProxyOptions;
use crate::client_io::{ClientIo, ConnState, Counted, Timeouts, Watched};
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

/// Serves `conn` until it ends; once `stop` turns true (or its sender is gone),
/// asks it to finish the request in progress and close. (hyper-util's
/// `GracefulShutdown` cannot watch a connection that allows upgrades.)
async fn until_stopped<I, S, B>(
    conn: http1::UpgradeableConnection<I, S>,
    mut stop: watch::Receiver<bool>,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => return done,
        _ = stop.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}

/// One connection counted in a [`Gauge`] until dropped.
struct Counting(Arc<Gauge>);

impl Drop for Counting {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// Accepts connections until `stop` changes (or its sender is dropped), then stops
/// accepting, lets open connections finish their current request for up to
/// the response timeout, and drops whatever is left.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut open: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    options: ProxyOptions,
) {
    let grace = options.response_timeout;
    let timeouts = Timeouts {
        header_read: options.header_read_timeout,
        idle: options.idle_timeout,
    };
    let limit = options.max_connections;
    // Until opened, connections wait in the listen backlog: a client is answered
    // late, not refused and not told that nothing serves.
    tokio::select! {
        _ = open.wait_for(|open| *open) => {}
        _ = stop.changed() => return,
    }
    let mut connections = JoinSet::new();
    let open_connections = Arc::new(Gauge::default());
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

    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Small requests and responses should not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    let state = Arc::new(ConnState::default());
                    let io = TokioIo::new(ClientIo::new(stream, Arc::clone(&state)));
                    let requests = Arc::clone(&state);
                    // Upgraded connections (WebSockets) left their HTTP task: counted apart.
                    let open = open_connections.enter() + shared.tunnels.open();
                    if open > limit && limit != 0 {
                        // Not counted: the refused do not keep a slot from the served.
                        open_connections.leave();
                        tracing::debug!(%peer, limit, "client connection beyond the limit; answering 503");
                        let service = service_fn(move |_req| {
                            let finished = requests.start();
                            let response = at_capacity(limit).map(|b| Counted::new(b, finished));
                            std::future::ready(Ok::<_, std::convert::Infallible>(response))
                        });
                        let conn = refusing.serve_connection(io, service).with_upgrades();
                        let conn = Watched::new(until_stopped(conn, stop.clone()), state, timeouts);
                        connections.spawn(async move {
                            let _ = conn.await;
                        });
                        continue;
                    }
                    let counted = Counting(Arc::clone(&open_connections));
                    let shared = Arc::clone(&shared);
                    let client_ip = client_ip_value(peer);
                    let service = service_fn(move |req| {
                        let finished = requests.start();
                        let answer = handle(&shared, &client_ip, req);
                        async move {
                            let Ok(response) = answer.await;
                            Ok::<_, std::convert::Infallible>(response.map(|b| Counted::new(b, finished)))
                        }
                    });
                    let conn = builder.serve_connection(io, service).with_upgrades();
                    let conn = Watched::new(until_stopped(conn, stop.clone()), state, timeouts);
                    connections.spawn(async move {
                        match conn.await {
                            Some(Err(e)) => tracing::debug!(%peer, error = %e, "client connection ended with an error"),
                            None => tracing::debug!(%peer, "client connection closed by a timeout"),
                            Some(Ok(())) => {}
                        }
                        drop(counted);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cutover proxy: accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }

    drop(listener);
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
    shared.tunnels.close(left).await;
}
