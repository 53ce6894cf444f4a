//! Helpers shared by the integration tests: configurations and process checks.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use cutover_spec::{HealthCheck, LocalSpec};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn spec(command: &[&str], workdir: &Path) -> LocalSpec {
    LocalSpec {
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        env: BTreeMap::new(),
        workdir: workdir.to_owned(),
        instances: 1,
        startup_timeout: Duration::from_secs(20),
        drain_timeout: Duration::from_secs(5),
    }
}

pub fn health(path: &str) -> HealthCheck {
    HealthCheck {
        path: path.to_owned(),
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        healthy_threshold: 1,
        unhealthy_threshold: 2,
    }
}

/// `python3 -m http.server` on `${PORT}`, serving the working directory.
pub const HTTP_SERVER: &[&str] = &[
    "python3",
    "-m",
    "http.server",
    "${PORT}",
    "--bind",
    "127.0.0.1",
];

/// Whether the process is gone: no such pid, or a zombie waiting for init.
pub fn gone(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH) {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
            rest.split_whitespace().next() == Some("Z")
        })
        .unwrap_or(true)
}

/// Waits (up to 10s) until the process is gone.
pub async fn assert_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(pid) {
        assert!(Instant::now() < deadline, "process {pid} still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain HTTP/1.0 GET; the status code and the body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The pids written one per line to a file by a test command.
pub async fn read_pids(path: &Path, n: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if pids.len() >= n {
                return pids;
            }
        }
        assert!(Instant::now() < deadline, "no pids in {}", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
