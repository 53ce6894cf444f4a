//! Upgraded connections (WebSockets) through the proxy: a small hyper server that
//! switches to an echo protocol on `Upgrade: echo`, and raw clients that ask for
//! it, then talk over the spliced connection.
//!
//! Behaviour only: the drain's timeout is short, but nothing asserts how long
//! anything took.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use common::{PATIENCE, backend, bind, client, get, next, proxy_to_v1, text, upstream};
use cutover_proxy::{Proxy, Routes};

const HANDSHAKE: &[u8] = b"GET /ws HTTP/1.1\r\nhost: app.example\r\n\
    connection: Upgrade\r\nupgrade: echo\r\nsec-websocket-key: dGhlIHNhbXBsZQ==\r\n\r\n";

/// An upstream that answers an `Upgrade: echo` request with `101` and then echoes
/// every piece it reads as `name:piece`; any other request gets `name` (or `426`
/// when it asked for another protocol). Each upgraded connection's end (EOF or
/// error) is reported on the receiver.
async fn echo_upstream(name: &'static str) -> Result<(SocketAddr, mpsc::UnboundedReceiver<()>)> {
    let (ended_tx, ended) = mpsc::unbounded_channel();
    let addr = upstream(move |mut req: Request<Incoming>| {
        let ended_tx = ended_tx.clone();
        async move {
            let upgrade = req.headers().get("upgrade").cloned();
            let Some(protocol) = upgrade else {
                return Response::new(text(name));
            };
            if protocol != "echo" {
                return Response::builder()
                    .status(StatusCode::UPGRADE_REQUIRED)
                    .body(text("echo only"))
                    .unwrap();
            }
            let key_seen = req.headers().contains_key("sec-websocket-key");
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = io.read(&mut buf).await {
                        let piece = format!("{name}:{}", String::from_utf8_lossy(&buf[..n]));
                        if io.write_all(piece.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                }
                let _ = ended_tx.send(());
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "echo")
                .header("x-key-seen", key_seen.to_string())
                .body(text(""))
                .unwrap()
        }
    })
    .await?;
    Ok((addr, ended))
}

/// A client connection upgraded through the proxy; the head of its 101.
async fn upgraded(proxy: &Proxy) -> Result<(TcpStream, String)> {
    let mut stream = TcpStream::connect(proxy.local_addr()).await?;
    stream.write_all(HANDSHAKE).await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut byte))
            .await
            .context("no 101 from the proxy")??;
        ensure!(n == 1, "the proxy closed before its answer ended: {head:?}");
        head.push(byte[0]);
    }
    Ok((stream, String::from_utf8(head)?))
}

/// Sends `message` on an upgraded connection; what comes back.
async fn round_trip(stream: &mut TcpStream, message: &str, reply_len: usize) -> Result<String> {
    stream.write_all(message.as_bytes()).await?;
    let mut reply = vec![0u8; reply_len];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut reply))
        .await
        .context("no echo")??;
    Ok(String::from_utf8(reply)?)
}

/// Waits for the proxy to close `stream`: EOF or a reset, within [`PATIENCE`].
async fn closed(stream: &mut TcpStream) -> Result<()> {
    let mut rest = Vec::new();
    // A reset is as closed as an EOF.
    let _eof_or_reset = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest))
        .await
        .context("the upgraded connection was not closed")?;
    Ok(())
}

