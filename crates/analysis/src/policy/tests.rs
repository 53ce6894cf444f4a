use std::time::Duration;

use cutover_spec::{AnalysisSpec, ApdexRule, MetricRules};

use super::*;

/// A window of `requests` with `errors` failures and latencies drawn lognormally
/// around `median_ms` (sigma 0.5), from a seeded generator.
fn window(rng: &mut fastrand::Rng, requests: u64, error_rate: f64, median_ms: f64) -> Sample {
    let mut s = Sample::default();
    for _ in 0..requests {
        // Box-Muller for a standard normal.
        let z = (-2.0 * (1.0 - rng.f64()).ln()).sqrt() * (std::f64::consts::TAU * rng.f64()).cos();
        let ms = median_ms * (0.5 * z).exp();
        s.latency.record((ms * 1000.0) as u64, 1);
        s.requests += 1;
        s.errors += u64::from(rng.f64() < error_rate);
    }
    let pick = |q| s.latency.quantile(q);
    (s.p50, s.p95, s.p99) = (pick(0.5), pick(0.95), pick(0.99));
    s
}

fn spec() -> AnalysisSpec {
    AnalysisSpec::default()
}

fn result<'r>(report: &'r WindowReport, metric: &str, test: Test) -> &'r MetricResult {
    report
        .metrics
        .iter()
        .find(|m| m.metric == metric && m.test == test)
        .unwrap_or_else(|| panic!("no {metric} {test:?} in {report:?}"))
}

#[test]
fn a_canary_failing_under_the_limit_is_caught_by_the_sequential_test_in_seconds() {
    let mut rng = fastrand::Rng::with_seed(1);
    let mut state = JudgeState::default();
    // 10% of 200 requests/s in 5 s windows; the canary fails 4% of its requests,
    // under the 5% limit, the baseline 0.44%.
    for w in 1..=2 {
        let mut baseline = window(&mut rng, 900, 0.0, 20.0);
        baseline.errors = 4;
        let mut canary = window(&mut rng, 100, 0.0, 20.0);
        canary.errors = 4;
        let r = judge_window(&spec(), &mut state, &baseline, true, &canary);
        assert_eq!(result(&r, "error_rate", Test::Limit).verdict, Verdict::Pass);
        let errors = result(&r, "error_rate", Test::Sequential);
        if w == 1 {
            assert_eq!(
                errors.verdict,
                Verdict::Pass,
                "one window is not yet enough"
            );
            continue;
        }
        assert_eq!(errors.verdict, Verdict::Fail, "{errors:?}");
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(errors.p_value.unwrap() <= 0.005);
        let why = errors.explain().unwrap();
        assert!(
            why.contains("beyond chance") && why.contains("4.00%"),
            "{why}"
        );
    }
}

#[test]
fn a_healthy_canary_passes_every_window_for_ten_minutes() {
    let mut rng = fastrand::Rng::with_seed(2);
    let mut state = JudgeState::default();
    for w in 0..120 {
        let baseline = window(&mut rng, 900, 0.005, 20.0);
        let canary = window(&mut rng, 100, 0.005, 20.0);
        let r = judge_window(&spec(), &mut state, &baseline, true, &canary);
        assert_ne!(r.verdict, Verdict::Fail, "window {w}: {r:?}");
        if w == 10 {
            state.next_step();
        }
    }
    assert!(state.slow.is_some(), "the latency test ran");
    let last = judge_window(
        &spec(),
        &mut state,
        &window(&mut rng, 900, 0.005, 20.0),
        true,
        &window(&mut rng, 100, 0.005, 20.0),
    );
    assert_eq!(
        result(&last, "latency", Test::MannWhitney).verdict,
        Verdict::Pass
    );
}

#[test]
fn a_slower_canary_is_caught_by_its_share_of_slow_requests_and_the_comparison() {
    let mut rng = fastrand::Rng::with_seed(3);
    let mut state = JudgeState::default();
    let mut caught = None;
    for w in 0..120 {
        let baseline = window(&mut rng, 900, 0.0, 20.0);
        let canary = window(&mut rng, 100, 0.0, 26.0);
        let r = judge_window(&spec(), &mut state, &baseline, true, &canary);
        if r.verdict == Verdict::Fail {
            let slow = result(&r, "slow_requests", Test::Sequential);
            assert!(slow.threshold_ms.is_some_and(|t| t > 20.0), "{slow:?}");
            caught = Some((w, r));
            break;
        }
    }
    let (w, r) = caught.expect("a canary 30% slower was never caught");
    assert!(w < 60, "caught only after {w} windows");
    let cmp = result(&r, "latency", Test::MannWhitney);
    assert_eq!(cmp.verdict, Verdict::Fail, "{cmp:?}");
    assert!(cmp.effect.is_some_and(|e| e > 1.1), "{cmp:?}");
}

