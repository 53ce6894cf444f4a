//! A daemon killed outright (SIGKILL) leaves its instances running; the next one
//! adopts them by release name: same processes, same addresses, supervised from then
//! on, and stops what it does not adopt, never a process that merely reuses a pid.
//!
//! The earlier daemon is this test binary run again, as the test `earlier_daemon`
//! (which does nothing unless told to), SIGKILLed once its releases are ready. The
//! tests here run one at a time: the file being written, and the registry that
//! leftovers join, are process-wide.

mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{HTTP_SERVER, assert_gone, await_health, get, gone, platform_with, sigkill, spec};
use cutover_engine::platform::{Platform, PlatformError, Release, ReleaseSpec};
use cutover_platform::{Leftovers, LocalPlatform, persist_children_to};
use cutover_spec::LocalSpec;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const DEADLINE: Duration = Duration::from_secs(20);

/// Set, for the earlier daemon, to its directory.
const EARLIER_DAEMON_DIR: &str = "CUTOVER_TEST_EARLIER_DAEMON_DIR";
/// Set, for the earlier daemon, to the releases it starts: `name:instances,...`.
const EARLIER_DAEMON_RELEASES: &str = "CUTOVER_TEST_EARLIER_DAEMON_RELEASES";

fn release(name: &str, instances: u32) -> ReleaseSpec {
    ReleaseSpec {
        name: name.into(),
        version: name.into(),
        instances,
    }
}

fn local_spec(dir: &Path) -> LocalSpec {
    spec(HTTP_SERVER, dir)
}

/// Every platform here, earlier daemon's and next one's: the same configuration.
fn platform(dir: &Path) -> LocalPlatform {
    platform_with(local_spec(dir), "/", dir)
}

/// The earlier daemon: records its children in `<dir>/children.json`, starts its
/// releases, says so in `<dir>/ready`, and waits to be killed.
#[tokio::test]
async fn earlier_daemon() {
    let Ok(dir) = std::env::var(EARLIER_DAEMON_DIR) else {
        return;
    };
    let dir = Path::new(&dir);
    persist_children_to(dir.join("children.json")).unwrap();
    let platform = platform(dir);
    let releases = std::env::var(EARLIER_DAEMON_RELEASES).unwrap();
    let mut started = Vec::new();
    for entry in releases.split(',') {
        let (name, instances) = entry.split_once(':').unwrap();
        started.push(
            platform
                .start(&release(name, instances.parse().unwrap()))
                .await
                .unwrap(),
        );
    }
    std::fs::write(dir.join("ready.tmp"), "").unwrap();
    std::fs::rename(dir.join("ready.tmp"), dir.join("ready")).unwrap();
    std::future::pending::<()>().await;
}

/// One instance as the earlier daemon recorded it.
#[derive(Debug, Clone, PartialEq)]
struct Recorded {
    pid: i32,
    release: String,
    index: u64,
    addr: SocketAddr,
}

/// Runs the earlier daemon in `dir` with `releases` until they are ready, then
/// SIGKILLs it; what it recorded, by release and index.
fn run_and_kill_earlier_daemon(dir: &Path, releases: &str) -> Vec<Recorded> {
    let mut daemon = Command::new(std::env::current_exe().unwrap())
        .args(["earlier_daemon", "--exact", "--nocapture"])
        .env(EARLIER_DAEMON_DIR, dir)
        .env(EARLIER_DAEMON_RELEASES, releases)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("earlier-daemon.err")).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    while !dir.join("ready").exists() {
        if let Some(status) = daemon.try_wait().unwrap() {
            let err = std::fs::read_to_string(dir.join("earlier-daemon.err")).unwrap();
            panic!("the earlier daemon exited ({status}): {err}");
        }
        assert!(
            Instant::now() < deadline,
            "the earlier daemon never got ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let file: Value =
        serde_json::from_slice(&std::fs::read(dir.join("children.json")).unwrap()).unwrap();
    let mut recorded: Vec<Recorded> = file["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| Recorded {
            pid: g["pgid"].as_i64().unwrap() as i32,
            release: g["instance"]["release"].as_str().unwrap().to_owned(),
            index: g["instance"]["index"].as_u64().unwrap(),
            addr: g["instance"]["addr"].as_str().unwrap().parse().unwrap(),
        })
        .collect();
    recorded.sort_by(|a, b| (&a.release, a.index).cmp(&(&b.release, b.index)));
    assert!(recorded.iter().all(|r| !gone(r.pid)), "{recorded:?}");
    recorded
}

