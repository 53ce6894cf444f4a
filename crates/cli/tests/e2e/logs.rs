//! Captured output: kept per run and instance, rotated, read back with `cutover
//! logs` (and followed across rotations), and judged by the log check.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use crate::support::{Env, Faults};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_logging_an_error_its_baseline_never_logs_is_rolled_back_and_the_template_listed()
{
    let mut env = Env::new(Faults::new("v2:log-errors"))
        .with_more_analysis("  logs: { new_errors: fail, min_count: 3 }");
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    let out = env.deploy("v2").await;
    out.code(3);
    assert!(out.stdout.contains("error template"), "{}", out.stdout);
    load.stop().await;
    let receipts = env.last_receipts().await;
    let row = new_error_row(&receipts);
    assert!(row.contains("`ERROR request "), "no example line: {row}");

    // v2's instances wrote into the folder of the run that started them.
    let run_id = receipts.file_name().unwrap();
    let logs = env.state_dir().join("logs").join(run_id);
    for instance in ["v2-0.log", "v2-1.log"] {
        assert!(logs.join(instance).exists(), "no {instance} in {logs:?}");
    }
    let tail = env
        .cutover(&["logs", "v2", "--instance", "0", "--lines", "5"])
        .await;
    tail.code(0);
    assert!(tail.stdout.lines().count() <= 5, "{}", tail.stdout);
    assert!(tail.stdout.contains("ERROR request "), "{}", tail.stdout);
    let both = env.cutover(&["logs", "v2", "--lines", "1"]).await;
    both.code(0);
    assert!(
        both.stdout.starts_with("[0] ") && both.stdout.contains("\n[1] "),
        "{}",
        both.stdout
    );

    let unknown = env.cutover(&["logs", "v9"]).await;
    unknown.code(2);
    assert!(
        unknown.stderr.contains("versions with logs: v1, v2"),
        "{}",
        unknown.stderr
    );
    let no_instance = env.cutover(&["logs", "v2", "--instance", "7"]).await;
    no_instance.code(2);
    assert!(
        no_instance.stderr.contains("its instances: 0, 1"),
        "{}",
        no_instance.stderr
    );
    let no_run = env.cutover(&["logs", "v2", "--run", "nope"]).await;
    no_run.code(2);
    assert!(
        no_run.stderr.contains(&format!(
            "runs with logs of `v2`: {}",
            run_id.to_string_lossy()
        )),
        "{}",
        no_run.stderr
    );
    let bad = env.cutover(&["logs", "v 2"]).await;
    bad.code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_goes_on_across_rotations_without_repeating_a_line() {
    let mut env = Env::new(Faults::new("v1:log-errors"))
        .with_instances(1)
        .with_sections("logs: { max_size: 4KiB, keep: 2 }\n");
    env.serve().await;
    env.deploy("v1").await.code(0);
    let mut follow = env.spawn(&["logs", "v1", "--follow", "--lines", "0"]);
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let load = env.load();
    let run = env.last_receipts().await;
    let log = env
        .state_dir()
        .join("logs")
        .join(run.file_name().unwrap())
        .join("v1-0.log");
    let second_rotation = log.with_extension("log.2");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut numbers: Vec<u64> = Vec::new();
    while numbers.len() < 300 || !second_rotation.exists() {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "followed {} lines, rotated twice: {}",
                    numbers.len(),
                    second_rotation.exists()
                )
            })
            .unwrap()
            .expect("the followed log ended");
        if let Some(n) = request_number(&line) {
            numbers.push(n);
        }
    }
    load.stop().await;
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "a line twice or out of order: {numbers:?}"
    );
    // Copy-truncate may lose what is written between the copy and the truncation.
    let range = numbers[numbers.len() - 1] - numbers[0] + 1;
    assert!(
        numbers.len() as u64 * 100 >= range * 95,
        "{} of {range} lines followed: {numbers:?}",
        numbers.len()
    );
    assert!(
        std::fs::metadata(&log).unwrap().len() < 64 * 1024,
        "the log was not kept small"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_runs_log_folders_are_removed_but_the_newest_and_the_serving_version_s() {
    let mut env = Env::new(Faults::none())
        .with_instances(1)
        .with_sections("logs: { keep_runs: 1 }\n");
    env.serve().await;
    let mut runs = Vec::new();
    env.deploy("v1").await.code(0);
    runs.push(env.last_receipts().await.file_name().unwrap().to_owned());
    let load = env.load();
    for version in ["v2", "v3"] {
        env.deploy(version).await.code(0);
        runs.push(env.last_receipts().await.file_name().unwrap().to_owned());
    }
    load.stop().await;
    let logs = env.state_dir().join("logs");
    let [first, second, third] = [0, 1, 2].map(|i| logs.join(&runs[i]));
    // v3 serves from the newest; v1 and v2 were stopped in later runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.exists() || second.exists() {
        assert!(
            Instant::now() < deadline,
            "old runs' folders kept: {:?}",
            std::fs::read_dir(&logs)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        third.join("v3-0.log").exists(),
        "the serving version's log went"
    );
    let gone = env
        .cutover(&["logs", "v1", "--run", &runs[0].to_string_lossy()])
        .await;
    gone.code(2);
    assert!(env.daemon_log().contains("removed an old run's logs"));
}

/// The row of `canary-analysis.md` in `receipts` listing the sample app's
/// `log-errors` template, a new one.
pub fn new_error_row(receipts: &std::path::Path) -> String {
    let analysis = std::fs::read_to_string(receipts.join("canary-analysis.md")).unwrap();
    let template = "`ERROR request <*> failed: payment gateway timed out after <*>`";
    let row = analysis
        .lines()
        .find(|l| l.contains(template))
        .unwrap_or_else(|| panic!("no row of {template}:\n{analysis}"));
    assert!(row.contains("| new |"), "{row}");
    row.to_owned()
}

/// `N` of the sample app's `ERROR request N failed: ...`.
fn request_number(line: &str) -> Option<u64> {
    line.strip_prefix("ERROR request ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}