#[test]
fn the_slow_request_threshold_is_never_the_canarys_own() {
    let mut rng = fastrand::Rng::with_seed(4);
    let mut state = JudgeState::default();
    // p95 needs 400 baseline latencies before the baseline's own quantile is the
    // threshold; until then, the window's requests pooled.
    let pooled = judge_window(
        &spec(),
        &mut state,
        &window(&mut rng, 300, 0.0, 20.0),
        true,
        &window(&mut rng, 30, 0.0, 20.0),
    );
    assert!(
        result(&pooled, "slow_requests", Test::Sequential)
            .threshold_ms
            .is_some()
    );
    for _ in 0..2 {
        judge_window(
            &spec(),
            &mut state,
            &window(&mut rng, 300, 0.0, 20.0),
            true,
            &window(&mut rng, 30, 0.0, 20.0),
        );
    }
    let test = state.slow.as_ref().expect("started in the first window");
    assert_eq!(test.reference.count(), 900, "the baseline's windows only");
    assert_eq!(test.slow.canary.requests, 90);
}

#[test]
fn a_carried_baseline_feeds_neither_the_tests_nor_the_comparison() {
    let mut rng = fastrand::Rng::with_seed(5);
    let mut state = JudgeState::default();
    let carried = window(&mut rng, 900, 0.01, 20.0);
    for _ in 0..3 {
        // Twice as slow, at a time the baseline was not measured.
        let r = judge_window(
            &spec(),
            &mut state,
            &carried,
            false,
            &window(&mut rng, 200, 0.01, 40.0),
        );
        assert_ne!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.against, Against::CarriedBaseline);
        assert!(r.of(Test::MannWhitney).next().is_none(), "{r:?}");
    }
    assert!(state.errors.is_none(), "no test ran on an old baseline");
    assert!(state.step_baseline.is_empty());
}

#[test]
fn a_step_that_had_a_baseline_is_compared_after_it_stopped_serving() {
    let mut rng = fastrand::Rng::with_seed(9);
    let mut state = JudgeState::default();
    judge_window(
        &spec(),
        &mut state,
        &window(&mut rng, 900, 0.0, 20.0),
        true,
        &window(&mut rng, 100, 0.0, 20.0),
    );
    let r = judge_window(
        &spec(),
        &mut state,
        &window(&mut rng, 900, 0.0, 20.0),
        false,
        &window(&mut rng, 100, 0.0, 20.0),
    );
    assert_eq!(
        result(&r, "latency", Test::MannWhitney).verdict,
        Verdict::Pass
    );
}

#[test]
fn a_new_step_starts_the_comparison_over_and_keeps_the_tests() {
    let mut rng = fastrand::Rng::with_seed(6);
    let mut state = JudgeState::default();
    for _ in 0..3 {
        judge_window(
            &spec(),
            &mut state,
            &window(&mut rng, 900, 0.005, 20.0),
            true,
            &window(&mut rng, 100, 0.005, 20.0),
        );
    }
    let before = state.errors.clone().unwrap();
    state.next_step();
    assert!(state.step_canary.is_empty() && state.step_baseline.is_empty());
    assert_eq!(state.errors, Some(before));
}

#[test]
fn turned_off_tests_leave_only_the_limits() {
    let mut rng = fastrand::Rng::with_seed(7);
    let spec = AnalysisSpec {
        sequential: None,
        comparison: None,
        ..AnalysisSpec::default()
    };
    let r = judge_window(
        &spec,
        &mut JudgeState::default(),
        &window(&mut rng, 900, 0.0, 20.0),
        true,
        &window(&mut rng, 100, 0.04, 20.0),
    );
    assert!(r.metrics.iter().all(|m| m.test == Test::Limit), "{r:?}");
    assert_eq!(r.verdict, Verdict::Pass);
}

#[test]
fn apdex_is_a_minimum_on_the_histogram() {
    let mut rng = fastrand::Rng::with_seed(8);
    let spec = AnalysisSpec {
        metrics: MetricRules {
            apdex: Some(ApdexRule {
                threshold: Duration::from_millis(30),
                min: 0.9,
            }),
            ..MetricRules::default()
        },
        sequential: None,
        comparison: None,
        ..AnalysisSpec::default()
    };
    let fast = window(&mut rng, 500, 0.0, 10.0);
    let slow = window(&mut rng, 500, 0.0, 40.0);
    let judged = |canary: &Sample| {
        let r = judge_window(&spec, &mut JudgeState::default(), &fast, true, canary);
        result(&r, "apdex", Test::Limit).clone()
    };
    let good = judged(&fast);
    assert_eq!(good.verdict, Verdict::Pass, "{good:?}");
    assert!(good.canary.unwrap() > 0.95);
    let bad = judged(&slow);
    assert_eq!(bad.verdict, Verdict::Fail, "{bad:?}");
    assert_eq!(bad.format_limit(), ">= 0.90");
    // Every request failing is every request frustrated.
    let mut failing = fast.clone();
    failing.errors = failing.requests;
    assert_eq!(failing.apdex(Duration::from_millis(30)), Some(0.0));
}
