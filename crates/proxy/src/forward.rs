//! The request path: pick a version, forward to one of its instances, stream the
//! response back, and measure it.
//!
//! Read top-down: [`handle`] → `route` (pick a version) → `forward` (send it) →
//! [`Forwarding::answer`] (wait and answer). The bodies are wrapped on the way,
//! each in its own module: the client's in a [`RequestBody`], which keeps an
//! [`Upload`] told whose turn it is, so that [`Forwarding::answer`] blames a
//! timeout or failure on the client or on the version; the
//! upstream's in a [`ProxyBody`], which holds the version's in-flight guard until
//! the body ends and counts its failure. The headers changed on the way are in
//! [`crate::headers`].

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Incoming};
use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

use crate::ProxyOptions;
use crate::endpoint::{Endpoint, EndpointGuard, Refused};
use crate::headers::{
    VERSION_HEADER, VERSION_HEADER_NAME, host_from_authority, keep_upgrade,
    prepare_request_headers_from, set_version_header, strip_hop_by_hop, upgrade_protocol,
};
use crate::mirror::BodyCopy;
use crate::pool::{Answered, Unsent, UpstreamBody, UpstreamError};
use crate::response_body::ProxyBody;
use crate::routes::{Backend, NoRoute, Routes};
use crate::stats::InFlight;
use crate::tunnel::{Tunnels, Upgrading};
use crate::upload::{Phase, RequestBody, Upload};

/// State shared by every connection of one proxy. The upstream connections are
/// the instances' own ([`Endpoint`]'s pool).
pub(crate) struct Shared {
    pub(crate) routes: ArcSwap<Routes>,
    /// [`ProxyOptions::connect_timeout`].
    connect_timeout: Duration,
    response_timeout: Duration,
    /// [`ProxyOptions::max_requests_per_instance`] (0: none).
    per_instance: usize,
    /// [`ProxyOptions::max_body_size`].
    max_body: Option<u64>,
    pub(crate) tunnels: Arc<Tunnels>,
}

impl Shared {
    pub(crate) fn new(options: &ProxyOptions) -> Shared {
        Shared {
            routes: ArcSwap::from_pointee(Routes::default()),
            connect_timeout: options.connect_timeout,
            response_timeout: options.response_timeout,
            per_instance: options.max_requests_per_instance,
            max_body: options.max_body_size,
            tunnels: Arc::new(Tunnels::new(options.tunnel_idle_timeout)),
        }
    }
}

/// Serves one request from a client whose IP, as an `X-Forwarded-For` element, is
/// `client_ip` (see [`crate::headers::client_ip_value`]).
///
/// Not an `async fn`: everything up to handing the request to the upstream client
/// happens here, at once, and the future returned only waits for the answer. It
/// holds just what that needs (not the request, the route table or the
/// connection's state), so the per-request future stays small.
pub(crate) fn handle(
    shared: &Shared,
    client_ip: &Option<HeaderValue>,
    req: Request<Incoming>,
) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + use<> {
    let span = tracing::debug_span!(
        "proxy_request",
        method = %req.method(),
        path = %req.uri().path(),
        version = Empty,
        status = Empty,
    );
    let routed = span.in_scope(|| route(shared, client_ip, req, &span));
    let in_span = span.clone();
    async move {
        let response = match routed {
            Routed::Forwarding(forwarding, exchange) => forwarding.answer(exchange, &span).await,
            Routed::Answered(response) => response,
        };
        span.record("status", response.status().as_u16());
        Ok(response)
    }
    .instrument(in_span)
}

/// What became of a request by the time it was routed.
enum Routed {
    /// On its way to a version: what waits for its answer, and the exchange with
    /// the instance.
    Forwarding(Forwarding, Exchange),
    /// Answered by the proxy itself (nothing to route to, or a bad target).
    Answered(Response<ProxyBody>),
}

/// How often a request picks again when the instance it picked is being drained
/// (it loaded the route table just before the drain's): the table it loads next no
/// longer has that instance, so once is enough unless tables change very fast.
const PICKS: usize = 3;

