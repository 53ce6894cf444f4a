//! What an earlier daemon recorded with `persist_children_to` and left running is
//! read as `Leftovers` and, unless adopted, killed by `stop_unadopted`, and nothing
//! else. In a test binary of its own, its tests one at a time: the file being
//! written and the registry read leftovers join are process-wide.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{WITH_GRANDCHILD, assert_gone, gone, pids_file, platform, read_pids, release_spec};
use cutover_engine::platform::Platform;
use cutover_platform::{Leftovers, LocalPlatform, persist_children_to};
use serde_json::{Value, json};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

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

/// A file as the daemon wrote it before it recorded instances.
fn write_groups(path: &Path, pgid: i32, start_time: u64, session: i32) {
    let file = json!({
        "daemon_pid": 1,
        "groups": [{"pgid": pgid, "start_time": start_time, "session": session, "command": "sleep 1000"}],
    });
    std::fs::write(path, file.to_string()).unwrap();
}

fn recorded_groups(path: &Path) -> Vec<Value> {
    let file: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    file["groups"].as_array().unwrap().clone()
}

/// Reads `path` as leftovers into a platform that adopts nothing, and stops them.
async fn stop_leftovers(path: &Path) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let leftovers = Leftovers::read(path).unwrap();
    let platform: LocalPlatform = platform(&["true"], dir.path()).with_leftovers(leftovers);
    platform.stop_unadopted().await
}

#[tokio::test]
async fn a_crashed_daemons_instances_are_killed_by_the_next_one() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let children = dir.path().join("children.json");
    // What an earlier daemon wrote is never written over unread.
    write_groups(&children, i32::MAX - 3, 1, 1);
    let err = persist_children_to(children.clone()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("Leftovers::read"), "{err}");
    assert!(Leftovers::read(&children).unwrap().is_empty());
    persist_children_to(children.clone()).unwrap();
    assert_eq!(recorded_groups(&children), Vec::<Value>::new());

    let platform = platform(WITH_GRANDCHILD, dir.path());
    let mut release = platform
        .start(&release_spec(&platform, "v1"))
        .await
        .unwrap();
    let addr = release.health().borrow().ready[0];
    let pids = read_pids(&pids_file(dir.path(), addr.port()), 2).await;
    let (grandchild, leader) = (pids[0], pids[1]);

    let groups = recorded_groups(&children);
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["pgid"], leader);
    assert_eq!(groups[0]["start_time"], session_and_start(leader).1);
    let instance = &groups[0]["instance"];
    assert_eq!(instance["release"], "v1");
    assert_eq!(instance["version"], "v1");
    assert_eq!(instance["index"], 0);
    assert_eq!(instance["addr"], addr.to_string());
    assert_eq!(
        instance["log"],
        platform.log_path("v1", 0).to_str().unwrap()
    );

    // The daemon "crashes": the file is what it leaves behind, read by the next one.
    let left = dir.path().join("left-by-the-crashed-daemon.json");
    std::fs::copy(&children, &left).unwrap();
    let killed = stop_leftovers(&left).await;
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert!(
        killed[0].starts_with(&format!("pid {leader} (sh -c ")),
        "{killed:?}"
    );
    assert_gone(leader).await;
    assert_gone(grandchild).await;
    // Nothing left: nothing to do.
    assert_eq!(stop_leftovers(&left).await, Vec::<String>::new());
    // The file this process writes is not for it to read.
    assert!(Leftovers::read(&children).is_err());

    release.stop(Duration::from_secs(1)).await;
    assert_eq!(recorded_groups(&children), Vec::<Value>::new());
}

#[tokio::test]
async fn a_reused_pid_is_spared_and_the_recorded_process_is_not() {
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

    // Same pid, another start time: some other process that got the pid since.
    write_groups(&left, pid, start_time + 1, session);
    assert!(Leftovers::read(&left).unwrap().is_empty());
    assert_eq!(stop_leftovers(&left).await, Vec::<String>::new());
    std::thread::sleep(Duration::from_millis(100));
    assert!(!gone(pid), "a process not recorded was killed");
    assert_eq!(sleep.try_wait().unwrap(), None);

    write_groups(&left, pid, start_time, session);
    assert_eq!(Leftovers::read(&left).unwrap().len(), 1);
    assert_eq!(
        stop_leftovers(&left).await,
        vec![format!("pid {pid} (sleep 1000)")]
    );
    assert!(!sleep.wait().unwrap().success());
}

#[tokio::test]
async fn what_is_left_of_a_group_whose_leader_exited_is_killed() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("children.json");
    let (session, start_time) = session_and_start(std::process::id() as i32);
    let out = Command::new("sh")
        .args(["-c", "sleep 1000 >/dev/null 2>&1 & echo $!"])
        .process_group(0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let leader = out.id() as i32;
    let out = out.wait_with_output().unwrap();
    let orphan: i32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(gone(leader) && !gone(orphan));

    // The leader's start time is before the orphan's (and after this process's).
    write_groups(&left, leader, start_time, session);
    let killed = stop_leftovers(&left).await;
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert!(killed[0].contains("its leader had exited"), "{killed:?}");
    assert_gone(orphan).await;
}

#[test]
fn an_unreadable_file_is_an_error_and_stays() {
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("children.json");
    std::fs::write(&left, "{not json").unwrap();
    let err = Leftovers::read(&left).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("children.json"), "{err}");
    assert!(left.exists());
}

#[test]
fn a_missing_file_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let leftovers = Leftovers::read(&dir.path().join("children.json")).unwrap();
    assert!(leftovers.is_empty());
}
