use super::*;
use crate::histogram::{bucket_of, representative};
use proptest::prelude::*;

mod reference;
use reference::REFERENCES;

/// `a` and `b` agree to `rel` relative to the larger, or to `abs` absolutely.
fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= abs.max(rel * a.abs().max(b.abs()))
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        close(got, want, 1e-9, 1e-15),
        "{what}: got {got:e}, scipy says {want:e}"
    );
}

#[test]
fn matches_scipy_for_every_reference_and_alternative() {
    for r in REFERENCES {
        let method = if r.exact {
            Method::Exact
        } else {
            Method::Asymptotic
        };
        for (alternative, want) in [
            (Alternative::Greater, r.p_greater),
            (Alternative::Less, r.p_less),
            (Alternative::TwoSided, r.p_two_sided),
        ] {
            let t = mann_whitney(r.canary, r.baseline, alternative, method).unwrap();
            let what = format!("{} {alternative:?}", r.name);
            assert_eq!(t.u, r.u, "{what}: U");
            assert_close(&format!("{what}: p"), t.p_value, want);
            assert_close(
                &format!("{what}: median canary"),
                t.effect.median_canary,
                r.median_canary,
            );
            assert_close(
                &format!("{what}: median baseline"),
                t.effect.median_baseline,
                r.median_baseline,
            );
            assert_close(
                &format!("{what}: HL"),
                t.effect.hodges_lehmann,
                r.hodges_lehmann,
            );
            let expected = if r.exact {
                Distribution::Exact
            } else {
                Distribution::Normal
            };
            assert_eq!(t.distribution, expected, "{what}");
        }
    }
}

#[test]
fn auto_is_exact_for_small_untied_samples_and_normal_otherwise() {
    let by_name = |name: &str| REFERENCES.iter().find(|r| r.name == name).unwrap();
    let exact = by_name("exact_20x20");
    let t = mann_whitney(
        exact.canary,
        exact.baseline,
        Alternative::Greater,
        Method::Auto,
    )
    .unwrap();
    assert_eq!(t.distribution, Distribution::Exact);
    assert_close("auto exact p", t.p_value, exact.p_greater);

    let tied = by_name("ties_small");
    let t = mann_whitney(
        tied.canary,
        tied.baseline,
        Alternative::Greater,
        Method::Auto,
    )
    .unwrap();
    assert_eq!(t.distribution, Distribution::Normal);
    assert_close("auto tied p", t.p_value, tied.p_greater);
    assert_eq!(t.tie_term, 24.0 + 60.0 + 60.0);

    let large = by_name("large_lognormal_300x400");
    let t = mann_whitney(
        large.canary,
        large.baseline,
        Alternative::Less,
        Method::Auto,
    )
    .unwrap();
    assert_eq!(t.distribution, Distribution::Normal);
    assert!(t.z.is_some());
}

#[test]
fn exact_p_of_complete_separation_is_one_arrangement_in_all() {
    let t = mann_whitney(
        &[5.0, 6.0, 7.0],
        &[1.0, 2.0],
        Alternative::Greater,
        Method::Exact,
    )
    .unwrap();
    assert_eq!(t.u, 6.0);
    assert_eq!(t.p_value, 1.0 / 10.0);
    assert_eq!(t.effect.probability_of_superiority, 1.0);
    let t = mann_whitney(
        &[5.0, 6.0, 7.0],
        &[1.0, 2.0],
        Alternative::Less,
        Method::Exact,
    )
    .unwrap();
    assert_eq!(t.p_value, 1.0);
}

#[test]
fn exact_counts_are_the_gaussian_binomial() {
    // [4 choose 2]_q = 1 + q + 2q^2 + q^3 + q^4.
    let c = ExactCounts::new(2, 2).unwrap();
    assert_eq!(c.counts, vec![1, 1, 2, 1, 1]);
    assert_eq!(c.total, 6);
    // Large enough that intermediate coefficients wrap: the result still sums up.
    let c = ExactCounts::new(60, 60).unwrap();
    assert_eq!(c.counts.iter().sum::<u128>(), c.total);
    assert_eq!(c.counts[0], 1);
    assert_eq!(c.counts[1], 1);
    assert_eq!(c.counts[2], 2);
    assert!(ExactCounts::new(100, 100).is_none());
}

