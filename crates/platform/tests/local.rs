//! LocalPlatform against real processes: python3's http.server as the instance.

mod common;

use std::time::Duration;

use common::{
    HTTP_SERVER, WITH_GRANDCHILD, assert_gone, await_health, get, gone, pid_of, pids_file,
    platform, platform_healthy_while_ok_exists, platform_with, read_pids, release_spec, sigkill,
    spec, start_v1,
};
use cutover_engine::platform::{Platform, PlatformError, ReleaseSpec};
use cutover_platform::LocalPlatform;

const DEADLINE: Duration = Duration::from_secs(10);

/// Starts `version`, which must fail; the error.
async fn start_fails(platform: &LocalPlatform, version: &str) -> PlatformError {
    platform
        .start(&release_spec(platform, version))
        .await
        .err()
        .expect("start must fail")
}

#[tokio::test]
async fn starts_and_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hi there").unwrap();
    let logs = dir.path().join("logs");
    let platform = platform(HTTP_SERVER, dir.path());

    let mut release = platform
        .start(&release_spec(&platform, "v1"))
        .await
        .unwrap();
    assert_eq!(release.version(), "v1");
    let h = release.health().borrow().clone();
    assert_eq!(h.ready.len(), 1);
    assert_eq!(h.problem, None);
    let addr = h.ready[0];
    assert!(addr.ip().is_loopback());
    assert_eq!(get(addr, "/hello.txt").await, (200, "hi there".to_owned()));

    let pid = pid_of(&*release);
    assert_eq!(
        release.describe(),
        vec![format!("pid {pid} on {addr} (ready)")]
    );
    assert!(logs.join("v1-0.log").exists());

    release.stop(Duration::from_secs(5)).await;
    assert!(gone(pid));
    assert!(release.health().borrow().ready.is_empty());
    assert_eq!(
        release.describe(),
        vec![format!("pid {pid} on {addr} (stopped)")]
    );
    // Idempotent.
    release.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn two_instances_on_distinct_ports_see_their_port_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(
        &[
            "sh",
            "-c",
            r#"echo "I am $APP_VERSION on $APP_PORT" > "id-$APP_PORT.txt"; echo "started $APP_VERSION"; exec python3 -m http.server "$APP_PORT" --bind 127.0.0.1"#,
        ],
        dir.path(),
    );
    spec.instances = 2;
    spec.env.insert("APP_PORT".into(), "${PORT}".into());
    spec.env.insert("APP_VERSION".into(), "${VERSION}".into());
    let logs = dir.path().join("logs");
    let platform = platform_with(spec, "/", dir.path());

    let mut release = platform
        .start(&release_spec(&platform, "v7"))
        .await
        .unwrap();
    let ready = release.health().borrow().ready.clone();
    assert_eq!(ready.len(), 2);
    assert_ne!(ready[0].port(), ready[1].port());
    assert!(ready[0] < ready[1], "ready is sorted: {ready:?}");
    for addr in &ready {
        let port = addr.port();
        let (status, body) = get(*addr, &format!("/id-{port}.txt")).await;
        assert_eq!(
            (status, body.as_str()),
            (200, format!("I am v7 on {port}\n").as_str())
        );
    }
    let described = release.describe();
    assert_eq!(described.len(), 2);
    assert!(
        described.iter().all(|d| d.ends_with("(ready)")),
        "{described:?}"
    );
    for index in 0..2 {
        let log = std::fs::read_to_string(logs.join(format!("v7-{index}.log"))).unwrap();
        assert!(log.contains("started v7"), "{log}");
    }
    release.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn two_releases_of_one_version_run_side_by_side_with_port_and_version_in_their_environment() {
    let dir = tempfile::tempdir().unwrap();
    // No `${PORT}` anywhere: the environment alone says where to listen.
    let command = [
        "sh",
        "-c",
        r#"echo "$PORT $VERSION" > "env-$PORT.txt"; echo "started"; exec python3 -m http.server "$PORT" --bind 127.0.0.1"#,
    ];
    let platform = platform(&command, dir.path());
    let spec = |name: &str| ReleaseSpec {
        name: name.into(),
        version: "v3".into(),
        instances: 1,
    };
    let mut stable = platform.start(&spec("v3")).await.unwrap();
    let mut baseline = platform.start(&spec("v3.baseline")).await.unwrap();
    assert_eq!((baseline.name(), baseline.version()), ("v3.baseline", "v3"));
    let mut addrs = Vec::new();
    for release in [&stable, &baseline] {
        let addr = release.health().borrow().ready[0];
        let port = addr.port();
        let (status, body) = get(addr, &format!("/env-{port}.txt")).await;
        assert_eq!((status, body), (200, format!("{port} v3\n")));
        addrs.push(addr);
    }
    assert_ne!(addrs[0], addrs[1]);
    for name in ["v3", "v3.baseline"] {
        let log = std::fs::read_to_string(platform.log_path(name, 0)).unwrap();
        assert_eq!(log.matches("started").count(), 1, "{name}: {log}");
    }
    stable.stop(Duration::from_secs(5)).await;
    baseline.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_configured_environment_may_set_port_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(
        &[
            "sh",
            "-c",
            r#"echo "$PORT $VERSION" > env.txt; exec python3 -m http.server "$0" --bind 127.0.0.1"#,
            "${PORT}",
        ],
        dir.path(),
    );
    spec.env.insert("PORT".into(), "port ${PORT}".into());
    let platform = platform_with(spec, "/", dir.path());
    let (mut release, rx, _) = start_v1(&platform).await;
    let addr = rx.borrow().ready[0];
    let (_, body) = get(addr, "/env.txt").await;
    assert_eq!(body, format!("port {} v1\n", addr.port()));
    release.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_missing_command_is_a_spawn_error() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(&["cutover-no-such-command-xyz", "${PORT}"], dir.path());
    let err = start_fails(&platform, "v1").await;
    let PlatformError::Spawn {
        version,
        instance,
        message,
    } = &err
    else {
        panic!("wrong error: {err}");
    };
    assert_eq!((version.as_str(), *instance), ("v1", 0));
    assert!(message.contains("cutover-no-such-command-xyz"), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
}

#[tokio::test]
async fn a_missing_workdir_is_a_spawn_error_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform_with(
        spec(HTTP_SERVER, &dir.path().join("nowhere")),
        "/",
        dir.path(),
    );
    let err = start_fails(&platform, "v1").await;
    assert!(matches!(err, PlatformError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("working directory"), "{err}");
}

#[tokio::test]
async fn the_second_instance_failing_to_spawn_stops_the_first() {
    let dir = tempfile::tempdir().unwrap();
    // An argument no other process has, to find the first instance by.
    let marker = format!("{}.{}", 1000 + std::process::id() % 1000, fastrand_nanos());
    let mut spec = spec(&["sleep", &marker], dir.path());
    spec.instances = 2;
    let logs = dir.path().join("logs");
    // A directory where the second instance's log file should be: cannot be opened.
    std::fs::create_dir_all(logs.join("v1-1.log")).unwrap();
    let platform = platform_with(spec, "/", dir.path());
    let err = start_fails(&platform, "v1").await;
    let PlatformError::Spawn {
        instance, message, ..
    } = &err
    else {
        panic!("wrong error: {err}");
    };
    assert_eq!(*instance, 1);
    assert!(message.contains("v1-1.log"), "{message}");
    assert!(
        logs.join("v1-0.log").is_file(),
        "the first instance was started"
    );
    let left = processes_with_arg(&marker);
    assert!(left.is_empty(), "left running: {left:?}");
}

fn fastrand_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// Live processes with `arg` in their command line.
fn processes_with_arg(arg: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
                && !gone(*pid)
        })
        .collect()
}

