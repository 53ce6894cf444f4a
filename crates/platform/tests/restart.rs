//! Instances that exit while their version serves are restarted, with a backoff,
//! until the release is stopped. Real processes, real (1s, 2s, ...) backoff.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{
    assert_gone, await_health, get, gone, platform, platform_healthy_while_ok_exists,
    platform_with, release_spec, sigkill, spec, start_v1,
};
use cutover_engine::platform::{Platform, Release};
use cutover_spec::LocalSpec;

const DEADLINE: Duration = Duration::from_secs(15);

/// `(pid, addr)` of every instance, from `describe`.
fn described(release: &dyn Release) -> Vec<(i32, SocketAddr)> {
    release
        .describe()
        .iter()
        .map(|line| {
            let mut words = line.strip_prefix("pid ").unwrap().split_whitespace();
            let pid = words.next().unwrap().parse().unwrap();
            assert_eq!(words.next(), Some("on"));
            (pid, words.next().unwrap().parse().unwrap())
        })
        .collect()
}

/// Lines of a file the test command appends to, once there are at least `n`.
async fn await_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} has {} lines, not {n}",
            path.display(),
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Writes `<start time in ns> <pid> <port>` to `runs` on every run; the first run
/// serves HTTP, later ones exit at once when `served` exists.
fn serves_once() -> Vec<&'static str> {
    vec![
        "sh",
        "-c",
        r#"echo "$(date +%s%N) $$ $0" >> runs; if [ -e served ]; then echo 'crashing'; exit 1; fi; touch served; exec python3 -m http.server "$0" --bind 127.0.0.1"#,
        "${PORT}",
    ]
}

fn field<T: std::str::FromStr>(line: &str, n: usize) -> T
where
    T::Err: std::fmt::Debug,
{
    line.split_whitespace().nth(n).unwrap().parse().unwrap()
}

#[tokio::test]
async fn killed_instances_come_back_on_new_ports() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hi").unwrap();
    let command = [
        "sh",
        "-c",
        r#"echo "run on $0"; exec python3 -m http.server "$0" --bind 127.0.0.1"#,
        "${PORT}",
    ];
    let spec = LocalSpec {
        instances: 2,
        ..spec(&command, dir.path())
    };
    let platform = platform_with(spec, "/", dir.path());
    let mut release = platform
        .start(&release_spec(&platform, "v1"))
        .await
        .unwrap();
    let mut rx = release.health();
    assert_eq!(rx.borrow_and_update().ready.len(), 2);
    let before = described(release.as_ref());

    let (pid0, addr0) = before[0];
    sigkill(pid0);
    let h = await_health(&mut rx, DEADLINE, |h| h.problem.is_some()).await;
    assert_eq!(h.ready, vec![before[1].1], "only the killed one left");
    assert_eq!(
        h.problem.as_deref(),
        Some(format!("instance 0 (pid {pid0}) exited: signal: 9 (SIGKILL)").as_str())
    );

    // Back on a fresh port, after one healthy check.
    let h = await_health(&mut rx, DEADLINE, |h| h.ready.len() == 2).await;
    let after = described(release.as_ref());
    let (pid0_new, addr0_new) = after[0];
    assert_ne!(pid0_new, pid0);
    assert_ne!(addr0_new, addr0);
    assert_eq!(after[1], before[1], "the other instance is untouched");
    assert!(h.ready.contains(&addr0_new), "{h:?}");
    assert_eq!(
        h.problem.as_deref(),
        Some(format!("instance 0 (pid {pid0}) exited: signal: 9 (SIGKILL)").as_str()),
        "the first problem stays on record"
    );
    assert_eq!(get(addr0_new, "/hello.txt").await, (200, "hi".to_owned()));
    assert_eq!(
        release.describe()[0],
        format!("pid {pid0_new} on {addr0_new} (ready, restarts: 1)")
    );
    assert!(release.describe()[1].ends_with("(ready)"));
    // Appended to the same log, with the new port.
    let log = std::fs::read_to_string(platform.log_path("v1", 0)).unwrap();
    assert!(log.contains(&format!("run on {}\n", addr0.port())), "{log}");
    assert!(
        log.contains(&format!("run on {}\n", addr0_new.port())),
        "{log}"
    );

    // With none left: all of them come back.
    for (pid, _) in &after {
        sigkill(*pid);
    }
    await_health(&mut rx, DEADLINE, |h| h.ready.is_empty()).await;
    let h = await_health(&mut rx, DEADLINE, |h| h.ready.len() == 2).await;
    let last = described(release.as_ref());
    for (pid, addr) in &last {
        assert!(!after.iter().any(|(p, _)| p == pid));
        assert!(h.ready.contains(addr));
    }
    assert!(release.describe()[0].ends_with("(ready, restarts: 2)"));
    assert!(release.describe()[1].ends_with("(ready, restarts: 1)"));

    release.stop(Duration::from_secs(5)).await;
    for (pid, _) in before.iter().chain(&after).chain(&last) {
        assert!(gone(*pid), "{pid} survived stop");
    }
    assert!(release.describe()[0].ends_with("(stopped, restarts: 2)"));
}

