//! The accept loop: one HTTP/1.1 connection task per client, watched for graceful
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::forward::{Shared, handle};
use crate::headers::client_ip_value;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections until `stop` changes (or its sender is dropped), then stops
/// accepting, lets open connections finish their current request for up to
/// `grace`, and drops whatever is left.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut open: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    // Until opened, connections wait in the listen backlog: a client is answered
    // late, not refused and not told that nothing serves.
    tokio::select! {
        _ = open.wait_for(|open| *open) => {}
        _ = stop.changed() => return,
    }
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new());

    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Small requests and responses should not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&shared);
                    let client_ip = client_ip_value(peer);
                    let service = service_fn(move |req| handle(&shared, &client_ip, req));
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    connections.spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(%peer, error = %e, "client connection ended with an error");
                        }
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
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "cutover proxy: connections still open after {grace:?}; closing them"
        );
    }
    connections.shutdown().await;
}