#[test]
fn identical_samples_are_no_evidence() {
    let t = mann_whitney(&[3.0; 30], &[3.0; 40], Alternative::Greater, Method::Auto).unwrap();
    assert_eq!(t.p_value, 1.0);
    assert_eq!(t.z, None);
    assert_eq!(t.effect.probability_of_superiority, 0.5);
    assert_eq!(t.effect.median_ratio, Some(1.0));
    assert_eq!(t.effect.hodges_lehmann, 0.0);
}

#[test]
fn bad_input_is_an_error_naming_the_side_and_value() {
    assert_eq!(
        mann_whitney(&[], &[1.0], Alternative::Greater, Method::Auto),
        Err(MannWhitneyError::Empty(Side::Canary))
    );
    let err = mann_whitney(
        &[1.0],
        &[2.0, f64::INFINITY],
        Alternative::Less,
        Method::Auto,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the baseline sample's value #1 is inf: only finite numbers can be ranked"
    );
    assert!(matches!(
        mann_whitney(&[1.0, 2.0], &[2.0], Alternative::Less, Method::Exact),
        Err(MannWhitneyError::ExactWithTies { tied: 2 })
    ));
    let big: Vec<f64> = (0..100).map(f64::from).collect();
    let other: Vec<f64> = (0..100).map(|i| f64::from(i) + 0.5).collect();
    assert!(matches!(
        mann_whitney(&big, &other, Alternative::Less, Method::Exact),
        Err(MannWhitneyError::ExactTooLarge { .. })
    ));
}

#[test]
fn erfc_is_accurate_across_its_range() {
    // Values from scipy.special.erfc.
    for (x, want) in [
        (0.0, 1.0),
        (0.5, 0.479_500_122_186_953_5),
        (1.0, 0.157_299_207_050_285_13),
        (1.999, 0.004_698_443_348_629_486_5),
        (2.0, 0.004_677_734_981_047_266),
        (3.0, 2.209_049_699_858_544e-5),
        (6.0, 2.151_973_671_249_891_3e-17),
        (-1.0, 1.842_700_792_949_715),
    ] {
        assert!(
            close(erfc(x), want, 1e-12, 0.0),
            "erfc({x}) = {:e}, want {want:e}",
            erfc(x)
        );
    }
}

#[test]
fn hodges_lehmann_is_the_median_of_all_differences() {
    let c = [1.0, 4.0, 9.0, 16.0];
    let b = [0.5, 2.0, 2.0];
    let mut all: Vec<f64> = c
        .iter()
        .flat_map(|x| b.iter().map(move |y| x - y))
        .collect();
    all.sort_by(f64::total_cmp);
    let want = (all[5] + all[6]) / 2.0; // the middle two of 12
    let t = mann_whitney(&c, &b, Alternative::TwoSided, Method::Auto).unwrap();
    assert_eq!(t.effect.hodges_lehmann, want);
}

/// Samples of small integers, so that ties are common; sometimes untied.
fn sample() -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        prop::collection::vec((-20i32..20).prop_map(f64::from), 1..40),
        prop::collection::vec((-1000i32..1000).prop_map(f64::from), 1..15),
    ]
}

fn alternative() -> impl Strategy<Value = Alternative> {
    prop_oneof![
        Just(Alternative::Greater),
        Just(Alternative::Less),
        Just(Alternative::TwoSided)
    ]
}

