//! Helpers shared by the proxy's integration tests: tiny hyper upstreams on
//! OS-assigned ports, proxies routing to them, and clients, typed and raw.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use cutover_proxy::{Backend, Proxy, ProxyOptions, Routes, VersionStats};

pub type TestBody = UnsyncBoxBody<Bytes, Infallible>;

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

/// How long a test waits for anything before it fails: a generous upper bound
/// that a correct proxy never gets near.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn text(body: impl Into<Bytes>) -> TestBody {
    Full::new(body.into()).boxed_unsync()
}

/// Starts an HTTP/1.1 server on 127.0.0.1 answering with `handler`.
pub async fn upstream<H, F>(handler: H) -> Result<SocketAddr>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<TestBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                // With upgrades, for the WebSocket tests' upstreams.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Ok(addr)
}

/// An upstream that answers every request with `name`.
pub async fn named(name: &'static str) -> Result<SocketAddr> {
    upstream(move |_req| async move { Response::new(text(name)) }).await
}

/// An upstream that echoes the request headers, one `name: value` line each, and
/// answers with hop-by-hop headers of its own.
pub async fn echo() -> Result<SocketAddr> {
    upstream(|req: Request<Incoming>| async move {
        let mut lines = String::new();
        for (name, value) in req.headers() {
            lines.push_str(&format!(
                "{}: {}\n",
                name,
                value.to_str().unwrap_or("<bytes>")
            ));
        }
        Response::builder()
            .header("connection", "x-hop-response")
            .header("x-hop-response", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("x-end-to-end", "kept")
            .header("x-cutover-version", "spoofed-by-upstream")
            .body(text(lines))
            .unwrap()
    })
    .await
}

/// An upstream that, for each request, hands the test a go (through the receiver)
/// and answers `body` only once the test sends it.
pub async fn gated(
    body: &'static str,
) -> Result<(SocketAddr, mpsc::UnboundedReceiver<oneshot::Sender<()>>)> {
    let (arrived_tx, arrived) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let addr = upstream(move |_req| {
        let arrived_tx = arrived_tx.clone();
        async move {
            let (go_tx, go) = oneshot::channel();
            arrived_tx.send(go_tx).unwrap();
            let _ = go.await;
            Response::new(text(body))
        }
    })
    .await?;
    Ok((addr, arrived))
}

/// The next message on `rx`, failing with `missing` if none comes within
/// [`PATIENCE`].
pub async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, missing: &'static str) -> Result<T> {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await?
        .context(missing)
}

/// A proxy on 127.0.0.1 with the default options.
pub async fn bind() -> Result<Proxy> {
    Ok(Proxy::bind("127.0.0.1:0".parse()?, ProxyOptions::default()).await?)
}

/// Options that give an upstream `timeout` to answer (and a request body as long
/// to move).
pub fn response_timeout(timeout: Duration) -> ProxyOptions {
    ProxyOptions {
        response_timeout: timeout,
        ..Default::default()
    }
}

pub fn backend(version: &str, instances: &[SocketAddr]) -> Backend {
    Backend::new(version, instances.to_vec(), VersionStats::new())
}

/// A proxy with `options` that sends everything to v1 on `instances`; the proxy
/// and v1.
pub async fn proxy_to_v1_with(
    options: ProxyOptions,
    instances: &[SocketAddr],
) -> Result<(Proxy, Backend)> {
    let proxy = Proxy::bind("127.0.0.1:0".parse()?, options).await?;
    let v1 = backend("v1", instances);
    proxy.set_routes(Routes::stable_only(v1.clone()));
    Ok((proxy, v1))
}

/// A proxy with the default options that sends everything to v1 on `instances`;
/// the proxy and v1.
pub async fn proxy_to_v1(instances: &[SocketAddr]) -> Result<(Proxy, Backend)> {
    proxy_to_v1_with(ProxyOptions::default(), instances).await
}

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `path` on the proxy, as a URL.
pub fn url(proxy: &Proxy, path: &str) -> String {
    format!("http://{}{path}", proxy.local_addr())
}

/// Sends `request`; the response, its body still to come.
pub async fn send(
    client: &TestClient,
    request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>> {
    Ok(tokio::time::timeout(PATIENCE, client.request(request))
        .await
        .context("no answer from the proxy")??)
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn version(&self) -> &str {
        self.headers
            .get("x-cutover-version")
            .map_or("<none>", |v| v.to_str().unwrap())
    }
}

/// GET `/some/path?q=1` through the proxy with `headers`; the whole answer.
pub async fn get(client: &TestClient, proxy: &Proxy, headers: &[(&str, &str)]) -> Result<Answer> {
    let mut req = Request::get(url(proxy, "/some/path?q=1"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = send(client, req.body(Full::default())?).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec())?,
    })
}

/// A raw connection to the proxy, on which `bytes` were written.
pub async fn raw_request(proxy: &Proxy, bytes: &[u8]) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(proxy.local_addr()).await?;
    stream.write_all(bytes).await?;
    Ok(stream)
}

/// Reads what the proxy answers on a raw connection, until it closes it.
pub async fn raw_answer(stream: &mut TcpStream) -> Result<String> {
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .context("the proxy did not close the connection")??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Reads one response on a kept-alive connection: until its body `ends_with`.
pub async fn read_until(stream: &mut TcpStream, ends_with: &str) -> Result<String> {
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    while !answer.ends_with(ends_with.as_bytes()) {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .context("no answer from the proxy")??;
        anyhow::ensure!(
            n > 0,
            "closed before {ends_with:?}: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Waits (bounded) until `addr` refuses connections: a shutdown has begun.
pub async fn until_refused(addr: SocketAddr) -> Result<()> {
    for _ in 0..1000 {
        if TcpStream::connect(addr).await.is_err() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("{addr} still accepts connections")
}