/// Picks the version and sends it the request.
fn route(
    shared: &Shared,
    client_ip: &Option<HeaderValue>,
    mut req: Request<Incoming>,
    span: &tracing::Span,
) -> Routed {
    if req.version() == Version::HTTP_2 {
        host_from_authority(&mut req);
    }
    // Refused before a version is chosen: the client's doing, no version's.
    if req.method() == Method::CONNECT {
        return Routed::Answered(no_tunnels());
    }
    if let Some(limit) = shared.max_body
        && req.body().size_hint().lower() > limit
    {
        return Routed::Answered(too_large(limit));
    }
    let pin = req.headers_mut().remove(VERSION_HEADER_NAME);
    let pin = match pin.as_ref().map(|v| v.to_str()) {
        Some(Ok(pin)) => Some(pin),
        Some(Err(_)) => Some("<not text>"),
        None => None,
    };
    // Taken out of the request before it is sent: the client's side of an upgrade.
    let upgrade = upgrade_protocol(req.headers()).map(|p| (p, hyper::upgrade::on(&mut req)));
    for _ in 0..PICKS {
        // A snapshot of the table: a concurrent `set_routes` affects the next request.
        let routes = shared.routes.load_full();
        let sticky = routes
            .sticky_cookie
            .as_deref()
            .and_then(|name| cookie(req.headers(), name));
        let choice = match routes.choose(pin, sticky) {
            Ok(choice) => choice,
            Err(NoRoute::NothingServing) => return Routed::Answered(nothing_serving()),
            Err(NoRoute::PinnedAbsent { pinned, serving }) => {
                return Routed::Answered(plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    &format!(
                        "cutover: the request asked for version {pinned:?} ({VERSION_HEADER} header), \
                         which is not serving; serving: {serving}\n"
                    ),
                ));
            }
        };
        let Some(backend) = routes.backend(choice.index) else {
            return Routed::Answered(nothing_serving());
        };
        // Marked in flight on the instance before anything is sent: a drain that
        // began meanwhile either waits for this request, or this request sees it.
        let (endpoint, on_instance) = match pick(backend, shared.per_instance) {
            Ok(picked) => picked,
            Err(None) => return Routed::Answered(nothing_serving()),
            Err(Some(Refused::Retired)) => continue,
            Err(Some(Refused::Full)) => {
                return Routed::Answered(plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(backend),
                    &format!(
                        "cutover: every instance of version {} has its limit of {} requests in flight; try again\n",
                        backend.version, shared.per_instance
                    ),
                ));
            }
        };
        span.record("version", backend.version.as_str());
        let (in_flight, started) = (backend.stats.start(on_instance), Instant::now());
        let set_cookie = choice
            .set_cookie
            .then(|| sticky_cookie(routes.sticky_cookie.as_deref(), &backend.version))
            .flatten();
        // Only requests routed by weight are mirrored, and never an upgrade.
        let copy = match &routes.mirror {
            Some(mirror)
                if pin.is_none() && upgrade.is_none() && mirror.source_role() == backend.role =>
            {
                mirror.copy(
                    &req,
                    client_ip,
                    shared.per_instance,
                    shared.connect_timeout,
                    shared.response_timeout,
                )
            }
            _ => None,
        };
        let (protocol, upgrading) = match upgrade {
            Some((protocol, client)) => (
                Some(protocol),
                Some(Box::new(Upgrading {
                    client,
                    endpoint: Arc::clone(endpoint),
                    tunnels: Arc::clone(&shared.tunnels),
                })),
            ),
            None => (None, None),
        };
        return match forward(shared, endpoint, client_ip, req, protocol, copy, started) {
            Ok((upload, request)) => {
                let exchange = exchange(endpoint, shared.connect_timeout, request);
                Routed::Forwarding(
                    Forwarding {
                        index: choice.index,
                        routes,
                        set_cookie,
                        in_flight,
                        started,
                        upload,
                        upgrading,
                        limit: shared.response_timeout,
                    },
                    exchange,
                )
            }
            // Not recorded: the in-flight guard is dropped unrecorded.
            Err(e) => Routed::Answered(plain(
                StatusCode::BAD_REQUEST,
                Some(backend),
                &format!("cutover: bad request target: {e}\n"),
            )),
        };
    }
    Routed::Answered(plain(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "cutover: every instance picked for this request was being drained; try again\n",
    ))
}

