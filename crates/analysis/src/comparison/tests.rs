use proptest::prelude::*;

use super::*;

/// A deterministic, skewed latency-like sample around `median` ms.
fn latencies(n: usize, median: f64, seed: u64) -> Vec<f64> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|_| {
            // Exponential spread around the median: heavy enough on the right.
            let u: f64 = rng.f64().max(1e-12);
            median * (1.0 + 0.5 * (-u.ln() - std::f64::consts::LN_2))
        })
        .collect()
}

fn scaled(v: &[f64], by: f64) -> Vec<f64> {
    v.iter().map(|x| x * by).collect()
}

fn spec(direction: Direction) -> MetricSpec {
    MetricSpec::new("latency_ms", direction)
}

#[test]
fn a_materially_slower_canary_is_high() {
    let baseline = latencies(200, 50.0, 1);
    let canary = scaled(&latencies(200, 50.0, 2), 1.3);
    let spec = MetricSpec {
        tolerance: Tolerance::Ratio {
            increase: 0.1,
            decrease: 0.1,
        },
        ..spec(Direction::HigherIsBad)
    };
    let r = compare(&spec, &canary, &baseline).unwrap();
    assert_eq!(r.verdict, MetricVerdict::High);
    let test = r.test.unwrap();
    assert_eq!(test.alternative, Alternative::Greater);
    assert!(test.p_value < 1e-6, "{test:?}");
    assert!(r.effect.unwrap() > 1.2, "{r:?}");
    assert!((r.alpha - 0.05).abs() < 1e-12);
}

#[test]
fn a_significant_shift_within_tolerance_passes() {
    let baseline = latencies(5000, 50.0, 3);
    let canary = scaled(&latencies(5000, 50.0, 4), 1.05);
    let strict = spec(Direction::HigherIsBad);
    assert_eq!(
        compare(&strict, &canary, &baseline).unwrap().verdict,
        MetricVerdict::High,
        "5% slower over 5000 requests is significant"
    );
    let tolerant = MetricSpec {
        tolerance: Tolerance::Ratio {
            increase: 0.1,
            decrease: 0.0,
        },
        ..strict
    };
    let r = compare(&tolerant, &canary, &baseline).unwrap();
    assert_eq!(r.verdict, MetricVerdict::Pass);
    assert!(r.test.unwrap().p_value < 0.05);
}

#[test]
fn the_good_direction_never_fails() {
    let baseline = latencies(200, 50.0, 5);
    let faster = scaled(&latencies(200, 50.0, 6), 0.5);
    let r = compare(&spec(Direction::HigherIsBad), &faster, &baseline).unwrap();
    assert_eq!(r.verdict, MetricVerdict::Pass);
    assert!(r.test.unwrap().p_value > 0.99);
    // The same canary, where lower is bad (a throughput, say), is low.
    let r = compare(&spec(Direction::LowerIsBad), &faster, &baseline).unwrap();
    assert_eq!(r.verdict, MetricVerdict::Low);
    assert_eq!(r.test.unwrap().alternative, Alternative::Less);
}

#[test]
fn either_direction_reports_which_way() {
    let baseline = latencies(200, 50.0, 7);
    let either = spec(Direction::Either);
    let slower = scaled(&latencies(200, 50.0, 8), 2.0);
    let faster = scaled(&latencies(200, 50.0, 9), 0.5);
    let same = latencies(200, 50.0, 10);
    assert_eq!(
        compare(&either, &slower, &baseline).unwrap().verdict,
        MetricVerdict::High
    );
    assert_eq!(
        compare(&either, &faster, &baseline).unwrap().verdict,
        MetricVerdict::Low
    );
    let r = compare(&either, &same, &baseline).unwrap();
    assert_eq!(r.verdict, MetricVerdict::Pass);
    assert_eq!(r.test.unwrap().alternative, Alternative::TwoSided);
}

#[test]
fn an_absolute_tolerance_is_on_the_hodges_lehmann_shift() {
    // Error counts per interval: baseline 3 +- 1, canary 2 more.
    let baseline: Vec<f64> = (0..40).map(|i| f64::from(2 + i % 3)).collect();
    let canary: Vec<f64> = baseline.iter().map(|x| x + 2.0).collect();
    let loose = MetricSpec {
        tolerance: Tolerance::Absolute {
            increase: 2.5,
            decrease: 0.0,
        },
        ..MetricSpec::new("errors", Direction::HigherIsBad)
    };
    let r = compare(&loose, &canary, &baseline).unwrap();
    assert_eq!(r.effect, Some(2.0));
    assert_eq!(r.verdict, MetricVerdict::Pass);
    let tight = MetricSpec {
        tolerance: Tolerance::Absolute {
            increase: 1.5,
            decrease: 0.0,
        },
        ..loose
    };
    assert_eq!(
        compare(&tight, &canary, &baseline).unwrap().verdict,
        MetricVerdict::High
    );
}

