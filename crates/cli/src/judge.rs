//! `cutover judge`: one metric of a canary judged against a baseline, offline,
//! from two exported sample sets, with the Mann-Whitney U test and a
//! Kayenta-style verdict. For tuning the judge before a deploy. (`--run ID`
//! judges a recorded run again instead: see [`crate::rejudge`].)

use std::path::Path;
use std::process::ExitCode;

use cutover_analysis::Histogram;
use cutover_analysis::comparison::{self, Direction, MetricSpec, MetricVerdict, Tolerance};
use cutover_analysis::latency_test::LatencyTest;
use cutover_analysis::mann_whitney::Alternative;
use serde_json::json;

use crate::args::{DirectionArg, JudgeArgs, TestArg};
use crate::exit;

pub fn run(args: JudgeArgs) -> anyhow::Result<ExitCode> {
    let (baseline, canary) = match (&args.run, &args.baseline, &args.canary) {
        (Some(id), _, _) => {
            return crate::rejudge::run(id, &args.file, args.env.as_deref(), args.json);
        }
        (None, Some(baseline), Some(canary)) => (baseline, canary),
        // clap requires both unless --run is given.
        _ => return Err(exit::usage("give --baseline and --canary, or --run ID")),
    };
    let baseline = read_samples(baseline, &args.metric)?;
    let canary = read_samples(canary, &args.metric)?;
    if args.test == TestArg::Sequential {
        return sequential(&args, &canary, &baseline);
    }
    let tolerance = parse_tolerance(&args.tolerance)?;
    let direction = match args.direction {
        DirectionArg::HigherIsBad => Direction::HigherIsBad,
        DirectionArg::LowerIsBad => Direction::LowerIsBad,
        DirectionArg::Either => Direction::Either,
    };
    let spec = MetricSpec {
        confidence: args.confidence,
        tolerance,
        min_samples: args.min_samples,
        ..MetricSpec::new(args.metric.clone(), direction)
    };
    let result = comparison::compare(&spec, &canary, &baseline)
        .map_err(|e| exit::usage(format!("cannot judge: {e}")))?;
    let code = match result.verdict {
        MetricVerdict::Pass => exit::PROMOTED,
        MetricVerdict::High | MetricVerdict::Low => exit::ROLLED_BACK,
        // Never a pass: too few values to say anything is bad input here.
        MetricVerdict::NoData => exit::USAGE,
    };
    if args.json {
        println!("{}", json!({ "comparison": result, "exit": code }));
        return Ok(ExitCode::from(code));
    }
    let verdict = match result.verdict {
        MetricVerdict::Pass => "pass".to_owned(),
        MetricVerdict::High => "HIGH: the canary is worse (higher)".to_owned(),
        MetricVerdict::Low => "LOW: the canary is worse (lower)".to_owned(),
        MetricVerdict::NoData => format!(
            "no data: fewer than {} values on a side (canary {}, baseline {})",
            args.min_samples.max(1),
            result.n_canary,
            result.n_baseline
        ),
    };
    println!("{}: {verdict}", result.metric);
    if let Some(test) = &result.test {
        let e = &test.effect;
        println!(
            "  canary   {} values, median {}",
            test.n_canary,
            num(e.median_canary)
        );
        println!(
            "  baseline {} values, median {}",
            test.n_baseline,
            num(e.median_baseline)
        );
        let z = test.z.map_or(String::new(), |z| format!(", z = {z:.3}"));
        let side = match test.alternative {
            Alternative::Greater => "one-sided, canary higher",
            Alternative::Less => "one-sided, canary lower",
            Alternative::TwoSided => "two-sided",
        };
        println!(
            "  Mann-Whitney U = {}{z}, p = {} ({side}); significant below {}",
            num(test.u),
            p_value(test.p_value),
            p_value(result.alpha)
        );
        println!(
            "  effect: median ratio {}, Hodges-Lehmann shift {}, P(canary > baseline) = {:.3}; allowed: {}",
            e.median_ratio
                .map_or("- (baseline median 0)".to_owned(), |r| format!("{r:.3}")),
            num(e.hodges_lehmann),
            e.probability_of_superiority,
            allowed(&result.tolerance)
        );
    }
    Ok(ExitCode::from(code))
}

