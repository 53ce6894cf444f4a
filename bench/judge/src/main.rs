//! `bench/judge`: how fast a bad canary is rolled back and how often a healthy one
//! is, by cutover's default judge (as the engine runs it) against a Flagger-like
//! and a Kayenta-like policy, on simulated traffic. A simulation, not a test: it prints Markdown
//! (see `bench/judge.sh` and bench/README.md).
//!
//!   cutover-judge-bench [--quick]
//!
//! `--quick` runs a tenth of the canaries, to try settings.

mod policies;
mod report;
mod traffic;

use std::time::{Duration, Instant};

use cutover_spec::AnalysisSpec;
use policies::{FlaggerPolicy, Judgement, KayentaPolicy, cutover_policy};
use report::{Outcome, Row};
use traffic::{Behaviour, Latency, Sampler, split_window, window};

/// Requests per second through the proxy.
const RATE: f64 = 200.0;
/// The canary's share of them.
const CANARY_SHARE: f64 = 0.1;
/// How long a canary is watched.
const HORIZON_SECS: f64 = 600.0;
/// Flagger's example `interval: 1m`.
const FLAGGER_INTERVAL_SECS: f64 = 60.0;
/// The Kayenta-like judgement's interval: one judgement, after 5 minutes.
const KAYENTA_INTERVAL_SECS: f64 = 300.0;
/// The baseline's error rate.
const BASE_ERROR_RATE: f64 = 0.005;
/// Healthy canaries per latency family, and bad ones per case and family.
const HEALTHY_RUNS: usize = 1000;
const BAD_RUNS: usize = 200;
const SEED: u64 = 20_261_201;

/// The baseline's latency distributions, both heavy-tailed.
const FAMILIES: [(&str, Latency); 2] = [
    (
        "lognormal",
        Latency::Lognormal {
            median_ms: 100.0,
            sigma: 0.6,
        },
    ),
    (
        "slow tail",
        Latency::SlowTail {
            fast: (80.0, 0.35),
            slow: (250.0, 0.5),
            tail: 0.05,
        },
    ),
];

/// A canary: what it does differently from the baseline.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    error_rate: f64,
    slowdown: f64,
}

const HEALTHY: Case = Case {
    name: "healthy",
    error_rate: BASE_ERROR_RATE,
    slowdown: 1.0,
};

const BAD: [Case; 6] = [
    Case {
        name: "errors 0.5% -> 1%",
        error_rate: 0.01,
        slowdown: 1.0,
    },
    Case {
        name: "errors 0.5% -> 2%",
        error_rate: 0.02,
        slowdown: 1.0,
    },
    Case {
        name: "errors 0.5% -> 5%",
        error_rate: 0.05,
        slowdown: 1.0,
    },
    Case {
        name: "latency +10%",
        error_rate: BASE_ERROR_RATE,
        slowdown: 1.1,
    },
    Case {
        name: "latency +20%",
        error_rate: BASE_ERROR_RATE,
        slowdown: 1.2,
    },
    Case {
        name: "latency +50%",
        error_rate: BASE_ERROR_RATE,
        slowdown: 1.5,
    },
];

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (healthy_runs, bad_runs) = if quick {
        (HEALTHY_RUNS / 10, BAD_RUNS / 10)
    } else {
        (HEALTHY_RUNS, BAD_RUNS)
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    for (f, &(family, latency)) in FAMILIES.iter().enumerate() {
        let baseline = Behaviour {
            error_rate: BASE_ERROR_RATE,
            latency: Sampler::new(latency, 1.0),
        };
        for (c, case) in std::iter::once(HEALTHY).chain(BAD).enumerate() {
            let runs = if c == 0 { healthy_runs } else { bad_runs };
            let canary = Behaviour {
                error_rate: case.error_rate,
                latency: Sampler::new(latency, case.slowdown),
            };
            let outcomes: Vec<Outcome> = (0..runs)
                .map(|run| simulate(seed(f, c, run), &canary, &baseline))
                .collect();
            rows.push(Row {
                family,
                case: case.name,
                healthy: c == 0,
                outcomes,
            });
        }
    }
    let families: Vec<(&str, Latency)> = FAMILIES.to_vec();
    print!(
        "{}",
        report::markdown(&rows, &families, &judge_spec(), started.elapsed())
    );
}

