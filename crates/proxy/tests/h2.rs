//! Cleartext HTTP/2 from clients, over real HTTP on 127.0.0.1: a client with prior
//! knowledge is served HTTP/2, its requests forwarded to HTTP/1.1 upstreams and
//! measured per version like any other; the limits hold for it; a request asking
//! to upgrade to `h2c` is answered over HTTP/1.1.
//!
//! Behaviour only: nothing asserts how long anything took.

mod common;

use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use common::{
    PATIENCE, backend, echo, gated, named, next, proxy_to_v1_with, raw_answer, raw_request,
    read_until, text, upstream,
};
use cutover_proxy::{Proxy, ProxyOptions, Routes};

/// A timeout far longer than any test waits, for the limits a test does not try.
const NEVER: Duration = Duration::from_secs(3600);

/// An HTTP/2 connection to the proxy, with prior knowledge: the handle to send
/// requests on, and the connection's task, which ends when the connection does.
async fn h2(proxy: &Proxy) -> Result<(SendRequest<Full<Bytes>>, JoinHandle<hyper::Result<()>>)> {
    let stream = TcpStream::connect(proxy.local_addr()).await?;
    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    Ok((send, tokio::spawn(conn)))
}

/// Sends `request` on `send`; the status, headers and whole body.
async fn h2_send(
    send: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, http::HeaderMap, Bytes)> {
    send.ready().await?;
    let response = tokio::time::timeout(PATIENCE, send.send_request(request))
        .await
        .context("no answer from the proxy")??;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(PATIENCE, body.collect())
        .await
        .context("the body did not end")??
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://app.example{path}"))
        .body(Full::default())
        .unwrap()
}

/// Waits (bounded) for the connection's task to end: the proxy closed it.
async fn closed(conn: JoinHandle<hyper::Result<()>>) -> Result<()> {
    tokio::time::timeout(PATIENCE, conn)
        .await
        .context("the proxy did not close the HTTP/2 connection")??
        .ok();
    Ok(())
}

/// An upstream that answers with the protocol, `Host`, target and forwarding
/// headers it was sent, and `name`.
async fn telling(name: &'static str) -> Result<std::net::SocketAddr> {
    upstream(move |req: Request<Incoming>| async move {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map_or("<none>", |v| v.to_str().unwrap())
                .to_owned()
        };
        Response::new(text(format!(
            "{name} {:?} host={} target={} xff={} proto={}",
            req.version(),
            header("host"),
            req.uri(),
            header("x-forwarded-for"),
            header("x-forwarded-proto"),
        )))
    })
    .await
}

async fn many_streams_on_one_connection_are_split_and_measured(threads: usize) -> Result<()> {
    let stable = backend("v1", &[telling("v1").await?]);
    let canary = backend("v2", &[telling("v2").await?]);
    let options = ProxyOptions {
        threads,
        ..Default::default()
    };
    let proxy = Proxy::bind("127.0.0.1:0".parse()?, options).await?;
    proxy.set_routes(Routes::split(stable.clone(), canary.clone(), 3000));
    let (send, _conn) = h2(&proxy).await?;

    // All at once, multiplexed on the one connection.
    const STREAMS: usize = 200;
    let mut answers = tokio::task::JoinSet::new();
    for i in 0..STREAMS {
        let mut send = send.clone();
        answers.spawn(async move { h2_send(&mut send, get(&format!("/item/{i}?q=1"))).await });
    }
    let mut served = std::collections::BTreeMap::<String, usize>::new();
    while let Some(answer) = answers.join_next().await {
        let (status, headers, body) = answer??;
        let body = String::from_utf8(body.to_vec())?;
        assert_eq!(status, StatusCode::OK, "{body}");
        let version = headers["x-cutover-version"].to_str()?;
        let (name, rest) = body.split_once(' ').context("no name")?;
        assert_eq!(name, version, "the header names the version that answered");
        assert!(
            rest.starts_with("HTTP/1.1 host=app.example target=/item/"),
            "forwarded as HTTP/1.1 in origin form, with Host from :authority: {rest}"
        );
        assert!(rest.ends_with("?q=1 xff=127.0.0.1 proto=http"), "{rest}");
        *served.entry(version.to_owned()).or_default() += 1;
    }
    assert!(stable.stats.wait_idle(PATIENCE).await);
    assert!(canary.stats.wait_idle(PATIENCE).await);
    // Each counted against the version that answered it, none as an error.
    assert_eq!(stable.stats.totals(), (served["v1"] as u64, 0));
    assert_eq!(canary.stats.totals(), (served["v2"] as u64, 0));
    assert_eq!(served.values().sum::<usize>(), STREAMS);
    assert!(served["v1"] > served["v2"], "{served:?}");
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn many_streams_on_one_connection_are_split_and_measured_on_the_callers_runtime() -> Result<()>
{
    many_streams_on_one_connection_are_split_and_measured(0).await
}

#[tokio::test]
async fn many_streams_on_one_connection_are_split_and_measured_on_serving_threads() -> Result<()> {
    many_streams_on_one_connection_are_split_and_measured(2).await
}

#[tokio::test]
async fn a_body_streams_both_ways_over_http2() -> Result<()> {
    let mirror = upstream(|req: Request<Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Response::new(text(body))
    })
    .await?;
    let (proxy, v1) = proxy_to_v1_with(ProxyOptions::default(), &[mirror]).await?;
    let (mut send, _conn) = h2(&proxy).await?;
    // Larger than HTTP/2's flow-control windows, so it moves as they open.
    let sent: Bytes = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let request = Request::post("http://app.example/upload").body(Full::new(sent.clone()))?;
    let (status, _, body) = h2_send(&mut send, request).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body == sent,
        "the body came back as sent ({} bytes)",
        body.len()
    );
    assert!(v1.stats.wait_idle(PATIENCE).await);
    assert_eq!(v1.stats.totals(), (1, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn oversize_headers_over_http2_get_431_and_far_oversize_ones_goaway() -> Result<()> {
    let options = ProxyOptions {
        max_header_size: 1024,
        ..Default::default()
    };
    let (proxy, v1) = proxy_to_v1_with(options, &[named("one").await?]).await?;
    let (mut send, conn) = h2(&proxy).await?;
    let mut big = get("/");
    big.headers_mut().insert("x-big", "a".repeat(2048).parse()?);
    let (status, _, _) = h2_send(&mut send, big).await?;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    // A stream's error, not the connection's: the next request on it is served.
    let (status, _, body) = h2_send(&mut send, get("/")).await?;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"one"[..]));

    // Far beyond the limit (h2 draws the line at four times it), it is abuse: the
    // connection is told to go away.
    let mut huge = get("/");
    huge.headers_mut()
        .insert("x-big", "a".repeat(8192).parse()?);
    let refused = h2_send(&mut send, huge).await.unwrap_err();
    let refused = refused
        .downcast_ref::<hyper::Error>()
        .context("not hyper's")?;
    let reason = std::error::Error::source(refused)
        .and_then(|e| e.downcast_ref::<h2::Error>())
        .and_then(h2::Error::reason);
    assert_eq!(reason, Some(h2::Reason::ENHANCE_YOUR_CALM), "{refused:?}");
    closed(conn).await?;
    assert!(v1.stats.wait_idle(PATIENCE).await);
    assert_eq!(
        v1.stats.totals(),
        (1, 0),
        "the refused request reached no version"
    );
    proxy.shutdown().await;
    Ok(())
}

