//! Hooks run real commands: they see the run's facts in their environment, their
//! output lands in files in the receipts folder, and a failure or a timeout is in
//! the report.

use std::path::Path;
use std::time::Duration;

use cutover_pipeline::Exit;
use cutover_pipeline::{HookPoint, RunFacts, run_hook};
use cutover_spec::HookCommand;

fn facts(receipts: &Path) -> RunFacts {
    RunFacts {
        app: "shop".into(),
        version: "v2".into(),
        previous_version: Some("v1".into()),
        run_id: "shop-run-7".into(),
        outcome: Some("rolled_back".into()),
        reason: Some("error rate 12% > 5%".into()),
        receipts_dir: receipts.to_path_buf(),
    }
}

fn sh(script: &str, workdir: &Path, timeout: Duration) -> HookCommand {
    HookCommand {
        run: vec!["sh".into(), "-c".into(), script.into()],
        timeout,
        workdir: workdir.to_path_buf(),
    }
}

#[tokio::test]
async fn a_hook_sees_the_runs_facts_and_its_output_lands_in_the_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let receipts = dir.path().join("runs/shop-run-7");
    let script = "for v in APP VERSION PREVIOUS_VERSION RUN_ID OUTCOME REASON RECEIPTS_DIR STAGE; do \
                  eval echo \"CUTOVER_$v=\\$CUTOVER_$v\"; done; pwd; echo oops >&2";
    let commands = [
        sh(script, dir.path(), Duration::from_secs(30)),
        HookCommand {
            run: vec!["echo".into(), "second".into(), "$CUTOVER_APP".into()],
            timeout: Duration::from_secs(30),
            workdir: dir.path().to_path_buf(),
        },
    ];
    let report = run_hook(HookPoint::OnRollback, &commands, &facts(&receipts)).await;
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.ran.len(), 2);

    let log = std::fs::read_to_string(receipts.join("hooks/on_rollback-1.log")).unwrap();
    let expected = format!(
        "CUTOVER_APP=shop\nCUTOVER_VERSION=v2\nCUTOVER_PREVIOUS_VERSION=v1\n\
         CUTOVER_RUN_ID=shop-run-7\nCUTOVER_OUTCOME=rolled_back\n\
         CUTOVER_REASON=error rate 12% > 5%\nCUTOVER_RECEIPTS_DIR={}\n\
         CUTOVER_STAGE=on_rollback\n{}\noops\n",
        receipts.display(),
        dir.path().canonicalize().unwrap().display()
    );
    assert_eq!(log, expected);
    assert_eq!(report.ran[0].log, "hooks/on_rollback-1.log");
    assert_eq!(report.ran[0].output_tail, expected);
    // No shell unless asked for: the argv is passed as written.
    let second = std::fs::read_to_string(receipts.join("hooks/on_rollback-2.log")).unwrap();
    assert_eq!(second, "second $CUTOVER_APP\n");

    let md = report.to_markdown();
    assert!(md.starts_with("## Hook `on_rollback`: passed"), "{md}");
    assert!(
        md.contains("[hooks/on_rollback-1.log](hooks/on_rollback-1.log)"),
        "{md}"
    );
    assert!(md.contains("CUTOVER_STAGE=on_rollback"), "{md}");
}

#[tokio::test]
async fn the_first_failing_command_ends_the_hook_and_is_reported_with_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let commands = [
        sh(
            "echo checking; echo 'release notes missing' >&2; exit 3",
            dir.path(),
            Duration::from_secs(30),
        ),
        sh("touch ran-anyway", dir.path(), Duration::from_secs(30)),
    ];
    let report = run_hook(HookPoint::BeforeDeploy, &commands, &facts(dir.path())).await;
    assert!(!report.passed());
    assert_eq!(report.ran.len(), 1);
    assert_eq!(report.ran[0].exit, Exit::Code { code: 3 });
    assert_eq!(
        report.ran[0].output_tail,
        "checking\nrelease notes missing\n"
    );
    assert_eq!(report.skipped, [commands[1].run.clone()]);
    assert!(!dir.path().join("ran-anyway").exists());
    let md = report.to_markdown();
    assert!(md.starts_with("## Hook `before_deploy`: FAILED"), "{md}");
    assert!(md.contains("**exit 3**"), "{md}");
    assert!(md.contains("release notes missing"), "{md}");
    assert!(md.contains("skipped, an earlier command failed"), "{md}");
    // The report is data for run.json.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["point"], "before_deploy");
    assert_eq!(json["ran"][0]["exit"]["kind"], "code");
    assert_eq!(json["ran"][0]["exit"]["code"], 3);
}

#[tokio::test]
async fn a_hook_past_its_timeout_is_killed_with_everything_it_started() {
    let dir = tempfile::tempdir().unwrap();
    // The background sleep is in the hook's process group: it must die too. It
    // writes its pid so the test can check.
    let commands = [sh(
        "sleep 300 & echo $! > child.pid; echo started; wait",
        dir.path(),
        Duration::from_millis(300),
    )];
    let report = run_hook(HookPoint::AfterPromotion, &commands, &facts(dir.path())).await;
    assert_eq!(report.ran[0].exit, Exit::TimedOut);
    assert!(!report.passed());
    let pid: i32 = std::fs::read_to_string(dir.path().join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed, then reaped by init: wait (bounded) until the pid is gone or a zombie.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let gone = stat.is_empty() || stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'));
        if gone {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hook's child {pid} outlived it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(report.to_markdown().contains("timed out after 300ms"));
}

#[tokio::test]
async fn a_missing_program_or_workdir_is_reported_not_started() {
    let dir = tempfile::tempdir().unwrap();
    let missing_program = HookCommand {
        run: vec!["./no-such-script".into()],
        timeout: Duration::from_secs(5),
        workdir: dir.path().to_path_buf(),
    };
    let report = run_hook(
        HookPoint::BeforeDeploy,
        &[missing_program],
        &facts(dir.path()),
    )
    .await;
    match &report.ran[0].exit {
        Exit::NotStarted { error } => {
            assert!(
                error.contains("`./no-such-script` was not found"),
                "{error}"
            )
        }
        other => panic!("expected not started, got {other:?}"),
    }
    let missing_dir = HookCommand {
        run: vec!["true".into()],
        timeout: Duration::from_secs(5),
        workdir: dir.path().join("nowhere"),
    };
    let report = run_hook(HookPoint::BeforeDeploy, &[missing_dir], &facts(dir.path())).await;
    match &report.ran[0].exit {
        Exit::NotStarted { error } => {
            assert!(error.contains("working directory"), "{error}")
        }
        other => panic!("expected not started, got {other:?}"),
    }
    // No command: nothing to fail.
    assert!(
        run_hook(HookPoint::OnRollback, &[], &facts(dir.path()))
            .await
            .passed()
    );
}