/// The engine's default `analysis` config: the error-rate limit of 5% per
/// window with `failure_limit: 2`, the sequential tests on errors and on
/// requests slower than the baseline's p95 (alpha 1% shared between them), and
/// the Mann-Whitney comparison of each step's latencies, decided at its end.
pub fn judge_spec() -> AnalysisSpec {
    AnalysisSpec::default()
}

/// How long each of cutover's steps lasts: the default `pause` of a canary
/// step. The canary stays at [`CANARY_SHARE`] for the whole horizon, so the
/// run is that many steps at the same weight, each ending with its comparison.
pub const STEP_PAUSE: Duration = cutover_spec::defaults::STEP_PAUSE;

/// The alpha of each sequential test: the spec's, shared by the tests in use.
pub fn alpha_per_test(spec: &AnalysisSpec) -> f64 {
    spec.sequential.map_or(0.0, |seq| {
        let tests = u32::from(seq.errors) + u32::from(seq.latency_quantile.is_some());
        seq.alpha.fraction() / f64::from(tests.max(1))
    })
}

fn seed(family: usize, case: usize, run: usize) -> u64 {
    SEED ^ ((family as u64) << 48) ^ ((case as u64) << 32) ^ run as u64
}

/// One canary watched for the horizon by all three policies, on the same traffic.
fn simulate(seed: u64, canary: &Behaviour, baseline: &Behaviour) -> Outcome {
    let window_secs = cutover_spec::defaults::ANALYSIS_INTERVAL.as_secs_f64();
    let requests = (RATE * window_secs).round() as u64;
    let windows = (HORIZON_SECS / window_secs).round() as usize;
    let mut rng = fastrand::Rng::with_seed(seed);
    // Kayenta's own baseline cluster, with a traffic share equal to the canary's.
    let mut kayenta_rng = fastrand::Rng::with_seed(!seed);

    let mut cutover = cutover_policy(judge_spec(), STEP_PAUSE);
    // The same judge with the whole horizon as one step: the comparison decided
    // once, at its end.
    let mut one_step = cutover_policy(judge_spec(), Duration::from_secs_f64(HORIZON_SECS));
    let mut flagger = FlaggerPolicy::new((FLAGGER_INTERVAL_SECS / window_secs).round() as usize);
    let mut kayenta = KayentaPolicy::new((KAYENTA_INTERVAL_SECS / window_secs).round() as usize);
    let mut outcome = Outcome::default();
    let mut kayenta_done = false;
    for w in 1..=windows {
        let end = w as f64 * window_secs;
        let (c, b) = split_window(&mut rng, requests, CANARY_SHARE, canary, baseline);
        if outcome.cutover.is_none() {
            let judged = cutover.observe(&c, &b);
            outcome.cutover = judged.roll_back.map(|m| (end, m));
            if outcome.first_limit_failure.is_none() && judged.limit_failed {
                outcome.first_limit_failure = Some(end);
            }
        }
        if outcome.one_step.is_none() {
            outcome.one_step = one_step.observe(&c, &b).roll_back.map(|m| (end, m));
        }
        if outcome.flagger.is_none() {
            outcome.flagger = flagger.observe(&c).map(|m| (end, m));
        }
        if !kayenta_done {
            let share = (0..requests)
                .filter(|_| kayenta_rng.f64() < CANARY_SHARE)
                .count() as u64;
            let kb = window(&mut kayenta_rng, share, baseline);
            match kayenta.observe(&c, &kb) {
                Judgement::Collecting => {}
                Judgement::Pass => kayenta_done = true,
                Judgement::Fail(m) => {
                    kayenta_done = true;
                    outcome.kayenta = Some((end, m));
                }
            }
        }
        if outcome.cutover.is_some()
            && outcome.one_step.is_some()
            && outcome.flagger.is_some()
            && kayenta_done
        {
            break;
        }
    }
    outcome
}