#[tokio::test]
async fn a_websocket_round_trips_and_counts_for_its_version_while_open() -> Result<()> {
    let (addr, mut ended) = echo_upstream("v1").await?;
    let (proxy, v1) = proxy_to_v1(&[addr]).await?;

    let (mut stream, head) = upgraded(&proxy).await?;
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("connection: upgrade"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    assert!(head.contains("x-cutover-version: v1"), "{head}");
    assert!(head.contains("x-key-seen: true"), "{head}");
    assert_eq!(round_trip(&mut stream, "hello", 8).await?, "v1:hello");
    assert_eq!(round_trip(&mut stream, "again", 8).await?, "v1:again");

    // Counted when the 101 came, and in flight while open.
    assert_eq!(v1.stats.totals(), (1, 0));
    assert_eq!(v1.stats.in_flight(), 1);
    assert_eq!(v1.endpoints()[0].in_flight(), 1);

    // The client closes: the instance's side closes too, and the request ends.
    drop(stream);
    next(&mut ended, "the upstream's side stayed open").await?;
    assert!(v1.stats.wait_idle(PATIENCE).await, "still in flight");
    assert_eq!(v1.stats.totals(), (1, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_open_websocket_keeps_its_version_across_a_switch() -> Result<()> {
    let (a1, _ended1) = echo_upstream("v1").await?;
    let (a2, _ended2) = echo_upstream("v2").await?;
    let proxy = bind().await?;
    let (v1, v2) = (backend("v1", &[a1]), backend("v2", &[a2]));
    proxy.set_routes(Routes::stable_only(v1.clone()));

    let (mut old, _) = upgraded(&proxy).await?;
    assert_eq!(round_trip(&mut old, "before", 9).await?, "v1:before");

    proxy.set_routes(Routes::stable_only(v2.clone()));
    let (mut new, head) = upgraded(&proxy).await?;
    assert!(head.contains("x-cutover-version: v2"), "{head}");
    assert_eq!(round_trip(&mut new, "fresh", 8).await?, "v2:fresh");
    // The one opened before the switch still talks to v1.
    assert_eq!(round_trip(&mut old, "after", 8).await?, "v1:after");
    assert_eq!((v1.stats.in_flight(), v2.stats.in_flight()), (1, 1));
    drop((old, new));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_drain_waits_for_an_open_websocket_then_cuts_it_at_its_timeout() -> Result<()> {
    let (addr, mut ended) = echo_upstream("v1").await?;
    let (proxy, v1) = proxy_to_v1(&[addr]).await?;
    let (mut stream, _) = upgraded(&proxy).await?;
    assert_eq!(round_trip(&mut stream, "hi", 5).await?, "v1:hi");

    let endpoint = v1.endpoints()[0].clone();
    assert!(
        !endpoint.drain(Duration::from_millis(200)).await,
        "the drain ended with the WebSocket still open"
    );
    // Cut: both sockets closed, the request over.
    closed(&mut stream).await?;
    next(&mut ended, "the upstream's side stayed open").await?;
    assert!(v1.stats.wait_idle(PATIENCE).await, "still in flight");
    assert_eq!(endpoint.in_flight(), 0);
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_websocket_closed_before_the_drain_timeout_lets_the_drain_succeed() -> Result<()> {
    let (addr, _ended) = echo_upstream("v1").await?;
    let (proxy, v1) = proxy_to_v1(&[addr]).await?;
    let (mut stream, _) = upgraded(&proxy).await?;
    assert_eq!(round_trip(&mut stream, "hi", 5).await?, "v1:hi");

    let endpoint = v1.endpoints()[0].clone();
    let drain = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.drain(PATIENCE * 3).await }
    });
    while !endpoint.is_retired() {
        tokio::task::yield_now().await;
    }
    // Draining, and the WebSocket still open and talking: the drain waits for it.
    assert_eq!(round_trip(&mut stream, "still", 8).await?, "v1:still");
    assert!(
        !drain.is_finished(),
        "the drain did not wait for the WebSocket"
    );
    drop(stream);
    assert!(
        drain.await?,
        "the drain gave up though the WebSocket closed"
    );
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_upgrade_the_instance_refuses_is_answered_as_it_answered() -> Result<()> {
    let (addr, _ended) = echo_upstream("v1").await?;
    let (proxy, v1) = proxy_to_v1(&[addr]).await?;
    let mut stream = TcpStream::connect(proxy.local_addr()).await?;
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: other\r\n\r\n")
        .await?;
    let mut answer = vec![0u8; 12];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut answer)).await??;
    assert_eq!(&answer, b"HTTP/1.1 426");
    assert_eq!(v1.stats.totals(), (1, 0));
    // Plain requests go on as before on the same proxy.
    assert_eq!(get(&client(), &proxy, &[]).await?.body, "v1");
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_upgrade_to_an_instance_that_is_gone_is_a_502_counted_as_error() -> Result<()> {
    let gone = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        listener.local_addr()?
    };
    let (proxy, v1) = proxy_to_v1(&[gone]).await?;
    let mut stream = TcpStream::connect(proxy.local_addr()).await?;
    stream.write_all(HANDSHAKE).await?;
    let mut answer = vec![0u8; 12];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut answer)).await??;
    assert_eq!(&answer, b"HTTP/1.1 502");
    assert_eq!(v1.stats.totals(), (1, 1));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_websocket_idle_past_its_limit_is_cut_and_its_request_ends() -> Result<()> {
    let (addr, mut ended) = echo_upstream("v1").await?;
    let options = cutover_proxy::ProxyOptions {
        tunnel_idle_timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let (proxy, v1) = common::proxy_to_v1_with(options, &[addr]).await?;
    let (mut stream, _) = upgraded(&proxy).await?;
    assert_eq!(round_trip(&mut stream, "hi", 5).await?, "v1:hi");
    // Then nothing, either way: both sides are closed.
    closed(&mut stream).await?;
    next(&mut ended, "the upstream's side stayed open").await?;
    assert!(v1.stats.wait_idle(PATIENCE).await, "still in flight");
    assert_eq!(v1.stats.totals(), (1, 0), "a quiet tunnel is no error");
    // The proxy serves on.
    let (mut again, _) = upgraded(&proxy).await?;
    assert_eq!(round_trip(&mut again, "yo", 5).await?, "v1:yo");
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn shutdown_cuts_websockets_left_after_its_grace() -> Result<()> {
    let (addr, mut ended) = echo_upstream("v1").await?;
    let options = common::response_timeout(Duration::from_millis(300));
    let (proxy, v1) = common::proxy_to_v1_with(options, &[addr]).await?;
    let (mut stream, _) = upgraded(&proxy).await?;
    assert_eq!(round_trip(&mut stream, "hi", 5).await?, "v1:hi");
    tokio::time::timeout(PATIENCE, proxy.shutdown())
        .await
        .context("shutdown never ended")?;
    closed(&mut stream).await?;
    next(&mut ended, "the upstream's side stayed open").await?;
    assert!(v1.stats.wait_idle(PATIENCE).await, "still in flight");
    Ok(())
}

#[tokio::test]
async fn an_open_websocket_counts_against_the_connection_limit() -> Result<()> {
    let (addr, _ended) = echo_upstream("v1").await?;
    let options = cutover_proxy::ProxyOptions {
        max_connections: 1,
        ..Default::default()
    };
    let (proxy, v1) = common::proxy_to_v1_with(options, &[addr]).await?;
    let (mut stream, _) = upgraded(&proxy).await?;
    assert_eq!(round_trip(&mut stream, "hi", 5).await?, "v1:hi");
    let close = b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";
    let mut other = common::raw_request(&proxy, close).await?;
    let answer = common::raw_answer(&mut other).await?;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

    drop(stream);
    assert!(v1.stats.wait_idle(PATIENCE).await, "still in flight");
    // The tunnel is gone once its request ended (it counts until it closed).
    let mut again = common::raw_request(&proxy, close).await?;
    let answer = common::raw_answer(&mut again).await?;
    assert!(answer.ends_with("v1"), "{answer}");
    proxy.shutdown().await;
    Ok(())
}