#[tokio::test]
async fn exiting_during_startup_reports_the_status_and_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(
        &["sh", "-c", "echo 'fatal: cannot open database' >&2; exit 3"],
        dir.path(),
    );
    let err = start_fails(&platform, "v2").await;
    let PlatformError::ExitedDuringStartup {
        version,
        instance,
        status,
    } = &err
    else {
        panic!("wrong error: {err}");
    };
    assert_eq!((version.as_str(), *instance), ("v2", 0));
    assert!(status.starts_with("exit status: 3"), "{status}");
    assert!(status.contains("fatal: cannot open database"), "{status}");
}

#[tokio::test]
async fn never_listening_is_a_startup_timeout_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(&["sleep", "30"], dir.path());
    spec.startup_timeout = Duration::from_millis(600);
    let platform = platform_with(spec, "/", dir.path());
    let started = std::time::Instant::now();
    let err = start_fails(&platform, "v3").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let PlatformError::StartupTimeout {
        version,
        timeout,
        last,
    } = &err
    else {
        panic!("wrong error: {err}");
    };
    assert_eq!(
        (version.as_str(), *timeout),
        ("v3", Duration::from_millis(600))
    );
    assert!(last.contains("connection refused"), "{last}");
    let pid: i32 = last
        .split("pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {last}"));
    assert_gone(pid).await;
}

