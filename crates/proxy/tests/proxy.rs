//! The proxy over real HTTP on 127.0.0.1, with tiny hyper upstreams started by each
//! test on OS-assigned ports.
//!
//! Behaviour only: nothing here is timed or benchmarked. The timeouts below are
//! generous upper bounds that a correct proxy never gets near (except the 504 test,
//! whose upstream deliberately waits far longer than the proxy's limit).

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, channel::Channel};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use common::{
    PATIENCE, backend, bind, client, echo, gated, get, named, next, proxy_to_v1, proxy_to_v1_with,
    raw_answer, raw_request, read_until, response_timeout, send, text, until_refused, upstream,
    url,
};
use cutover_proxy::{Backend, Proxy, ProxyOptions, Routes, Snapshot, VersionStats};

/// Two versions behind one proxy at `weight`; returns the proxy and both backends.
async fn two_versions(weight: u16) -> Result<(Proxy, Backend, Backend)> {
    let proxy = bind().await?;
    let stable = backend("v1", &[named("one").await?]);
    let canary = backend("v2", &[named("two").await?]);
    proxy.set_routes(Routes::split(stable.clone(), canary.clone(), weight));
    Ok((proxy, stable, canary))
}

/// Sends `n` requests and returns how many each version served.
async fn spread(proxy: &Proxy, n: usize) -> Result<(usize, usize)> {
    let client = client();
    let (mut v1, mut v2) = (0, 0);
    for _ in 0..n {
        let answer = get(&client, proxy, &[]).await?;
        assert_eq!(answer.status, StatusCode::OK);
        match (answer.version(), answer.body.as_str()) {
            ("v1", "one") => v1 += 1,
            ("v2", "two") => v2 += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    Ok((v1, v2))
}

#[tokio::test]
async fn weight_zero_sends_everything_to_stable() -> Result<()> {
    let (proxy, stable, canary) = two_versions(0).await?;
    assert_eq!(spread(&proxy, 200).await?, (200, 0));
    assert_eq!(stable.stats.totals(), (200, 0));
    assert_eq!(canary.stats.totals(), (0, 0));
    let sample = stable.stats.snapshot().since(&Snapshot::empty());
    assert_eq!((sample.requests, sample.errors), (200, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn full_weight_sends_everything_to_canary() -> Result<()> {
    let (proxy, stable, canary) = two_versions(10_000).await?;
    assert_eq!(spread(&proxy, 200).await?, (0, 200));
    assert_eq!(stable.stats.totals(), (0, 0));
    assert_eq!(canary.stats.totals(), (200, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn weight_splits_traffic_in_proportion() -> Result<()> {
    let (proxy, stable, canary) = two_versions(3_000).await?;
    let (v1, v2) = spread(&proxy, 2_000).await?;
    let share = v2 as f64 / 2_000.0;
    assert!(
        (0.25..=0.35).contains(&share),
        "canary got {v2} of 2000 ({share:.3}) at weight 30%"
    );
    assert_eq!(stable.stats.totals().0, v1 as u64);
    assert_eq!(canary.stats.totals().0, v2 as u64);
    let sample = canary.stats.snapshot().since(&Snapshot::empty());
    assert_eq!((sample.requests, sample.errors), (v2 as u64, 0));
    assert!(sample.p50.is_some() && sample.p99 >= sample.p50);
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn new_routes_apply_to_the_next_request_and_not_to_one_in_flight() -> Result<()> {
    // v1 tells the test when a request arrived, then waits for the test's go.
    let (gated, mut arrived) = gated("one").await?;
    let (proxy, v1) = proxy_to_v1(&[gated]).await?;
    let v2 = backend("v2", &[named("two").await?]);

    let in_flight = tokio::spawn({
        let proxy = proxy.clone();
        async move { get(&client(), &proxy, &[]).await }
    });
    let go = next(&mut arrived, "v1 got no request").await?;
    assert_eq!(v1.stats.in_flight(), 1);

    proxy.set_routes(Routes::stable_only(v2.clone()));
    assert_eq!(proxy.routes().backends[0].version, "v2");
    let next = get(&client(), &proxy, &[]).await?;
    assert_eq!((next.version(), next.body.as_str()), ("v2", "two"));

    go.send(()).unwrap();
    let first = in_flight.await??;
    assert_eq!((first.version(), first.body.as_str()), ("v1", "one"));
    assert!(v1.stats.wait_idle(PATIENCE).await);
    assert_eq!((v1.stats.totals().0, v2.stats.totals().0), (1, 1));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_drained_instance_gets_no_request_even_from_a_stale_route_table() -> Result<()> {
    // The table still lists instance "a" (as one loaded just before the engine's
    // swap would): once "a" is drained, every request goes to "b" all the same.
    let (proxy, v1) = proxy_to_v1(&[named("a").await?, named("b").await?]).await?;
    let a = &v1.endpoints()[0];
    assert!(a.drain(PATIENCE).await, "nothing was in flight");
    let client = client();
    for _ in 0..10 {
        let answer = get(&client, &proxy, &[]).await?;
        assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "b"));
    }
    assert_eq!(a.in_flight(), 0);

    // With every instance drained, the request is refused rather than sent.
    assert!(v1.endpoints()[1].drain(PATIENCE).await);
    let answer = get(&client, &proxy, &[]).await?;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.body.contains("being drained"), "{}", answer.body);
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_sticky_table_sets_its_cookie_and_honours_it() -> Result<()> {
    let proxy = bind().await?;
    let mut routes = Routes::split(
        backend("v1", &[named("one").await?]),
        backend("v2", &[named("two").await?]),
        5_000,
    );
    routes.sticky_cookie = Some("cutover-shop".into());
    proxy.set_routes(routes);
    let client = client();
    let first = get(&client, &proxy, &[]).await?;
    let cookie = first.headers["set-cookie"].to_str()?.to_owned();
    let version = first.version().to_owned();
    assert!(
        cookie.starts_with(&format!("cutover-shop={version};")),
        "{cookie}"
    );
    let sent = format!("cutover-shop={version}");
    for _ in 0..30 {
        let again = get(&client, &proxy, &[("cookie", sent.as_str())]).await?;
        assert_eq!(again.version(), version);
        assert!(!again.headers.contains_key("set-cookie"));
    }
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_closed_proxy_holds_its_clients_until_it_opens_with_its_routes() -> Result<()> {
    let proxy = Proxy::bind_closed("127.0.0.1:0".parse()?, ProxyOptions::default()).await?;
    // Sent while the proxy has no routes and takes no connection...
    let waiting = tokio::spawn({
        let proxy = proxy.clone();
        async move { get(&client(), &proxy, &[]).await }
    });
    // ... answered by the routes in force once it opens, not with a 503.
    proxy.set_routes(Routes::stable_only(backend("v1", &[named("one").await?])));
    proxy.open();
    let answer = waiting.await??;
    assert_eq!((answer.status, answer.version()), (StatusCode::OK, "v1"));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn instances_are_served_round_robin() -> Result<()> {
    let (proxy, v1) = proxy_to_v1(&[named("a").await?, named("b").await?]).await?;
    let client = client();
    let mut bodies = String::new();
    for _ in 0..8 {
        let answer = get(&client, &proxy, &[]).await?;
        assert_eq!(answer.version(), "v1");
        bodies.push_str(&answer.body);
    }
    assert_eq!(bodies, "abababab");
    assert_eq!(v1.stats.totals(), (8, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn pin_header_forces_a_version_and_is_not_forwarded() -> Result<()> {
    let proxy = bind().await?;
    let (one, two) = (echo().await?, echo().await?);
    let client = client();

    proxy.set_routes(Routes::split(
        backend("v1.4.0", &[one]),
        backend("v1.5.0", &[two]),
        0,
    ));
    for _ in 0..5 {
        let answer = get(&client, &proxy, &[("x-cutover-version", "canary")]).await?;
        assert_eq!(
            (answer.status, answer.version()),
            (StatusCode::OK, "v1.5.0")
        );
        assert!(
            !answer.body.contains("x-cutover-version"),
            "pin forwarded:\n{}",
            answer.body
        );
    }
    let answer = get(&client, &proxy, &[("x-cutover-version", "v1.5.0")]).await?;
    assert_eq!(answer.version(), "v1.5.0");

    proxy.set_routes(Routes::split(
        backend("v1.4.0", &[one]),
        backend("v1.5.0", &[two]),
        10_000,
    ));
    for pin in ["stable", "v1.4.0"] {
        let answer = get(&client, &proxy, &[("x-cutover-version", pin)]).await?;
        assert_eq!(
            (answer.status, answer.version()),
            (StatusCode::OK, "v1.4.0")
        );
    }

    proxy.set_routes(Routes::stable_only(backend("v1.4.0", &[one])));
    let answer = get(&client, &proxy, &[("x-cutover-version", "canary")]).await?;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.body.contains("\"canary\""), "{}", answer.body);
    assert!(
        answer.body.contains("serving: v1.4.0 (stable)"),
        "{}",
        answer.body
    );
    assert_eq!(answer.version(), "<none>");
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn no_routes_means_503() -> Result<()> {
    let proxy = bind().await?;
    let answer = get(&client(), &proxy, &[]).await?;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.body,
        "cutover: no version of this app is serving yet\n"
    );
    assert_eq!(answer.headers["content-type"], "text/plain; charset=utf-8");

    // A backend without instances counts as absent, alone or beside another.
    proxy.set_routes(Routes::stable_only(backend("v1", &[])));
    assert_eq!(
        get(&client(), &proxy, &[]).await?.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    proxy.set_routes(Routes::split(
        backend("v1", &[named("one").await?]),
        backend("v2", &[]),
        5_000,
    ));
    assert_eq!(get(&client(), &proxy, &[]).await?.version(), "v1");
    // Weight 0 is only for pinned requests, even when nothing else serves: the
    // engine, not the proxy, decides where traffic falls back to.
    proxy.set_routes(Routes::split(
        backend("v1", &[named("one").await?]),
        backend("v2", &[]),
        10_000,
    ));
    assert_eq!(
        get(&client(), &proxy, &[]).await?.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn closed_upstream_port_is_a_502_counted_as_error() -> Result<()> {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        listener.local_addr()?
    };
    let (proxy, v1) = proxy_to_v1(&[closed]).await?;
    let before = v1.stats.snapshot();
    let answer = get(&client(), &proxy, &[]).await?;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.version(), "v1");
    let expected = format!("cutover: could not connect to version v1 at {closed}: ");
    assert!(answer.body.starts_with(&expected), "{}", answer.body);
    assert_eq!(v1.stats.totals(), (1, 1));
    let sample = v1.stats.snapshot().since(&before);
    assert_eq!((sample.requests, sample.errors), (1, 1));
    assert!(sample.p50.is_some());
    assert_eq!(v1.stats.in_flight(), 0);
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn slow_upstream_is_a_504_counted_as_error() -> Result<()> {
    let slow = upstream(|_req| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Response::new(text("too late"))
    })
    .await?;
    let (proxy, v1) =
        proxy_to_v1_with(response_timeout(Duration::from_millis(200)), &[slow]).await?;
    let before = v1.stats.snapshot();
    let answer = get(&client(), &proxy, &[]).await?;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.version(), "v1");
    assert!(answer.body.starts_with(&format!(
        "cutover: version v1 at {slow} sent no response headers within"
    )));
    assert_eq!(v1.stats.totals(), (1, 1));
    let sample = v1.stats.snapshot().since(&before);
    assert_eq!((sample.requests, sample.errors), (1, 1));
    assert!(sample.p50 >= Some(Duration::from_millis(150)), "{sample:?}");
    assert!(v1.stats.wait_idle(PATIENCE).await);
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_forwarding_headers_added() -> Result<()> {
    let (proxy, _) = proxy_to_v1(&[echo().await?]).await?;
    let answer = get(
        &client(),
        &proxy,
        &[
            ("host", "app.example"),
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "do not forward"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-end-to-end", "yes"),
        ],
    )
    .await?;
    assert_eq!(answer.status, StatusCode::OK);
    let seen: Vec<&str> = answer.body.lines().collect();
    for line in [
        "host: app.example",
        "x-forwarded-for: 203.0.113.7, 127.0.0.1",
        "x-forwarded-proto: http",
        "x-end-to-end: yes",
    ] {
        assert!(
            seen.contains(&line),
            "upstream did not see {line:?}:\n{}",
            answer.body
        );
    }
    for name in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "te",
        "x-cutover-version",
    ] {
        assert!(
            !seen.iter().any(|l| l.starts_with(&format!("{name}:"))),
            "{name} was forwarded:\n{}",
            answer.body
        );
    }

    // The response's own hop-by-hop headers are stripped too, and the version
    // header is the proxy's, not the upstream's.
    for name in ["x-hop-response", "keep-alive", "proxy-connection"] {
        assert!(
            answer.headers.get(name).is_none(),
            "{name} came back: {:?}",
            answer.headers
        );
    }
    assert_eq!(answer.headers["x-end-to-end"], "kept");
    assert_eq!(answer.version(), "v1");
    assert_eq!(
        answer.headers.get_all("x-cutover-version").iter().count(),
        1
    );
    proxy.shutdown().await;
    Ok(())
}

/// An upstream whose one response body the test feeds through a channel.
async fn streaming() -> Result<(
    SocketAddr,
    mpsc::UnboundedReceiver<http_body_util::channel::Sender<Bytes>>,
)> {
    let (senders_tx, senders) = mpsc::unbounded_channel();
    let addr = upstream(move |_req| {
        let senders_tx = senders_tx.clone();
        async move {
            let (tx, body) = Channel::<Bytes, Infallible>::new(1);
            senders_tx.send(tx).unwrap();
            Response::new(body.boxed_unsync())
        }
    })
    .await?;
    Ok((addr, senders))
}

fn chunk(i: usize) -> Bytes {
    Bytes::from(format!("chunk {i:04} ").repeat(4096))
}

#[tokio::test]
async fn streamed_response_arrives_intact_and_ends_in_flight() -> Result<()> {
    let (addr, mut senders) = streaming().await?;
    let (proxy, v1) = proxy_to_v1(&[addr]).await?;

    let request = Request::get(url(&proxy, "/stream")).body(Full::default())?;
    let response = send(&client(), request).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-cutover-version"], "v1");
    // Headers are here, the body is not finished: recorded, and still in flight.
    assert_eq!(v1.stats.totals(), (1, 0));
    assert_eq!(v1.stats.in_flight(), 1);
    assert!(!v1.stats.wait_idle(Duration::from_millis(50)).await);

    let mut tx = next(&mut senders, "upstream got no request").await?;
    let feeder = tokio::spawn(async move {
        for i in 0..20 {
            tx.send_data(chunk(i))
                .await
                .expect("the proxy reads the body");
        }
        // Dropping the sender ends the body.
    });
    let body = tokio::time::timeout(PATIENCE, response.into_body().collect())
        .await??
        .to_bytes();
    feeder.await?;
    let expected: Vec<u8> = (0..20).flat_map(|i| chunk(i).to_vec()).collect();
    assert_eq!(body.len(), expected.len());
    assert!(body == expected, "the body arrived altered");

    assert!(
        v1.stats.wait_idle(PATIENCE).await,
        "in flight after the body completed"
    );
    assert_eq!(v1.stats.in_flight(), 0);
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn abandoned_stream_ends_in_flight() -> Result<()> {
    let (addr, mut senders) = streaming().await?;
    let (proxy, v1) = proxy_to_v1(&[addr]).await?;

    let request = Request::get(url(&proxy, "/stream")).body(Full::default())?;
    let client = client();
    let response = send(&client, request).await?;
    let mut tx = next(&mut senders, "upstream got no request").await?;
    tx.send_data(chunk(0)).await?;
    assert_eq!(v1.stats.in_flight(), 1);
    // The client goes away mid-body; the proxy notices when it next writes.
    drop(response);
    drop(client);
    for i in 1..=1000 {
        if tx.send_data(chunk(i)).await.is_err()
            || v1.stats.wait_idle(Duration::from_millis(20)).await
        {
            break;
        }
    }
    assert!(
        v1.stats.wait_idle(PATIENCE).await,
        "an abandoned response stayed in flight"
    );
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn shutdown_stops_accepting_and_bind_errors_name_the_address() -> Result<()> {
    let proxy = bind().await?;
    let addr = proxy.local_addr();
    let err = Proxy::bind(addr, ProxyOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");

    proxy.set_routes(Routes::stable_only(backend("v1", &[named("one").await?])));
    assert_eq!(get(&client(), &proxy, &[]).await?.body, "one");
    proxy.shutdown().await;
    proxy.shutdown().await; // idempotent
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
    Ok(())
}

#[tokio::test]
async fn shutdown_lets_a_request_in_progress_finish() -> Result<()> {
    let (gated, mut arrived) = gated("finished").await?;
    let (proxy, _) = proxy_to_v1(&[gated]).await?;
    let request = tokio::spawn({
        let proxy = proxy.clone();
        async move { get(&client(), &proxy, &[]).await }
    });
    let go = next(&mut arrived, "no request upstream").await?;
    let shutdown = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.shutdown().await }
    });
    // Wait (bounded) until the listener is closed: shutdown has begun, and is
    // waiting for the request in progress.
    until_refused(proxy.local_addr())
        .await
        .context("still accepting after shutdown began")?;
    assert!(
        !shutdown.is_finished(),
        "shutdown did not wait for the request in progress"
    );
    go.send(()).unwrap();
    let answer = request.await??;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "finished")
    );
    tokio::time::timeout(PATIENCE, shutdown).await??;
    Ok(())
}

#[tokio::test]
async fn request_bodies_are_forwarded() -> Result<()> {
    let (upstream, _reports) = body_reader().await?;
    let (proxy, _) = proxy_to_v1(&[upstream]).await?;
    let payload = Bytes::from(vec![b'x'; 300_000]);
    let request = Request::post(url(&proxy, "/upload"))
        .header("expect", "100-continue")
        .body(Full::new(payload))?;
    let response = send(&client(), request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    assert_eq!(body, "got 300000 bytes");
    proxy.shutdown().await;
    Ok(())
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Proxy>();
    check::<Backend>();
    check::<Routes>();
    fn check_stats<T: Send + Sync>() {}
    check_stats::<Arc<VersionStats>>();
}

/// How [`mid_body`]'s upstream ends a connection it answered part of.
#[derive(Clone, Copy)]
enum Ending {
    /// A clean close (FIN), short of the promised body.
    Close,
    /// A reset (RST, by a zero linger).
    Reset,
}

/// A raw TCP upstream: for each connection, reads the request head, writes
/// `answer` (a head and part of the body it promises), then, at the test's go
/// (the receiver gets one gate per connection), ends the connection so.
async fn mid_body(
    answer: String,
    ending: Ending,
) -> Result<(SocketAddr, mpsc::UnboundedReceiver<oneshot::Sender<()>>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (gates_tx, gates) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (gates_tx, answer) = (gates_tx.clone(), answer.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let (go_tx, go) = oneshot::channel();
                let _ = gates_tx.send(go_tx);
                let _ = go.await;
                if let Ending::Reset = ending {
                    let _ = stream.set_zero_linger();
                }
                // Dropping the stream ends the connection.
            });
        }
    });
    Ok((addr, gates))
}

/// One request through the proxy to an upstream that answers `status` and breaks
/// mid-body: the client's body fails, and the version's window shows 1 request
/// and 1 error.
async fn request_breaking_mid_body(status_line: &'static str, status: StatusCode) -> Result<()> {
    let answer = format!(
        "{status_line}\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n0123456789"
    );
    // Closed 990 bytes short.
    let (addr, mut gates) = mid_body(answer, Ending::Close).await?;
    let (proxy, v1) = proxy_to_v1(&[addr]).await?;
    let before = v1.stats.snapshot();

    let request = Request::get(url(&proxy, "/broken")).body(Full::default())?;
    let response = send(&client(), request).await?;
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["x-cutover-version"], "v1");
    let go = next(&mut gates, "upstream got no request").await?;
    // Headers arrived: the request is counted, as an error only if it is a 5xx.
    let expected_errors = u64::from(status.is_server_error());
    assert_eq!(v1.stats.totals(), (1, expected_errors));
    assert_eq!(v1.stats.in_flight(), 1);

    go.send(()).unwrap();
    let body = tokio::time::timeout(PATIENCE, response.into_body().collect()).await?;
    assert!(body.is_err(), "the client got a complete body: {body:?}");
    assert!(v1.stats.wait_idle(PATIENCE).await, "still in flight");

    // One request, one error: the broken body, counted once.
    let window = v1.stats.snapshot().since(&before);
    assert_eq!((window.requests, window.errors), (1, 1), "{window:?}");
    assert_eq!(window.error_rate(), Some(1.0));
    assert_eq!(v1.stats.totals(), (1, 1));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_upstream_failing_mid_body_is_counted_as_error() -> Result<()> {
    request_breaking_mid_body("HTTP/1.1 200 OK", StatusCode::OK).await
}

#[tokio::test]
async fn a_5xx_failing_mid_body_is_counted_as_one_error() -> Result<()> {
    request_breaking_mid_body(
        "HTTP/1.1 503 Service Unavailable",
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await
}

/// A raw client's request through the proxy to an upstream that resets mid-body:
/// everything the client got before the proxy closed the connection, and v1.
async fn reset_mid_body(head: &'static str, first: &'static str) -> Result<(String, Backend)> {
    use tokio::io::AsyncReadExt;
    let (addr, mut gates) = mid_body(format!("{head}\r\n\r\n{first}"), Ending::Reset).await?;
    let (proxy, v1) = proxy_to_v1(&[addr]).await?;
    let mut stream = raw_request(&proxy, b"GET /reset HTTP/1.1\r\nhost: a\r\n\r\n").await?;
    let go = next(&mut gates, "upstream got no request").await?;
    // The headers and the first part came through before the reset.
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("first-part") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await??;
        anyhow::ensure!(n > 0, "closed before the first part: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(v1.stats.totals(), (1, 0), "counted, not yet an error");
    go.send(()).unwrap();
    let rest = raw_answer(&mut stream).await?;
    assert!(v1.stats.wait_idle(PATIENCE).await, "still in flight");
    let window = v1.stats.snapshot().since(&Snapshot::empty());
    assert_eq!((window.requests, window.errors), (1, 1), "{window:?}");
    proxy.shutdown().await;
    Ok((String::from_utf8_lossy(&got).into_owned() + &rest, v1))
}

#[tokio::test]
async fn an_upstream_reset_mid_chunked_body_closes_the_client_without_the_last_chunk() -> Result<()>
{
    let (answer, _) = reset_mid_body(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked",
        "a\r\nfirst-part\r\n",
    )
    .await?;
    let lower = answer.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{answer:?}");
    assert!(lower.contains("transfer-encoding: chunked"), "{answer:?}");
    // A chunked body ends with a zero-length chunk: its absence tells the client
    // the body is incomplete.
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert!(body.contains("first-part"), "{answer:?}");
    assert!(
        !body.contains("\r\n0\r\n"),
        "a terminating chunk was sent: {answer:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_upstream_reset_mid_sized_body_closes_the_client_short_of_its_length() -> Result<()> {
    let (answer, _) =
        reset_mid_body("HTTP/1.1 200 OK\r\ncontent-length: 100", "first-part").await?;
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("content-length: 100"), "{answer:?}");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert_eq!(
        body, "first-part",
        "the client must see a body short of its length"
    );
    Ok(())
}

#[tokio::test]
async fn upstream_sees_the_path_and_query() -> Result<()> {
    let target = upstream(|req: Request<Incoming>| async move {
        Response::new(text(format!("{} {}", req.method(), req.uri())))
    })
    .await?;
    let (proxy, _) = proxy_to_v1(&[target]).await?;
    let answer = get(&client(), &proxy, &[]).await?;
    assert_eq!(answer.body, "GET /some/path?q=1");
    proxy.shutdown().await;
    Ok(())
}

/// An upstream that reads each request's body to the end and reports how that went
/// (its length, or the error) before answering `got N bytes`.
async fn body_reader() -> Result<(SocketAddr, mpsc::UnboundedReceiver<Result<usize, String>>)> {
    let (reports_tx, reports) = mpsc::unbounded_channel();
    let addr = upstream(move |req: Request<Incoming>| {
        let reports_tx = reports_tx.clone();
        async move {
            let body = req.into_body().collect().await;
            let report = body.map(|b| b.to_bytes().len()).map_err(|e| e.to_string());
            let _ = reports_tx.send(report.clone());
            Response::new(text(format!("got {} bytes", report.unwrap_or(0))))
        }
    })
    .await?;
    Ok((addr, reports))
}

/// Pins a chunked upload to the canary, cuts it off after one chunk (`drop_it`:
/// the client vanishes; otherwise it only shuts down its sending half) and returns
/// what the client could read back. Neither version may count it.
async fn upload_cut_off(drop_it: bool) -> Result<String> {
    use tokio::io::AsyncWriteExt;
    let (one, mut one_reports) = body_reader().await?;
    let (two, mut two_reports) = body_reader().await?;
    let proxy = bind().await?;
    let (v1, v2) = (backend("v1", &[one]), backend("v2", &[two]));
    proxy.set_routes(Routes::split(v1.clone(), v2.clone(), 5_000));

    let mut stream = raw_request(
        &proxy,
        b"POST /upload HTTP/1.1\r\nhost: app.example\r\nx-cutover-version: canary\r\n\
          transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await?;
    stream.flush().await?;
    let answer = if drop_it {
        drop(stream);
        String::new()
    } else {
        stream.shutdown().await?;
        raw_answer(&mut stream).await?
    };

    // The canary got the request and its body broke off there: the proxy is done
    // with it once the canary is idle.
    let report = next(&mut two_reports, "the canary got no request").await?;
    assert!(report.is_err(), "the canary read a whole body: {report:?}");
    assert!(v2.stats.wait_idle(PATIENCE).await, "still in flight");
    assert_eq!(
        v2.stats.totals(),
        (0, 0),
        "the client's failure was counted"
    );
    assert_eq!(v1.stats.totals(), (0, 0));
    assert!(one_reports.try_recv().is_err(), "the stable got a request");

    // The proxy still serves, and counts, a whole upload to the same version.
    let request = Request::post(url(&proxy, "/upload"))
        .header("x-cutover-version", "canary")
        .body(Full::new(Bytes::from_static(b"hello")))?;
    let response = send(&client(), request).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await?.to_bytes();
    assert_eq!(body, "got 5 bytes");
    assert!(v2.stats.wait_idle(PATIENCE).await);
    assert_eq!(v2.stats.totals(), (1, 0));
    proxy.shutdown().await;
    Ok(answer)
}

#[tokio::test]
async fn an_upload_cut_off_midway_is_a_400_not_counted() -> Result<()> {
    let answer = upload_cut_off(false).await?;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.contains("cutover: the request body failed before it was sent: "),
        "{answer}"
    );
    assert!(answer.contains("x-cutover-version: v2"), "{answer}");
    Ok(())
}

#[tokio::test]
async fn a_client_vanishing_mid_upload_is_not_counted() -> Result<()> {
    upload_cut_off(true).await?;
    Ok(())
}

#[tokio::test]
async fn a_stalled_upload_is_a_408_not_counted() -> Result<()> {
    let (addr, mut reports) = body_reader().await?;
    let (proxy, v1) =
        proxy_to_v1_with(response_timeout(Duration::from_millis(200)), &[addr]).await?;

    // 10 of the 100 bytes promised, then nothing, the connection left open.
    let mut stream = raw_request(
        &proxy,
        b"POST /upload HTTP/1.1\r\nhost: app.example\r\ncontent-length: 100\r\n\r\n0123456789",
    )
    .await?;
    let answer = raw_answer(&mut stream).await?;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer.contains("cutover: the request body sent nothing for 200ms"),
        "{answer}"
    );
    assert!(v1.stats.wait_idle(PATIENCE).await);
    assert_eq!(v1.stats.totals(), (0, 0), "the client's stall was counted");
    let report = next(&mut reports, "the upstream got no request").await?;
    assert!(report.is_err(), "{report:?}");
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_slow_steady_upload_is_not_timed_out() -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let (addr, _reports) = body_reader().await?;
    let (proxy, v1) =
        proxy_to_v1_with(response_timeout(Duration::from_millis(500)), &[addr]).await?;

    // Twice the response timeout in all, but never silent for long.
    let mut stream = raw_request(
        &proxy,
        b"POST /upload HTTP/1.1\r\nhost: app.example\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await?;
    for _ in 0..10 {
        stream.write_all(b"5\r\nhello\r\n").await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stream.write_all(b"0\r\n\r\n").await?;
    let answer = raw_answer(&mut stream).await?;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.ends_with("got 50 bytes"), "{answer}");
    assert_eq!(v1.stats.totals(), (1, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_upstream_not_reading_the_body_is_a_504_counted_as_error() -> Result<()> {
    use tokio::io::AsyncWriteExt;
    // Accepts connections and never reads from them.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (accepted_tx, mut accepted) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = accepted_tx.send(stream);
        }
    });
    let (proxy, v1) =
        proxy_to_v1_with(response_timeout(Duration::from_millis(200)), &[addr]).await?;

    // A client with far more body than the sockets between here and there hold.
    let stream = tokio::net::TcpStream::connect(proxy.local_addr()).await?;
    let (_read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = write
            .write_all(
                b"POST /upload HTTP/1.1\r\nhost: app.example\r\ncontent-length: 1073741824\r\n\r\n",
            )
            .await;
        let block = vec![b'x'; 1 << 16];
        for _ in 0..(1 << 14) {
            if write.write_all(&block).await.is_err() {
                break;
            }
        }
    });
    let _held = next(&mut accepted, "the proxy did not connect upstream").await?;
    assert!(v1.stats.wait_idle(PATIENCE).await, "still in flight");
    assert_eq!(v1.stats.totals(), (1, 1));
    writer.abort();
    proxy.shutdown().await;
    Ok(())
}

/// An upstream answering `body` to every request, keeping connections alive or
/// closing each after its response; and the count of connections it accepted.
async fn counting_connections(
    body: &'static str,
    keep_alive: bool,
) -> Result<(SocketAddr, Arc<std::sync::atomic::AtomicUsize>)> {
    let (addr, accepted, _closed) = watching_connections(body, keep_alive).await?;
    Ok((addr, accepted))
}

/// [`counting_connections`], with the number of connections that ended, as a
/// watch.
async fn watching_connections(
    body: &'static str,
    keep_alive: bool,
) -> Result<(
    SocketAddr,
    Arc<std::sync::atomic::AtomicUsize>,
    tokio::sync::watch::Receiver<usize>,
)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    let (ended, closed) = tokio::sync::watch::channel(0);
    let ended = Arc::new(ended);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let ended = Arc::clone(&ended);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async move {
                    Ok::<_, Infallible>(Response::new(text(body)))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                ended.send_modify(|n| *n += 1);
            });
        }
    });
    Ok((addr, accepted, closed))
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() -> Result<()> {
    let (addr, accepted) = counting_connections("one", true).await?;
    let (proxy, v1) = proxy_to_v1(&[addr]).await?;
    let client = client();
    for _ in 0..20 {
        let answer = get(&client, &proxy, &[]).await?;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "one")
        );
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "20 requests one after another need one upstream connection"
    );
    assert_eq!(v1.stats.totals(), (20, 0));
    proxy.shutdown().await;
    Ok(())
}

/// An upstream that answers `early` (5 bytes, kept alive) as soon as a request's
/// head has come, before reading any of its body, and then reads whatever comes.
async fn answering_early() -> Result<SocketAddr> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut read = Vec::new();
                let mut buf = [0; 4096];
                while !read.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read.extend_from_slice(&buf[..n]),
                    }
                }
                let early = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nearly";
                if stream.write_all(early).await.is_err() {
                    return;
                }
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    Ok(addr)
}

