//! The limits that protect the proxy and the instances behind it, over real HTTP
//! on 127.0.0.1: each is answered with its status (or a close), never a crash,
//! and none counts against a version.
//!
//! Behaviour only: the timeouts set here are short so that the tests end soon,
//! and nothing asserts how long anything took.

mod common;

use std::time::Duration;

use anyhow::Result;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use common::{
    PATIENCE, client, gated, get, named, next, proxy_to_v1_with, raw_answer, raw_request,
    read_until, text, upstream,
};
use cutover_proxy::ProxyOptions;

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: app.example\r\n\r\n";

/// A timeout far longer than any test waits, for the limits a test does not try.
const NEVER: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn oversize_headers_get_431() -> Result<()> {
    let options = ProxyOptions {
        max_header_size: 1024,
        ..Default::default()
    };
    let (proxy, v1) = proxy_to_v1_with(options, &[named("one").await?]).await?;
    let big = format!(
        "GET / HTTP/1.1\r\nhost: app.example\r\nx-big: {}\r\n\r\n",
        "a".repeat(2048)
    );
    let mut stream = raw_request(&proxy, big.as_bytes()).await?;
    let answer = raw_answer(&mut stream).await?;
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{answer}"
    );

    // A head that never ends is cut off at the limit as well.
    let endless = format!("GET / HTTP/1.1\r\nx-big: {}", "a".repeat(1 << 20));
    let mut stream = TcpStream::connect(proxy.local_addr()).await?;
    // The proxy may close before it has read everything.
    let _ = stream.write_all(endless.as_bytes()).await;
    let answer = raw_answer(&mut stream).await.unwrap_or_default();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431 "),
        "{answer}"
    );

    // Under the limit all is well, and nothing above was counted.
    let answer = get(&client(), &proxy, &[("x-small", &"a".repeat(512))]).await?;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "one")
    );
    assert_eq!(v1.stats.totals(), (1, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_client_stalling_mid_header_is_cut_off_with_a_408() -> Result<()> {
    let options = ProxyOptions {
        header_read_timeout: Duration::from_millis(200),
        idle_timeout: NEVER,
        ..Default::default()
    };
    let (proxy, v1) = proxy_to_v1_with(options, &[named("one").await?]).await?;
    let mut stream = raw_request(&proxy, b"GET / HTTP/1.1\r\nhost: app.exa").await?;
    let answer = raw_answer(&mut stream).await?;
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");

    // One that sends nothing at all is closed without an answer.
    let mut silent = TcpStream::connect(proxy.local_addr()).await?;
    assert_eq!(raw_answer(&mut silent).await?, "");

    // A kept-alive connection that starts a second head and stalls: the same.
    let mut stream = raw_request(&proxy, GET).await?;
    read_until(&mut stream, "one").await?;
    stream.write_all(b"GET / HT").await?;
    let answer = raw_answer(&mut stream).await?;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert_eq!(v1.stats.totals(), (1, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> Result<()> {
    let options = ProxyOptions {
        header_read_timeout: NEVER,
        idle_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let (proxy, v1) = proxy_to_v1_with(options, &[named("one").await?]).await?;
    let mut stream = raw_request(&proxy, GET).await?;
    let first = read_until(&mut stream, "one").await?;
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    // Kept alive: a second request on it is served.
    stream.write_all(GET).await?;
    read_until(&mut stream, "one").await?;
    // Then nothing: the proxy closes it, silently.
    assert_eq!(raw_answer(&mut stream).await?, "");
    assert_eq!(v1.stats.totals(), (2, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_connection_beyond_the_limit_gets_503_and_is_closed() -> Result<()> {
    let options = ProxyOptions {
        max_connections: 2,
        ..Default::default()
    };
    let (proxy, v1) = proxy_to_v1_with(options, &[named("one").await?]).await?;
    let mut first = raw_request(&proxy, GET).await?;
    read_until(&mut first, "one").await?;
    let mut second = raw_request(&proxy, GET).await?;
    read_until(&mut second, "one").await?;

    let mut third = raw_request(&proxy, GET).await?;
    let answer = raw_answer(&mut third).await?;
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(
        answer.ends_with("cutover: the proxy is at its limit of 2 client connections; try again\n"),
        "{answer}"
    );

    // The first two still work; once one closes, a new connection is served.
    for stream in [&mut first, &mut second] {
        stream.write_all(GET).await?;
        read_until(stream, "one").await?;
    }
    drop(first);
    let mut answer = String::new();
    for _ in 0..100 {
        let mut fourth = raw_request(
            &proxy,
            b"GET / HTTP/1.1\r\nhost: app.example\r\nconnection: close\r\n\r\n",
        )
        .await?;
        answer = raw_answer(&mut fourth).await?;
        if !answer.contains(" 503 ") {
            assert!(answer.ends_with("one"), "{answer}");
            break;
        }
        // The proxy may not have seen the first close yet.
        tokio::task::yield_now().await;
    }
    assert!(!answer.contains(" 503 "), "{answer}");
    assert_eq!(v1.stats.totals(), (5, 0), "the 503 was counted");
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_full_instance_sends_the_request_to_another_with_room() -> Result<()> {
    let (held, mut arrived) = gated("held").await?;
    let options = ProxyOptions {
        max_requests_per_instance: 1,
        ..Default::default()
    };
    let (proxy, v1) = proxy_to_v1_with(options, &[held, named("two").await?]).await?;
    let waiting = tokio::spawn({
        let proxy = proxy.clone();
        async move { get(&client(), &proxy, &[]).await }
    });
    let go = next(&mut arrived, "the first instance got no request").await?;
    // Round-robin goes on to the second, then back to the full first, which
    // passes the request on to the second.
    for _ in 0..2 {
        let answer = get(&client(), &proxy, &[]).await?;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "two")
        );
    }
    go.send(()).unwrap();
    assert_eq!(waiting.await??.body, "held");
    assert!(v1.stats.wait_idle(PATIENCE).await);
    assert_eq!(v1.stats.totals(), (3, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_request_beyond_every_instance_limit_gets_503_not_counted() -> Result<()> {
    let (held, mut arrived) = gated("held").await?;
    let options = ProxyOptions {
        max_requests_per_instance: 1,
        ..Default::default()
    };
    let (proxy, v1) = proxy_to_v1_with(options, &[held]).await?;
    let waiting = tokio::spawn({
        let proxy = proxy.clone();
        async move { get(&client(), &proxy, &[]).await }
    });
    let go = next(&mut arrived, "the instance got no request").await?;
    let answer = get(&client(), &proxy, &[]).await?;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.body,
        "cutover: every instance of version v1 has its limit of 1 requests in flight; try again\n"
    );
    assert_eq!(
        v1.stats.in_flight(),
        1,
        "the refused request is not in flight"
    );
    go.send(()).unwrap();
    assert_eq!(waiting.await??.body, "held");
    // With room again, it is served.
    let again = tokio::spawn({
        let proxy = proxy.clone();
        async move { get(&client(), &proxy, &[]).await }
    });
    let go = next(&mut arrived, "the instance got no second request").await?;
    go.send(()).unwrap();
    assert_eq!(again.await??.body, "held");
    assert!(v1.stats.wait_idle(PATIENCE).await);
    assert_eq!(v1.stats.totals(), (2, 0), "the 503 was counted");
    proxy.shutdown().await;
    Ok(())
}

/// An upstream that answers how many body bytes it read, or that it could not.
async fn counting_body() -> Result<std::net::SocketAddr> {
    upstream(|req: Request<Incoming>| async move {
        match req.into_body().collect().await {
            Ok(body) => Response::new(text(format!("got {} bytes", body.to_bytes().len()))),
            Err(_) => Response::new(text("the body broke off")),
        }
    })
    .await
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_counts_against_no_version() -> Result<()> {
    let options = ProxyOptions {
        max_body_size: Some(10),
        ..Default::default()
    };
    let (proxy, v1) = proxy_to_v1_with(options, &[counting_body().await?]).await?;

    // Told by its Content-Length: refused before anything goes upstream.
    let mut stream = raw_request(
        &proxy,
        b"POST / HTTP/1.1\r\nhost: app.example\r\ncontent-length: 11\r\n\r\nhello world",
    )
    .await?;
    let answer = raw_answer(&mut stream).await?;
    assert!(
        answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(
        answer.ends_with("cutover: the request body is larger than the limit of 10 bytes\n"),
        "{answer}"
    );

    // Streamed: cut off where it passes the limit.
    let mut stream = raw_request(
        &proxy,
        b"POST / HTTP/1.1\r\nhost: app.example\r\ntransfer-encoding: chunked\r\n\r\n\
          8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
    )
    .await?;
    let answer = raw_answer(&mut stream).await?;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(v1.stats.wait_idle(PATIENCE).await);
    assert_eq!(v1.stats.totals(), (0, 0), "a 413 was counted");

    // At the limit, streamed or not, the body goes through.
    let mut stream = raw_request(
        &proxy,
        b"POST / HTTP/1.1\r\nhost: app.example\r\ntransfer-encoding: chunked\r\n\r\n\
          5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n",
    )
    .await?;
    let answer = read_until(&mut stream, "got 10 bytes").await?;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(v1.stats.wait_idle(PATIENCE).await);
    assert_eq!(v1.stats.totals(), (1, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn connect_is_answered_405_and_reaches_no_version() -> Result<()> {
    let (proxy, v1) = proxy_to_v1_with(ProxyOptions::default(), &[named("one").await?]).await?;
    let mut stream = raw_request(
        &proxy,
        b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nhost: 127.0.0.1:9\r\n\r\n",
    )
    .await?;
    let answer = read_until(&mut stream, "cutover: the proxy does not tunnel CONNECT\n").await?;
    assert!(
        answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nallow: GET, HEAD, POST"), "{answer}");
    // No tunnel: the connection goes on in HTTP.
    stream.write_all(GET).await?;
    let next = read_until(&mut stream, "one").await?;
    assert!(next.starts_with("HTTP/1.1 200 OK\r\n"), "{next}");
    assert_eq!(v1.stats.totals(), (1, 0), "the CONNECT reached a version");
    proxy.shutdown().await;
    Ok(())
}
