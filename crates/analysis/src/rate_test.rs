//! An anytime-valid test of whether the canary has more of some event per request
//! than the baseline (errors, or requests slower than a threshold), looked at after
//! every window for a whole run, across weight changes, with the chance of a false
//! alarm held below `alpha` however often it looks.
//!
//! # Method
//! The Poisson-process count test of Lindon and Malek, "Anytime-Valid Inference
//! for Multinomial Count Data" (NeurIPS 2022), in the form Lindon, Sanden and
//! Shirikian use for deployments ("Rapid Regression Detection in Software
//! Deployments through Sequential Testing", KDD 2022), with the traffic split
//! read from each window instead of fixed for the test's life.
//!
//! In a window the canary served `n_c` requests and the baseline `n_b`; `c` of the
//! canary's and `b` of the baseline's had the event, `e = c + b`. If the canary's
//! rate is `theta` times the baseline's, then given `e` the canary's count is
//! binomial with probability `pi(theta) = theta n_c / (theta n_c + n_b)`, and the
//! window's likelihood ratio of `theta` against `theta = 1` is
//!
//! ```text
//! LR(theta) = theta^c ((n_c + n_b) / (theta n_c + n_b))^e
//! ```
//!
//! Under the null its expectation given the past is 1 (with Poisson counts) or at
//! most 1 (with each request failing independently, the count is hypergeometric,
//! smaller in the convex order than the binomial, Hoeffding 1963), so the running
//! product for each `theta` is a non-negative supermartingale, and so is the
//! mixture `M = sum_i w_i prod LR(theta_i)` over [`RATIOS`] with equal weights.
//! Ville's inequality bounds `P(M >= 1/alpha at any look) <= alpha`: the test
//! rejects when `M` reaches `1/alpha`, and `1 / max M` is an anytime-valid
//! p-value. The grid holds only ratios above 1: the test looks for a canary that is
//! worse, and all its power goes there.
//!
//! Reading the split from each window's own request counts, rather than fixing it
//! from the weights, is what lets one test run through every canary step (the
//! weight may change between windows, since the counts are given) and stay exact
//! when pinned or sticky requests move the real split away from the weights.
//!
//! # Assumptions
//! - Given the requests each version served, requests have the event
//!   independently (or counts are Poisson): a burst that hits one version through
//!   shared state is evidence against it, rightly or not.
//! - The ratio `theta` is what is tested, not the rates: the baseline's rate may
//!   drift (a traffic spike, a slow dependency) as long as both versions drift
//!   alike, which is why the baseline is measured in the same windows.
//! - Whatever makes a request count (a latency threshold) is fixed before the
//!   window it is counted in.

use serde::{Deserialize, Serialize};

use crate::sequential::SequentialError;

/// The alternatives the mixture spreads over: the canary's rate as a multiple of
/// the baseline's. Small ratios catch subtle regressions given time; large ones
/// catch a clearly broken canary in its first window.
pub const RATIOS: [f64; 7] = [1.2, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0];

/// Events among requests, for one version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests that had the event.
    pub events: u64,
    /// Requests served.
    pub requests: u64,
}

impl Counts {
    /// The share of requests with the event; `None` without requests.
    pub fn rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.events as f64 / self.requests as f64)
    }

    fn add(&mut self, other: Counts) {
        self.events += other.events;
        self.requests += other.requests;
    }
}

/// The test's state: the log likelihood ratio of every alternative and the counts
/// so far, updated once per window, so it can be stored and resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateTest {
    /// The false-alarm bound over the test's whole life, in (0, 1).
    pub alpha: f64,
    /// `ln prod LR(theta_i)` for each of [`RATIOS`].
    pub log_ratios: Vec<f64>,
    /// The canary's counts so far.
    pub canary: Counts,
    /// The baseline's counts so far.
    pub baseline: Counts,
    /// The largest `ln M` seen at any look.
    pub max_log_mixture: f64,
    /// Sticky: once rejected, the test stays decided.
    pub rejected: bool,
}