/// The values in file order, in windows of `--window` canary values and the
/// baseline's values in proportion, through the engine's sequential latency test
/// (values taken as milliseconds, for its buckets).
fn sequential(args: &JudgeArgs, canary: &[f64], baseline: &[f64]) -> anyhow::Result<ExitCode> {
    if args.window == 0 {
        return Err(exit::usage(
            "argument --window: 0 values a window; give 1 or more",
        ));
    }
    if let Some(v) = canary.iter().chain(baseline).find(|v| **v < 0.0) {
        return Err(exit::usage(format!(
            "the sequential test reads latencies, and {v} is negative"
        )));
    }
    let mut test = LatencyTest::at_quantile(args.quantile, args.alpha)
        .map_err(|e| exit::usage(format!("argument --quantile or --alpha: {e}")))?;
    let windows = canary.len().div_ceil(args.window).max(1);
    let per_window = baseline.len().div_ceil(windows);
    let histogram = |values: &[f64]| {
        let mut h = Histogram::new();
        for v in values {
            h.record((v * 1000.0).round() as u64, 1);
        }
        h
    };
    let mut rejected_at = None;
    let mut last = None;
    for w in 0..windows {
        let c = chunk(canary, args.window, w);
        let b = chunk(baseline, per_window, w);
        let evidence = test.observe(&histogram(c), &histogram(b));
        if evidence.rejected() && rejected_at.is_none() {
            rejected_at = Some(w + 1);
        }
        last = Some(evidence);
    }
    let evidence = last.expect("at least one window").rate;
    let code = if rejected_at.is_some() {
        exit::ROLLED_BACK
    } else {
        exit::PROMOTED
    };
    if args.json {
        println!(
            "{}",
            json!({
                "test": "sequential",
                "windows": windows,
                "rejected_at_window": rejected_at,
                "evidence": evidence,
                "exit": code,
            })
        );
        return Ok(ExitCode::from(code));
    }
    let share = |c: cutover_analysis::rate_test::Counts| {
        c.rate()
            .map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0))
    };
    println!(
        "{}: {}",
        args.metric,
        match rejected_at {
            Some(w) => format!("SLOWER: rejected at window {w} of {windows}"),
            None => format!("pass: no evidence of a slower canary in {windows} window(s)"),
        }
    );
    println!(
        "  slower than the baseline's p{}: canary {} of {}, baseline {} of {}",
        args.quantile * 100.0,
        share(evidence.canary),
        evidence.canary.requests,
        share(evidence.baseline),
        evidence.baseline.requests
    );
    println!(
        "  ln M = {:.3} against {:.3} (alpha {}), anytime-valid p = {}{}",
        evidence.log_mixture,
        evidence.log_threshold,
        args.alpha,
        p_value(evidence.p_value),
        evidence
            .rate_ratio
            .map_or(String::new(), |r| format!(", rate ratio {r:.2}"))
    );
    Ok(ExitCode::from(code))
}

/// The `w`-th run of `size` values, or what is left (possibly nothing).
fn chunk(values: &[f64], size: usize, w: usize) -> &[f64] {
    let start = (w * size).min(values.len());
    &values[start..(start + size).min(values.len())]
}

/// A number for people: four significant digits.
fn num(x: f64) -> String {
    if x != 0.0 && (x.abs() >= 1e6 || x.abs() < 1e-3) {
        format!("{x:.3e}")
    } else {
        let digits = (3 - x.abs().log10().floor().max(0.0) as i32).max(0) as usize;
        format!("{x:.digits$}")
    }
}

fn p_value(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.2e}")
    } else {
        format!("{p:.4}")
    }
}

fn allowed(t: &Tolerance) -> String {
    match *t {
        Tolerance::Ratio { increase, decrease } => format!(
            "+{}% / -{}% of the baseline's median",
            increase * 100.0,
            decrease * 100.0
        ),
        Tolerance::Absolute { increase, decrease } => {
            format!("+{increase} / -{decrease} in the metric's unit")
        }
    }
}

/// Numbers, one per line (blank lines and `#` comments skipped), or JSON lines:
/// a number, or an object whose `metric` field is one.
fn read_samples(path: &Path, metric: &str) -> anyhow::Result<Vec<f64>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| exit::usage(format!("{}: could not read it: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let value = match line.parse::<f64>() {
            Ok(v) => Some(v),
            Err(_) => match serde_json::from_str::<serde_json::Value>(line) {
                Ok(serde_json::Value::Number(n)) => n.as_f64(),
                Ok(v) => v.get(metric).and_then(serde_json::Value::as_f64),
                Err(_) => None,
            },
        };
        match value {
            Some(v) if v.is_finite() => out.push(v),
            _ => {
                return Err(exit::usage(format!(
                    "{}:{}: {line:?} is not a finite number, nor a JSON object with a numeric `{metric}` field",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    Ok(out)
}

/// `10%` (a ratio of medians, either way) or `0.5` (an absolute amount in the
/// metric's unit, either way).
fn parse_tolerance(text: &str) -> anyhow::Result<Tolerance> {
    let bad = || {
        exit::usage(format!(
            "argument --tolerance: `{text}` is not a tolerance; use a percentage of the baseline's median (`10%`) or an amount in the metric's unit (`0.5`), 0 or more"
        ))
    };
    let t = text.trim();
    if let Some(pct) = t.strip_suffix('%') {
        let p: f64 = pct.trim().parse().map_err(|_| bad())?;
        if !(p.is_finite() && p >= 0.0) {
            return Err(bad());
        }
        return Ok(Tolerance::Ratio {
            increase: p / 100.0,
            decrease: (p / 100.0).min(1.0),
        });
    }
    let a: f64 = t.parse().map_err(|_| bad())?;
    if !(a.is_finite() && a >= 0.0) {
        return Err(bad());
    }
    Ok(Tolerance::Absolute {
        increase: a,
        decrease: a,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_are_percentages_or_amounts() {
        assert_eq!(
            parse_tolerance("10%").unwrap(),
            Tolerance::Ratio {
                increase: 0.1,
                decrease: 0.1
            }
        );
        assert_eq!(
            parse_tolerance("2.5").unwrap(),
            Tolerance::Absolute {
                increase: 2.5,
                decrease: 2.5
            }
        );
        for bad in ["-1%", "ten", "%", "inf"] {
            assert!(parse_tolerance(bad).is_err(), "{bad}");
        }
    }
}
