use super::*;

/// `(rho, a, b, canary errors, baseline errors, log M)` from scipy's `betaln`:
/// `crates/analysis/tests/reference/sequential.py` (scipy 1.17.1).
const REFERENCES: &[(f64, f64, f64, u64, u64, f64)] = &[
    (0.1, 3.0, 27.0, 0, 0, 0.0),
    (0.1, 3.0, 27.0, 5, 40, -0.48597512366886697),
    (0.1, 3.0, 27.0, 30, 120, 4.543687308836521),
    (0.1, 3.0, 27.0, 2, 300, 19.71332617940575),
    (0.5, 1.0, 1.0, 60, 40, -0.09096487798123931),
    (0.25, 2.5, 7.5, 1200, 3000, 10.735697536576367),
    (0.1, 3.0, 27.0, 100000, 900000, -5.23515727337508),
];

#[test]
fn log_ratio_matches_scipy() {
    for &(rho, a, b, c, e, want) in REFERENCES {
        let mut t = ErrorCountTest::with_concentration(rho, 0.05, a + b).unwrap();
        assert!((t.prior_a - a).abs() < 1e-12 && (t.prior_b - b).abs() < 1e-12);
        let got = t.observe(c, e).log_ratio;
        assert!(
            (got - want).abs() < 1e-8 * want.abs().max(1.0),
            "rho {rho}, {c} vs {e}: got {got}, scipy says {want}"
        );
    }
}

#[test]
fn ln_gamma_is_accurate() {
    // From scipy.special.gammaln.
    for (x, want) in [
        (1.0, 0.0),
        (2.0, 0.0),
        (0.5, 0.572_364_942_924_7),
        (10.0, 12.801_827_480_081_469),
        (0.1, 2.252_712_651_734_206),
        (1e6, 12_815_504.569_147_611),
    ] {
        let got = ln_gamma(x);
        assert!(
            (got - want).abs() < 1e-12 * f64::max(want.abs(), 1.0),
            "ln_gamma({x}) = {got}, want {want}"
        );
    }
}

/// A Poisson draw by Knuth's method: fine for the small means of one window.
fn poisson(rng: &mut fastrand::Rng, mean: f64) -> u64 {
    let limit = (-mean).exp();
    let mut k = 0;
    let mut p = rng.f64();
    while p > limit {
        k += 1;
        p *= rng.f64();
    }
    k
}

/// Runs `runs` tests of `looks` windows each, with the given mean errors per
/// window, and returns for each the look at which it decided "worse", if it did.
fn simulate(
    seed: u64,
    runs: usize,
    looks: usize,
    alpha: f64,
    canary_mean: f64,
    baseline_mean: f64,
) -> Vec<Option<usize>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..runs)
        .map(|_| {
            let mut test = ErrorCountTest::new(0.1, alpha).unwrap();
            (1..=looks).find(|_| {
                let c = poisson(&mut rng, canary_mean);
                let b = poisson(&mut rng, baseline_mean);
                test.observe(c, b).decision == Decision::CanaryWorse
            })
        })
        .collect()
}

fn share_detected(runs: &[Option<usize>]) -> f64 {
    runs.iter().filter(|a| a.is_some()).count() as f64 / runs.len() as f64
}

#[test]
fn false_alarms_stay_below_alpha_however_often_it_looks() {
    // 200 requests/s at 0.5% errors, 10% on the canary, 5 s windows: 0.5 canary
    // and 4.5 baseline errors per window, looked at after each of 100 windows.
    let share = share_detected(&simulate(13, 2000, 100, 0.05, 0.5, 4.5));
    assert!(share < 0.06, "false-alarm share {share}");

    // What the bound buys: a fixed-sample test at the same level, repeated after
    // every window (a one-sided z-test on the cumulative canary share), alarms on
    // several times as many healthy canaries.
    let mut rng = fastrand::Rng::with_seed(13);
    let naive = (0..2000)
        .filter(|_| {
            let (mut c, mut b) = (0u64, 0u64);
            (0..100).any(|_| {
                c += poisson(&mut rng, 0.5);
                b += poisson(&mut rng, 4.5);
                let n = (c + b) as f64;
                n > 0.0 && (c as f64 - 0.1 * n) / (0.09 * n).sqrt() > 1.645
            })
        })
        .count() as f64
        / 2000.0;
    assert!(naive > 0.15, "naive share {naive}");
}

