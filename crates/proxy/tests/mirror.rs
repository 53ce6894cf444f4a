//! Traffic mirroring through the proxy: a share of the stable's requests copied to
//! a shadow version whose answers are measured and discarded.
//!
//! Behaviour only: a hanging shadow is shown not to hold the live response by the
//! live response completing while the shadow still holds its copy, never by a
//! clock.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use common::{
    PATIENCE, backend, bind, client, gated, get, named, next, response_timeout, send, text,
    upstream, url,
};
use cutover_proxy::{Backend, Mirror, MirrorCounts, Proxy, Routes, VersionStats};

/// What a shadow upstream received: the method and the body.
type Received = (Method, Bytes);

/// An upstream that reports each request it gets and answers `shadow`.
async fn recording() -> Result<(SocketAddr, mpsc::UnboundedReceiver<Received>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = upstream(move |req: Request<Incoming>| {
        let tx = tx.clone();
        async move {
            let method = req.method().clone();
            let body = req.into_body().collect().await.map(|b| b.to_bytes());
            let _ = tx.send((method, body.unwrap_or_default()));
            Response::new(text("shadow"))
        }
    })
    .await?;
    Ok((addr, rx))
}

/// A proxy routing everything to v1 (`one`) and mirroring to v2 on `shadow` as
/// `mirror` makes it; the proxy, v1 and the mirror.
async fn mirrored(
    shadow: SocketAddr,
    mirror: impl FnOnce(Backend) -> Mirror,
) -> Result<(Proxy, Backend, Mirror)> {
    let proxy = bind().await?;
    let v1 = backend("v1", &[named("one").await?]);
    let v2 = Backend::new("v2", vec![shadow], VersionStats::new()).role("shadow");
    let mirror = mirror(v2);
    let mut routes = Routes::stable_only(v1.clone());
    routes.mirror = Some(mirror.clone());
    proxy.set_routes(routes);
    Ok((proxy, v1, mirror))
}