#[tokio::test]
async fn restarts_of_an_instance_that_keeps_exiting_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(&serves_once(), dir.path());
    let (mut release, mut rx, pid) = start_v1(&platform).await;

    let killed = now_nanos();
    sigkill(pid);
    // Run 1 served; runs 2 and 3 are restarts that exited at once.
    let runs = await_lines(&dir.path().join("runs"), 3).await;
    let started: Vec<u128> = runs.iter().map(|l| field(l, 0)).collect();
    let first_wait = Duration::from_nanos((started[1] - killed) as u64);
    let second_wait = Duration::from_nanos((started[2] - started[1]) as u64);
    assert!(first_wait >= Duration::from_secs(1), "{first_wait:?}");
    assert!(second_wait >= Duration::from_secs(2), "{second_wait:?}");
    assert!(
        second_wait > first_wait,
        "{first_wait:?} then {second_wait:?}"
    );
    let ports: Vec<u16> = runs.iter().map(|l| field(l, 2)).collect();
    assert!(
        ports[0] != ports[1] && ports[1] != ports[2],
        "a fresh port each time: {ports:?}"
    );

    // The third run exited (at once): waiting 4s for the next restart.
    let pid3: i32 = field(&runs[2], 1);
    let described_now = tokio::time::timeout(DEADLINE, async {
        loop {
            let line = release.describe()[0].clone();
            if line.contains("exited: exit status: 1") {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the third run never exited");
    assert_eq!(
        described_now.split_whitespace().nth(1),
        Some(pid3.to_string().as_str())
    );
    assert!(described_now.ends_with("restarts: 2)"), "{described_now}");
    let h = rx.borrow_and_update().clone();
    assert!(h.ready.is_empty());
    assert!(
        h.problem.as_deref().unwrap().contains("signal: 9"),
        "the first problem: {h:?}"
    );
    let log = std::fs::read_to_string(platform.log_path("v1", 0)).unwrap();
    assert_eq!(log.matches("crashing").count(), 2, "{log}");

    release.stop(Duration::from_secs(1)).await;
    for line in &runs {
        assert!(gone(field(line, 1)));
    }
}

#[tokio::test]
async fn stop_during_the_backoff_leaves_nothing_and_restarts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(&serves_once(), dir.path());
    let (mut release, mut rx, pid) = start_v1(&platform).await;

    sigkill(pid);
    await_health(&mut rx, DEADLINE, |h| h.problem.is_some()).await;
    let exited = std::time::Instant::now();
    assert!(release.describe()[0].contains("(exited: signal: 9"));
    release.stop(Duration::from_secs(1)).await;
    assert!(
        exited.elapsed() < Duration::from_secs(1),
        "stopped within the first backoff"
    );
    assert_gone(pid).await;
    assert_eq!(release.describe().len(), 1);
    assert!(release.describe()[0].ends_with("(stopped)"));

    // Nothing starts when the restart would have been due: a wait is the only way
    // to see that something does not happen.
    tokio::time::sleep_until((exited + Duration::from_millis(1500)).into()).await;
    assert_eq!(await_lines(&dir.path().join("runs"), 1).await.len(), 1);
    assert!(release.health().borrow().ready.is_empty());
}

#[tokio::test]
async fn failing_health_checks_do_not_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (platform, marker) = platform_healthy_while_ok_exists(dir.path());
    let (mut release, mut rx, _) = start_v1(&platform).await;
    let before = described(release.as_ref());
    std::fs::remove_file(&marker).unwrap();
    await_health(&mut rx, DEADLINE, |h| h.ready.is_empty()).await;
    std::fs::write(&marker, "ok").unwrap();
    await_health(&mut rx, DEADLINE, |h| !h.ready.is_empty()).await;
    assert_eq!(described(release.as_ref()), before);
    assert!(release.describe()[0].ends_with("(ready)"));
    release.stop(Duration::from_secs(5)).await;
}
