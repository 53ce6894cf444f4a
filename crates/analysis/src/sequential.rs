//! An anytime-valid test of the canary's error rate against the baseline's: a
//! mixture sequential probability ratio test on error counts that may be looked at
//! after every window, with the false-alarm rate bounded however often it looks.
//!
//! # Method
//! Lindon, Sanden and Shirikian, "Rapid Regression Detection in Software
//! Deployments through Sequential Testing" (KDD 2022), and Lindon and Malek,
//! "Anytime-Valid Inference for Multinomial Count Data" (NeurIPS 2022). If errors
//! arrive as Poisson processes whose intensities are proportional to each version's
//! traffic, then conditional on the total count `n` the canary's count `c` is
//! binomial with success probability `p`, and with equal error rates `p` is the
//! canary's traffic share `rho`. The test puts a Beta(`a`, `b`) mixture over `p`
//! under the alternative; the mixture likelihood ratio has the closed form
//!
//! ```text
//! M = B(a + c, b + n - c) / B(a, b) / (rho^c (1 - rho)^(n - c))
//! ```
//!
//! and is a non-negative martingale of mean 1 under the null, whatever the count in
//! each window. By Ville's inequality `P(M >= 1/alpha at any look) <= alpha`: the
//! test rejects when `M` reaches `1/alpha`, and the chance of a false alarm over
//! the whole run is at most `alpha` however many windows are looked at. `1 /
//! max M` is an anytime-valid p-value.
//!
//! The prior is centred on the null (`a = rho k`, `b = (1 - rho) k`) with
//! concentration `k` ([`DEFAULT_CONCENTRATION`]): a small `k` spreads its weight
//! over large shifts and catches them fast, a large one waits for evidence of
//! small ones. The mixture is two-sided; the decision says which way the canary
//! differs, and the engine rolls back only on [`Decision::CanaryWorse`], whose
//! false-alarm chance is bounded by `alpha` too (it is part of the rejection).
//!
//! # Assumptions
//! - Requests fail independently, so counts in disjoint windows are independent.
//! - Stationarity in the ratio: the baseline's error rate may drift (a traffic
//!   spike, a slow dependency) as long as it drifts for both versions alike, since
//!   the test only looks at the canary's share of the errors.
//! - The traffic share `rho` is fixed for the test's life. When the canary's weight
//!   changes, start a new test: a stale `rho` would read more errors from more
//!   traffic as a regression.
//! - Each request goes to the canary with probability `rho`, independently (the
//!   proxy's weighted random choice): then each error is the canary's with
//!   probability `rho` under the null, exactly, however common errors are. A
//!   deterministic split (weighted round robin) makes it approximate, good while
//!   errors are a small share of requests.
//!
//! # Beyond errors
//! Nothing in the test is about errors: it applies to any event counted on both
//! versions, in particular requests slower than a threshold fixed before the
//! requests it counts (a configured latency, or the baseline's p95 in the step
//! before). With equal latency distributions each slow request is the canary's
//! with probability `rho`, so a rise in the canary's share of slow requests is a
//! latency regression at that quantile, detected with the same guarantee.

use serde::{Deserialize, Serialize};

/// The prior's default concentration `k`. In a simulation at 200 requests/s with
/// 10% on the canary, 5 s windows and `alpha = 0.01`, it caught a rise from 0.5% to
/// 1% errors in a median of under three minutes, to 2% in about 30 s and to 5% in
/// the first window; 10 and 100 did no better for the small rise, 300 and more
/// were slower for every one.
pub const DEFAULT_CONCENTRATION: f64 = 30.0;

/// Why a test could not be set up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SequentialError {
    /// A parameter is out of range.
    #[error("{field} is {value}, expected {valid}")]
    Invalid {
        /// The parameter.
        field: &'static str,
        /// Its value.
        value: f64,
        /// What would be valid.
        valid: &'static str,
    },
}

/// Where the test stands after a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Not enough evidence yet: keep looking.
    Continue,
    /// The canary's share of the errors is significantly above its traffic share.
    CanaryWorse,
    /// The canary's share of the errors is significantly below its traffic share.
    CanaryBetter,
}

/// The mixture SPRT on the canary's and the baseline's error counts; the state is
/// the cumulative counts, updated once per window, so it can be stored and resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorCountTest {
    /// The canary's share of the traffic, in (0, 1).
    pub canary_share: f64,
    /// The false-alarm bound over the test's whole life.
    pub alpha: f64,
    /// The Beta prior's first parameter (canary errors).
    pub prior_a: f64,
    /// The Beta prior's second parameter (baseline errors).
    pub prior_b: f64,
    /// Errors the canary served so far.
    pub canary_errors: u64,
    /// Errors the baseline served so far.
    pub baseline_errors: u64,
    /// The largest log mixture likelihood ratio seen at any look.
    pub max_log_ratio: f64,
    /// Sticky: once rejected, the test stays decided.
    pub decision: Decision,
}