#[tokio::test]
async fn a_connection_still_taking_an_upload_is_not_reused() -> Result<()> {
    let (proxy, v1) = proxy_to_v1(&[answering_early().await?]).await?;
    // Half a body, and the rest held back: the upstream answers anyway.
    let mut uploader = raw_request(
        &proxy,
        b"POST /upload HTTP/1.1\r\nhost: app.example\r\ncontent-length: 100\r\n\r\nhalf",
    )
    .await?;
    let answer = read_until(&mut uploader, "early").await?;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

    // The next request goes on a connection of its own, not behind that upload.
    let answer = get(&client(), &proxy, &[]).await?;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "early")
    );
    assert_eq!(v1.stats.totals(), (2, 0));
    drop(uploader);
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_drain_closes_the_instances_idle_connections() -> Result<()> {
    let (addr, accepted, mut closed) = watching_connections("one", true).await?;
    let (proxy, v1) = proxy_to_v1(&[addr]).await?;
    let answer = get(&client(), &proxy, &[]).await?;
    assert_eq!(answer.body, "one");
    assert!(v1.stats.wait_idle(PATIENCE).await);
    // Kept alive, idle in the pool.
    assert_eq!(*closed.borrow(), 0);

    assert!(v1.endpoints()[0].drain(PATIENCE).await);
    // Closed by the drain, long before the pool's idle timeout.
    tokio::time::timeout(PATIENCE, closed.wait_for(|n| *n == 1)).await??;
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_upstream_closing_each_connection_gets_a_new_one_per_request() -> Result<()> {
    let (addr, accepted) = counting_connections("one", false).await?;
    let (proxy, v1) = proxy_to_v1(&[addr]).await?;
    let client = client();
    for _ in 0..5 {
        let answer = get(&client, &proxy, &[]).await?;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "one")
        );
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 5);
    assert_eq!(
        v1.stats.totals(),
        (5, 0),
        "no request failed on a closed connection"
    );
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_abandoned_response_does_not_leave_its_connection_for_the_next_request() -> Result<()> {
    let (addr, mut senders) = streaming().await?;
    let (proxy, v1) = proxy_to_v1(&[addr]).await?;

    let request = Request::get(url(&proxy, "/stream")).body(Full::default())?;
    let first_client = client();
    let response = send(&first_client, request).await?;
    let mut tx = next(&mut senders, "upstream got no request").await?;
    tx.send_data(chunk(0)).await?;
    drop(response);
    drop(first_client);
    assert!(
        v1.stats.wait_idle(PATIENCE).await,
        "the abandoned response stayed in flight"
    );

    // The next request is answered whole, on a connection of its own.
    let request = Request::get(url(&proxy, "/stream")).body(Full::default())?;
    let response = send(&client(), request).await?;
    let mut tx = next(
        &mut senders,
        "the second request did not reach the upstream",
    )
    .await?;
    tx.send_data(chunk(1)).await?;
    drop(tx);
    let body = tokio::time::timeout(PATIENCE, response.into_body().collect())
        .await??
        .to_bytes();
    assert_eq!(body, chunk(1));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_request_without_host_is_sent_with_the_instance_as_host() -> Result<()> {
    let addr = echo().await?;
    let (proxy, _v1) = proxy_to_v1(&[addr]).await?;
    let mut stream = raw_request(&proxy, b"GET /x HTTP/1.0\r\n\r\n").await?;
    let answer = raw_answer(&mut stream).await?;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.contains(&format!("host: {addr}\n")), "{answer}");
    proxy.shutdown().await;
    Ok(())
}
