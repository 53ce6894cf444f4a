//! The headers the proxy changes on the way through: hop-by-hop headers stripped
//! both ways, `X-Forwarded-*` added to (and `Expect` dropped from) requests, and
//! the version header set on responses. An upgrade (a WebSocket handshake, and
//! its `101 Switching Protocols`) keeps `Connection: upgrade` and its `Upgrade`.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::routes::Backend;

/// Request header that pins a request to a version, and response header naming
/// the version that served it.
pub const VERSION_HEADER: &str = "x-cutover-version";

const HOP_BY_HOP_COUNT: usize = 7;

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction.
const HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The version header as a name, made at compile time (a `&str` key is parsed on
/// every use).
pub(crate) const VERSION_HEADER_NAME: HeaderName = HeaderName::from_static(VERSION_HEADER);
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// `prepare_request_headers_from` with the client's address (what the proxy does
/// per request, with the IP made once per connection).
#[cfg(test)]
pub(crate) fn prepare_request_headers(headers: &mut HeaderMap, client: SocketAddr) {
    prepare_request_headers_from(headers, &client_ip_value(client));
}

/// The client's IP as an `X-Forwarded-For` element: made once per connection.
pub(crate) fn client_ip_value(client: SocketAddr) -> Option<HeaderValue> {
    HeaderValue::try_from(client.ip().to_canonical().to_string()).ok()
}

/// Strips hop-by-hop headers, then adds `X-Forwarded-For` (appending `ip`, the
/// client's IP from [`client_ip_value`]) and `X-Forwarded-Proto`. `Host` is kept as
/// the client sent it. `Expect: 100-continue` was answered by the proxy's own
/// server when it started reading the body, so it is not passed on.
pub(crate) fn prepare_request_headers_from(headers: &mut HeaderMap, ip: &Option<HeaderValue>) {
    strip_hop_by_hop(headers);
    headers.remove(header::EXPECT);
    if let Some(ip) = ip {
        if headers.contains_key(X_FORWARDED_FOR) {
            append_forwarded_for(headers, ip);
        } else {
            // The usual case: no proxy before this one.
            headers.insert(X_FORWARDED_FOR, ip.clone());
        }
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
}

/// Joins the `X-Forwarded-For` values the request came with and `ip` into one.
fn append_forwarded_for(headers: &mut HeaderMap, ip: &HeaderValue) {
    let forwarded_for: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let mut value = forwarded_for.join(", ");
    if !value.is_empty() {
        value.push_str(", ");
    }
    // Made from an IP address's text: always valid text.
    value.push_str(ip.to_str().unwrap_or_default());
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

/// Removes the hop-by-hop headers and every header named in `Connection`
/// (except `Host`, which is not the connection's to remove).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names instead of a lookup per hop-by-hop header: most
    // messages carry none of them, or only `Connection`.
    let mut present = [false; HOP_BY_HOP_COUNT];
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
        }
    }
    if present == [false; HOP_BY_HOP_COUNT] {
        return;
    }
    // Only with `Connection` present (it is one of `HOP_BY_HOP`). Names that are
    // hop-by-hop anyway (`Connection: keep-alive`) are removed below.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // Told apart as text first: the usual `keep-alive` is not parsed into a
        // name (a custom name is an allocation) only to be left out.
        .filter(|token| !is_kept_or_hop_by_hop(token))
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    for name in &listed {
        headers.remove(name);
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
}

/// Whether a `Connection` token names no header to remove here: `Host` (not the
/// connection's to remove), or a hop-by-hop header (removed anyway).
fn is_kept_or_hop_by_hop(token: &str) -> bool {
    token.eq_ignore_ascii_case(header::HOST.as_str())
        || HOP_BY_HOP
            .iter()
            .any(|name| token.eq_ignore_ascii_case(name.as_str()))
}

/// The protocol a message asks to switch to: its `Upgrade` value, when its
/// `Connection` lists `upgrade` (both are needed, RFC 9110 §7.8).
///
/// Except `h2c`, cleartext HTTP/2, which is left out: the proxy answers such a
/// request over HTTP/1.1, as RFC 9113 §3.1 lets a server do, rather than pass it
/// on and splice the connection (an upstream that agreed would then be measured
/// as one tunnel, not per request). A client that wants HTTP/2 can have it here
/// with prior knowledge.
pub(crate) fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let upgrade = headers.get(header::UPGRADE)?;
    let listed = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !listed {
        return None;
    }
    let is_h2c = |token: &str| token.trim().eq_ignore_ascii_case("h2c");
    let Ok(protocols) = upgrade.to_str() else {
        return Some(upgrade.clone());
    };
    if !protocols.split(',').any(is_h2c) {
        return Some(upgrade.clone());
    }
    let others: Vec<&str> = protocols
        .split(',')
        .filter(|token| !is_h2c(token))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .collect();
    HeaderValue::from_str(&others.join(", "))
        .ok()
        .filter(|others| !others.is_empty())
}