#[tokio::test]
async fn an_instance_killed_from_outside_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(HTTP_SERVER, dir.path());
    let (mut release, mut rx, pid) = start_v1(&platform).await;
    assert_eq!(rx.borrow_and_update().ready.len(), 1);

    sigkill(pid);
    let h = await_health(&mut rx, DEADLINE, |h| h.problem.is_some()).await;
    assert!(h.ready.is_empty(), "{h:?}");
    assert_eq!(
        h.problem.as_deref(),
        Some(format!("instance 0 (pid {pid}) exited: signal: 9 (SIGKILL)").as_str())
    );
    assert!(
        release.describe()[0].contains("(exited: signal: 9"),
        "{:?}",
        release.describe()
    );
    release.stop(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn failing_health_checks_take_an_instance_out_until_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (platform, marker) = platform_healthy_while_ok_exists(dir.path());
    let (mut release, mut rx, pid) = start_v1(&platform).await;
    let addr = rx.borrow_and_update().ready[0];

    std::fs::remove_file(&marker).unwrap();
    let h = await_health(&mut rx, DEADLINE, |h| h.ready.is_empty()).await;
    assert_eq!(
        h.problem.as_deref(),
        Some(
            format!("instance 0 (pid {pid}, {addr}) failed 2 health checks: HTTP 404 Not Found")
                .as_str()
        )
    );
    assert!(
        release.describe()[0].ends_with("(unhealthy)"),
        "{:?}",
        release.describe()
    );

    std::fs::write(&marker, "ok").unwrap();
    let h = await_health(&mut rx, DEADLINE, |h| !h.ready.is_empty()).await;
    assert_eq!(h.ready, vec![addr]);
    assert!(h.problem.is_some(), "the problem stays on record");
    release.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn stop_kills_the_whole_group_and_drop_kills_too() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(WITH_GRANDCHILD, dir.path());

    // stop(): polite, and nothing of the group survives.
    let mut release = platform
        .start(&release_spec(&platform, "v1"))
        .await
        .unwrap();
    let port = release.health().borrow().ready[0].port();
    let pids = read_pids(&pids_file(dir.path(), port), 2).await;
    assert!(pids.iter().all(|p| !gone(*p)));
    release.stop(Duration::from_secs(5)).await;
    for pid in &pids {
        assert!(gone(*pid), "{pid} survived stop");
    }

    // Drop without stop: SIGKILL, synchronously.
    std::fs::remove_file(pids_file(dir.path(), port)).unwrap();
    let release = platform
        .start(&release_spec(&platform, "v2"))
        .await
        .unwrap();
    let port = release.health().borrow().ready[0].port();
    let pids = read_pids(&pids_file(dir.path(), port), 2).await;
    drop(release);
    for pid in pids {
        assert_gone(pid).await;
    }
}

