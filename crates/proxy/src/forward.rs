//! The request path: pick a version, forward to one of its instances, stream the
//! response back, and measure it.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

use crate::ProxyOptions;
use crate::routes::{Backend, NoRoute, Routes};
use crate::stats::{InFlight, thread_index};

/// Request header that pins a request to a version, and response header naming
/// the version that served it.
pub const VERSION_HEADER: &str = "x-cutover-version";

/// How long an idle upstream connection stays in the pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Number of upstream clients, each with its own connection pool. A pool is one
/// `Mutex` taken on every checkout and return; threads are spread over the
/// clients so that concurrent requests rarely meet on the same one.
const CLIENTS: usize = 8;

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// State shared by every connection of one proxy.
pub(crate) struct Shared {
    pub(crate) routes: ArcSwap<Routes>,
    clients: [Client<HttpConnector, RequestBody>; CLIENTS],
    response_timeout: Duration,
}

impl Shared {
    pub(crate) fn new(options: &ProxyOptions) -> Shared {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(options.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
        Shared {
            routes: ArcSwap::from_pointee(Routes::default()),
            clients: std::array::from_fn(|_| builder.build(connector.clone())),
            response_timeout: options.response_timeout,
        }
    }

    /// This thread's upstream client.
    fn client(&self) -> &Client<HttpConnector, RequestBody> {
        &self.clients[thread_index() % CLIENTS]
    }
}

/// Serves one request arriving from `client` on the proxy.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    client: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let span = tracing::debug_span!(
        "proxy_request",
        method = %req.method(),
        path = %req.uri().path(),
        version = Empty,
        status = Empty,
    );
    let response = route(&shared, client, req).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    Ok(response)
}

async fn route(
    shared: &Shared,
    client: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    // A snapshot of the table: a concurrent `set_routes` affects the next request.
    let routes = shared.routes.load_full();
    let pin = req.headers_mut().remove(VERSION_HEADER);
    let pin = match pin.as_ref().map(|v| v.to_str()) {
        Some(Ok(pin)) => Some(pin),
        Some(Err(_)) => Some("<not text>"),
        None => None,
    };
    let backend = match routes.choose(pin) {
        Ok((_, backend)) => backend,
        Err(NoRoute::NothingServing) => {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "cutover: no version of this app is serving yet\n",
            );
        }
        Err(NoRoute::PinnedAbsent { pinned, serving }) => {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                &format!(
                    "cutover: the request asked for version {pinned:?} ({VERSION_HEADER} header), \
                     which is not serving; serving: {serving}\n"
                ),
            );
        }
    };
    let Some((index, instance)) = backend.next() else {
        // `choose` only returns backends with instances.
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "cutover: no version of this app is serving yet\n",
        );
    };
    tracing::Span::current().record("version", backend.version.as_str());
    forward(shared, backend, (index, instance), client, req).await
}

/// The upstream URI: `http://`, the instance, and the request's path and query.
fn upstream_uri(
    backend: &Backend,
    (index, instance): (usize, SocketAddr),
    request: Uri,
) -> Result<Uri, http::Error> {
    let mut parts = request.into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(match backend.authority(index, instance) {
        Some(authority) => authority,
        // Cannot happen for a socket address; report it like any bad authority.
        None => instance.to_string().try_into()?,
    });
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    Ok(Uri::from_parts(parts)?)
}

