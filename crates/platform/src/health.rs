//! One HTTP health check: `GET http://<addr><path>` on a fresh connection, 2xx or not.
//!
//! A fresh connection per check on purpose: a pooled one could hide that the
//! instance stopped accepting connections, and checks are rare enough (one per
//! interval per instance) for the handshake not to matter.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Checks once. `Err` says why the check failed, in words fit for a status line
/// (`connection refused`, `HTTP 503 Service Unavailable`, `timed out after 1s`).
pub(crate) async fn check(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, check_inner(addr, path)).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

async fn check_inner(addr: SocketAddr, path: &str) -> Result<(), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| describe_io(&e))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| describe_hyper(&e))?;
    // The connection is driven by its own task; aborting it when done (or when the
    // timeout above drops this future) closes the socket.
    let conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let request = Request::get(path)
        .header(HOST, addr.to_string())
        .header(USER_AGENT, "cutover-health-check")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("invalid health check request for {path:?}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| describe_hyper(&e))?;
    drop(conn);
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        _ => e.to_string(),
    }
}

fn describe_hyper(e: &hyper::Error) -> String {
    // hyper's own message is generic ("connection closed before message completed");
    // the IO error underneath, when there is one, is the useful part.
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return format!("{e}: {}", describe_io(io));
        }
        source = s.source();
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Answers every connection with `response`, once it has read the request head.
    async fn serve(response: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        addr
    }

    fn free_addr() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    #[tokio::test]
    async fn success_on_2xx() {
        let addr = serve("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(
            check(addr, "/healthz", Duration::from_secs(2)).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn failure_on_5xx_names_the_status() {
        let addr = serve("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await;
        let err = check(addr, "/healthz", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(err, "HTTP 503 Service Unavailable");
    }

    #[tokio::test]
    async fn failure_when_nothing_listens() {
        let err = check(free_addr(), "/", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(err, "connection refused");
    }

    #[tokio::test]
    async fn failure_on_timeout() {
        // Accepts but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let mut sockets = Vec::new();
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                sockets.push(socket);
            }
        });
        let err = check(addr, "/", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(err, "timed out after 200ms");
    }

    #[tokio::test]
    async fn failure_when_the_connection_closes_early() {
        let addr = serve("").await;
        let err = check(addr, "/", Duration::from_secs(2)).await.unwrap_err();
        assert!(err.contains("connection closed"), "{err}");
    }
}