#[test]
fn a_ratio_over_a_zero_median_is_infinite_or_one() {
    let zeros = vec![0.0; 30];
    let ones: Vec<f64> = (0..30).map(|i| if i < 20 { 1.0 } else { 0.0 }).collect();
    let errors = MetricSpec::new("errors", Direction::HigherIsBad);
    let r = compare(&errors, &ones, &zeros).unwrap();
    assert_eq!(r.effect, Some(f64::INFINITY));
    assert_eq!(r.verdict, MetricVerdict::High);
    let r = compare(&errors, &zeros, &zeros).unwrap();
    assert_eq!(r.effect, Some(1.0));
    assert_eq!(r.verdict, MetricVerdict::Pass);
}

#[test]
fn with_no_tolerance_more_frequent_failures_count_though_the_medians_are_equal() {
    // Errors per interval: mostly 0 on both sides, the canary's 1s three times as
    // often.
    let baseline: Vec<f64> = (0..200).map(|i| f64::from(i % 20 == 0)).collect();
    let canary: Vec<f64> = (0..200).map(|i| f64::from(i % 20 < 3)).collect();
    let errors = MetricSpec::new("errors", Direction::HigherIsBad);
    let r = compare(&errors, &canary, &baseline).unwrap();
    assert_eq!(r.effect, Some(1.0));
    assert!(r.test.unwrap().p_value < 0.05);
    assert_eq!(r.verdict, MetricVerdict::High);
    // Any allowed drift, however small, lets equal medians pass.
    let tolerant = MetricSpec {
        tolerance: Tolerance::Ratio {
            increase: 0.01,
            decrease: 0.0,
        },
        ..errors
    };
    assert_eq!(
        compare(&tolerant, &canary, &baseline).unwrap().verdict,
        MetricVerdict::Pass
    );
}

#[test]
fn too_few_samples_is_no_data_not_a_pass() {
    let spec = MetricSpec {
        min_samples: 20,
        critical: true,
        ..spec(Direction::HigherIsBad)
    };
    let r = compare(&spec, &latencies(19, 50.0, 11), &latencies(500, 50.0, 12)).unwrap();
    assert_eq!(r.verdict, MetricVerdict::NoData);
    assert_eq!((r.n_canary, r.n_baseline), (19, 500));
    assert_eq!(r.test, None);
    let card = score(&[r], Thresholds::default()).unwrap();
    assert_eq!(card.verdict, CanaryVerdict::NoData);
    assert_eq!(card.no_data, vec!["latency_ms".to_string()]);

    // Even a minimum of 0 needs one value on each side.
    let spec = MetricSpec {
        min_samples: 0,
        ..spec
    };
    assert_eq!(
        compare(&spec, &[], &[1.0]).unwrap().verdict,
        MetricVerdict::NoData
    );
}

#[test]
fn invalid_specs_and_samples_are_errors_naming_the_metric() {
    let bad = MetricSpec {
        confidence: 95.0,
        ..spec(Direction::HigherIsBad)
    };
    assert_eq!(
        compare(&bad, &[1.0], &[1.0]).unwrap_err().to_string(),
        "metric \"latency_ms\": confidence is 95, expected a number between 0 and 1, such as 0.95"
    );
    let bad = MetricSpec {
        tolerance: Tolerance::Ratio {
            increase: -0.1,
            decrease: 0.0,
        },
        ..spec(Direction::HigherIsBad)
    };
    assert!(matches!(
        compare(&bad, &[1.0], &[1.0]),
        Err(ComparisonError::InvalidSpec {
            field: "tolerance.increase",
            ..
        })
    ));
    let bad = MetricSpec {
        weight: f64::NAN,
        ..spec(Direction::HigherIsBad)
    };
    assert!(compare(&bad, &[1.0], &[1.0]).is_err());
    let samples = vec![1.0; 10];
    let mut nan = samples.clone();
    nan[3] = f64::NAN;
    let err = compare(&spec(Direction::HigherIsBad), &nan, &samples).unwrap_err();
    assert!(matches!(
        err,
        ComparisonError::Sample {
            source: MannWhitneyError::NotFinite { index: 3, .. },
            ..
        }
    ));
    assert!(
        score(
            &[],
            Thresholds {
                pass: 70.0,
                marginal: 80.0
            }
        )
        .is_err()
    );
}

/// A histogram of `n` latencies around `median` ms ([`latencies`]).
fn histogram(n: usize, median: f64, seed: u64) -> Histogram {
    let mut h = Histogram::new();
    for ms in latencies(n, median, seed) {
        h.record((ms * 1000.0) as u64, 1);
    }
    h
}