/// The test after one window: the numbers behind its decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Errors the canary served so far.
    pub canary_errors: u64,
    /// Errors the baseline served so far.
    pub baseline_errors: u64,
    /// The canary's share of the errors so far; `None` before any error.
    pub observed_share: Option<f64>,
    /// The share expected with equal error rates: the canary's traffic share.
    pub expected_share: f64,
    /// The log mixture likelihood ratio now.
    pub log_ratio: f64,
    /// The threshold it is held against, `ln(1 / alpha)`.
    pub log_threshold: f64,
    /// The anytime-valid p-value, `min(1, 1 / max M)`.
    pub p_value: f64,
    /// The decision.
    pub decision: Decision,
}

impl ErrorCountTest {
    /// A test with the prior centred on the null at [`DEFAULT_CONCENTRATION`].
    ///
    /// # Errors
    /// A share or an alpha outside (0, 1).
    pub fn new(canary_share: f64, alpha: f64) -> Result<ErrorCountTest, SequentialError> {
        ErrorCountTest::with_concentration(canary_share, alpha, DEFAULT_CONCENTRATION)
    }

    /// A test with the prior `Beta(share k, (1 - share) k)`.
    ///
    /// # Errors
    /// A share or an alpha outside (0, 1), a concentration that is not a positive
    /// finite number.
    pub fn with_concentration(
        canary_share: f64,
        alpha: f64,
        concentration: f64,
    ) -> Result<ErrorCountTest, SequentialError> {
        let invalid = |field, value, valid| SequentialError::Invalid {
            field,
            value,
            valid,
        };
        let unit = "a number between 0 and 1, exclusive";
        if !(canary_share > 0.0 && canary_share < 1.0) {
            return Err(invalid("canary_share", canary_share, unit));
        }
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(invalid("alpha", alpha, unit));
        }
        if !(concentration.is_finite() && concentration > 0.0) {
            return Err(invalid(
                "concentration",
                concentration,
                "a finite number > 0",
            ));
        }
        Ok(ErrorCountTest {
            canary_share,
            alpha,
            prior_a: canary_share * concentration,
            prior_b: (1.0 - canary_share) * concentration,
            canary_errors: 0,
            baseline_errors: 0,
            max_log_ratio: 0.0,
            decision: Decision::Continue,
        })
    }

    /// Adds one window's error counts and says where the test stands. Once decided,
    /// the decision stays (the counts still add up).
    pub fn observe(&mut self, canary_errors: u64, baseline_errors: u64) -> Evidence {
        self.canary_errors += canary_errors;
        self.baseline_errors += baseline_errors;
        let log_ratio = self.log_ratio();
        self.max_log_ratio = self.max_log_ratio.max(log_ratio);
        if self.decision == Decision::Continue && log_ratio >= self.log_threshold() {
            let observed =
                self.canary_errors as f64 / (self.canary_errors + self.baseline_errors) as f64;
            self.decision = if observed > self.canary_share {
                Decision::CanaryWorse
            } else {
                Decision::CanaryBetter
            };
        }
        self.evidence()
    }

    /// Where the test stands, without a new window.
    pub fn evidence(&self) -> Evidence {
        let total = self.canary_errors + self.baseline_errors;
        Evidence {
            canary_errors: self.canary_errors,
            baseline_errors: self.baseline_errors,
            observed_share: (total > 0).then(|| self.canary_errors as f64 / total as f64),
            expected_share: self.canary_share,
            log_ratio: self.log_ratio(),
            log_threshold: self.log_threshold(),
            p_value: (-self.max_log_ratio).exp().min(1.0),
            decision: self.decision,
        }
    }

    /// `ln(1 / alpha)`.
    pub fn log_threshold(&self) -> f64 {
        -self.alpha.ln()
    }

    /// The log mixture likelihood ratio of the counts so far.
    pub fn log_ratio(&self) -> f64 {
        let (a, b) = (self.prior_a, self.prior_b);
        let c = self.canary_errors as f64;
        let e = self.baseline_errors as f64;
        ln_beta(a + c, b + e)
            - ln_beta(a, b)
            - c * self.canary_share.ln()
            - e * (1.0 - self.canary_share).ln()
    }
}

/// `ln B(x, y)` for positive `x`, `y`.
fn ln_beta(x: f64, y: f64) -> f64 {
    ln_gamma(x) + ln_gamma(y) - ln_gamma(x + y)
}

/// `ln Gamma(x)` for `x > 0`, by the Lanczos approximation (g = 7, nine terms),
/// to about 1e-15 relative.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let series = COEFFICIENTS[1..]
        .iter()
        .enumerate()
        .fold(COEFFICIENTS[0], |sum, (i, c)| {
            sum + c / (x + i as f64 + 1.0)
        });
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
#[path = "sequential/tests.rs"]
mod tests;
