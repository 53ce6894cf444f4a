//! The proxy serving on threads of its own (`ProxyOptions::threads`), thread per
//! core: every request answered and counted whichever thread serves it, limits
//! that count connections on every thread, and a shutdown that lets each thread
//! finish what it serves, then ends the threads.
//!
//! Behaviour only: nothing here is timed. The serving threads are seen by their
//! names in `/proc/self/task`, `proxy:PORT#INDEX`, so tests running side by side
//! in this process do not count each other's.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use http::StatusCode;
use tokio::io::AsyncWriteExt;

use common::{
    PATIENCE, backend, client, gated, get, named, next, proxy_to_v1_with, raw_answer, raw_request,
    read_until, until_refused,
};
use cutover_proxy::{Proxy, ProxyOptions, Routes};

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: app.example\r\n\r\n";

fn threads(n: usize) -> ProxyOptions {
    ProxyOptions {
        threads: n,
        ..Default::default()
    }
}

/// The threads of this process serving the proxy on `addr`.
fn serving_threads(addr: SocketAddr) -> Result<usize> {
    let prefix = format!("proxy:{}#", addr.port());
    let mut count = 0;
    for task in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
        let comm = std::fs::read_to_string(task?.path().join("comm")).unwrap_or_default();
        count += usize::from(comm.starts_with(&prefix));
    }
    Ok(count)
}

/// Waits (bounded) until `n` threads serve the proxy on `addr` (they start with
/// its accept loop, a task of this runtime).
async fn threads_running(addr: SocketAddr, n: usize) -> Result<()> {
    let mut running = 0;
    for _ in 0..500 {
        running = serving_threads(addr)?;
        if running == n {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("{running} threads serve {addr}, not {n}")
}

/// Waits (bounded) until no thread serves the proxy on `addr`.
async fn threads_gone(addr: SocketAddr) -> Result<()> {
    threads_running(addr, 0).await
}

#[tokio::test]
async fn serving_threads_answer_and_count_every_request_of_a_split() -> Result<()> {
    let proxy = Proxy::bind("127.0.0.1:0".parse()?, threads(2)).await?;
    let addr = proxy.local_addr();
    threads_running(addr, 2).await?;
    let (v1, v2) = (
        backend("v1", &[named("one").await?]),
        backend("v2", &[named("two").await?]),
    );
    proxy.set_routes(Routes::split(v1.clone(), v2.clone(), 5000));

    // Many clients at once, so both threads serve connections.
    let client = client();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (client, proxy) = (client.clone(), proxy.clone());
        requests.spawn(async move {
            let mut bodies = Vec::new();
            for _ in 0..10 {
                let answer = get(&client, &proxy, &[]).await?;
                anyhow::ensure!(
                    answer.status == StatusCode::OK,
                    "{}: {}",
                    answer.status,
                    answer.body
                );
                bodies.push(answer.body);
            }
            Ok(bodies)
        });
    }
    let mut served = (0, 0);
    while let Some(bodies) = requests.join_next().await {
        for body in bodies?? {
            match body.as_str() {
                "one" => served.0 += 1,
                "two" => served.1 += 1,
                other => anyhow::bail!("answered by {other:?}"),
            }
        }
    }
    assert_eq!(served.0 + served.1, 320);
    assert!(
        served.0 > 0 && served.1 > 0,
        "one version got nothing: {served:?}"
    );
    // Counted under the version that answered, whichever thread served it.
    assert_eq!(
        (v1.stats.totals(), v2.stats.totals()),
        ((served.0, 0), (served.1, 0))
    );

    proxy.shutdown().await;
    threads_gone(addr).await?;
    Ok(())
}

#[tokio::test]
async fn the_connection_limit_counts_the_connections_of_every_thread() -> Result<()> {
    let options = ProxyOptions {
        max_connections: 2,
        ..threads(2)
    };
    let (proxy, v1) = proxy_to_v1_with(options, &[named("one").await?]).await?;
    // Handed to the thread serving the fewest: one each.
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
    for stream in [&mut first, &mut second] {
        stream.write_all(GET).await?;
        read_until(stream, "one").await?;
    }
    assert_eq!(v1.stats.totals(), (4, 0));
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn shutdown_lets_each_thread_finish_its_request_then_ends_the_threads() -> Result<()> {
    let (gated, mut arrived) = gated("finished").await?;
    let (proxy, v1) = proxy_to_v1_with(threads(2), &[gated]).await?;
    let addr = proxy.local_addr();
    let request = tokio::spawn({
        let proxy = proxy.clone();
        async move { get(&client(), &proxy, &[]).await }
    });
    let go = next(&mut arrived, "no request upstream").await?;
    let shutdown = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.shutdown().await }
    });
    until_refused(addr)
        .await
        .context("still accepting after shutdown began")?;
    assert!(
        !shutdown.is_finished(),
        "shutdown did not wait for the request in progress"
    );
    // The thread with nothing to serve may end; the one serving the request not.
    assert!(
        serving_threads(addr)? >= 1,
        "every thread ended before the request"
    );
    go.send(()).unwrap();
    let answer = request.await??;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "finished")
    );
    tokio::time::timeout(PATIENCE, shutdown).await??;
    threads_gone(addr).await?;
    assert_eq!(v1.stats.totals(), (1, 0));
    Ok(())
}

#[tokio::test]
async fn a_proxy_dropped_without_shutdown_ends_its_threads() -> Result<()> {
    let (proxy, _) = proxy_to_v1_with(threads(2), &[named("one").await?]).await?;
    let addr = proxy.local_addr();
    assert_eq!(get(&client(), &proxy, &[]).await?.body, "one");
    drop(proxy);
    threads_gone(addr).await
}