async fn forward(
    shared: &Shared,
    backend: &Backend,
    (index, instance): (usize, SocketAddr),
    client: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let mut in_flight = backend.stats.start();
    let started = Instant::now();

    let uri = match upstream_uri(backend, (index, instance), std::mem::take(req.uri_mut())) {
        Ok(uri) => uri,
        Err(e) => {
            // Cannot happen for a path that hyper parsed; answer rather than panic.
            return plain(
                StatusCode::BAD_REQUEST,
                Some(backend),
                &format!("cutover: bad request target: {e}\n"),
            );
        }
    };
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    prepare_request_headers(req.headers_mut(), client);

    // The client's body goes upstream through a `RequestBody`, which tells `upload`
    // whose turn it is; see `Upload` for how that decides the timeouts and why.
    let upload = Arc::new(Upload::new(started, req.body().is_end_stream()));
    let req = req.map(|body| RequestBody {
        body,
        upload: Arc::clone(&upload),
        waiting_for_client: false,
    });
    let limit = shared.response_timeout;
    let request = shared.client().request(req);
    tokio::pin!(request);
    let outcome = loop {
        let deadline = upload.phase().deadline(limit);
        tokio::select! {
            biased;
            result = &mut request => break Ok(result),
            () = tokio::time::sleep_until(deadline) => {
                // Deadlines only move later (each phase starts after the one before),
                // so waking at this one and looking again never misses the one that
                // applies now.
                let phase = upload.phase();
                if phase.deadline(limit) <= Instant::now() {
                    break Err(phase);
                }
            }
        }
    };
    let latency = started.elapsed();
    let version = &backend.version;
    let response = match outcome {
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            // Recorded before the body can be polled, so a body error finds it.
            in_flight.record(parts.status.as_u16(), latency);
            strip_hop_by_hop(&mut parts.headers);
            set_version_header(&mut parts.headers, backend);
            let body = ProxyBody::upstream(body, in_flight, tracing::Span::current());
            return Response::from_parts(parts, body);
        }
        // The client's own body failed (cut short, connection lost), and the
        // upstream request with it: the client's failure, not the version's, so not
        // recorded at all. Checked first: whatever hyper made of the aborted body
        // (a user body error, or the upstream closing on the half-sent request),
        // the client broke it.
        Ok(Err(e)) if upload.phase().client_failed() => {
            tracing::debug!(%version, %instance, error = %error_chain(&e), "request body failed");
            return client_failure(
                StatusCode::BAD_REQUEST,
                backend,
                &format!(
                    "cutover: the request body failed before it was sent: {}\n",
                    error_chain(&e)
                ),
            );
        }
        Err(Phase::Failed { .. }) => {
            // The request did not end within the limit after the body failed.
            return client_failure(
                StatusCode::BAD_REQUEST,
                backend,
                "cutover: the request body failed before it was sent\n",
            );
        }
        Err(Phase::Client { .. }) => {
            tracing::debug!(%version, %instance, "request body stalled");
            return client_failure(
                StatusCode::REQUEST_TIMEOUT,
                backend,
                &format!("cutover: the request body sent nothing for {limit:?}\n"),
            );
        }
        Ok(Err(e)) if e.is_connect() => {
            tracing::debug!(%version, %instance, error = %error_chain(&e), "upstream connect failed");
            plain(
                StatusCode::BAD_GATEWAY,
                Some(backend),
                &format!(
                    "cutover: could not connect to version {version} at {instance}: {}\n",
                    error_chain(&e)
                ),
            )
        }
        Ok(Err(e)) => {
            tracing::debug!(%version, %instance, error = %error_chain(&e), "upstream request failed");
            plain(
                StatusCode::BAD_GATEWAY,
                Some(backend),
                &format!(
                    "cutover: version {version} at {instance} failed before answering: {}\n",
                    error_chain(&e)
                ),
            )
        }
        Err(Phase::Upstream { started: false, .. } | Phase::Sent { .. }) => plain(
            StatusCode::GATEWAY_TIMEOUT,
            Some(backend),
            &format!(
                "cutover: version {version} at {instance} sent no response headers within {limit:?}\n"
            ),
        ),
        Err(Phase::Upstream { started: true, .. }) => plain(
            StatusCode::GATEWAY_TIMEOUT,
            Some(backend),
            &format!(
                "cutover: version {version} at {instance} took none of the request body for {limit:?}\n"
            ),
        ),
    };
    in_flight.record(response.status().as_u16(), latency);
    response
}

