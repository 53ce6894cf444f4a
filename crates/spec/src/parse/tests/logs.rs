use super::*;

#[test]
fn logs_defaults_and_values() {
    let c = ok(MINIMAL);
    assert_eq!(c.logs, LogsSpec::default());
    assert_eq!(c.logs.max_size, defaults::LOG_MAX_SIZE);
    assert_eq!(c.analysis.logs, Some(defaults::LOG_CHECK));
    assert_eq!(c.logs.keep_runs, 20);
    let c = ok(&format!(
        "{MINIMAL}logs: {{ max_size: 64KiB, keep: 5, keep_runs: 2 }}\n"
    ));
    assert_eq!(
        c.logs,
        LogsSpec {
            max_size: 64 * 1024,
            keep: 5,
            keep_runs: 2
        }
    );
    let off = ok(&format!("{MINIMAL}analysis:\n  logs: false\n"));
    assert_eq!(off.analysis.logs, None);
    let on = ok(&format!("{MINIMAL}analysis:\n  logs: true\n"));
    assert_eq!(on.analysis.logs, Some(LogCheckSpec::default()));
    let quiet = ok(&format!(
        "{MINIMAL}analysis:\n  logs: {{ new_errors: off }}\n"
    ));
    assert_eq!(quiet.analysis.logs.unwrap().new_errors, LogAction::Off);
}

#[test]
fn logs_mistakes_are_reported_where_they_are() {
    assert_eq!(
        error(&format!("{MINIMAL}logs:\n  max_size: 1KiB\n")),
        "cutover.yaml:6:13: `logs.max_size` must be at least 4KiB, e.g. `10MiB`, got `1KiB`"
    );
    assert!(
        error(&format!("{MINIMAL}logs:\n  max_size: 10MB\n")).ends_with("did you mean `10MiB`?")
    );
    assert_eq!(
        error(&format!("{MINIMAL}logs:\n  keep: 101\n")),
        "cutover.yaml:6:9: `keep` must be a whole number from 0 to 100, got `101`"
    );
    assert_eq!(
        error(&format!("{MINIMAL}logs:\n  keep_runs: 0\n")),
        "cutover.yaml:6:14: `keep_runs` must be a whole number from 1 to 10000, got `0`"
    );
    assert_eq!(
        error(&format!(
            "{MINIMAL}analysis:\n  logs:\n    new_errors: fial\n"
        )),
        "cutover.yaml:7:17: `new_errors` must be `fail`, `warn` or `off`, got `fial`; did you mean `fail`?"
    );
    assert!(
        error(&format!(
            "{MINIMAL}analysis:\n  logs: {{ rate_factor: 1 }}\n"
        ))
        .contains("`analysis.logs.rate_factor` must be more than 1")
    );
    assert!(
        error(&format!("{MINIMAL}analysis:\n  logs: {{ min_count: 0 }}\n"))
            .contains("`min_count` must be a whole number")
    );
    assert!(
        error(&format!("{MINIMAL}logs:\n  max_sise: 1MiB\n")).starts_with(
            "cutover.yaml:6:3: unknown field `max_sise` in `logs`; did you mean `max_size`?"
        )
    );
}