/// The next instance of `backend` in round-robin order, marked in flight; when it
/// is full, the first of the others with room. `Err(None)` without instances
/// (`choose` only returns backends with some), `Retired` when one picked is being
/// drained (pick from the current table again), `Full` when all are full.
fn pick(
    backend: &Backend,
    limit: usize,
) -> Result<(&Arc<Endpoint>, EndpointGuard), Option<Refused>> {
    let endpoint = backend.next().ok_or(None)?;
    let refused = match endpoint.enter_within(limit) {
        Ok(guard) => return Ok((endpoint, guard)),
        Err(refused @ Refused::Retired) => return Err(Some(refused)),
        Err(refused) => refused,
    };
    // Only with a limit: the others, once each, from the next in turn.
    for _ in 1..backend.endpoints().len() {
        let other = backend.next().ok_or(None)?;
        match other.enter_within(limit) {
            Ok(guard) => return Ok((other, guard)),
            Err(Refused::Retired) => return Err(Some(Refused::Retired)),
            Err(Refused::Full) => {}
        }
    }
    Err(Some(refused))
}

/// The 405 of a `CONNECT`: a reverse proxy in front of one app is no tunnel to
/// anywhere (and an instance that said yes would make one, unmeasured).
fn no_tunnels() -> Response<ProxyBody> {
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "cutover: the proxy does not tunnel CONNECT\n",
    );
    response.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH"),
    );
    response
}

/// The 413 of a request whose `Content-Length` is over `limit`, sent at once.
fn too_large(limit: u64) -> Response<ProxyBody> {
    let mut response = plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        &format!("cutover: the request body is larger than the limit of {limit} bytes\n"),
    );
    // The body is not read: close rather than leave the connection out of step.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The value of cookie `name` in the request's `Cookie` headers, if any.
fn cookie<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v.trim_matches('"'))
        })
}

/// `Set-Cookie` for a client routed to `version` by a sticky table.
fn sticky_cookie(name: Option<&str>, version: &str) -> Option<HeaderValue> {
    let name = name?;
    HeaderValue::from_str(&format!("{name}={version}; Path=/; HttpOnly; SameSite=Lax")).ok()
}

/// Makes the request, which started at `started`, the one to send to `endpoint`
/// (asking it to switch to `upgrade`, if the client asked; its body copied into
/// `copy`, if it is mirrored): returns the upload's state (`None` without a
/// request body) and the request.
fn forward(
    shared: &Shared,
    endpoint: &Endpoint,
    client_ip: &Option<HeaderValue>,
    mut req: Request<Incoming>,
    upgrade: Option<HeaderValue>,
    copy: Option<BodyCopy>,
    started: Instant,
) -> Result<(Option<Arc<Upload>>, Request<UpstreamBody>), http::Error> {
    // Cannot fail for a path that hyper parsed; answered (400) rather than a panic.
    let uri = origin_form(std::mem::take(req.uri_mut()))?;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    prepare_request_headers_from(req.headers_mut(), client_ip);
    set_host(req.headers_mut(), endpoint);
    if let Some(protocol) = upgrade {
        keep_upgrade(req.headers_mut(), protocol);
    }

    // The client's body goes upstream through a `RequestBody`, which tells `upload`
    // whose turn it is; see `Upload` for how that decides the timeouts and why. A
    // request without a body has nothing to tell: it is `Phase::Sent` from the start.
    let upload = (!req.body().is_end_stream()).then(|| Arc::new(Upload::new(started, false)));
    let req = req.map(|body| {
        UpstreamBody::Streamed(RequestBody::new(
            body,
            upload.clone(),
            shared.max_body,
            copy,
        ))
    });
    Ok((upload, req))
}

/// A request's exchange with its instance, until the response head: boxed, so
/// that the request's future, moved several times as it starts, stays small.
type Exchange = Pin<Box<dyn Future<Output = Result<Answered, UpstreamError>> + Send>>;

