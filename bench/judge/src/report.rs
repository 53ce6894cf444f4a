//! The results as Markdown: false rollbacks of healthy canaries, and the time to
//! detect each bad one, side by side for the three policies.

use std::fmt::Write;
use std::time::Duration;

use cutover_spec::AnalysisSpec;

use crate::policies::Metric;
use crate::traffic::{Behaviour, Latency, Sampler, window};
use crate::{
    BASE_ERROR_RATE, CANARY_SHARE, FLAGGER_INTERVAL_SECS, HORIZON_SECS, KAYENTA_INTERVAL_SECS,
    RATE, STEP_PAUSE,
};

/// When each policy rolled one canary back, and why; `None`: never, within the
/// horizon.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub cutover: Option<(f64, Metric)>,
    /// cutover with the whole horizon as one step.
    pub one_step: Option<(f64, Metric)>,
    /// When a window first failed a limit.
    pub first_limit_failure: Option<f64>,
    pub flagger: Option<(f64, Metric)>,
    pub kayenta: Option<(f64, Metric)>,
}

/// All canaries of one case.
pub struct Row {
    pub family: &'static str,
    pub case: &'static str,
    pub healthy: bool,
    pub outcomes: Vec<Outcome>,
}

type Pick = fn(&Outcome) -> Option<(f64, Metric)>;

const POLICIES: [(&str, Pick); 3] = [
    ("cutover", |o| o.cutover),
    ("Flagger-like", |o| o.flagger),
    ("Kayenta-like", |o| o.kayenta),
];

