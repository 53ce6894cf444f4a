use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cutover_spec::MetricSource;

use super::*;
use crate::testing::{config, window};
use crate::window::sample;

/// A real script in `dir`, executable.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

fn command(metrics: &str) -> Command {
    let config = config(&format!("    command:\n{metrics}"), &[]);
    let MetricSource::Command(spec) = &config.analysis.source else {
        panic!("a command source")
    };
    Command::new(spec)
}

#[tokio::test]
async fn stdout_is_the_number_with_the_window_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    // 40 requests a second of the window, for v2 only; 1% errors.
    let requests = script(
        dir.path(),
        "requests",
        r#"[ "$CUTOVER_VERSION/$CUTOVER_ROLE/$CUTOVER_APP" = "v2/canary/shop" ] || exit 3
echo $(( ${CUTOVER_WINDOW_SECONDS%.*} * 40 ))"#,
    );
    let rate = script(dir.path(), "rate", "echo '  0.01  '");
    let reader = command(&format!(
        "      requests: {{ run: [\"{requests}\"] }}\n      error_rate: {{ run: [\"{rate}\", \"{{{{version}}}}\"] }}\n"
    ));
    let s = sample(&reader, &window()).await.unwrap();
    assert_eq!((s.requests, s.errors), (200, 2));
}

#[tokio::test]
async fn a_failing_silent_slow_or_wordy_command_is_its_own_fault() {
    let dir = tempfile::tempdir().unwrap();
    // Every script is written before any runs: a script still open for writing
    // in one thread while another forks cannot be executed ("text file busy").
    let scripts = [
        ("fails", "echo boom >&2; exit 4"),
        ("silent", "true"),
        ("slow", "exec sleep 30"),
        ("nan", "echo NaN"),
        ("wordy", "echo lots"),
    ]
    .map(|(name, body)| CommandQuery {
        run: vec![script(dir.path(), name, body)],
        timeout: std::time::Duration::from_millis(300),
    });
    let [fails, silent, slow, nan, wordy] = &scripts;
    let reader =
        command("      requests: { run: [\"true\"] }\n      error_rate: { run: [\"true\"] }\n");
    let at = window();
    let Err(SourceFault::Invalid { message }) = reader.read(fails, Measure::Count, &at).await
    else {
        panic!("a failing command")
    };
    assert!(
        message.contains("exit status: 4") && message.contains("boom"),
        "{message}"
    );
    assert!(matches!(
        reader.read(silent, Measure::Count, &at).await,
        Err(SourceFault::Empty { .. })
    ));
    assert_eq!(
        reader.read(slow, Measure::Count, &at).await,
        Err(SourceFault::Timeout { timeout_ms: 300 })
    );
    assert_eq!(
        reader.read(nan, Measure::Count, &at).await,
        Err(SourceFault::NaN)
    );
    assert!(matches!(
        reader.read(wordy, Measure::Count, &at).await,
        Err(SourceFault::Invalid { .. })
    ));
    let missing = CommandQuery {
        run: vec![dir.path().join("nowhere").to_string_lossy().into_owned()],
        timeout: std::time::Duration::from_secs(1),
    };
    assert!(matches!(
        reader.read(&missing, Measure::Count, &at).await,
        Err(SourceFault::Unreachable { .. })
    ));
}
