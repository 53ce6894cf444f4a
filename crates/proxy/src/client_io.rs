//! A client's socket, timed for what hyper's HTTP/1.1 server does not time on its
//! own: the idle time between requests, and the time a request head takes to
//! arrive (hyper's own header timer also runs while a keep-alive connection is
//! idle, so the two could not be told apart; it is switched off).
//!
//! Its first bytes tell which HTTP it speaks ([`ClientIo::sniff`]): a client with
//! prior knowledge of HTTP/2 opens with the connection preface. Once known to be
//! HTTP/2 ([`ConnState::speaks_h2`]), the connection has no head to time between
//! its requests (its frames come whenever, a request's head among them, and h2
//! bounds their size), only its idle time: bytes do not end the idle stage, and a
//! connection closed by a limit is closed without an HTTP/1.1 answer.
//!
//! The socket is wrapped in a [`ClientIo`], which notes that bytes came, and the
//! connection's requests are counted in a [`ConnState`] that the service and the
//! response bodies share with it. The connection's future is wrapped in a
//! [`Watched`], which from those alone knows the connection's [`Stage`]: waiting
//! for a head (since the connection opened, or since the first byte of the next
//! request), idle between requests, or busy with one. It moves its one timer only
//! when the stage changes: a few atomic loads per poll and no lock. When a limit
//! passes it tells the `ClientIo`, whose next read fails, after writing a 408 if
//! part of a head had come.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// What a client that timed out in the middle of a request head is told, before
/// the connection closes.
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
    connection: close\r\n\
    content-type: text/plain; charset=utf-8\r\n\
    content-length: 49\r\n\r\n\
    cutover: the request head did not arrive in time\n";

/// What a client with prior knowledge of HTTP/2 opens its connection with (RFC
/// 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How much [`ClientIo::sniff`] reads at once: what hyper reads at first, so that
/// an HTTP/1.1 head usually comes in the same read as its first bytes.
const SNIFF_READ: usize = 8192;

/// The protocol a client connection speaks, known from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (cleartext).
    Http2,
}

/// The requests of one client connection: started (their head parsed) and
/// finished (their response body dropped by hyper, which it does once written).
#[derive(Default)]
pub(crate) struct Requests {
    started: AtomicUsize,
    finished: AtomicUsize,
}

impl Requests {
    /// (started, in progress).
    fn load(&self) -> (usize, usize) {
        let finished = self.finished.load(Ordering::Acquire);
        let started = self.started.load(Ordering::Acquire);
        (started, started.wrapping_sub(finished))
    }
}

/// Marks its request finished when dropped.
pub(crate) struct Finished(Arc<ConnState>);

impl Drop for Finished {
    fn drop(&mut self) {
        let state = &self.0;
        state.requests.finished.fetch_add(1, Ordering::Release);
        // An HTTP/1.1 response body is dropped while its connection is polled, which
        // then looks; an HTTP/2 stream ends in a task of its own.
        if state.h2.load(Ordering::Relaxed) {
            state.watcher.wake();
        }
    }
}

/// A response body that marks its request finished when hyper drops it.
pub(crate) struct Counted<B> {
    body: B,
    _finished: Finished,
}

impl<B> Counted<B> {
    pub(crate) fn new(body: B, finished: Finished) -> Counted<B> {
        Counted {
            body,
            _finished: finished,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Where a connection is between its requests; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for a whole head since `since`; `bytes` once some of it came.
    Head { since: Instant, bytes: bool },
    /// No request in progress and none begun since `since`.
    Idle { since: Instant },
    /// A request is in progress: its own timeouts apply, not these.
    Busy,
}

/// The limits a [`Watched`] connection is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) header_read: Duration,
    pub(crate) idle: Duration,
}

/// How a timed-out connection is to end, told by [`Watched`] to its [`ClientIo`].
const OPEN: u8 = 0;
const CLOSE: u8 = 1;
const CLOSE_WITH_408: u8 = 2;

/// What a connection's [`ClientIo`], service and [`Watched`] share.
#[derive(Default)]
pub(crate) struct ConnState {
    pub(crate) requests: Requests,
    /// Bytes were read since the connection last went idle.
    bytes: AtomicBool,
    /// [`OPEN`], or how to end: set by [`Watched`] when a limit passed.
    close: AtomicU8,
    /// The connection speaks HTTP/2 (see the module doc).
    h2: AtomicBool,
    /// HTTP/2: the [`Watched`] connection's task, woken when a stream finishes.
    watcher: AtomicWaker,
}

impl ConnState {
    /// Counts a request whose head was parsed; it is finished when the returned
    /// guard, to be held by its response body, drops.
    pub(crate) fn start(self: &Arc<Self>) -> Finished {
        self.requests.started.fetch_add(1, Ordering::Release);
        Finished(Arc::clone(self))
    }

    /// From now on the connection is timed as HTTP/2 (see the module doc).
    pub(crate) fn speaks_h2(&self) {
        self.h2.store(true, Ordering::Relaxed);
    }
}

/// A client's socket: notes that bytes came, and fails its reads (so that hyper
/// ends the connection) once [`Watched`] says a limit passed.
pub(crate) struct ClientIo {
    io: TcpStream,
    state: Arc<ConnState>,
    /// Read by [`ClientIo::sniff`] and not yet read again by hyper.
    replay: Bytes,
    /// The last write could not go out: the socket holds hyper's bytes, not ours to
    /// put a 408 before.
    write_blocked: bool,
}

impl ClientIo {
    pub(crate) fn new(io: TcpStream, state: Arc<ConnState>) -> ClientIo {
        ClientIo {
            io,
            state,
            replay: Bytes::new(),
            write_blocked: false,
        }
    }

