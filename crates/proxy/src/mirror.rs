//! Traffic mirroring (shadowing): a share of the requests routed by weight to one
//! role (the stable version) is copied to another version's instances, whose
//! answers are measured into that version's own [`VersionStats`] and discarded.
//! The client never sees them, and the live request never waits for them.
//!
//! What is copied and what is not:
//! - only requests routed by weight to the mirrored role: not pinned ones, not
//!   upgrades (a WebSocket cannot be answered twice);
//! - only the allowed methods (GET, HEAD and OPTIONS by default): copying a POST
//!   would do its side effects twice;
//! - a request body as the live request streams it, up to a size limit; a larger
//!   one is not mirrored, and counted ([`MirrorCounts::skipped_too_large`]);
//! - at most so many mirrored requests in flight at once: beyond that a copy is
//!   skipped, and counted ([`MirrorCounts::skipped_full`]), so a slow shadow holds
//!   a bounded number of tasks and connections, never the live path.
//!
//! On the live path a copy costs a random number, a clone of the head and of each
//! body chunk (reference-counted); the copy is sent by a task of its own.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::HeaderValue;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument;

use crate::endpoint::Gauge;
use crate::forward::{origin_form, set_host};
use crate::headers::prepare_request_headers_from;
use crate::pool::UpstreamBody;
use crate::routes::{Backend, FULL_WEIGHT};

/// Bodies up to this many bytes are copied by default.
pub const DEFAULT_MIRROR_MAX_BODY: u64 = 64 * 1024;
/// Mirrored requests in flight at once, by default.
pub const DEFAULT_MIRROR_MAX_IN_FLIGHT: usize = 100;

/// A share of one role's requests, copied to a shadow [`Backend`]; part of a
/// [`crate::Routes`] table.
///
/// Clones (and [`Mirror::retarget`]) share the in-flight bound and the counts, so
/// a route table built anew keeps them.
#[derive(Clone)]
pub struct Mirror {
    source_role: String,
    target: Backend,
    share_bp: u16,
    methods: Arc<[Method]>,
    max_body: u64,
    max_in_flight: usize,
    state: Arc<State>,
}

/// What a mirror did, since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorCounts {
    /// Copies sent to the shadow.
    pub mirrored: u64,
    /// Copies skipped because as many mirrored requests as allowed were in flight,
    /// or the shadow's instance was at its limit.
    pub skipped_full: u64,
    /// Copies skipped because the request body was over the size limit.
    pub skipped_too_large: u64,
}

#[derive(Default)]
struct State {
    in_flight: Gauge,
    mirrored: AtomicU64,
    skipped_full: AtomicU64,
    skipped_too_large: AtomicU64,
}

impl Mirror {
    /// Copies `share_bp` basis points of the requests routed by weight to the
    /// backend in `source_role` to `target`, with the default limits: GET, HEAD
    /// and OPTIONS only, bodies up to [`DEFAULT_MIRROR_MAX_BODY`], at most
    /// [`DEFAULT_MIRROR_MAX_IN_FLIGHT`] in flight.
    pub fn new(source_role: impl Into<String>, target: Backend, share_bp: u16) -> Mirror {
        Mirror {
            source_role: source_role.into(),
            target,
            share_bp: share_bp.min(FULL_WEIGHT),
            methods: Arc::new([Method::GET, Method::HEAD, Method::OPTIONS]),
            max_body: DEFAULT_MIRROR_MAX_BODY,
            max_in_flight: DEFAULT_MIRROR_MAX_IN_FLIGHT,
            state: Arc::default(),
        }
    }

