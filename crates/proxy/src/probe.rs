//! One request through the proxy, as a client would send it: what smoke checks
//! use to reach a version in a role (with the pin header), measured like any
//! other request.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How much of a response body a probe keeps.
pub const PROBE_BODY_LIMIT: usize = 1 << 20;

/// What a probe got back.
#[derive(Debug, Clone)]
pub struct ProbeAnswer {
    pub status: StatusCode,
    /// Up to [`PROBE_BODY_LIMIT`] bytes of it.
    pub body: Bytes,
    /// To the response headers.
    pub latency: Duration,
}

/// Sends `method path` with `headers` to `addr` over a fresh connection, and
/// reads the answer, all within `timeout`.
///
/// # Errors
/// In words, when the request cannot be made or sent, or no answer comes in time.
pub async fn probe(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<ProbeAnswer, String> {
    let work = async {
        let method =
            Method::from_bytes(method.as_bytes()).map_err(|e| format!("bad method: {e}"))?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, addr.to_string());
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("bad header name {name:?}: {e}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| format!("bad value for header {name}: {e}"))?;
            request = request.header(name, value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad request: {e}"))?;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("could not connect to {addr}: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("could not talk HTTP to {addr}: {e}"))?;
        let connection = tokio::spawn(connection);
        let started = Instant::now();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        let latency = started.elapsed();
        let status = response.status();
        let body = Limited::new(response.into_body(), PROBE_BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| format!("the response body failed: {e}"))?
            .to_bytes();
        connection.abort();
        Ok(ProbeAnswer {
            status,
            body,
            latency,
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no complete answer within {timeout:?}")),
    }
}