#[tokio::test]
async fn stop_escalates_to_sigkill_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let command = [
        "sh",
        "-c",
        r#"trap '' TERM; python3 -c 'import signal,sys,http.server; signal.signal(signal.SIGTERM, signal.SIG_IGN); http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, port=int(sys.argv[1]), bind="127.0.0.1")' "$0""#,
        "${PORT}",
    ];
    let platform = platform(&command, dir.path());
    let (mut release, _, pid) = start_v1(&platform).await;
    let started = std::time::Instant::now();
    release.stop(Duration::from_millis(300)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "did not wait for the grace: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(gone(pid));
}

#[tokio::test]
async fn a_relative_command_runs_from_the_workdir() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    let script = app.join("serve.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nexec python3 -m http.server \"$1\" --bind 127.0.0.1\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(app.join("where.txt"), "in app").unwrap();
    let platform = platform_with(
        spec(&["./serve.sh", "${PORT}"], &app),
        "/where.txt",
        dir.path(),
    );
    let mut release = platform
        .start(&release_spec(&platform, "v1"))
        .await
        .unwrap();
    let addr = release.health().borrow().ready[0];
    assert_eq!(get(addr, "/where.txt").await, (200, "in app".to_owned()));
    release.stop(Duration::from_secs(5)).await;
}

/// A platform whose instance fails with "Address already in use" the first
/// `failures` times it runs in `dir` (counted in the file `runs`), then serves.
fn failing_to_bind(dir: &std::path::Path, failures: u32) -> LocalPlatform {
    let script = format!(
        r#"echo "$0" >> runs; if [ "$(wc -l < runs)" -le {failures} ]; then echo 'OSError: [Errno 98] Address already in use' >&2; exit 1; fi; exec python3 -m http.server "$0" --bind 127.0.0.1"#
    );
    platform(&["sh", "-c", &script, "${PORT}"], dir)
}

fn runs(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn an_address_in_use_at_startup_is_retried_once_on_another_port() {
    let dir = tempfile::tempdir().unwrap();
    let platform = failing_to_bind(dir.path(), 1);
    let mut release = platform
        .start(&release_spec(&platform, "v1"))
        .await
        .unwrap();
    let runs = runs(dir.path());
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_ne!(runs[0], runs[1], "the retry must get another port");
    let ready = release.health().borrow().ready.clone();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].port().to_string(), runs[1]);
    assert_eq!(release.describe().len(), 1);
    let pid = pid_of(release.as_ref());
    release.stop(Duration::from_secs(1)).await;
    assert_gone(pid).await;
}

#[tokio::test]
async fn an_address_in_use_twice_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let platform = failing_to_bind(dir.path(), 2);
    let err = start_fails(&platform, "v1").await;
    let PlatformError::ExitedDuringStartup { status, .. } = &err else {
        panic!("wrong error: {err}");
    };
    assert!(
        status.contains(
            "after a retry on another port; does `platform.local.command` listen on the \
             `${PORT}` it is given?"
        ),
        "{status}"
    );
    assert!(status.contains("Address already in use"), "{status}");
    assert_eq!(runs(dir.path()).len(), 2);
}

#[tokio::test]
async fn other_exits_during_startup_are_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(&["sh", "-c", "echo run >> runs; exit 1"], dir.path());
    // An earlier run's complaint in the same log does not count.
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    std::fs::write(
        platform.log_path("v1", 0),
        "OSError: [Errno 98] Address already in use\n",
    )
    .unwrap();
    start_fails(&platform, "v1").await;
    assert_eq!(runs(dir.path()).len(), 1);
}