    /// The same mirror, copying only requests with these methods.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Mirror {
        self.methods = methods.into_iter().collect();
        self
    }

    /// The same mirror, copying request bodies up to `bytes` (larger: not mirrored).
    pub fn max_body(mut self, bytes: u64) -> Mirror {
        self.max_body = bytes;
        self
    }

    /// The same mirror, with at most `n` mirrored requests in flight.
    pub fn max_in_flight(mut self, n: usize) -> Mirror {
        self.max_in_flight = n;
        self
    }

    /// The same mirror (its limits, bound and counts) to `target` at `share_bp`:
    /// for a route table built anew.
    pub fn retarget(&self, target: Backend, share_bp: u16) -> Mirror {
        Mirror {
            target,
            share_bp: share_bp.min(FULL_WEIGHT),
            ..self.clone()
        }
    }

    /// The role whose requests are copied.
    pub fn source_role(&self) -> &str {
        &self.source_role
    }

    /// Where the copies go.
    pub fn target(&self) -> &Backend {
        &self.target
    }

    /// The share copied, in basis points.
    pub fn share_bp(&self) -> u16 {
        self.share_bp
    }

    /// Mirrored requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.get()
    }

    pub fn counts(&self) -> MirrorCounts {
        MirrorCounts {
            mirrored: self.state.mirrored.load(Ordering::Relaxed),
            skipped_full: self.state.skipped_full.load(Ordering::Relaxed),
            skipped_too_large: self.state.skipped_too_large.load(Ordering::Relaxed),
        }
    }

    /// Copies `req` if it is one to copy: spawns the copy's task, and returns what
    /// the live request's body must feed it (`None` when nothing is copied or the
    /// request has no body). `per_instance` is the proxy's limit of requests in
    /// flight per instance; `connect_timeout` limits connecting to the shadow's
    /// instance, and `timeout` the copy's wait for its answer's headers (connecting
    /// included), and then for each frame of its body (read and dropped as it
    /// comes). The copy's connection goes back to that instance's pool once its
    /// answer was read whole.
    pub(crate) fn copy(
        &self,
        req: &Request<Incoming>,
        client_ip: &Option<HeaderValue>,
        per_instance: usize,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Option<BodyCopy> {
        if fastrand::u16(..FULL_WEIGHT) >= self.share_bp || !self.methods.contains(req.method()) {
            return None;
        }
        let has_body = !req.body().is_end_stream();
        if has_body && req.body().size_hint().lower() > self.max_body {
            self.state.skipped_too_large.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let slot = Slot::take(&self.state, self.max_in_flight)?;
        let endpoint = self.target.next()?;
        let guard = match endpoint.enter_within(per_instance) {
            Ok(guard) => guard,
            Err(crate::endpoint::Refused::Full) => {
                self.state.skipped_full.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Err(crate::endpoint::Refused::Retired) => return None,
        };
        let uri = origin_form(req.uri().clone()).ok()?;
        let mut head = Request::new(());
        *head.method_mut() = req.method().clone();
        *head.uri_mut() = uri;
        *head.headers_mut() = req.headers().clone();
        prepare_request_headers_from(head.headers_mut(), client_ip);
        set_host(head.headers_mut(), endpoint);

        let (body_copy, body) = if has_body {
            let (done, body) = oneshot::channel();
            let copy = BodyCopy {
                parts: Vec::new(),
                left: self.max_body,
                done: Some(done),
                state: Arc::clone(&self.state),
            };
            (Some(copy), Some(body))
        } else {
            (None, None)
        };
        let stats = Arc::clone(&self.target.stats);
        let state = Arc::clone(&self.state);
        let span = tracing::debug_span!(
            "mirror_request",
            method = %req.method(),
            path = %req.uri().path(),
            version = %self.target.version,
        );
        let task = async move {
            let _slot = slot;
            let body = match body {
                None => Bytes::new(),
                Some(body) => match body.await {
                    Ok(body) => body,
                    // The live body failed, or was over the limit (counted there).
                    Err(_) => return,
                },
            };
            state.mirrored.fetch_add(1, Ordering::Relaxed);
            let mut in_flight = stats.start(guard);
            let request = head.map(|()| UpstreamBody::Copied(Full::new(body)));
            let started = Instant::now();
            let endpoint = in_flight.endpoint();
            let sending = endpoint
                .pool()
                .send(endpoint.addr(), connect_timeout, request);
            match tokio::time::timeout(timeout, sending).await {
                Ok(Ok((response, connection))) => {
                    in_flight.record(response.status().as_u16(), started.elapsed());
                    match drain(response.into_body(), timeout).await {
                        Ok(bytes) => {
                            tracing::debug!(bytes, "mirrored response body read");
                            in_flight.endpoint().put_back(connection);
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "mirrored response body failed");
                            in_flight.body_failed();
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "mirrored request failed");
                    in_flight.record(502, started.elapsed());
                }
                Err(_) => {
                    tracing::debug!("mirrored request got no answer in time");
                    in_flight.record(504, started.elapsed());
                }
            }
        };
        tokio::spawn(task.instrument(span));
        body_copy
    }
}

/// Reads a shadow's response body to its end, dropping each frame as it comes
/// (none is kept): the bytes read, or why it failed. Like a live request body,
/// it fails when it sends nothing for `stall`, however long it takes in all.
async fn drain(mut body: Incoming, stall: Duration) -> Result<u64, String> {
    let mut bytes = 0u64;
    loop {
        match tokio::time::timeout(stall, body.frame()).await {
            Err(_) => return Err(format!("it sent nothing for {stall:?}")),
            Ok(None) => return Ok(bytes),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(frame))) => {
                bytes += frame.data_ref().map_or(0, |data| data.len() as u64);
            }
        }
    }
}

impl fmt::Debug for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mirror")
            .field("source_role", &self.source_role)
            .field("target", &self.target)
            .field("share_bp", &self.share_bp)
            .field("methods", &self.methods)
            .field("max_body", &self.max_body)
            .field("max_in_flight", &self.max_in_flight)
            .field("counts", &self.counts())
            .finish()
    }
}

/// One mirrored request in flight, counted against the bound until dropped.
struct Slot(Arc<State>);

impl Slot {
    /// A slot, unless `max` are taken (then the skip is counted).
    fn take(state: &Arc<State>, max: usize) -> Option<Slot> {
        if state.in_flight.enter() > max {
            state.in_flight.leave();
            state.skipped_full.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot(Arc::clone(state)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.leave();
    }
}

/// A copy of a live request's body, made as the live request streams it, handed
/// to its mirrored request when whole. Given up (and the mirrored request with it)
/// when the body passes the size limit or fails.
pub(crate) struct BodyCopy {
    parts: Vec<Bytes>,
    left: u64,
    done: Option<oneshot::Sender<Bytes>>,
    state: Arc<State>,
}

impl BodyCopy {
    /// Copies the next chunk of the body.
    pub(crate) fn push(&mut self, data: &Bytes) {
        if self.done.is_none() {
            return;
        }
        match self.left.checked_sub(data.len() as u64) {
            Some(left) => {
                self.left = left;
                self.parts.push(data.clone());
            }
            None => {
                self.state.skipped_too_large.fetch_add(1, Ordering::Relaxed);
                self.done = None;
                self.parts = Vec::new();
            }
        }
    }

    /// The body ended: hands the copy over.
    pub(crate) fn finish(&mut self) {
        let Some(done) = self.done.take() else {
            return;
        };
        let parts = std::mem::take(&mut self.parts);
        let body = match <[Bytes; 1]>::try_from(parts) {
            Ok([one]) => one,
            Err(parts) => {
                let mut whole = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
                for part in &parts {
                    whole.extend_from_slice(part);
                }
                whole.freeze()
            }
        };
        let _ = done.send(body);
    }
}
