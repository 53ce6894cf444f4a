//! `CUTOVER_SAMPLE_FAULTS`: per-version faults for `cutover sample-app`, so one
//! `cutover.yaml` command can run a healthy v2 and a faulty v3 in demos and tests.
//!
//! The value is a comma-separated list of `VERSION:FAULT`, where FAULT is
//! `error-rate=0.05`, `latency-ms=200`, `fail-health`, `crash-after=10s` or
//! `log-errors`; entries
//! for other versions are ignored. Example: `v3:error-rate=0.05,v4:fail-health`.

use crate::exit;
use crate::sample_app::SampleAppArgs;

pub const VAR: &str = "CUTOVER_SAMPLE_FAULTS";

/// Applies the faults meant for `args.version` on top of its flags.
///
/// # Errors
/// A usage error naming the entry that is not valid and the valid forms.
pub fn apply(args: &mut SampleAppArgs, spec: &str) -> anyhow::Result<()> {
    const VALID: &str = "valid: VERSION:error-rate=0..1, VERSION:latency-ms=N, VERSION:fail-health, VERSION:crash-after=DURATION, VERSION:log-errors";
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| exit::usage(format!("{VAR}: entry `{entry}` {why} ({VALID})"));
        let (version, fault) = entry.split_once(':').ok_or_else(|| bad("has no `:`"))?;
        let (name, value) = match fault.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (fault, None),
        };
        let value = || value.ok_or_else(|| bad("needs `=VALUE`"));
        let mut wanted = args.clone();
        match name {
            "error-rate" => {
                wanted.error_rate = value()?
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| bad("needs a rate between 0 and 1"))?;
            }
            "latency-ms" => {
                wanted.latency_ms = value()?
                    .parse()
                    .map_err(|_| bad("needs whole milliseconds"))?
            }
            "fail-health" => wanted.fail_health = true,
            "log-errors" => wanted.log_errors = true,
            "crash-after" => {
                wanted.crash_after = Some(
                    value()?
                        .parse()
                        .map_err(|_| bad("needs a duration like `10s`"))?,
                );
            }
            _ => return Err(bad("names an unknown fault")),
        }
        if version == args.version {
            *args = wanted;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(version: &str) -> SampleAppArgs {
        SampleAppArgs {
            port: 1,
            version: version.into(),
            error_rate: 0.0,
            latency_ms: 0,
            fail_health: false,
            crash_after: None,
            log_errors: false,
        }
    }

    #[test]
    fn only_the_named_version_gets_the_fault() {
        let spec = "v3:error-rate=0.05, v4:fail-health, v3:crash-after=2s, v3:log-errors";
        let mut v3 = args("v3");
        apply(&mut v3, spec).unwrap();
        assert_eq!(v3.error_rate, 0.05);
        assert!(v3.log_errors);
        assert!(!v3.fail_health);
        assert_eq!(
            v3.crash_after.map(|d| *d),
            Some(std::time::Duration::from_secs(2))
        );
        let mut v2 = args("v2");
        apply(&mut v2, spec).unwrap();
        assert_eq!(v2.error_rate, 0.0);
        assert!(v2.crash_after.is_none());
    }

    #[test]
    fn a_bad_entry_is_an_error_even_for_another_version() {
        let err = apply(&mut args("v2"), "v3:error-rate=7").unwrap_err();
        assert!(err.to_string().contains("v3:error-rate=7"), "{err}");
        assert!(apply(&mut args("v2"), "v3:explode").is_err());
        assert!(apply(&mut args("v2"), "nocolon").is_err());
    }
}
