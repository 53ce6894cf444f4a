//! Helpers shared by the integration tests: configurations, platforms, releases and
//! process checks.
#![allow(dead_code)]

pub mod docker;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cutover_engine::platform::{Platform, Release, ReleaseHealth, ReleaseSpec};
use cutover_platform::LocalPlatform;
use cutover_spec::{HealthCheck, LocalSpec};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

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

/// A platform for `spec`, checking health on `health_path`, logging to `dir/logs`.
pub fn platform_with(spec: LocalSpec, health_path: &str, dir: &Path) -> LocalPlatform {
    LocalPlatform::new(spec, health(health_path), dir.join("logs"))
}

/// A platform running one instance of `command` in `dir`, healthy when `/` answers,
/// logging to `dir/logs`.
pub fn platform(command: &[&str], dir: &Path) -> LocalPlatform {
    platform_with(spec(command, dir), "/", dir)
}

/// A platform serving `dir` with [`HTTP_SERVER`], healthy while the file `dir/ok`
/// exists (created here); the platform and that file.
pub fn platform_healthy_while_ok_exists(dir: &Path) -> (LocalPlatform, PathBuf) {
    let marker = dir.join("ok");
    std::fs::write(&marker, "ok").unwrap();
    (platform_with(spec(HTTP_SERVER, dir), "/ok", dir), marker)
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

/// [`HTTP_SERVER`] under a shell that first starts a `sleep 1000` in its process
/// group, and appends the sleep's pid, then its own (the group leader's), to
/// [`pids_file`].
pub const WITH_GRANDCHILD: &[&str] = &[
    "sh",
    "-c",
    r#"sleep 1000 & echo $! >> "pids-$0"; echo $$ >> "pids-$0"; exec python3 -m http.server "$0" --bind 127.0.0.1"#,
    "${PORT}",
];

/// Where a [`WITH_GRANDCHILD`] instance serving on `port` writes its pids.
pub fn pids_file(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("pids-{port}"))
}

/// The release `version` of `platform`, under its version's name, with as many
/// instances as the platform's configuration says.
pub fn release_spec(platform: &LocalPlatform, version: &str) -> ReleaseSpec {
    ReleaseSpec {
        name: version.to_owned(),
        version: version.to_owned(),
        instances: platform.instances(),
    }
}

/// v1 started on `platform`: the release, its health, and its first instance's pid.
pub async fn start_v1(
    platform: &LocalPlatform,
) -> (Box<dyn Release>, watch::Receiver<ReleaseHealth>, i32) {
    let release = platform.start(&release_spec(platform, "v1")).await.unwrap();
    let pid = pid_of(release.as_ref());
    let rx = release.health();
    (release, rx, pid)
}

/// The pid of the release's first instance, from `describe`.
pub fn pid_of(release: &dyn Release) -> i32 {
    release.describe()[0]
        .strip_prefix("pid ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap()
}

/// Waits for the health to satisfy `f`, failing the test after `deadline`.
pub async fn await_health(
    rx: &mut watch::Receiver<ReleaseHealth>,
    deadline: Duration,
    f: impl FnMut(&ReleaseHealth) -> bool,
) -> ReleaseHealth {
    let outcome =
        tokio::time::timeout(deadline, async { rx.wait_for(f).await.map(|h| h.clone()) }).await;
    match outcome {
        Ok(Ok(h)) => h,
        Ok(Err(_)) => panic!("health channel closed"),
        Err(_) => panic!("health never got there; last: {:?}", *rx.borrow()),
    }
}

/// Kills the process from outside, as the OOM killer would.
pub fn sigkill(pid: i32) {
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
}

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