/// Sends `request` to `endpoint`: at once on an idle connection that is ready
/// (the usual case), else, or when that one turns out closed before the request
/// went out, on a connection that becomes ready or a new one.
fn exchange(
    endpoint: &Arc<Endpoint>,
    connect_timeout: Duration,
    request: Request<UpstreamBody>,
) -> Exchange {
    let endpoint = Arc::clone(endpoint);
    match endpoint.pool().send_on_idle(request) {
        Ok(sent) => Box::pin(async move {
            let request = match sent.await {
                Ok(answered) => return Ok(answered),
                Err(Unsent::Failed(e)) => return Err(UpstreamError::Request(e)),
                Err(Unsent::Again(request)) => *request,
            };
            // Boxed: rare, and its state would make every exchange larger.
            let pool = endpoint.pool();
            Box::pin(pool.send(endpoint.addr(), connect_timeout, request)).await
        }),
        Err(request) => Box::pin(async move {
            let pool = endpoint.pool();
            pool.send(endpoint.addr(), connect_timeout, request).await
        }),
    }
}

/// A request on its way to a version, until its response headers (or its failure).
struct Forwarding {
    /// The table the version was chosen from, and its position there.
    routes: Arc<Routes>,
    index: usize,
    /// The sticky cookie to set on the response, if the table is sticky and the
    /// request was routed by weight.
    set_cookie: Option<HeaderValue>,
    in_flight: InFlight,
    started: Instant,
    /// `None` for a request without a body.
    upload: Option<Arc<Upload>>,
    /// The client asked to upgrade the connection (boxed: a rare case).
    upgrading: Option<Box<Upgrading>>,
    limit: Duration,
}

impl Forwarding {
    fn phase(&self) -> Phase {
        match &self.upload {
            Some(upload) => upload.phase(),
            None => Phase::Sent { at: self.started },
        }
    }