#[test]
fn a_doubled_error_rate_is_detected() {
    // 0.5% -> 1% on the canary.
    let runs = simulate(17, 400, 100, 0.05, 1.0, 4.5);
    let share = share_detected(&runs);
    assert!(share > 0.95, "detected {share} of doubled-rate canaries");
    let mut looks: Vec<usize> = runs.iter().flatten().copied().collect();
    looks.sort_unstable();
    let median = looks[looks.len() / 2];
    assert!(median <= 40, "median detection after {median} windows");

    // Ten times the errors is caught within seconds: in a few windows of 5 s.
    let runs = simulate(19, 200, 100, 0.05, 5.0, 4.5);
    assert!(runs.iter().all(|d| d.is_some_and(|look| look <= 8)));
    let mut looks: Vec<usize> = runs.iter().flatten().copied().collect();
    looks.sort_unstable();
    assert!(looks[looks.len() / 2] <= 3, "{looks:?}");
}

#[test]
fn a_better_canary_is_not_a_regression() {
    let mut test = ErrorCountTest::new(0.1, 0.05).unwrap();
    let e = test.observe(2, 300);
    assert_eq!(e.decision, Decision::CanaryBetter);
    assert!(e.p_value < 0.05);
    // Sticky, even when a later window looks bad.
    assert_eq!(test.observe(500, 0).decision, Decision::CanaryBetter);
}

#[test]
fn no_errors_is_no_evidence() {
    let mut test = ErrorCountTest::new(0.1, 0.01).unwrap();
    for _ in 0..100 {
        let e = test.observe(0, 0);
        assert_eq!(e.log_ratio, 0.0);
        assert_eq!(e.p_value, 1.0);
        assert_eq!(e.observed_share, None);
        assert_eq!(e.decision, Decision::Continue);
    }
    assert!((test.log_threshold() - 100f64.ln()).abs() < 1e-12);
}

#[test]
fn the_state_round_trips_through_json() {
    let mut test = ErrorCountTest::new(0.25, 0.01).unwrap();
    test.observe(7, 12);
    let json = serde_json::to_string(&test).unwrap();
    let mut back: ErrorCountTest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, test);
    assert_eq!(back.observe(1, 1), test.observe(1, 1));
}

#[test]
fn parameters_out_of_range_are_errors() {
    assert_eq!(
        ErrorCountTest::new(1.0, 0.05).unwrap_err().to_string(),
        "canary_share is 1, expected a number between 0 and 1, exclusive"
    );
    assert!(ErrorCountTest::new(0.1, 0.0).is_err());
    assert!(ErrorCountTest::with_concentration(0.1, 0.05, f64::NAN).is_err());
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u = 1.0 - rng.f64(); // (0, 1]
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.f64()).cos()
}

/// Windows of 1000 requests routed at random, 10% to the canary, with lognormal
/// latencies (the canary's scaled by `slowdown`); counts requests slower than the
/// baseline's p95 and returns for each run the window at which it decided "worse".
fn simulate_slow_requests(
    seed: u64,
    runs: usize,
    looks: usize,
    slowdown: f64,
) -> Vec<Option<usize>> {
    let (mu, sigma) = (50f64.ln(), 0.6);
    let threshold = (mu + 1.644_853_626_951_472_2 * sigma).exp();
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..runs)
        .map(|_| {
            let mut test = ErrorCountTest::new(0.1, 0.05).unwrap();
            (1..=looks).find(|_| {
                let (mut canary, mut baseline) = (0, 0);
                for _ in 0..1000 {
                    let to_canary = rng.f64() < 0.1;
                    let scale = if to_canary { slowdown } else { 1.0 };
                    if scale * (mu + sigma * normal(&mut rng)).exp() > threshold {
                        *(if to_canary {
                            &mut canary
                        } else {
                            &mut baseline
                        }) += 1;
                    }
                }
                test.observe(canary, baseline).decision == Decision::CanaryWorse
            })
        })
        .collect()
}

#[test]
fn slow_requests_are_counts_too() {
    // 5% of requests are slow on both sides: far from rare, still no false alarms
    // beyond alpha, since each slow request is the canary's with probability 0.1.
    let healthy = share_detected(&simulate_slow_requests(23, 200, 50, 1.0));
    assert!(healthy < 0.06, "false alarms {healthy}");
    // p95 latency +20%: about 9% of the canary's requests pass the baseline's p95.
    let slower = share_detected(&simulate_slow_requests(29, 100, 50, 1.2));
    assert!(slower > 0.9, "detected {slower}");
}