fn any_spec() -> impl Strategy<Value = MetricSpec> {
    let direction = prop_oneof![
        Just(Direction::HigherIsBad),
        Just(Direction::LowerIsBad),
        Just(Direction::Either)
    ];
    let tolerance = prop_oneof![
        (0.0f64..0.3, 0.0f64..0.3)
            .prop_map(|(increase, decrease)| Tolerance::Ratio { increase, decrease }),
        (0.0f64..5.0, 0.0f64..5.0)
            .prop_map(|(increase, decrease)| Tolerance::Absolute { increase, decrease }),
    ];
    (direction, tolerance, 0.8f64..0.999, 0usize..60).prop_map(
        |(direction, tolerance, confidence, min_samples)| MetricSpec {
            confidence,
            tolerance,
            min_samples,
            ..MetricSpec::new("latency_ms", direction)
        },
    )
}

proptest! {
    #[test]
    fn histograms_are_judged_exactly_as_their_expansions(
        spec in any_spec(),
        n_canary in 0usize..400,
        n_baseline in 0usize..400,
        slowdown in 0.8f64..1.4,
        seed in any::<u64>(),
    ) {
        let canary = histogram(n_canary, 50.0 * slowdown, seed);
        let baseline = histogram(n_baseline, 50.0, seed ^ 1);
        let by_bucket = compare_histograms(&spec, &canary, &baseline).unwrap();
        let by_value = compare(&spec, &canary.expand_ms(), &baseline.expand_ms()).unwrap();
        prop_assert_eq!(by_bucket, by_value);
    }
}

#[test]
fn a_slower_histogram_is_high_and_an_empty_one_no_data() {
    let spec = MetricSpec {
        tolerance: Tolerance::Ratio {
            increase: 0.1,
            decrease: 0.0,
        },
        ..spec(Direction::HigherIsBad)
    };
    let baseline = histogram(2000, 50.0, 21);
    let slower = histogram(200, 65.0, 22);
    let r = compare_histograms(&spec, &slower, &baseline).unwrap();
    assert_eq!(r.verdict, MetricVerdict::High);
    assert_eq!((r.n_canary, r.n_baseline), (200, 2000));
    assert!(r.effect.unwrap() > 1.2, "{r:?}");
    let r = compare_histograms(&spec, &Histogram::new(), &baseline).unwrap();
    assert_eq!(r.verdict, MetricVerdict::NoData);
    assert_eq!(r.test, None);
}

/// A judged metric with the given verdict, for scoring.
fn judged(name: &str, verdict: MetricVerdict, weight: f64, critical: bool) -> MetricComparison {
    MetricComparison {
        metric: name.into(),
        verdict,
        n_canary: 100,
        n_baseline: 100,
        test: None,
        alpha: 0.05,
        effect: None,
        tolerance: Tolerance::NONE,
        weight,
        critical,
    }
}

#[test]
fn the_score_is_the_passing_share_of_the_weight_with_data() {
    use MetricVerdict::*;
    let t = Thresholds::default();
    let card = score(
        &[
            judged("a", Pass, 3.0, false),
            judged("b", High, 1.0, false),
            judged("c", NoData, 5.0, false),
        ],
        t,
    )
    .unwrap();
    assert_eq!(card.score, Some(75.0));
    assert_eq!(card.verdict, CanaryVerdict::Marginal);
    assert_eq!(card.no_data, vec!["c".to_string()]);

    let card = score(
        &[judged("a", Pass, 19.0, false), judged("b", Low, 1.0, false)],
        t,
    )
    .unwrap();
    assert_eq!(card.score, Some(95.0));
    assert_eq!(card.verdict, CanaryVerdict::Pass);

    let card = score(
        &[judged("a", Pass, 1.0, false), judged("b", High, 1.0, false)],
        t,
    )
    .unwrap();
    assert_eq!(card.verdict, CanaryVerdict::Fail);
}

#[test]
fn a_critical_failure_fails_the_canary_whatever_the_score() {
    use MetricVerdict::*;
    let card = score(
        &[
            judged("latency", Pass, 100.0, false),
            judged("errors", High, 0.0, true),
        ],
        Thresholds::default(),
    )
    .unwrap();
    assert_eq!(card.score, Some(100.0));
    assert_eq!(card.verdict, CanaryVerdict::Fail);
    assert_eq!(card.critical_failures, vec!["errors".to_string()]);
}

#[test]
fn nothing_with_data_is_no_data() {
    use MetricVerdict::*;
    let card = score(&[judged("a", NoData, 1.0, false)], Thresholds::default()).unwrap();
    assert_eq!((card.score, card.verdict), (None, CanaryVerdict::NoData));
    let card = score(&[], Thresholds::default()).unwrap();
    assert_eq!(card.verdict, CanaryVerdict::NoData);
}

#[test]
fn results_serialize_as_numbers() {
    let baseline = latencies(50, 50.0, 13);
    let canary = latencies(50, 50.0, 14);
    let r = compare(&spec(Direction::HigherIsBad), &canary, &baseline).unwrap();
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["test"]["p_value"].is_f64());
    assert!(json["test"]["u"].is_f64());
    assert_eq!(json["verdict"], "pass");
    assert_eq!(json["tolerance"]["kind"], "ratio");
}
