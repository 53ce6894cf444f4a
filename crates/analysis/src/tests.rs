use super::*;
use cutover_spec::{ErrorRateRule, LatencyRule, MetricRules, Percent};

fn pct(x: f64) -> Option<Percent> {
    Percent::from_fraction(x)
}

fn sample(requests: u64, errors: u64, p99_ms: u64) -> Sample {
    let d = Some(Duration::from_millis(p99_ms));
    Sample {
        requests,
        errors,
        p50: d,
        p95: d,
        p99: d,
        ..Sample::default()
    }
}

fn error_rule(max: Option<f64>, over: Option<f64>) -> MetricRules {
    MetricRules {
        error_rate: Some(ErrorRateRule {
            max: max.and_then(pct),
            max_over_stable: over.and_then(pct),
        }),
        ..Default::default()
    }
}

#[test]
fn healthy_canary_passes() {
    let r = judge(
        &error_rule(Some(0.01), None),
        20,
        &sample(100, 0, 10),
        &sample(50, 0, 10),
    );
    assert_eq!(r.verdict, Verdict::Pass);
    assert!(r.failures().is_empty());
}

#[test]
fn error_rate_above_absolute_limit_fails_and_says_why() {
    let r = judge(
        &error_rule(Some(0.01), None),
        20,
        &sample(100, 0, 10),
        &sample(100, 5, 10),
    );
    assert_eq!(r.verdict, Verdict::Fail);
    let failed = r.failures()[0];
    assert_eq!((failed.canary, failed.limit), (Some(0.05), Some(0.01)));
    let reason = failed.explain().unwrap();
    assert!(reason.contains("5.00%"), "{reason}");
    assert!(reason.contains("<= 1.00%"), "{reason}");
}

#[test]
fn relative_error_limit_is_measured_against_stable() {
    let rules = error_rule(None, Some(0.01));
    // stable 4%, canary 4.5%: within 1 point of stable.
    assert_eq!(
        judge(&rules, 20, &sample(1000, 40, 10), &sample(200, 9, 10)).verdict,
        Verdict::Pass
    );
    // stable 0%, canary 4.5%: 4.5 points over.
    assert_eq!(
        judge(&rules, 20, &sample(1000, 0, 10), &sample(200, 9, 10)).verdict,
        Verdict::Fail
    );
}

#[test]
fn too_few_requests_is_inconclusive_even_when_numbers_look_bad() {
    let r = judge(
        &error_rule(Some(0.01), None),
        20,
        &sample(100, 0, 10),
        &sample(5, 5, 10),
    );
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert!(r.metrics.iter().all(|m| m.verdict == Verdict::Inconclusive));
}

#[test]
fn relative_limit_without_stable_traffic_is_inconclusive_not_pass() {
    let rules = MetricRules {
        latency_p99: Some(LatencyRule {
            max: None,
            max_ratio: Some(1.5),
        }),
        ..Default::default()
    };
    let r = judge(&rules, 20, &Sample::default(), &sample(100, 0, 10));
    assert_eq!(r.verdict, Verdict::Inconclusive);
}

#[test]
fn latency_ratio_fails_a_slow_canary() {
    let rules = MetricRules {
        latency_p99: Some(LatencyRule {
            max: Some(Duration::from_secs(1)),
            max_ratio: Some(1.5),
        }),
        ..Default::default()
    };
    assert_eq!(
        judge(&rules, 20, &sample(100, 0, 100), &sample(100, 0, 140)).verdict,
        Verdict::Pass
    );
    let r = judge(&rules, 20, &sample(100, 0, 100), &sample(100, 0, 160));
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(r.failures()[0].metric, "latency_p99");
}

#[test]
fn tightest_of_absolute_and_relative_limit_applies() {
    let rules = error_rule(Some(0.02), Some(0.10));
    // relative bound would be 10%; the absolute 2% is tighter.
    assert_eq!(
        judge(&rules, 20, &sample(100, 0, 10), &sample(100, 3, 10)).verdict,
        Verdict::Fail
    );
}

#[test]
fn sample_round_trips_through_json() {
    let s = sample(10, 1, 12);
    let back: Sample = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back.requests, 10);
    assert_eq!(back.p99, s.p99);
}

#[test]
fn a_result_recorded_before_results_had_numbers_still_reads() {
    let old = r#"{"metric":"error_rate","stable":"0.10%","canary":"5.00%",
        "limit":"<= 1%","verdict":"fail","reason":"error rate 5.00% is above the limit 1.00%"}"#;
    let m: MetricResult = serde_json::from_str(old).unwrap();
    assert_eq!(
        (m.test, m.verdict, m.canary, m.limit),
        (Test::Limit, Verdict::Fail, None, None)
    );
    let report = r#"{"stable":{"requests":10,"errors":0,"p50":null,"p95":null,"p99":null},
        "canary":{"requests":10,"errors":1,"p50":1.0,"p95":2.0,"p99":3.0},
        "metrics":[],"verdict":"pass"}"#;
    let r: WindowReport = serde_json::from_str(report).unwrap();
    assert_eq!(
        (r.against, r.canary.latency.count()),
        (Against::Baseline, 0)
    );
}

fn custom(value: f64) -> Sample {
    Sample {
        custom: Box::new(BTreeMap::from([("queue_depth".to_owned(), value)])),
        ..sample(100, 0, 10)
    }
}

#[test]
fn a_custom_metric_is_judged_by_its_direction_absolute_and_relative() {
    let rule = |direction, bound, ratio| MetricRules {
        custom: vec![cutover_spec::CustomRule {
            name: "queue_depth".into(),
            direction,
            bound,
            ratio,
        }],
        ..Default::default()
    };
    let lower = rule(
        cutover_spec::Direction::LowerIsBetter,
        Some(10.0),
        Some(1.5),
    );
    let r = judge(&lower, 20, &custom(4.0), &custom(7.0));
    assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    assert_eq!(r.metrics[0].limit, Some(6.0), "the tightest: 4 x 1.5");
    assert_eq!(r.metrics[0].unit, Unit::Number);
    assert_eq!(
        judge(&lower, 20, &custom(5.0), &custom(7.0)).verdict,
        Verdict::Pass
    );
    let higher = rule(cutover_spec::Direction::HigherIsBetter, Some(0.9), None);
    let r = judge(&higher, 20, &custom(1.0), &custom(0.8));
    assert_eq!(r.verdict, Verdict::Fail);
    assert!(
        r.metrics[0]
            .explain()
            .unwrap()
            .contains("past the limit >= 0.9"),
        "{r:?}"
    );
    // Without a value the metric is never a pass.
    let missing = judge(&lower, 20, &custom(4.0), &sample(100, 0, 10));
    assert_eq!(missing.verdict, Verdict::Inconclusive);
    // Only the absolute bound judges a version on its own numbers.
    assert_eq!(absolute_limits(&lower).custom[0].ratio, None);
}
