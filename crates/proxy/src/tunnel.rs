//! Upgraded connections (WebSockets, or any protocol a `101 Switching Protocols`
//! switches to): the client's connection and the instance's, spliced both ways.
//!
//! A tunnel holds its request's in-flight guard for as long as it is open, so it
//! counts as in flight on its version and instance: a drain of the instance waits
//! for it, and when the drain times out the instance is closed and the tunnel cut
//! (both sockets closed). A proxy that shuts down waits for its tunnels within the
//! same grace period as for its requests, then cuts those left. A tunnel that
//! passes no byte either way for [`crate::ProxyOptions::tunnel_idle_timeout`] is
//! cut too: an instance's slot and two sockets are not held by a peer long gone.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::endpoint::{Endpoint, Gauge};
use crate::stats::InFlight;

/// The proxy's open tunnels, the signal that cuts them all, and how long one may
/// idle.
pub(crate) struct Tunnels {
    open: Gauge,
    cut: watch::Sender<bool>,
    idle: Option<Duration>,
}

impl Tunnels {
    /// No tunnel yet; each to be cut once it idled `idle` (`None`: never).
    pub(crate) fn new(idle: Option<Duration>) -> Tunnels {
        Tunnels {
            open: Gauge::default(),
            cut: watch::Sender::default(),
            idle,
        }
    }

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
        let idle = tunnels.idle;
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
            let activity = Activity::new();
            let mut client = Active::new(TokioIo::new(client), &activity);
            let mut upstream = Active::new(TokioIo::new(upstream), &activity);
            tokio::select! {
                copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
                    Ok((sent, received)) => tracing::debug!(sent, received, "upgraded connection closed"),
                    Err(e) => tracing::debug!(error = %e, "upgraded connection failed"),
                },
                () = drained => tracing::debug!("instance drained past its timeout: upgraded connection cut"),
                _ = cut.wait_for(|cut| *cut) => tracing::debug!("proxy stopped: upgraded connection cut"),
                () = activity.idle_for(idle) => tracing::debug!(?idle, "upgraded connection idle: cut"),
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

/// When an upgraded connection last passed a byte, either way: shared by its two
/// [`Active`] sides, which the one task of the tunnel polls.
struct Activity {
    since: Instant,
    /// Milliseconds after `since` of the last read that brought bytes.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            since: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(millis, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.since + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// Resolves once no byte has passed for `limit` (never, without one).
    async fn idle_for(&self, limit: Option<Duration>) {
        let Some(limit) = limit else {
            return std::future::pending().await;
        };
        loop {
            // A limit too far to represent is "never".
            let Some(deadline) = self.last().checked_add(limit) else {
                return std::future::pending().await;
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One side of a tunnel, telling its [`Activity`] of the bytes it reads.
struct Active<'a, T> {
    io: T,
    activity: &'a Activity,
}

impl<'a, T> Active<'a, T> {
    fn new(io: T, activity: &'a Activity) -> Active<'a, T> {
        Active { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