/// `(pid, addr, state)` of every instance, from `describe`.
fn described(release: &dyn Release) -> Vec<(i32, SocketAddr, String)> {
    release
        .describe()
        .iter()
        .map(|line| {
            let (head, state) = line.split_once(" (").unwrap();
            let (pid, addr) = head
                .strip_prefix("pid ")
                .unwrap()
                .split_once(" on ")
                .unwrap();
            let state = state.trim_end_matches(')').to_owned();
            (pid.parse().unwrap(), addr.parse().unwrap(), state)
        })
        .collect()
}

fn pgids_in(path: &Path) -> Vec<i32> {
    let file: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    file["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["pgid"].as_i64().unwrap() as i32)
        .collect()
}

#[tokio::test]
async fn the_next_daemon_adopts_what_a_killed_one_left_and_stops_the_rest() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hi").unwrap();
    let recorded = run_and_kill_earlier_daemon(dir.path(), "v1:2,v2:1");
    let (v1, v2): (Vec<_>, Vec<_>) = recorded.iter().partition(|r| r.release == "v1");
    assert_eq!((v1.len(), v2.len()), (2, 1), "{recorded:?}");

    // The next daemon, as `cutover serve` starts: read, then record over it.
    let children = dir.path().join("children.json");
    let leftovers = Leftovers::read(&children).unwrap();
    assert_eq!(leftovers.len(), 3);
    persist_children_to(children.clone()).unwrap();
    let recorded_again = pgids_in(&children);
    for r in &recorded {
        assert!(recorded_again.contains(&r.pid), "{r:?} not recorded again");
    }
    let platform = platform(dir.path()).with_leftovers(leftovers);

    assert!(platform.adopt(&release("v7", 2)).await.unwrap().is_none());
    let mut adopted = platform.adopt(&release("v1", 2)).await.unwrap().unwrap();
    assert_eq!((adopted.name(), adopted.version()), ("v1", "v1"));
    assert_eq!(adopted.instance_count(), 2);
    let now = described(adopted.as_ref());
    let expected: Vec<(i32, SocketAddr, String)> = v1
        .iter()
        .map(|r| (r.pid, r.addr, "ready, adopted".to_owned()))
        .collect();
    assert_eq!(now, expected);
    let mut addrs: Vec<SocketAddr> = v1.iter().map(|r| r.addr).collect();
    addrs.sort();
    let mut rx = adopted.health();
    assert_eq!(rx.borrow_and_update().ready, addrs);
    for addr in &addrs {
        assert_eq!(get(*addr, "/hello.txt").await, (200, "hi".to_owned()));
    }
    // Taken: not offered again.
    assert!(platform.adopt(&release("v1", 2)).await.unwrap().is_none());

    // Killed from outside: noticed though not our child, and restarted.
    let killed = v1[0];
    sigkill(killed.pid);
    let h = await_health(&mut rx, DEADLINE, |h| h.problem.is_some()).await;
    assert_eq!(
        h.problem.as_deref(),
        Some(
            format!(
                "instance 0 (pid {}) exited: exit status unknown (adopted from an earlier daemon)",
                killed.pid
            )
            .as_str()
        )
    );
    let h = await_health(&mut rx, DEADLINE, |h| h.ready.len() == 2).await;
    let now = described(adopted.as_ref());
    assert_ne!(now[0].0, killed.pid);
    assert_eq!(now[0].2, "ready, restarts: 1");
    assert!(h.ready.contains(&now[0].1));
    assert_eq!(now[1], (v1[1].pid, v1[1].addr, "ready, adopted".to_owned()));
    assert!(pgids_in(&children).contains(&now[0].0));

    // What was not adopted is stopped; what was, is not.
    let stopped = platform.stop_unadopted().await;
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert!(
        stopped[0].starts_with(&format!("pid {} (python3 -m http.server ", v2[0].pid)),
        "{stopped:?}"
    );
    assert_gone(v2[0].pid).await;
    assert!(platform.adopt(&release("v2", 1)).await.unwrap().is_none());
    assert!(!gone(v1[1].pid));
    assert_eq!(platform.stop_unadopted().await, Vec::<String>::new());

    // Stopping an adopted release stops adopted processes too, and waits for them.
    adopted.stop(Duration::from_secs(5)).await;
    for (pid, _, _) in &now {
        assert!(gone(*pid), "{pid} survived stop");
    }
    assert_eq!(pgids_in(&children), Vec::<i32>::new());
}

