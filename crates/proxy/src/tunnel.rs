//! Upgraded connections (WebSockets, or any protocol a `101 Switching Protocols`
//! switches to): the client's connection and the instance's, spliced both ways.
//!
//! A tunnel holds its request's in-flight guard for as long as it is open, so it
//! counts as in flight on its version and instance: a drain of the instance waits
//! for it, and when the drain times out the instance is closed and the tunnel cut
//! (both sockets closed). A proxy that shuts down waits for its tunnels within the
//! same grace period as for its requests, then cuts those left.

use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::endpoint::{Endpoint, Gauge};
use crate::stats::InFlight;

/// The proxy's open tunnels, and the signal that cuts them all.
#[derive(Default)]
pub(crate) struct Tunnels {
    open: Gauge,
    cut: watch::Sender<bool>,
}

impl Tunnels {
    /// Tunnels open now.
    pub(crate) fn open(&self) -> usize {
        self.open.get()
    }

    /// Waits until no tunnel is open, at most `timeout`; then cuts those left.
    pub(crate) async fn close(&self, timeout: Duration) {
        if !self.open.wait_idle(timeout).await {
            tracing::debug!(
                open = self.open.get(),
                "cutover proxy: cutting upgraded connections"
            );
        }
        self.cut.send_replace(true);
    }
}

/// One open tunnel, counted in [`Tunnels`] until dropped.
struct Open(Arc<Tunnels>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.leave();
    }
}

/// An upgrade request on its way: the client's side of the upgrade to come, and
/// what a tunnel needs once the instance agreed.
pub(crate) struct Upgrading {
    pub(crate) client: OnUpgrade,
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) tunnels: Arc<Tunnels>,
}

impl Upgrading {
    /// Splices the client's connection to `upstream`'s in a task of its own, once
    /// both are handed over by hyper. The request, already recorded by its `101`,
    /// stays in flight until the tunnel closes; an instance whose side of the
    /// upgrade fails counts an error, like a response body that fails.
    pub(crate) fn spawn(self, upstream: OnUpgrade, in_flight: InFlight, span: tracing::Span) {
        let Upgrading {
            client,
            endpoint,
            tunnels,
        } = self;
        tunnels.open.enter();
        let open = Open(Arc::clone(&tunnels));
        let mut cut = tunnels.cut.subscribe();
        let drained = endpoint.closed();
        let task = async move {
            let upstream = match upstream.await {
                Ok(upstream) => upstream,
                Err(e) => {
                    tracing::debug!(error = %e, "the instance's side of the upgrade failed");
                    in_flight.body_failed();
                    return;
                }
            };
            let client = match client.await {
                Ok(client) => client,
                // The client went away before its 101 went out: its doing.
                Err(e) => {
                    tracing::debug!(error = %e, "the client's side of the upgrade failed");
                    return;
                }
            };
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            tokio::select! {
                copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
                    Ok((sent, received)) => tracing::debug!(sent, received, "upgraded connection closed"),
                    Err(e) => tracing::debug!(error = %e, "upgraded connection failed"),
                },
                () = drained => tracing::debug!("instance drained past its timeout: upgraded connection cut"),
                _ = cut.wait_for(|cut| *cut) => tracing::debug!("proxy stopped: upgraded connection cut"),
            }
            // Dropping both sides closes both sockets; then the tunnel is no longer
            // open, and its request ends.
            drop((client, upstream));
            drop(open);
            drop(in_flight);
        };
        tokio::spawn(tracing::Instrument::instrument(task, span));
    }
}
