//! The client's request body on its way upstream, and the [`Upload`] state that
//! decides, when the upstream request times out or fails, whether the client or
//! the version is to blame.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Instant;

use crate::mirror::BodyCopy;

/// How far the client's request body has gone upstream: shared by its
/// [`RequestBody`] (polled by the upstream connection) and `forward::forward`,
/// which times the request by it.
///
/// Why: a request the upstream fails to answer counts as an error of its version,
/// and errors drive rollbacks, so the proxy must not blame a version for what the
/// client did. A request body that fails (cut short, client gone) fails the
/// upstream request too, and an upload slower than the response timeout used to
/// look like a slow upstream; with `x-cutover-version` a client could inflate
/// either version's error rate at will. So the upstream request is timed in phases,
/// each charged to whoever the proxy is waiting for:
///
/// - [`Phase::Upstream`]: connecting, writing, and the upstream taking the body's
///   last piece. If it takes none for the response timeout (an upstream that does
///   not read), 504, the version's error.
/// - [`Phase::Client`]: the upstream wants more of the body and the client has not
///   sent it. Time the client takes is not the version's: if the client sends
///   nothing for the response timeout, 408, not recorded. A slow but steady upload
///   is not limited.
/// - [`Phase::Sent`]: the whole request is written (or handed to the connection to
///   write): the response timeout proper starts here, then 504.
/// - [`Phase::Failed`]: the client's body stream failed, or passed
///   [`crate::ProxyOptions::max_body_size`] and was cut off. The upstream request
///   fails with it: 400 (413 for the size), not recorded.
///
/// Each phase's deadline is the response timeout after the phase began, and each
/// phase begins after the one before, so deadlines only move later. A request
/// without a body starts in [`Phase::Sent`]: timed from the start, connecting
/// included, as before.
pub(crate) struct Upload {
    phase: Mutex<Phase>,
}

/// See [`Upload`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    /// Waiting for the upstream to connect or to take the body, since `since`;
    /// `started` once some of the body was taken.
    Upstream { since: Instant, started: bool },
    /// Waiting for the client's next piece of body since `since`.
    Client { since: Instant },
    /// The whole request was handed to the upstream connection `at`.
    Sent { at: Instant },
    /// The client's body failed `at`; `too_large` when it was cut off for passing
    /// the size limit.
    Failed { at: Instant, too_large: bool },
}

impl Phase {
    /// When this phase has lasted `limit`.
    pub(crate) fn deadline(self, limit: Duration) -> Instant {
        let (Phase::Upstream { since, .. }
        | Phase::Client { since }
        | Phase::Sent { at: since }
        | Phase::Failed { at: since, .. }) = self;
        // Like `tokio::time::timeout`, a limit too far to represent is "never".
        since
            .checked_add(limit)
            .unwrap_or_else(|| since + Duration::from_secs(86_400 * 365 * 30))
    }

    pub(crate) fn client_failed(self) -> bool {
        matches!(self, Phase::Failed { .. })
    }

    /// The client's body was cut off for passing the size limit.
    pub(crate) fn too_large(self) -> bool {
        matches!(
            self,
            Phase::Failed {
                too_large: true,
                ..
            }
        )
    }
}

impl Upload {
    pub(crate) fn new(started: Instant, empty: bool) -> Upload {
        let phase = if empty {
            Phase::Sent { at: started }
        } else {
            Phase::Upstream {
                since: started,
                started: false,
            }
        };
        Upload {
            phase: Mutex::new(phase),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        *lock(&self.phase)
    }

    fn set(&self, phase: Phase) {
        let mut current = lock(&self.phase);
        // A failure is final (hyper should not poll again, but if it does, the
        // client's body still failed).
        if !current.client_failed() {
            *current = phase;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only plain values are behind these locks: still usable after a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The error a request body ends with when it passes the size limit.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than the limit of {limit} bytes")]
pub(crate) struct TooLarge {
    limit: u64,
}

/// The client's request body on its way upstream, telling its [`Upload`] when the
/// upstream takes a piece, when it waits for the client, when it is all sent, and
/// when it fails.
pub(crate) struct RequestBody {
    body: Incoming,
    /// The size limit and how much of it is left, if there is one.
    limit: Option<(u64, u64)>,
    /// `None` for a body that is empty from the start: nothing to report.
    upload: Option<Arc<Upload>>,
    /// Whether the last poll was pending on the client, so that a repeated poll
    /// does not restart the client's clock.
    waiting_for_client: bool,
    /// The copy made for a mirrored request, if the request is mirrored.
    copy: Option<BodyCopy>,
}

impl RequestBody {
    /// The client's `body`, reporting to `upload`, and copied into `copy`.
    pub(crate) fn new(
        body: Incoming,
        upload: Option<Arc<Upload>>,
        limit: Option<u64>,
        copy: Option<BodyCopy>,
    ) -> RequestBody {
        RequestBody {
            body,
            limit: limit.map(|l| (l, l)),
            upload,
            waiting_for_client: false,
            copy,
        }
    }

    /// Feeds the mirrored copy what was just polled.
    fn copy(&mut self, polled: &Poll<Option<Result<Frame<Bytes>, hyper::Error>>>) {
        let Some(copy) = &mut self.copy else {
            return;
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    copy.push(data);
                }
                if self.body.is_end_stream() {
                    copy.finish();
                }
            }
            Poll::Ready(None) => copy.finish(),
            Poll::Ready(Some(Err(_))) => self.copy = None,
            Poll::Pending => {}
        }
    }
}

/// What a [`RequestBody`] fails with: the client's body's error, or [`TooLarge`].
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let (Some((limit, left)), Poll::Ready(Some(Ok(frame)))) = (&mut this.limit, &polled) {
            let len = frame.data_ref().map_or(0, |d| d.len() as u64);
            match left.checked_sub(len) {
                Some(rest) => *left = rest,
                None => {
                    if let Some(upload) = &this.upload {
                        upload.set(Phase::Failed {
                            at: Instant::now(),
                            too_large: true,
                        });
                    }
                    let limit = *limit;
                    return Poll::Ready(Some(Err(Box::new(TooLarge { limit }))));
                }
            }
        }
        this.copy(&polled);
        let polled = polled.map(|frame| frame.map(|r| r.map_err(BodyError::from)));
        let Some(upload) = &this.upload else {
            return polled;
        };
        let now = Instant::now;
        let phase = match &polled {
            Poll::Pending if this.waiting_for_client => None,
            Poll::Pending => Some(Phase::Client { since: now() }),
            // hyper ends the body at a trailers frame, or at a data frame after
            // which the body says it has ended, without polling again.
            Poll::Ready(Some(Ok(frame))) if frame.is_data() && !this.body.is_end_stream() => {
                Some(Phase::Upstream {
                    since: now(),
                    started: true,
                })
            }
            Poll::Ready(Some(Ok(_)) | None) => Some(Phase::Sent { at: now() }),
            Poll::Ready(Some(Err(_))) => Some(Phase::Failed {
                at: now(),
                too_large: false,
            }),
        };
        this.waiting_for_client = polled.is_pending();
        if let Some(phase) = phase {
            upload.set(phase);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
