//! Releases grow and shrink a few instances at a time: `add_instances`, `detach`,
//! `stop_detached`, against real processes.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{
    HTTP_SERVER, assert_gone, await_health, get, gone, platform, platform_with, read_pids, spec,
};
use cutover_engine::platform::{Platform, PlatformError, Release, ReleaseSpec};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const DEADLINE: Duration = Duration::from_secs(15);

fn v1(instances: u32) -> ReleaseSpec {
    ReleaseSpec {
        name: "v1".into(),
        version: "v1".into(),
        instances,
    }
}

/// `(pid, addr, state)` of every instance, from `describe`.
fn described(release: &dyn Release) -> Vec<(i32, SocketAddr, String)> {
    release
        .describe()
        .iter()
        .map(|line| {
            let (head, state) = line.split_once(" (").unwrap();
            let mut words = head.strip_prefix("pid ").unwrap().split(" on ");
            let pid = words.next().unwrap().parse().unwrap();
            let addr = words.next().unwrap().parse().unwrap();
            (pid, addr, state.trim_end_matches(')').to_owned())
        })
        .collect()
}

#[tokio::test]
async fn added_instances_serve_and_detached_ones_run_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hi").unwrap();
    let platform = platform(HTTP_SERVER, dir.path());
    let mut release = platform.start(&v1(1)).await.unwrap();
    let (first_pid, first, _) = described(release.as_ref())[0].clone();

    release.add_instances(2).await.unwrap();
    assert_eq!(release.instance_count(), 3);
    let all = described(release.as_ref());
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].0, first_pid, "the first instance is untouched");
    assert!(all.iter().all(|d| d.2 == "ready"), "{all:?}");
    let mut addrs: Vec<SocketAddr> = all.iter().map(|d| d.1).collect();
    addrs.sort();
    assert_eq!(release.health().borrow().ready, addrs);
    for addr in &addrs {
        assert_eq!(get(*addr, "/hello.txt").await, (200, "hi".to_owned()));
    }
    // Logs per instance of the release.
    assert!(platform.log_path("v1", 2).exists());

    // All ready: the newest go.
    let detached = release.detach(2);
    assert_eq!(detached, vec![all[2].1, all[1].1]);
    assert_eq!(release.instance_count(), 1);
    assert_eq!(release.health().borrow().ready, vec![first]);
    let now = described(release.as_ref());
    assert_eq!(now[0].0, first_pid);
    assert_eq!(
        now[1..].iter().map(|d| d.2.as_str()).collect::<Vec<_>>(),
        ["detached"; 2]
    );
    // Still serving, for whatever is in flight.
    for addr in &detached {
        assert_eq!(get(*addr, "/hello.txt").await.0, 200);
    }

    release.stop_detached(Duration::from_secs(5)).await;
    for (pid, _, _) in &all[1..] {
        assert!(gone(*pid), "{pid} survived stop_detached");
    }
    assert!(!gone(first_pid));
    assert_eq!(described(release.as_ref()).len(), 1);
    assert_eq!(release.health().borrow().ready, vec![first]);
    assert_eq!(get(first, "/hello.txt").await.0, 200);
    // Nothing left to stop.
    release.stop_detached(Duration::from_secs(5)).await;

    // Grows again, on the indexes freed.
    release.add_instances(1).await.unwrap();
    assert_eq!(release.instance_count(), 2);
    assert_eq!(release.health().borrow().ready.len(), 2);

    release.stop(Duration::from_secs(5)).await;
    assert!(gone(first_pid));
    let err = release.add_instances(1).await.unwrap_err();
    assert!(matches!(err, PlatformError::Stopped { .. }), "{err}");
}

#[tokio::test]
async fn an_unready_instance_is_detached_before_newer_ready_ones() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(HTTP_SERVER, dir.path());
    let mut release = platform.start(&v1(3)).await.unwrap();
    let mut rx = release.health();
    let all = described(release.as_ref());
    // The oldest stops answering (and, stopped, ignores SIGTERM until killed).
    let (stuck, stuck_addr, _) = all[0];
    kill(Pid::from_raw(stuck), Signal::SIGSTOP).unwrap();
    await_health(&mut rx, DEADLINE, |h| !h.ready.contains(&stuck_addr)).await;

    assert_eq!(release.detach(1), vec![stuck_addr]);
    // Then the newest.
    assert_eq!(release.detach(1), vec![all[2].1]);
    assert_eq!(release.health().borrow().ready, vec![all[1].1]);
    release.stop_detached(Duration::from_millis(200)).await;
    assert!(gone(stuck) && gone(all[2].0));
    assert!(!gone(all[1].0));
    // More than there are: all of them.
    assert_eq!(release.detach(5), vec![all[1].1]);
    assert_eq!(release.instance_count(), 0);
    assert!(release.health().borrow().ready.is_empty());
    // `stop` stops detached instances too.
    release.stop(Duration::from_secs(5)).await;
    assert!(gone(all[1].0));
}

#[tokio::test]
async fn a_detached_instance_that_exits_is_not_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let command = [
        "sh",
        "-c",
        r#"echo $$ >> runs; exec python3 -m http.server "$0" --bind 127.0.0.1"#,
        "${PORT}",
    ];
    let platform = platform(&command, dir.path());
    let mut release = platform.start(&v1(2)).await.unwrap();
    let pids = read_pids(&dir.path().join("runs"), 2).await;
    let detached = release.detach(1);
    let (pid, _, _) = described(release.as_ref())
        .into_iter()
        .find(|d| d.1 == detached[0])
        .unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert_gone(pid).await;
    // Longer than the first backoff (1s): a wait is the only way to see that
    // something does not happen.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(read_pids(&dir.path().join("runs"), 2).await, pids);
    assert!(release.health().borrow().problem.is_none());
    release.stop_detached(Duration::from_secs(1)).await;
    assert_eq!(release.instance_count(), 1);
    release.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn instances_that_fail_to_start_are_stopped_and_the_others_untouched() {
    let dir = tempfile::tempdir().unwrap();
    // Serves until `broken` exists; from then on, a new instance starts something
    // of its own (recorded in `left`) and then exits.
    let command = [
        "sh",
        "-c",
        r#"if [ -e broken ]; then sleep 1000 & echo $! >> left; echo 'cannot start' >&2; exit 3; fi; exec python3 -m http.server "$0" --bind 127.0.0.1"#,
        "${PORT}",
    ];
    let platform = platform_with(spec(&command, dir.path()), "/", dir.path());
    let mut release = platform.start(&v1(2)).await.unwrap();
    let before = described(release.as_ref());
    let ready = release.health().borrow().ready.clone();

    std::fs::write(dir.path().join("broken"), "").unwrap();
    let err = release.add_instances(2).await.unwrap_err();
    let PlatformError::ExitedDuringStartup { status, .. } = &err else {
        panic!("wrong error: {err}");
    };
    assert!(status.contains("cannot start"), "{status}");
    for pid in read_pids(&dir.path().join("left"), 1).await {
        assert_gone(pid).await;
    }
    assert_eq!(described(release.as_ref()), before);
    assert_eq!(release.instance_count(), 2);
    assert_eq!(release.health().borrow().ready, ready);
    for addr in &ready {
        assert_eq!(get(*addr, "/").await.0, 200);
    }
    release.stop(Duration::from_secs(5)).await;
}