/// An answer to a request that failed through the client's fault: dropping the
/// version's in-flight guard unrecorded, so that it counts neither as a request nor
/// as an error of the version.
fn client_failure(status: StatusCode, backend: &Backend, body: &str) -> Response<ProxyBody> {
    let mut response = plain(status, Some(backend), body);
    // The rest of the request body is not coming (or not wanted): close rather than
    // leave the connection out of step.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// How far the client's request body has gone upstream: shared by its
/// [`RequestBody`] (polled by the upstream connection) and [`forward`], which times
/// the request by it.
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
/// - [`Phase::Failed`]: the client's body stream failed. The upstream request fails
///   with it: 400, not recorded.
///
/// Each phase's deadline is the response timeout after the phase began, and each
/// phase begins after the one before, so deadlines only move later. A request
/// without a body starts in [`Phase::Sent`]: timed from the start, connecting
/// included, as before.
struct Upload {
    phase: Mutex<Phase>,
}

/// See [`Upload`].
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for the upstream to connect or to take the body, since `since`;
    /// `started` once some of the body was taken.
    Upstream { since: Instant, started: bool },
    /// Waiting for the client's next piece of body since `since`.
    Client { since: Instant },
    /// The whole request was handed to the upstream connection `at`.
    Sent { at: Instant },
    /// The client's body failed `at`.
    Failed { at: Instant },
}

impl Phase {
    /// When this phase has lasted `limit`.
    fn deadline(self, limit: Duration) -> Instant {
        let (Phase::Upstream { since, .. }
        | Phase::Client { since }
        | Phase::Sent { at: since }
        | Phase::Failed { at: since }) = self;
        // Like `tokio::time::timeout`, a limit too far to represent is "never".
        since
            .checked_add(limit)
            .unwrap_or_else(|| since + Duration::from_secs(86_400 * 365 * 30))
    }

    fn client_failed(self) -> bool {
        matches!(self, Phase::Failed { .. })
    }
}