/// The `q`-quantile of the detection times, a canary never rolled back counting
/// as infinitely late.
fn quantile(times: &[f64], q: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn times(row: &Row, pick: Pick) -> Vec<f64> {
    row.outcomes
        .iter()
        .map(|o| pick(o).map_or(f64::INFINITY, |(t, _)| t))
        .collect()
}

fn secs(t: f64) -> String {
    if t.is_finite() {
        format!("{t:.0} s")
    } else {
        format!("> {HORIZON_SECS:.0} s")
    }
}

fn ratio(other: f64, cutover: f64) -> String {
    match (other.is_finite(), cutover.is_finite()) {
        (true, true) => format!("{:.1}x", other / cutover),
        (false, true) => format!("> {:.0}x", HORIZON_SECS / cutover),
        _ => "-".to_string(),
    }
}

fn share(count: usize, of: usize) -> String {
    format!("{count} of {of} ({:.1}%)", 100.0 * count as f64 / of as f64)
}

/// The whole results section.
pub fn markdown(
    rows: &[Row],
    families: &[(&str, Latency)],
    spec: &AnalysisSpec,
    took: Duration,
) -> String {
    let mut out = String::new();
    setup(&mut out, families, spec);
    healthy(&mut out, rows);
    bad(&mut out, rows);
    let _ = writeln!(
        out,
        "Simulated {} canaries in {:.1} s.\n",
        rows.iter().map(|r| r.outcomes.len()).sum::<usize>(),
        took.as_secs_f64()
    );
    out
}

fn setup(out: &mut String, families: &[(&str, Latency)], spec: &AnalysisSpec) {
    let window_secs = cutover_spec::defaults::ANALYSIS_INTERVAL.as_secs_f64();
    let _ = writeln!(
        out,
        "Traffic: {RATE:.0} requests/s, each to the canary with probability {CANARY_SHARE} \
         (the proxy's weighted random choice), the rest to the baseline (stable); windows of \
         {window_secs:.0} s (the default `analysis.interval`); each canary watched for \
         {HORIZON_SECS:.0} s at that weight. The baseline fails {:.1}% of its requests, \
         independently; latencies (in the window's histogram, as the proxy records them):\n",
        BASE_ERROR_RATE * 100.0
    );
    let _ = writeln!(
        out,
        "| family | distribution | p50 | p95 | p99 |\n|---|---|---|---|---|"
    );
    let mut rng = fastrand::Rng::with_seed(1);
    for &(name, latency) in families {
        let sample = window(
            &mut rng,
            1_000_000,
            &Behaviour {
                error_rate: 0.0,
                latency: Sampler::new(latency, 1.0),
            },
        );
        let q = |q: f64| {
            sample.latency.quantile(q).map_or("-".to_string(), |d| {
                format!("{:.0} ms", d.as_secs_f64() * 1000.0)
            })
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            describe(latency),
            q(0.5),
            q(0.95),
            q(0.99)
        );
    }
    let _ = writeln!(
        out,
        "\nA bad canary's errors are a higher rate; its latency is every request's \
         multiplied by 1.1, 1.2 or 1.5 (every quantile, p95 included, that much higher).\n"
    );
    let _ = writeln!(out, "Policies, all fed the same windows:\n");
    let _ = writeln!(out, "- **cutover**: {}", describe_spec(spec));
    let _ = writeln!(
        out,
        "- **Flagger-like**: Flagger's documented example analysis: `interval: {FLAGGER_INTERVAL_SECS:.0}s`, \
         `threshold: 5`, `request-success-rate` >= 99% (error rate <= 1%), `request-duration` \
         P99 <= 500 ms, over the canary's last interval; rolled back at the tick after the 5th \
         failed check."
    );
    let _ = writeln!(
        out,
        "- **Kayenta-like**: one judgement after {KAYENTA_INTERVAL_SECS:.0} s: each metric's data \
         points (per window: error rate, p95) of the canary against a baseline cluster of the \
         canary's size, by a one-sided Mann-Whitney U test at 98% confidence without effect-size \
         allowance (the NetflixACAJudge's defaults); either metric high rolls back, else it \
         promotes (nothing after it is judged).\n"
    );
}

fn describe_spec(spec: &AnalysisSpec) -> String {
    let mut parts = Vec::new();
    if let Some(max) = spec.metrics.error_rate.and_then(|r| r.max) {
        parts.push(format!(
            "the limit error rate <= {max} per window, a window past it counting towards \
             `failure_limit: {}`",
            spec.failure_limit
        ));
    }
    if let Some(seq) = spec.sequential {
        let alpha = crate::alpha_per_test(spec);
        if seq.errors {
            parts.push(format!("the sequential error-rate test (alpha {alpha})"));
        }
        if let Some(q) = seq.latency_quantile {
            parts.push(format!(
                "the sequential test of requests slower than the baseline's p{:.0} (alpha {alpha})",
                q.fraction() * 100.0
            ));
        }
    }
    if let Some(cmp) = spec.comparison {
        parts.push(format!(
            "the Mann-Whitney comparison of the step's latencies (failing when the canary's \
             latencies over 1 + {} are still higher than the baseline's, one-sided at {} \
             confidence, at least {} requests a side)",
            cmp.tolerance, cmp.confidence, cmp.min_samples
        ));
    }
    let steps = (HORIZON_SECS / STEP_PAUSE.as_secs_f64()).round();
    format!(
        "the engine's default judge, as the engine runs it: after every window \
         `policy::judge_window` with `AnalysisSpec::default()`, then the engine's own decision \
         on the report, `judging::after_window` (through `cutover_policy` in \
         `bench/judge/src/policies.rs`). The config: {}. A sequential test's rejection rolls \
         back at once (a healthy canary is rolled back by them with probability at most \
         `sequential.alpha` = {} over the whole run, however many windows it lasts). The \
         comparison decides only at a step's end, as in the engine: the canary is held at \
         {:.0}% for {HORIZON_SECS:.0} s as {steps:.0} steps in a row of the default step pause, \
         {:.0} s (the length of the default first step, 10% for 30 s); each ends with the first \
         passing window once its pause is over, where the step's comparison (of that step's \
         requests only) rolls back if it fails; the next step starts the comparison over and \
         keeps the sequential tests and the failure count, as the engine's next step at the \
         same weight does. Each step's comparison is a fixed-sample test with its own \
         chance of a false rollback, and these add up over the {steps:.0} steps (a default \
         rollout has one step at 10%, then one at 50% and one at 100%). A canary not rolled \
         back within {HORIZON_SECS:.0} s is promoted.",
        parts.join("; "),
        spec.sequential
            .map_or("-".to_string(), |s| s.alpha.to_string()),
        CANARY_SHARE * 100.0,
        STEP_PAUSE.as_secs_f64(),
    )
}

fn describe(latency: Latency) -> String {
    match latency {
        Latency::Lognormal { median_ms, sigma } => {
            format!("lognormal, median {median_ms} ms, sigma {sigma}")
        }
        Latency::SlowTail { fast, slow, tail } => format!(
            "{:.0}% lognormal (median {} ms, sigma {}), {:.0}% a slow tail (median {} ms, sigma {})",
            (1.0 - tail) * 100.0,
            fast.0,
            fast.1,
            tail * 100.0,
            slow.0,
            slow.1
        ),
    }
}

fn healthy(out: &mut String, rows: &[Row]) {
    let _ = writeln!(
        out,
        "## (a) Healthy canaries (drawn from the baseline's distributions): share falsely rolled back\n\n\
         With what rolled them back. Two more columns for cutover: the same judge with the \
         whole {HORIZON_SECS:.0} s as one step (the comparison decided once, at its end), and \
         with `failure_limit: 1` (rolled back at the first window past a limit, or earlier by \
         what rolled it back anyway).\n"
    );
    let _ = writeln!(
        out,
        "| family | cutover | Flagger-like | Kayenta-like | cutover, one {HORIZON_SECS:.0} s step \
         | cutover with `failure_limit: 1` |\n|---|---|---|---|---|---|"
    );
    let one_step: Pick = |o| o.one_step;
    for row in rows.iter().filter(|r| r.healthy) {
        let mut cells: Vec<String> = POLICIES
            .iter()
            .map(|&(_, pick)| pick)
            .chain([one_step])
            .map(|pick| rolled_back(row, pick))
            .collect();
        let at_first_limit = row
            .outcomes
            .iter()
            .filter(|o| o.cutover.is_some() || o.first_limit_failure.is_some())
            .count();
        cells.push(share(at_first_limit, row.outcomes.len()));
        let _ = writeln!(out, "| {} | {} |", row.family, cells.join(" | "));
    }
    let _ = writeln!(out);
}

/// The share of a row's canaries `pick` rolled back, and by what.
fn rolled_back(row: &Row, pick: Pick) -> String {
    let fired: Vec<Metric> = row
        .outcomes
        .iter()
        .filter_map(|o| pick(o).map(|(_, m)| m))
        .collect();
    let of: Vec<String> = [
        Metric::ErrorRate,
        Metric::Latency,
        Metric::Limit,
        Metric::Comparison,
        Metric::Inconclusive,
    ]
    .iter()
    .map(|&m| (m, fired.iter().filter(|&&f| f == m).count()))
    .filter(|&(_, n)| n > 0)
    .map(|(m, n)| format!("{n} {m}"))
    .collect();
    let detail = if of.is_empty() {
        String::new()
    } else {
        format!(" ({})", of.join(", "))
    };
    format!("{}{detail}", share(fired.len(), row.outcomes.len()))
}

fn bad(out: &mut String, rows: &[Row]) {
    let _ = writeln!(
        out,
        "## (b, c) Bad canaries: time to roll back\n\nMedian and p95 over the canaries, one never \
         rolled back within {HORIZON_SECS:.0} s counting as later than that; \"never\" is the share \
         not rolled back within {HORIZON_SECS:.0} s; the ratios are of the medians (how many times \
         longer than cutover).\n"
    );
    let _ = writeln!(
        out,
        "| family | canary | runs | cutover median / p95 / never | Flagger-like median / p95 / never \
         | Kayenta-like median / p95 / never | Flagger ÷ cutover | Kayenta ÷ cutover |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for row in rows.iter().filter(|r| !r.healthy) {
        let medians: Vec<f64> = POLICIES
            .iter()
            .map(|&(_, pick)| quantile(&times(row, pick), 0.5))
            .collect();
        let cells: Vec<String> = POLICIES
            .iter()
            .map(|&(_, pick)| {
                let t = times(row, pick);
                let never = t.iter().filter(|t| !t.is_finite()).count();
                format!(
                    "{} / {} / {:.0}%",
                    secs(quantile(&t, 0.5)),
                    secs(quantile(&t, 0.95)),
                    100.0 * never as f64 / t.len() as f64
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.family,
            row.case,
            row.outcomes.len(),
            cells.join(" | "),
            ratio(medians[1], medians[0]),
            ratio(medians[2], medians[0])
        );
    }
    let _ = writeln!(out);
}