    /// Waits for the upstream's answer, within the limits of `Upload`'s phases, and
    /// makes it the client's answer; records it unless the client is to blame.
    async fn answer(self, exchange: Exchange, span: &tracing::Span) -> Response<ProxyBody> {
        let limit = self.limit;
        let outcome = self.send(exchange).await;
        let latency = self.started.elapsed();
        let Some(backend) = self.routes.backend(self.index) else {
            // The backend was chosen from this very table, so it is there.
            return nothing_serving();
        };
        let mut in_flight = self.in_flight;
        let instance = in_flight.endpoint().addr();
        let version = &backend.version;
        // An instance that agreed to upgrade: counted now, in flight until the tunnel
        // closes. One that answered otherwise is answered like any request.
        let outcome = match (outcome, self.upgrading) {
            // The connection is the tunnel's now: never back to the pool.
            (Ok(Ok((response, _connection))), Some(upgrading))
                if response.status() == StatusCode::SWITCHING_PROTOCOLS =>
            {
                in_flight.record(response.status().as_u16(), latency);
                return switch_protocols(response, *upgrading, in_flight, backend, span);
            }
            (outcome, _) => outcome,
        };
        let response = match outcome {
            Ok(Ok((response, connection))) => {
                let (mut parts, body) = response.into_parts();
                // Recorded before the body can be polled, so a body error finds it.
                in_flight.record(parts.status.as_u16(), latency);
                strip_hop_by_hop(&mut parts.headers);
                set_version_header(&mut parts.headers, backend);
                if let Some(cookie) = self.set_cookie {
                    parts.headers.append(header::SET_COOKIE, cookie);
                }
                let body =
                    ProxyBody::upstream(body, in_flight, connection, self.upload, span.clone());
                return Response::from_parts(parts, body);
            }
            // The client's own body failed (cut short, connection lost), and the
            // upstream request with it: the client's failure, not the version's, so not
            // recorded at all. Checked first: whatever hyper made of the aborted body
            // (a user body error, or the upstream closing on the half-sent request),
            // the client broke it.
            Ok(Err(e))
                if self
                    .upload
                    .as_ref()
                    .is_some_and(|u| u.phase().client_failed()) =>
            {
                if self.upload.as_ref().is_some_and(|u| u.phase().too_large()) {
                    return client_failure(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        backend,
                        &format!("cutover: the request body failed: {}\n", error_chain(&e)),
                    );
                }
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
            Err(Phase::Failed {
                too_large: true, ..
            }) => {
                return client_failure(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    backend,
                    "cutover: the request body is larger than the limit\n",
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
}

impl Forwarding {
    /// Waits for the instance's answer to the request within the limits of
    /// `Upload`'s phases: `Err` is the phase whose limit passed.
    async fn send(&self, mut sending: Exchange) -> Result<Result<Answered, UpstreamError>, Phase> {
        loop {
            let deadline = self.phase().deadline(self.limit);
            tokio::select! {
                biased;
                result = &mut sending => return Ok(result),
                () = tokio::time::sleep_until(deadline) => {
                    // Deadlines only move later (each phase starts after the one before),
                    // so waking at this one and looking again never misses the one that
                    // applies now.
                    let phase = self.phase();
                    if phase.deadline(self.limit) <= Instant::now() {
                        return Err(phase);
                    }
                }
            }
        }
    }
}

/// The client's `101 Switching Protocols`, from the instance's: the tunnel
/// between them is spawned, and holds `in_flight` until it closes.
fn switch_protocols(
    mut response: Response<Incoming>,
    upgrading: Upgrading,
    in_flight: InFlight,
    backend: &Backend,
    span: &tracing::Span,
) -> Response<ProxyBody> {
    let upstream = hyper::upgrade::on(&mut response);
    let (mut parts, _empty) = response.into_parts();
    let protocol = upgrade_protocol(&parts.headers);
    strip_hop_by_hop(&mut parts.headers);
    if let Some(protocol) = protocol {
        keep_upgrade(&mut parts.headers, protocol);
    }
    set_version_header(&mut parts.headers, backend);
    upgrading.spawn(upstream, in_flight, span.clone());
    Response::from_parts(parts, ProxyBody::full(Bytes::new()))
}

/// The request target sent upstream: the request's path and query (origin form,
/// `/` for a target without a path), whatever form the client sent.
pub(crate) fn origin_form(request: Uri) -> Result<Uri, http::Error> {
    let mut parts = request.into_parts();
    parts.scheme = None;
    parts.authority = None;
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    Ok(Uri::from_parts(parts)?)
}

/// A `Host` header naming the instance, for a request that came without one (an
/// HTTP/1.0 client's): HTTP/1.1 requires one. A client's own is kept.
pub(crate) fn set_host(headers: &mut http::HeaderMap, endpoint: &Endpoint) {
    if !headers.contains_key(header::HOST)
        && let Some(host) = endpoint.host_header()
    {
        headers.insert(header::HOST, host);
    }
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

/// The 503 of a table where nothing serves.
fn nothing_serving() -> Response<ProxyBody> {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "cutover: no version of this app is serving yet\n",
    )
}

/// A short plain-text answer from the proxy itself, naming the version if one was
/// chosen.
pub(crate) fn plain(
    status: StatusCode,
    backend: Option<&Backend>,
    body: &str,
) -> Response<ProxyBody> {
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

/// `e` and its sources, `: `-separated, skipping hyper's generic top-level message
/// when it has a more specific cause.
fn error_chain(e: &UpstreamError) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_target_is_the_path_and_query_and_host_is_kept_or_set() {
        let target = |t: &str| origin_form(t.parse().unwrap()).unwrap().to_string();
        assert_eq!(target("/some/path?q=1&r"), "/some/path?q=1&r");
        // Absolute form: the client's scheme and authority are not sent on.
        assert_eq!(target("https://app.example/x?y"), "/x?y");
        // Authority form has no path.
        assert_eq!(target("app.example:443"), "/");

        let v4 = Endpoint::new("127.0.0.1:8081".parse().unwrap());
        let v6 = Endpoint::new("[::1]:8082".parse().unwrap());
        let mut h = http::HeaderMap::new();
        set_host(&mut h, &v6);
        assert_eq!(h[header::HOST], "[::1]:8082");
        h.insert(header::HOST, HeaderValue::from_static("app.example"));
        set_host(&mut h, &v4);
        assert_eq!(h[header::HOST], "app.example", "the client's Host is kept");
    }

    #[test]
    fn the_sticky_cookie_is_found_among_others() {
        let mut h = http::HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; cutover-shop=v2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, "cutover-shop"), Some("v2"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "cutover"), None);
        assert_eq!(
            sticky_cookie(Some("cutover-shop"), "v2").unwrap(),
            "cutover-shop=v2; Path=/; HttpOnly; SameSite=Lax"
        );
    }
}
