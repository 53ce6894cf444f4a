use super::*;
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
    let want = median_sorted(&all);
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