/// Waits until `done` holds, at most [`PATIENCE`]; `what` says what never happened.
async fn until(what: &str, done: impl Fn() -> bool) -> Result<()> {
    tokio::time::timeout(PATIENCE, async {
        while !done() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .with_context(|| what.to_owned())
}

/// Waits until `stats` recorded `n` requests and has none in flight.
async fn recorded(stats: &Arc<VersionStats>, n: u64) -> Result<()> {
    let what = format!("the shadow never recorded {n} requests");
    until(&what, || stats.totals().0 >= n && stats.in_flight() == 0).await
}

/// A request with `method` and `body` through the proxy; its body as text.
async fn request(proxy: &Proxy, method: Method, body: &'static str) -> Result<(String, String)> {
    let req = Request::builder()
        .method(method)
        .uri(url(proxy, "/thing?x=1"))
        .body(Full::new(Bytes::from_static(body.as_bytes())))?;
    let response = send(&client(), req).await?;
    let version = response.headers()["x-cutover-version"].to_str()?.to_owned();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((version, String::from_utf8(body.to_vec())?))
}

#[tokio::test]
async fn mirrored_requests_reach_the_shadow_and_their_answers_never_the_client() -> Result<()> {
    let (shadow, mut received) = recording().await?;
    let (proxy, v1, mirror) = mirrored(shadow, |v2| Mirror::new("stable", v2, 10_000)).await?;
    let client = client();
    for _ in 0..20 {
        let answer = get(&client, &proxy, &[]).await?;
        // The client sees the stable's answer, never the shadow's.
        assert_eq!((answer.version(), answer.body.as_str()), ("v1", "one"));
    }
    for _ in 0..20 {
        let (method, _) = next(&mut received, "a mirrored request never came").await?;
        assert_eq!(method, Method::GET);
    }
    let shadow_stats = &mirror.target().stats;
    recorded(shadow_stats, 20).await?;
    assert_eq!(shadow_stats.totals(), (20, 0));
    assert_eq!(
        v1.stats.totals(),
        (20, 0),
        "the live requests, counted once"
    );
    assert_eq!(
        mirror.counts(),
        MirrorCounts {
            mirrored: 20,
            ..Default::default()
        }
    );
    // A request pinned to the stable is deliberate: not copied.
    let pinned = get(&client, &proxy, &[("x-cutover-version", "stable")]).await?;
    assert_eq!(pinned.body, "one");
    assert_eq!(mirror.counts().mirrored, 20);
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_share_mirrored_is_honoured_within_a_statistical_tolerance() -> Result<()> {
    let (shadow, _received) = recording().await?;
    let (proxy, _v1, mirror) = mirrored(shadow, |v2| Mirror::new("stable", v2, 2_000)).await?;
    let client = client();
    for _ in 0..1000 {
        assert_eq!(get(&client, &proxy, &[]).await?.body, "one");
    }
    until("mirrored requests still in flight", || {
        mirror.in_flight() == 0
    })
    .await?;
    // 20% of 1000 is 200, with a standard deviation of about 12.6.
    let mirrored = mirror.counts().mirrored;
    assert!((150..=250).contains(&mirrored), "{mirrored} mirrored");
    recorded(&mirror.target().stats, mirrored).await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_hanging_shadow_does_not_hold_the_live_response() -> Result<()> {
    let (shadow, mut gates) = gated("shadow").await?;
    let (proxy, _v1, mirror) = mirrored(shadow, |v2| Mirror::new("stable", v2, 10_000)).await?;
    let answer = get(&client(), &proxy, &[]).await?;
    // The shadow has the copy and is holding it...
    let go = next(&mut gates, "the copy never reached the shadow").await?;
    // ...and the live response is complete all the same.
    assert_eq!(answer.body, "one");
    assert_eq!(mirror.in_flight(), 1);
    assert_eq!(mirror.target().stats.totals(), (0, 0));
    go.send(()).unwrap();
    recorded(&mirror.target().stats, 1).await?;
    assert_eq!(mirror.in_flight(), 0);
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_post_is_not_mirrored_by_default_but_may_be_with_its_body() -> Result<()> {
    let (shadow, mut received) = recording().await?;
    let (proxy, _v1, mirror) = mirrored(shadow, |v2| Mirror::new("stable", v2, 10_000)).await?;
    assert_eq!(
        request(&proxy, Method::POST, "order=1").await?,
        ("v1".into(), "one".into())
    );
    assert_eq!(request(&proxy, Method::GET, "").await?.1, "one");
    // Only the GET came: the POST was never copied.
    let (method, _) = next(&mut received, "the GET was not mirrored").await?;
    assert_eq!(method, Method::GET);
    recorded(&mirror.target().stats, 1).await?;
    assert!(
        received.try_recv().is_err(),
        "more than the GET was mirrored"
    );
    assert_eq!(mirror.counts().mirrored, 1);
    proxy.shutdown().await;

    // Allowed, a PUT is copied with its body.
    let (shadow, mut received) = recording().await?;
    let (proxy, _v1, mirror) = mirrored(shadow, |v2| {
        Mirror::new("stable", v2, 10_000).methods([Method::PUT])
    })
    .await?;
    assert_eq!(request(&proxy, Method::PUT, "the body").await?.1, "one");
    let (method, body) = next(&mut received, "the PUT was not mirrored").await?;
    assert_eq!((method, body.as_ref()), (Method::PUT, &b"the body"[..]));
    recorded(&mirror.target().stats, 1).await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_body_over_the_limit_is_not_mirrored_and_is_counted() -> Result<()> {
    let (shadow, mut received) = recording().await?;
    let (proxy, _v1, mirror) = mirrored(shadow, |v2| {
        Mirror::new("stable", v2, 10_000)
            .methods([Method::PUT])
            .max_body(4)
    })
    .await?;
    assert_eq!(request(&proxy, Method::PUT, "too long").await?.1, "one");
    assert_eq!(request(&proxy, Method::PUT, "fits").await?.1, "one");
    let (_, body) = next(&mut received, "the small PUT was not mirrored").await?;
    assert_eq!(body.as_ref(), b"fits");
    recorded(&mirror.target().stats, 1).await?;
    assert_eq!(
        mirror.counts(),
        MirrorCounts {
            mirrored: 1,
            skipped_too_large: 1,
            ..Default::default()
        }
    );
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_streamed_body_passing_the_limit_is_not_mirrored_and_is_counted() -> Result<()> {
    let (shadow, mut received) = recording().await?;
    let (proxy, v1, mirror) = mirrored(shadow, |v2| {
        Mirror::new("stable", v2, 10_000)
            .methods([Method::PUT])
            .max_body(4)
    })
    .await?;
    // Chunked, so the limit is only passed as the body streams.
    let raw = b"PUT /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n\
        3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
    let mut stream = common::raw_request(&proxy, raw).await?;
    let mut answer = vec![0u8; 15];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut answer)).await??;
    assert_eq!(&answer, b"HTTP/1.1 200 OK");
    assert_eq!(v1.stats.totals(), (1, 0));
    until("the copy never gave up", || {
        mirror.counts().skipped_too_large == 1 && mirror.in_flight() == 0
    })
    .await?;
    assert_eq!(mirror.counts().mirrored, 0);
    assert!(received.try_recv().is_err());
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn beyond_the_in_flight_bound_copies_are_skipped_and_counted() -> Result<()> {
    let (shadow, mut gates) = gated("shadow").await?;
    let (proxy, _v1, mirror) = mirrored(shadow, |v2| {
        Mirror::new("stable", v2, 10_000).max_in_flight(1)
    })
    .await?;
    let client = client();
    assert_eq!(get(&client, &proxy, &[]).await?.body, "one");
    let go = next(&mut gates, "the first copy never reached the shadow").await?;
    // The one slot is taken by the hanging copy: the next ones are not copied.
    for _ in 0..3 {
        assert_eq!(get(&client, &proxy, &[]).await?.body, "one");
    }
    assert_eq!(
        mirror.counts(),
        MirrorCounts {
            mirrored: 1,
            skipped_full: 3,
            ..Default::default()
        }
    );
    go.send(()).unwrap();
    recorded(&mirror.target().stats, 1).await?;
    // A slot again.
    assert_eq!(get(&client, &proxy, &[]).await?.body, "one");
    let go = next(&mut gates, "the copy after the bound freed never came").await?;
    go.send(()).unwrap();
    recorded(&mirror.target().stats, 2).await?;
    assert!(
        gates.try_recv().is_err(),
        "a skipped copy reached the shadow"
    );
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_failing_shadow_counts_against_itself_never_the_stable_or_the_client() -> Result<()> {
    let shadow = upstream(|_req| async move {
        Response::builder()
            .status(500)
            .body(text("shadow broke"))
            .unwrap()
    })
    .await?;
    let (proxy, v1, mirror) = mirrored(shadow, |v2| Mirror::new("stable", v2, 10_000)).await?;
    let client = client();
    for _ in 0..10 {
        let answer = get(&client, &proxy, &[]).await?;
        assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "one"));
    }
    recorded(&mirror.target().stats, 10).await?;
    assert_eq!(
        mirror.target().stats.totals(),
        (10, 10),
        "the shadow's errors"
    );
    assert_eq!(v1.stats.totals(), (10, 0), "the stable's own answers");
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_shadows_large_slow_streamed_answer_is_read_to_its_end_and_measured() -> Result<()> {
    // 64 chunks of 1 MiB, one every 20 ms: far more than any buffer, and longer in
    // all than the response timeout, while no chunk takes that long.
    const CHUNKS: usize = 64;
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let shadow = {
        let finished = Arc::clone(&finished);
        upstream(move |_req| {
            let finished = Arc::clone(&finished);
            async move {
                let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
                tokio::spawn(async move {
                    let chunk = Bytes::from(vec![b'x'; 1 << 20]);
                    for _ in 0..CHUNKS {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        if tx.send_data(chunk.clone()).await.is_err() {
                            return;
                        }
                    }
                    finished.store(true, std::sync::atomic::Ordering::SeqCst);
                });
                Response::new(body.boxed_unsync())
            }
        })
        .await?
    };
    let proxy = Proxy::bind(
        "127.0.0.1:0".parse()?,
        response_timeout(Duration::from_millis(500)),
    )
    .await?;
    let v1 = backend("v1", &[named("one").await?]);
    let v2 = Backend::new("v2", vec![shadow], VersionStats::new()).role("shadow");
    let mirror = Mirror::new("stable", v2, 10_000);
    let mut routes = Routes::stable_only(v1);
    routes.mirror = Some(mirror.clone());
    proxy.set_routes(routes);

    assert_eq!(get(&client(), &proxy, &[]).await?.body, "one");
    let stats = &mirror.target().stats;
    until("the shadow's answer was never read to its end", || {
        stats.in_flight() == 0 && mirror.in_flight() == 0 && stats.totals().0 == 1
    })
    .await?;
    assert!(
        finished.load(std::sync::atomic::Ordering::SeqCst),
        "the shadow's body was cut short"
    );
    assert_eq!(stats.totals(), (1, 0), "the shadow's answer is a success");
    proxy.shutdown().await;
    Ok(())
}