proptest! {
    #[test]
    fn u_and_its_complement_add_up_to_the_pairs(c in sample(), b in sample(), alt in alternative()) {
        let t = mann_whitney(&c, &b, alt, Method::Auto).unwrap();
        prop_assert_eq!(t.u + t.u_baseline, (c.len() * b.len()) as f64);
        prop_assert!((0.0..=1.0).contains(&t.effect.probability_of_superiority));
    }

    #[test]
    fn p_value_is_a_probability(c in sample(), b in sample(), alt in alternative()) {
        for method in [Method::Auto, Method::Asymptotic] {
            let t = mann_whitney(&c, &b, alt, method).unwrap();
            prop_assert!((0.0..=1.0).contains(&t.p_value), "{:?}", t);
        }
    }

    #[test]
    fn a_strictly_increasing_transform_changes_nothing_but_the_values(
        c in sample(), b in sample(), alt in alternative()
    ) {
        let t = mann_whitney(&c, &b, alt, Method::Auto).unwrap();
        for f in [|x: f64| x * x * x + x, |x: f64| (x / 50.0).exp(), |x: f64| 3.0 * x - 7.0] {
            let fc: Vec<f64> = c.iter().map(|&x| f(x)).collect();
            let fb: Vec<f64> = b.iter().map(|&x| f(x)).collect();
            let ft = mann_whitney(&fc, &fb, alt, Method::Auto).unwrap();
            prop_assert_eq!(ft.u, t.u);
            prop_assert_eq!(ft.tie_term, t.tie_term);
            prop_assert_eq!(ft.distribution, t.distribution);
            prop_assert_eq!(ft.p_value, t.p_value);
            prop_assert_eq!(
                ft.effect.probability_of_superiority,
                t.effect.probability_of_superiority
            );
        }
    }

    #[test]
    fn swapping_the_samples_mirrors_the_alternative(
        c in sample(), b in sample(), alt in alternative()
    ) {
        let t = mann_whitney(&c, &b, alt, Method::Auto).unwrap();
        let s = mann_whitney(&b, &c, alt.mirrored(), Method::Auto).unwrap();
        prop_assert_eq!(s.u, t.u_baseline);
        prop_assert!(close(s.p_value, t.p_value, 1e-12, 1e-15), "{} vs {}", s.p_value, t.p_value);
        prop_assert_eq!(s.effect.hodges_lehmann, -t.effect.hodges_lehmann);
    }

    #[test]
    fn exact_and_normal_agree_roughly_for_moderate_samples(
        shift in -5.0f64..5.0, n1 in 12usize..20, n2 in 12usize..20
    ) {
        // Distinct values on a fine grid: no ties.
        let c: Vec<f64> = (0..n1).map(|i| i as f64 * 1.37 + shift).collect();
        let b: Vec<f64> = (0..n2).map(|i| i as f64 * 1.11 + 0.001).collect();
        prop_assume!(c.iter().all(|x| !b.contains(x)));
        let e = mann_whitney(&c, &b, Alternative::TwoSided, Method::Exact).unwrap();
        let a = mann_whitney(&c, &b, Alternative::TwoSided, Method::Asymptotic).unwrap();
        prop_assert!((e.p_value - a.p_value).abs() < 0.02, "{} vs {}", e.p_value, a.p_value);
    }
}

/// A latency histogram: a few buckets with many requests each (ties within and
/// across the two sides), or a spread of single requests (sometimes none tied).
fn histogram() -> impl Strategy<Value = Histogram> {
    let of = |pairs: Vec<(u64, u64)>| {
        let mut h = Histogram::new();
        pairs
            .into_iter()
            .for_each(|(micros, n)| h.record(micros, n));
        h
    };
    prop_oneof![
        prop::collection::vec((0u64..300_000, 1u64..60), 1..25).prop_map(of),
        prop::collection::vec((10_000u64..12_000, 1u64..400), 1..6).prop_map(of),
        prop::collection::vec((0u64..5_000_000, Just(1u64)), 1..25).prop_map(of),
    ]
}

proptest! {
    #[test]
    fn histograms_rank_exactly_as_their_expansions(
        c in histogram(), b in histogram(), alt in alternative()
    ) {
        let (ce, be) = (c.expand_ms(), b.expand_ms());
        for method in [Method::Asymptotic, Method::Auto, Method::Exact] {
            let by_bucket = mann_whitney_histograms(&c, &b, alt, method);
            let by_value = mann_whitney(&ce, &be, alt, method);
            if let (Ok(h), Ok(s)) = (&by_bucket, &by_value) {
                prop_assert_eq!(h.u, s.u, "U, {:?}", method);
                prop_assert_eq!(h.tie_term, s.tie_term, "tie term, {:?}", method);
                prop_assert_eq!(h.p_value, s.p_value, "p, {:?}", method);
            }
            // And everything else, the effect and the errors included.
            prop_assert_eq!(by_bucket, by_value, "{:?}", method);
        }
    }
}

/// One request at each of these latencies (µs), or `n` of each.
fn recorded(micros: &[u64], n: u64) -> Histogram {
    let mut h = Histogram::new();
    micros.iter().for_each(|&us| h.record(us, n));
    h
}

