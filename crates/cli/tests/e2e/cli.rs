//! The CLI around the daemon: `watch`, `status --watch`, errors as JSON, plain
//! output off a terminal, shell completions and the manual page.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout};
use tokio::time::Instant;

use crate::support::{Env, Faults, Output};

/// The one JSON object a failed `--json` command printed, with its exit code checked.
#[track_caller]
fn json_error(out: &Output, exit: i32) -> Value {
    out.code(exit);
    let error: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {}", out.stdout));
    assert!(
        error["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{error}"
    );
    assert!(
        out.stderr.is_empty(),
        "with --json, stderr too: {}",
        out.stderr
    );
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_the_run_in_progress_to_its_end_like_deploy() {
    let (env, load, deploying) = Env::canary_paused_at_half().await;
    let mut watch = env.spawn(&["watch"]);
    let mut lines = stdout_lines(&mut watch);
    // The heading says it found the run; promoting from here on cannot be missed.
    let mut watched = read_until(&mut lines, "the heading", |l| l.starts_with("run ")).await;
    env.cutover(&["promote"]).await.code(0);
    watched += &read_until(&mut lines, "the receipts line", |l| {
        l.starts_with("receipts: ")
    })
    .await;
    let status = tokio::time::timeout(Duration::from_secs(60), watch.wait())
        .await
        .expect("watch did not exit after the run ended")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{watched}");
    let deployed = deploying.await.unwrap();
    deployed.code(0);
    load.stop().await;
    assert!(watched.contains("v2 is live"), "{watched}");
    // The same heading, events (replayed from the first), last word and receipts.
    assert_eq!(watched, deployed.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replays_a_finished_run_with_its_exit_code_and_json_lines() {
    let (env, load, deploying) = Env::canary_paused_at_half().await;
    env.cutover(&["abort"]).await.code(0);
    deploying.await.unwrap().code(5);
    load.stop().await;
    let run_id = env.api_get("/api/v1/runs?limit=1").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.cutover(&["watch", &run_id]).await.code(5);
    let json = env.cutover(&["watch", &run_id, "--json"]).await;
    json.code(5);
    let events: Vec<Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events.first().unwrap()["seq"], 1, "{}", json.stdout);
    assert_eq!(
        events.last().unwrap()["outcome"],
        "aborted",
        "{}",
        json.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_without_a_run_in_progress_or_with_a_bad_id_exits_2() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    env.deploy("v1").await.code(0);
    let none = env.cutover(&["watch"]).await;
    none.code(2);
    assert!(
        none.stderr.contains("no rollout in progress"),
        "{}",
        none.stderr
    );
    let error = json_error(&env.cutover(&["watch", "--json"]).await, 2);
    assert_eq!(error["code"], "no_active_run");
    let unknown = json_error(
        &env.cutover(&["watch", "20990101T000000Z-v9", "--json"])
            .await,
        2,
    );
    assert_eq!(unknown["code"], "no_such_run");
    let bad = json_error(&env.cutover(&["watch", "../status", "--json"]).await, 2);
    assert_eq!(bad["code"], "usage");
    assert!(
        bad["error"].as_str().unwrap().contains("argument RUN"),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_json_every_error_is_a_json_object_on_stdout_with_the_same_exit_code() {
    let mut env = Env::new(Faults::none());
    // No daemon yet: exit 1.
    let no_daemon = json_error(&env.cutover(&["status", "--json"]).await, 1);
    assert_eq!(no_daemon["code"], "internal");
    let unreachable = json_error(
        &env.cutover(&["status", "--json", "--api", "127.0.0.1:1"])
            .await,
        1,
    );
    assert_eq!(unreachable["code"], "unreachable");
    // Arguments clap refuses, and a version the CLI refuses: exit 2.
    let missing = json_error(&env.cutover(&["deploy", "--json"]).await, 2);
    assert_eq!(missing["code"], "usage");
    assert!(
        missing["error"].as_str().unwrap().contains("<VERSION>"),
        "{missing}"
    );
    let bad_version = json_error(&env.cutover(&["deploy", "v 2", "--json"]).await, 2);
    assert_eq!(bad_version["code"], "usage");
    env.serve().await;
    // What the daemon refuses keeps the daemon's code.
    let nothing = json_error(&env.cutover(&["promote", "--json"]).await, 2);
    assert_eq!(nothing["code"], "no_active_run");
    let wrong_token = json_error(
        &env.cutover_with(&["abort", "--json"], &[("CUTOVER_TOKEN", "0000")])
            .await,
        2,
    );
    assert_eq!(wrong_token["code"], "unauthorized");
    // Without --json the same error is words on stderr, nothing on stdout.
    let words = env.cutover(&["promote"]).await;
    words.code(2);
    assert!(words.stdout.is_empty(), "{}", words.stdout);
    assert!(words.stderr.starts_with("error: "), "{}", words.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_to_a_file_or_pipe_has_no_colour_codes() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    env.deploy("v1").await.code(0);
    let status = env.cutover(&["status"]).await;
    status.code(0);
    // The daemon's log went to a file; every command's output here to a pipe.
    for (what, text) in [
        ("daemon log", env.daemon_log()),
        ("status", status.stdout),
        ("help", env.cutover(&["--help"]).await.stdout),
    ] {
        assert!(!text.is_empty(), "{what} said nothing");
        assert!(!text.contains('\x1b'), "{what} has escape codes: {text:?}");
    }
}

type Lines = tokio::io::Lines<BufReader<ChildStdout>>;

fn stdout_lines(child: &mut Child) -> Lines {
    BufReader::new(child.stdout.take().expect("spawned with stdout piped")).lines()
}

/// Reads lines until one satisfies `ok`, returning every line read.
async fn read_until(lines: &mut Lines, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("never saw {what}; saw:\n{seen}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the output ended before {what}; saw:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if ok(&line) {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_prints_the_status_again_when_it_changes() {
    let (env, load, deploying) = Env::canary_paused_at_half().await;
    let mut watch = env.spawn(&["status", "--watch"]);
    let mut lines = stdout_lines(&mut watch);
    let paused = read_until(&mut lines, "the rollout at 50%", |l| {
        l.starts_with("rollout  ") && l.ends_with("step 1/1 at 50%")
    })
    .await;
    assert!(paused.contains("\ncanary   v2: 50% of traffic"), "{paused}");
    env.cutover(&["promote"]).await.code(0);
    let promoted = read_until(&mut lines, "v2 alone", |l| {
        l.starts_with("stable   v2: 100% of traffic")
    })
    .await;
    deploying.await.unwrap().code(0);
    load.stop().await;
    assert!(
        !promoted.contains('\x1b'),
        "a pipe got escape codes: {promoted:?}"
    );

    let mut json = env.spawn(&["status", "--watch", "--json"]);
    let first = read_until(&mut stdout_lines(&mut json), "a JSON status", |_| true).await;
    let status: Value = serde_json::from_str(first.trim()).unwrap();
    assert_eq!(status["stable"], "v2", "{status}");
    assert!(status["active_run"].is_null(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_for_each_shell_and_a_manual_page() {
    let env = Env::new(Faults::none());
    for (shell, mark) in [
        ("bash", "_cutover()"),
        ("zsh", "#compdef cutover"),
        ("fish", "complete -c cutover"),
    ] {
        let out = env.cutover(&["completions", shell]).await;
        out.code(0);
        assert!(out.stdout.contains(mark), "{shell}: {}", out.stdout);
        assert!(out.stdout.contains("watch"), "{shell} lacks `watch`");
        assert!(out.stdout.contains("logs"), "{shell} lacks `logs`");
    }
    let bash = env.cutover(&["completions", "bash"]).await.stdout;
    match std::process::Command::new("bash")
        .args(["-n", "-c", &bash])
        .output()
    {
        Ok(check) => assert!(
            check.status.success(),
            "bash cannot parse its completions: {}",
            String::from_utf8_lossy(&check.stderr)
        ),
        Err(e) => eprintln!("SKIPPED: the bash syntax check of the completions: no bash ({e})"),
    }
    let unknown = env.cutover(&["completions", "tcsh"]).await;
    unknown.code(2);
    assert!(
        unknown.stderr.contains("possible values"),
        "{}",
        unknown.stderr
    );

    let man = env.cutover(&["man"]).await;
    man.code(0);
    assert!(man.stdout.contains(".TH cutover 1"), "{}", man.stdout);
    assert!(man.stdout.contains(".SH NAME"), "{}", man.stdout);
    assert!(man.stdout.contains("watch"), "{}", man.stdout);
    assert!(man.stdout.contains("logs"), "{}", man.stdout);
}