    /// Reads the connection's first bytes until they tell whether it opens with
    /// the HTTP/2 preface, and keeps them to be read again. A connection that ends
    /// or fails first is HTTP/1.1 to hyper, which then sees the end or the failure.
    pub(crate) async fn sniff(&mut self) -> Protocol {
        use tokio::io::AsyncReadExt;
        let mut read = BytesMut::with_capacity(SNIFF_READ);
        let protocol = loop {
            let begun = read.len().min(H2_PREFACE.len());
            if read[..begun] != H2_PREFACE[..begun] {
                break Protocol::Http1;
            }
            if begun == H2_PREFACE.len() {
                break Protocol::Http2;
            }
            match self.read_buf(&mut read).await {
                Ok(0) | Err(_) => break Protocol::Http1,
                Ok(_) => {}
            }
        };
        self.replay = read.freeze();
        protocol
    }
}

/// A client connection's future, ended when a request head takes longer than
/// [`Timeouts::header_read`] or the connection idles longer than
/// [`Timeouts::idle`]. Yields `None` when it ended it.
///
/// It looks at the connection after each poll of it, when hyper has done all it
/// could (a read of the socket can come before the response that ends a request
/// is written, so the reads alone cannot tell when a connection went idle).
pub(crate) struct Watched<F> {
    conn: Pin<Box<F>>,
    state: Arc<ConnState>,
    timeouts: Timeouts,
    stage: Stage,
    /// `started` when last looked at: a change means a head was parsed since.
    seen: usize,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    closing: bool,
}

impl<F: Future> Watched<F> {
    pub(crate) fn new(conn: F, state: Arc<ConnState>, timeouts: Timeouts) -> Watched<F> {
        let now = Instant::now();
        Watched {
            conn: Box::pin(conn),
            state,
            timeouts,
            stage: Stage::Head {
                since: now,
                bytes: false,
            },
            seen: 0,
            timer: Box::pin(tokio::time::sleep_until(now)),
            armed: None,
            closing: false,
        }
    }

    /// Brings the stage up to date with the connection's state.
    fn update(&mut self) {
        let (started, in_progress) = self.state.requests.load();
        if in_progress > 0 {
            self.stage = Stage::Busy;
        } else if self.stage == Stage::Busy || started != self.seen {
            // Bytes read meanwhile were the request's body.
            self.state.bytes.store(false, Ordering::Relaxed);
            self.stage = Stage::Idle {
                since: Instant::now(),
            };
        }
        self.seen = started;
        if self.state.h2.load(Ordering::Relaxed) {
            // Its preface came: from now on idle or busy, never waiting for a head.
            if let Stage::Head { .. } = self.stage {
                self.stage = Stage::Idle {
                    since: Instant::now(),
                };
            }
            return;
        }
        if self.state.bytes.load(Ordering::Relaxed) {
            self.stage = match self.stage {
                Stage::Head { since, .. } => Stage::Head { since, bytes: true },
                Stage::Idle { .. } => Stage::Head {
                    since: Instant::now(),
                    bytes: true,
                },
                Stage::Busy => Stage::Busy,
            };
        }
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(done) = this.conn.as_mut().poll(cx) {
            return Poll::Ready(Some(done));
        }
        if this.closing {
            // hyper did not read again (so its `ClientIo` could not fail): drop it.
            return Poll::Ready(None);
        }
        if this.state.h2.load(Ordering::Relaxed) {
            // Registered before the counts are read: a stream finishing after it wakes.
            this.state.watcher.register(cx.waker());
        }
        this.update();
        let deadline = match this.stage {
            Stage::Busy => return Poll::Pending,
            Stage::Head { since, .. } => since.checked_add(this.timeouts.header_read),
            Stage::Idle { since } => since.checked_add(this.timeouts.idle),
        };
        // A limit too far to represent is "never".
        let Some(deadline) = deadline else {
            return Poll::Pending;
        };
        if this.armed != Some(deadline) {
            this.timer.as_mut().reset(deadline);
            this.armed = Some(deadline);
        }
        if this.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let how = match this.stage {
            Stage::Head { bytes: true, .. } if !this.state.h2.load(Ordering::Relaxed) => {
                CLOSE_WITH_408
            }
            _ => CLOSE,
        };
        this.state.close.store(how, Ordering::Relaxed);
        this.closing = true;
        // Polled again at once: hyper, waiting for a head, reads, and the read fails.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            if this.replay.is_empty() {
                // Its buffer is not kept for the rest of the connection.
                this.replay = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && !this.state.bytes.load(Ordering::Relaxed) {
                    this.state.bytes.store(true, Ordering::Relaxed);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let how = this.state.close.load(Ordering::Relaxed);
                if how == OPEN {
                    return Poll::Pending;
                }
                if how == CLOSE_WITH_408 && !this.write_blocked {
                    // Best effort: the socket's buffer is empty, so this small answer
                    // goes out whole, or the client is gone anyway.
                    let _ = Pin::new(&mut this.io).poll_write(cx, REQUEST_TIMEOUT);
                }
                let what = if how == CLOSE_WITH_408 {
                    "the request head did not arrive in time"
                } else {
                    "no request arrived in time"
                };
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
            }
            failed => failed,
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.write_blocked = polled.is_pending();
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.write_blocked = polled.is_pending();
        polled
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_408_says_its_length() {
        let text = std::str::from_utf8(REQUEST_TIMEOUT).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