// On the daemon's runtime, where a stream's task and its connection's may run on
// two threads at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_but_not_while_a_request_is_in_progress() -> Result<()> {
    let (held, mut arrived) = gated("held").await?;
    let idle = Duration::from_millis(200);
    let options = ProxyOptions {
        header_read_timeout: NEVER,
        idle_timeout: idle,
        ..Default::default()
    };
    let (proxy, v1) = proxy_to_v1_with(options, &[held]).await?;
    let (mut send, conn) = h2(&proxy).await?;
    let waiting = tokio::spawn(async move { h2_send(&mut send, get("/")).await });
    let go = next(&mut arrived, "the upstream got no request").await?;
    // Longer than the idle timeout: the request in progress keeps the connection.
    tokio::time::sleep(idle * 3).await;
    assert!(!conn.is_finished(), "closed with a request in progress");
    go.send(()).unwrap();
    let (status, _, body) = waiting.await??;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"held"[..]));
    // Its stream finished in a task of its own; the connection, idle from then on,
    // is closed.
    closed(conn).await?;
    assert_eq!(v1.stats.totals(), (1, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn beyond_the_connection_limit_an_http2_client_gets_503_and_goaway() -> Result<()> {
    let options = ProxyOptions {
        max_connections: 1,
        ..Default::default()
    };
    let (proxy, v1) = proxy_to_v1_with(options, &[named("one").await?]).await?;
    // The one connection allowed, kept alive.
    let mut first = raw_request(&proxy, b"GET / HTTP/1.1\r\nhost: app.example\r\n\r\n").await?;
    read_until(&mut first, "one").await?;

    let (mut send, conn) = h2(&proxy).await?;
    let (status, _, body) = h2_send(&mut send, get("/")).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "cutover: the proxy is at its limit of 1 client connections; try again\n"
    );
    closed(conn).await?;
    assert_eq!(v1.stats.totals(), (1, 0), "the 503 was counted");
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_shutdown_lets_an_http2_request_in_progress_finish() -> Result<()> {
    let (held, mut arrived) = gated("held").await?;
    let (proxy, v1) = proxy_to_v1_with(ProxyOptions::default(), &[held]).await?;
    let (mut send, conn) = h2(&proxy).await?;
    let waiting = tokio::spawn(async move { h2_send(&mut send, get("/")).await });
    let go = next(&mut arrived, "the upstream got no request").await?;
    let stopping = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.shutdown().await }
    });
    common::until_refused(proxy.local_addr()).await?;
    go.send(()).unwrap();
    let (status, _, body) = waiting.await??;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"held"[..]));
    closed(conn).await?;
    tokio::time::timeout(PATIENCE, stopping).await??;
    assert_eq!(v1.stats.totals(), (1, 0));
    Ok(())
}

#[tokio::test]
async fn an_h2c_upgrade_is_answered_over_http11_and_not_passed_on() -> Result<()> {
    let (proxy, v1) = proxy_to_v1_with(ProxyOptions::default(), &[echo().await?]).await?;
    let mut stream = raw_request(
        &proxy,
        b"GET / HTTP/1.1\r\nhost: app.example\r\n\
          connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\n\
          http2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await?;
    let answer = read_until(&mut stream, "x-forwarded-proto: http\n").await?;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let (_, echoed) = answer.split_once("\r\n\r\n").context("no body")?;
    for hop in ["upgrade", "http2-settings", "connection"] {
        assert!(
            !echoed.contains(&format!("{hop}:")),
            "{hop} passed on: {echoed}"
        );
    }
    assert!(echoed.contains("host: app.example\n"), "{echoed}");
    // And the connection is still HTTP/1.1, kept alive.
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: app.example\r\nconnection: close\r\n\r\n")
        .await?;
    let again = raw_answer(&mut stream).await?;
    assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");
    assert!(v1.stats.wait_idle(PATIENCE).await);
    assert_eq!(v1.stats.totals(), (2, 0));
    proxy.shutdown().await;
    Ok(())
}