impl Upload {
    fn new(started: Instant, empty: bool) -> Upload {
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

    fn phase(&self) -> Phase {
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

/// The client's request body on its way upstream, telling its [`Upload`] when the
/// upstream takes a piece, when it waits for the client, when it is all sent, and
/// when it fails.
pub(crate) struct RequestBody {
    body: Incoming,
    upload: Arc<Upload>,
    /// Whether the last poll was pending on the client, so that a repeated poll
    /// does not restart the client's clock.
    waiting_for_client: bool,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
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
            Poll::Ready(Some(Err(_))) => Some(Phase::Failed { at: now() }),
        };
        this.waiting_for_client = polled.is_pending();
        if let Some(phase) = phase {
            this.upload.set(phase);
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

/// Strips hop-by-hop headers, then adds `X-Forwarded-For` / `X-Forwarded-Proto`.
/// `Host` is kept as the client sent it. `Expect: 100-continue` was answered by the
/// proxy's own server when it started reading the body, so it is not passed on.
fn prepare_request_headers(headers: &mut HeaderMap, client: SocketAddr) {
    strip_hop_by_hop(headers);
    headers.remove(header::EXPECT);
    let ip = client.ip().to_canonical().to_string();
    let name = HeaderName::from_static("x-forwarded-for");
    let forwarded_for: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let mut value = forwarded_for.join(", ");
    if !value.is_empty() {
        value.push_str(", ");
    }
    value.push_str(&ip);
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    );
}

/// Removes the hop-by-hop headers and every header named in `Connection`
/// (except `Host`, which is not the connection's to remove).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| *name != header::HOST)
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

fn set_version_header(headers: &mut HeaderMap, backend: &Backend) {
    match backend.version_header() {
        Some(value) => {
            headers.insert(VERSION_HEADER, value);
        }
        None => {
            // A version string that is not a valid header value is not echoed, but
            // an upstream's own header must not pass for ours either.
            headers.remove(VERSION_HEADER);
        }
    }
}

/// `e` and its sources, `: `-separated, skipping the legacy client's generic
/// top-level message when it has a more specific cause.
fn error_chain(e: &hyper_util::client::legacy::Error) -> String {
    let mut out = String::new();
    let mut next: Option<&(dyn StdError + 'static)> = match e.source() {
        Some(source) => Some(source),
        None => {
            let _ = write!(out, "{e}");
            None
        }
    };
    while let Some(err) = next {
        if !out.is_empty() {
            out.push_str(": ");
        }
        let _ = write!(out, "{err}");
        next = err.source();
    }
    out
}

/// A short plain-text answer from the proxy itself, naming the version if one was
/// chosen.
fn plain(status: StatusCode, backend: Option<&Backend>, body: &str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(backend) = backend {
        set_version_header(response.headers_mut(), backend);
    }
    response
}

/// The response body the proxy sends: an upstream body streamed through (holding
/// the version's in-flight guard until it ends or is dropped, and counting an
/// error if it fails), or a short body of the proxy's own.
pub(crate) struct ProxyBody {
    kind: Kind,
}

enum Kind {
    Upstream {
        body: Incoming,
        in_flight: Option<InFlight>,
        /// The request's span, for a failure of the body after `handle` returned.
        span: tracing::Span,
    },
    Full(Option<Bytes>),
}

impl ProxyBody {
    fn upstream(body: Incoming, in_flight: InFlight, span: tracing::Span) -> ProxyBody {
        let in_flight = (!body.is_end_stream()).then_some(in_flight);
        ProxyBody {
            kind: Kind::Upstream {
                body,
                in_flight,
                span,
            },
        }
    }

    fn full(bytes: Bytes) -> ProxyBody {
        ProxyBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream {
                body,
                in_flight,
                span,
            } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Err(e))) => {
                        if let Some(in_flight) = in_flight.take() {
                            span.in_scope(|| {
                                tracing::debug!(error = %e, "upstream response body failed");
                            });
                            in_flight.body_failed();
                        }
                    }
                    Poll::Ready(None) => *in_flight = None,
                    Poll::Ready(Some(Ok(_))) if body.is_end_stream() => *in_flight = None,
                    _ => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret, host"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::TRAILER, HeaderValue::from_static("x-checksum"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::HOST, HeaderValue::from_static("app.example"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["host", "x-kept"]);
    }

    #[test]
    fn upstream_uri_keeps_path_and_query_and_names_the_instance() {
        let v4: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let v6: SocketAddr = "[::1]:8082".parse().unwrap();
        let b = Backend::new("v1", vec![v4, v6], crate::VersionStats::new());
        let uri = |i: usize, addr: SocketAddr, target: &str| {
            upstream_uri(&b, (i, addr), target.parse().unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(
            uri(0, v4, "/some/path?q=1&r"),
            "http://127.0.0.1:8081/some/path?q=1&r"
        );
        assert_eq!(uri(1, v6, "/"), "http://[::1]:8082/");
        // Absolute form: the client's authority is replaced.
        assert_eq!(
            uri(0, v4, "https://app.example/x?y"),
            "http://127.0.0.1:8081/x?y"
        );
        // Authority form has no path.
        assert_eq!(uri(0, v4, "app.example:443"), "http://127.0.0.1:8081/");
        // Not the cached instance at that position: made on the spot.
        assert_eq!(uri(0, v6, "/z"), "http://[::1]:8082/z");
    }

    #[test]
    fn forwarded_for_appends_the_client() {
        let client: SocketAddr = "[::ffff:10.1.2.3]:5555".parse().unwrap();
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        h.append("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        prepare_request_headers(&mut h, client);
        assert!(h.get(header::EXPECT).is_none());
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 198.51.100.1, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");

        let mut h = HeaderMap::new();
        prepare_request_headers(&mut h, "127.0.0.1:1".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    }
}