/// The test after a window: the numbers behind its decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateEvidence {
    /// The canary's counts so far.
    pub canary: Counts,
    /// The baseline's counts so far.
    pub baseline: Counts,
    /// The canary's rate over the baseline's so far; `None` while either has no
    /// requests or the baseline no events.
    pub rate_ratio: Option<f64>,
    /// `ln M` now.
    pub log_mixture: f64,
    /// What `ln M` is held against: `ln(1 / alpha)`.
    pub log_threshold: f64,
    /// The anytime-valid p-value, `min(1, 1 / max M)`.
    pub p_value: f64,
    /// Whether the canary's rate is significantly above the baseline's.
    pub rejected: bool,
}

impl RateTest {
    /// A test with nothing observed.
    ///
    /// # Errors
    /// An alpha outside (0, 1).
    pub fn new(alpha: f64) -> Result<RateTest, SequentialError> {
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(SequentialError::Invalid {
                field: "alpha",
                value: alpha,
                valid: "a number between 0 and 1, exclusive",
            });
        }
        Ok(RateTest {
            alpha,
            log_ratios: vec![0.0; RATIOS.len()],
            canary: Counts::default(),
            baseline: Counts::default(),
            max_log_mixture: 0.0,
            rejected: false,
        })
    }

    /// Adds one window and says where the test stands. A window in which either
    /// side served nothing, or nobody had the event, carries no evidence.
    pub fn observe(&mut self, canary: Counts, baseline: Counts) -> RateEvidence {
        let events = canary.events + baseline.events;
        if canary.requests > 0 && baseline.requests > 0 && events > 0 {
            let (nc, nb) = (canary.requests as f64, baseline.requests as f64);
            for (log, theta) in self.log_ratios.iter_mut().zip(RATIOS) {
                *log += canary.events as f64 * theta.ln()
                    + events as f64 * ((nc + nb) / (theta * nc + nb)).ln();
            }
        }
        self.canary.add(canary);
        self.baseline.add(baseline);
        let log_mixture = self.log_mixture();
        self.max_log_mixture = self.max_log_mixture.max(log_mixture);
        if log_mixture >= self.log_threshold() {
            self.rejected = true;
        }
        self.evidence()
    }

    /// Where the test stands, without a new window.
    pub fn evidence(&self) -> RateEvidence {
        let rate_ratio = match (self.canary.rate(), self.baseline.rate()) {
            (Some(c), Some(b)) if b > 0.0 => Some(c / b),
            _ => None,
        };
        RateEvidence {
            canary: self.canary,
            baseline: self.baseline,
            rate_ratio,
            log_mixture: self.log_mixture(),
            log_threshold: self.log_threshold(),
            p_value: (-self.max_log_mixture).exp().min(1.0),
            rejected: self.rejected,
        }
    }

    /// `ln(1 / alpha)`.
    pub fn log_threshold(&self) -> f64 {
        -self.alpha.ln()
    }

    /// `ln M`: the log of the equally weighted mixture of the alternatives' ratios.
    pub fn log_mixture(&self) -> f64 {
        let top = self
            .log_ratios
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = self.log_ratios.iter().map(|l| (l - top).exp()).sum();
        top + (sum / self.log_ratios.len() as f64).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binomial draws by inversion of single Bernoulli trials: slow, simple, exact.
    fn binomial(rng: &mut fastrand::Rng, n: u64, p: f64) -> u64 {
        (0..n).filter(|_| rng.f64() < p).count() as u64
    }

    /// Runs `runs` simulated canaries of `windows` windows each; returns in how many
    /// the test rejected, and the windows it took in each that did.
    fn simulate(
        seed: u64,
        runs: u32,
        windows: u32,
        split: (u64, u64),
        rates: (f64, f64),
        alpha: f64,
    ) -> (u32, Vec<u32>) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut rejected = 0;
        let mut took = Vec::new();
        for _ in 0..runs {
            let mut test = RateTest::new(alpha).unwrap();
            for w in 1..=windows {
                let canary = Counts {
                    events: binomial(&mut rng, split.0, rates.0),
                    requests: split.0,
                };
                let baseline = Counts {
                    events: binomial(&mut rng, split.1, rates.1),
                    requests: split.1,
                };
                if test.observe(canary, baseline).rejected {
                    rejected += 1;
                    took.push(w);
                    break;
                }
            }
        }
        (rejected, took)
    }

    #[test]
    fn equal_rates_rarely_reject_however_often_it_looks() {
        // 10% canary at 200 req/s in 5 s windows, 0.5% errors on both, 120 looks
        // (10 minutes). A fixed-sample test at 5% looked at 120 times rejects in
        // most of these runs; this one must stay at or below its alpha.
        let (rejected, _) = simulate(7, 400, 120, (100, 900), (0.005, 0.005), 0.05);
        assert!(
            rejected <= 20,
            "{rejected} of 400 A/A runs rejected at alpha 5%"
        );
    }

    #[test]
    fn equal_rates_with_the_split_changing_every_window_stay_valid() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut rejected = 0;
        for _ in 0..300 {
            let mut test = RateTest::new(0.05).unwrap();
            for w in 0..60u64 {
                let nc = [10, 50, 250, 500][(w % 4) as usize];
                let canary = Counts {
                    events: binomial(&mut rng, nc, 0.02),
                    requests: nc,
                };
                let baseline = Counts {
                    events: binomial(&mut rng, 1000 - nc, 0.02),
                    requests: 1000 - nc,
                };
                if test.observe(canary, baseline).rejected {
                    rejected += 1;
                    break;
                }
            }
        }
        assert!(rejected <= 15, "{rejected} of 300 rejected at alpha 5%");
    }

    #[test]
    fn a_doubled_error_rate_is_caught_and_a_broken_canary_at_once() {
        let (rejected, took) = simulate(3, 100, 120, (100, 900), (0.01, 0.005), 0.01);
        assert!(rejected >= 80, "only {rejected} of 100 caught 0.5% -> 1%");
        let mut took = took;
        took.sort_unstable();
        assert!(
            took[took.len() / 2] <= 60,
            "median {} windows",
            took[took.len() / 2]
        );
        let (rejected, took) = simulate(5, 50, 3, (100, 900), (0.2, 0.005), 0.01);
        assert_eq!(rejected, 50);
        assert!(took.iter().all(|&w| w == 1), "{took:?}");
    }

    #[test]
    fn windows_without_evidence_change_nothing() {
        let mut test = RateTest::new(0.01).unwrap();
        let before = test.log_mixture();
        let e = test.observe(
            Counts {
                events: 0,
                requests: 100,
            },
            Counts {
                events: 0,
                requests: 900,
            },
        );
        assert_eq!(e.log_mixture, before);
        assert_eq!(e.p_value, 1.0);
        let e = test.observe(
            Counts {
                events: 3,
                requests: 3,
            },
            Counts::default(),
        );
        assert_eq!(e.log_mixture, before);
        assert_eq!(e.rate_ratio, None);
    }

    #[test]
    fn a_rejection_stays_and_the_p_value_is_below_alpha() {
        let mut test = RateTest::new(0.01).unwrap();
        let bad = Counts {
            events: 30,
            requests: 100,
        };
        let base = Counts {
            events: 9,
            requests: 900,
        };
        let e = test.observe(bad, base);
        assert!(e.rejected && e.p_value <= 0.01, "{e:?}");
        assert_eq!(e.rate_ratio, Some(30.0));
        let calm = Counts {
            events: 0,
            requests: 100,
        };
        assert!(test.observe(calm, base).rejected);
    }

    #[test]
    fn alpha_must_be_a_probability() {
        assert!(RateTest::new(0.0).is_err());
        assert!(RateTest::new(1.0).is_err());
        assert!(RateTest::new(f64::NAN).is_err());
    }
}