/// Gives a request that came over HTTP/2 without a `Host` the one its
/// `:authority` names (the URI's authority, to hyper), as an intermediary
/// forwarding it over HTTP/1.1 must (RFC 9113 §8.3.1).
pub(crate) fn host_from_authority<B>(request: &mut http::Request<B>) {
    if request.headers().contains_key(header::HOST) {
        return;
    }
    let host = request
        .uri()
        .authority()
        .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok());
    if let Some(host) = host {
        request.headers_mut().insert(header::HOST, host);
    }
}

/// Puts back, after [`strip_hop_by_hop`], the two headers an upgrade needs on the
/// next hop: `Connection: upgrade` and `Upgrade: protocol`.
pub(crate) fn keep_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

pub(crate) fn set_version_header(headers: &mut HeaderMap, backend: &Backend) {
    match backend.version_header() {
        Some(value) => {
            headers.insert(VERSION_HEADER_NAME, value);
        }
        None => {
            // A version string that is not a valid header value is not echoed, but
            // an upstream's own header must not pass for ours either.
            headers.remove(VERSION_HEADER_NAME);
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
    fn an_upgrade_needs_both_headers_and_keeps_them_across_the_strip() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(upgrade_protocol(&h), None, "no `Connection: upgrade`");
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        let protocol = upgrade_protocol(&h).expect("an upgrade");
        assert_eq!(protocol, "websocket");
        strip_hop_by_hop(&mut h);
        keep_upgrade(&mut h, protocol);
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
        assert!(h.get("keep-alive").is_none());
        h.remove(header::UPGRADE);
        assert_eq!(upgrade_protocol(&h), None, "no `Upgrade`");
    }

    #[test]
    fn an_upgrade_to_h2c_is_not_one() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, HTTP2-Settings"),
        );
        for (asked, passed) in [
            ("h2c", None),
            ("H2C", None),
            ("h2c, websocket", Some("websocket")),
            ("websocket , h2c", Some("websocket")),
            ("websocket", Some("websocket")),
        ] {
            h.insert(header::UPGRADE, HeaderValue::from_static(asked));
            let protocol = upgrade_protocol(&h);
            assert_eq!(
                protocol.as_ref().map(|p| p.to_str().unwrap()),
                passed,
                "{asked}"
            );
        }
    }

    #[test]
    fn an_http2_request_gets_its_authority_as_host() {
        let mut req = http::Request::get("http://app.example:8080/a?b")
            .body(())
            .unwrap();
        host_from_authority(&mut req);
        assert_eq!(req.headers()[header::HOST], "app.example:8080");
        // A client's own is kept.
        let mut req = http::Request::get("http://other.example/")
            .header(header::HOST, "app.example")
            .body(())
            .unwrap();
        host_from_authority(&mut req);
        assert_eq!(req.headers()[header::HOST], "app.example");
        // Without an authority, nothing to copy.
        let mut req = http::Request::get("/a").body(()).unwrap();
        host_from_authority(&mut req);
        assert!(req.headers().get(header::HOST).is_none());
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