#[test]
fn tiny_histograms_are_judged_exactly_like_slices() {
    // Five requests each, in ten distinct buckets, the canary's all slower: one
    // arrangement in C(10, 5), where the normal approximation says 0.6%.
    let canary = recorded(&[150_000, 160_000, 170_000, 180_000, 190_000], 1);
    let baseline = recorded(&[100_000, 110_000, 120_000, 130_000, 140_000], 1);
    let slices = |method| {
        mann_whitney(
            &canary.expand_ms(),
            &baseline.expand_ms(),
            Alternative::Greater,
            method,
        )
    };
    let auto =
        mann_whitney_histograms(&canary, &baseline, Alternative::Greater, Method::Auto).unwrap();
    assert_eq!(Ok(auto), slices(Method::Auto));
    assert_eq!(auto.distribution, Distribution::Exact);
    assert!((auto.p_value - 1.0 / 252.0).abs() < 1e-15, "{auto:?}");
    let normal =
        mann_whitney_histograms(&canary, &baseline, Alternative::Greater, Method::Asymptotic)
            .unwrap();
    assert_eq!(Ok(normal), slices(Method::Asymptotic));
    assert!(
        normal.p_value > 1.5 * auto.p_value,
        "{} vs {}",
        normal.p_value,
        auto.p_value
    );

    // Two requests in one bucket tie: no exact distribution, on either form.
    let tied = recorded(&[100_000, 110_000, 120_000, 130_000, 150_000], 1);
    let t = mann_whitney_histograms(&canary, &tied, Alternative::Greater, Method::Auto).unwrap();
    assert_eq!(t.distribution, Distribution::Normal);
    assert_eq!(t.tie_term, 6.0);
    assert_eq!(
        mann_whitney_histograms(&canary, &tied, Alternative::Greater, Method::Exact),
        Err(MannWhitneyError::ExactWithTies { tied: 2 })
    );
}

#[test]
fn counts_far_beyond_memory_are_ranked_by_bucket() {
    // Ten billion requests: as slices they would take 80 GB.
    let baseline = recorded(&[20_000, 30_000], 4_000_000_000);
    let canary = recorded(&[30_000, 40_000], 1_000_000_000);
    let t =
        mann_whitney_histograms(&canary, &baseline, Alternative::Greater, Method::Auto).unwrap();
    let (n1, n2) = (2e9, 8e9);
    // Each canary request at 30 ms beats the 4e9 at 20 ms and ties the 4e9 at
    // 30 ms (one half each); each at 40 ms beats all 8e9.
    assert!(
        close(t.u, 1e9 * (4e9 + 2e9) + 1e9 * 8e9, 1e-12, 0.0),
        "{t:?}"
    );
    assert!(close(t.u + t.u_baseline, n1 * n2, 1e-12, 0.0), "{t:?}");
    assert_eq!(t.n_canary, 2_000_000_000);
    // Every bucket is a group of ties: 4e9 at 20 ms, 5e9 at 30 ms, 1e9 at 40 ms.
    let ties: f64 = [4e9f64, 5e9, 1e9].iter().map(|t| t.powi(3) - t).sum();
    assert!(close(t.tie_term, ties, 1e-12, 0.0), "{t:?}");
    assert!(t.p_value < 1e-300, "{t:?}");
    let ms = |us: u64| representative(bucket_of(us)) / 1000.0;
    assert_eq!(t.effect.median_canary, (ms(30_000) + ms(40_000)) / 2.0);
    assert_eq!(t.effect.median_baseline, (ms(20_000) + ms(30_000)) / 2.0);
    // Of the 1.6e19 differences, a quarter each are 0, 30-20, 40-30 and 40-20 ms:
    // the middle two are the largest 30-20 and the smallest 40-30.
    let hl = ((ms(30_000) - ms(20_000)) + (ms(40_000) - ms(30_000))) / 2.0;
    assert_eq!(t.effect.hodges_lehmann, hl);
}

#[test]
fn an_empty_histogram_is_an_error_naming_the_side() {
    let some = recorded(&[1000], 3);
    let none = Histogram::new();
    for (c, b, side) in [(&none, &some, Side::Canary), (&some, &none, Side::Baseline)] {
        assert_eq!(
            mann_whitney_histograms(c, b, Alternative::Greater, Method::Auto),
            Err(MannWhitneyError::Empty(side))
        );
    }
}