#[tokio::test]
async fn missing_and_unhealthy_instances_are_started_afresh() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let recorded = run_and_kill_earlier_daemon(dir.path(), "v1:3");
    // One has exited by the time the next daemon looks, another hangs.
    sigkill(recorded[2].pid);
    assert_gone(recorded[2].pid).await;
    kill(Pid::from_raw(recorded[1].pid), Signal::SIGSTOP).unwrap();

    let leftovers = Leftovers::read(&dir.path().join("children.json")).unwrap();
    assert_eq!(leftovers.len(), 2);
    let spec = LocalSpec {
        startup_timeout: Duration::from_millis(1500),
        ..local_spec(dir.path())
    };
    let platform = platform_with(spec, "/", dir.path()).with_leftovers(leftovers);
    let mut adopted = platform.adopt(&release("v1", 3)).await.unwrap().unwrap();
    assert_eq!(adopted.instance_count(), 3);
    let now = described(adopted.as_ref());
    assert_eq!(
        now[0],
        (
            recorded[0].pid,
            recorded[0].addr,
            "ready, adopted".to_owned()
        )
    );
    assert_ne!(now[1].0, recorded[1].pid);
    assert_eq!(now[1].2, "ready, restarts: 1");
    assert_gone(recorded[1].pid).await;
    assert_eq!(now[2].2, "ready");
    let mut ready: Vec<SocketAddr> = now.iter().map(|d| d.1).collect();
    ready.sort();
    assert_eq!(adopted.health().borrow().ready, ready);
    assert_eq!(platform.stop_unadopted().await, Vec::<String>::new());
    adopted.stop(Duration::from_secs(5)).await;
    for (pid, _, _) in &now {
        assert!(gone(*pid));
    }
}

#[tokio::test]
async fn an_adoption_that_cannot_be_completed_stops_what_it_adopted() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let recorded = run_and_kill_earlier_daemon(dir.path(), "v1:1");
    let leftovers = Leftovers::read(&dir.path().join("children.json")).unwrap();
    // The second instance cannot start: its working directory is gone.
    let spec = LocalSpec {
        workdir: dir.path().join("gone"),
        ..local_spec(dir.path())
    };
    let platform = platform_with(spec, "/", dir.path()).with_leftovers(leftovers);
    let err = platform
        .adopt(&release("v1", 2))
        .await
        .err()
        .expect("adopt must fail");
    let PlatformError::Adoption {
        release, adopted, ..
    } = &err
    else {
        panic!("wrong error: {err}");
    };
    assert_eq!((release.as_str(), *adopted), ("v1", 1));
    assert!(err.to_string().contains("working directory"), "{err}");
    assert_gone(recorded[0].pid).await;
    assert_eq!(platform.stop_unadopted().await, Vec::<String>::new());
}

/// A file as an earlier daemon would have written it, for one group.
fn write_group(path: &Path, pgid: i32, start_time: u64, session: i32, command: &str) {
    let file = json!({
        "daemon_pid": 1,
        "groups": [{
            "pgid": pgid, "start_time": start_time, "session": session, "command": command,
            "instance": {"release": "v1", "version": "v1", "index": 0, "addr": "127.0.0.1:9", "log": "/dev/null"},
        }],
    });
    std::fs::write(path, file.to_string()).unwrap();
}

/// Session (field 6) and start time (field 22) from `/proc/<pid>/stat`.
fn session_and_start(pid: i32) -> (i32, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    (
        fields[6 - 3].parse().unwrap(),
        fields[22 - 3].parse().unwrap(),
    )
}

#[tokio::test]
async fn a_reused_pid_is_neither_adopted_nor_stopped_and_another_command_is_not_adopted() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("children.json");
    let mut sleep = Command::new("sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = sleep.id() as i32;
    let (session, start_time) = session_and_start(pid);
    let port9 = "python3 -m http.server 9 --bind 127.0.0.1";

    // The recorded instance's pid, now someone else's.
    write_group(&left, pid, start_time + 1, session, port9);
    let next = platform(dir.path()).with_leftovers(Leftovers::read(&left).unwrap());
    assert!(next.adopt(&release("v1", 1)).await.unwrap().is_none());
    assert_eq!(next.stop_unadopted().await, Vec::<String>::new());
    assert_eq!(
        sleep.try_wait().unwrap(),
        None,
        "someone else's process stopped"
    );

    // The very process recorded, but not what v1 runs here: stopped, not adopted.
    write_group(&left, pid, start_time, session, "sleep 1000");
    let after = platform(dir.path()).with_leftovers(Leftovers::read(&left).unwrap());
    assert!(after.adopt(&release("v1", 1)).await.unwrap().is_none());
    assert_eq!(
        after.stop_unadopted().await,
        vec![format!("pid {pid} (sleep 1000)")]
    );
    assert!(!sleep.wait().unwrap().success());
}
