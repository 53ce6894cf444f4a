//! Simulated traffic: requests routed at random to the canary or the baseline,
//! each failing or not and taking a latency drawn from a heavy-tailed
//! distribution, gathered per window into what the engine has of each version:
//! requests, errors and a latency histogram.

use cutover_analysis::Sample;
use cutover_analysis::histogram::{Histogram, bucket_of, representative};

/// Latencies are clamped here, as the proxy clamps what it records (60 s).
const MAX_MICROS: u64 = 60_000_000;

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// `exp(N(ln median, sigma^2))`.
    Lognormal { median_ms: f64, sigma: f64 },
    /// A fast lognormal, and with probability `tail` a slow one.
    SlowTail {
        fast: (f64, f64),
        slow: (f64, f64),
        tail: f64,
    },
}

impl Latency {
    /// `P(latency < ms)`, every value multiplied by `scale`.
    fn cdf(self, ms: f64, scale: f64) -> f64 {
        let lognormal = |(median_ms, sigma): (f64, f64)| {
            if ms <= 0.0 {
                0.0
            } else {
                standard_normal_cdf(((ms / scale).ln() - f64::ln(median_ms)) / sigma)
            }
        };
        match self {
            Latency::Lognormal { median_ms, sigma } => lognormal((median_ms, sigma)),
            Latency::SlowTail { fast, slow, tail } => {
                (1.0 - tail) * lognormal(fast) + tail * lognormal(slow)
            }
        }
    }
}

/// `Phi(x)`, from the complementary error function of Numerical Recipes
/// (`erfcc`, fractional error below 1.2e-7 everywhere).
fn standard_normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

/// Draws latencies straight into the histogram's buckets, with each bucket's
/// exact probability under the distribution: what recording a drawn latency
/// (in whole microseconds, clamped to 1 us..=60 s as the proxy does) would give,
/// at the cost of one uniform and a short scan instead of a logarithm and an
/// exponential per request.
pub struct Sampler {
    /// Cumulative probability up to and including each bucket (index = bucket).
    cumulative: Vec<f64>,
    /// For each 1/1024 of probability, the first bucket whose cumulative share
    /// exceeds it.
    starts: Vec<usize>,
}

impl Sampler {
    /// The buckets of `latency` with every value multiplied by `scale`.
    pub fn new(latency: Latency, scale: f64) -> Sampler {
        let last = bucket_of(MAX_MICROS);
        let mut cumulative = Vec::with_capacity(last as usize + 1);
        let mut low = 0u64;
        for bucket in 0..=last {
            // A bucket's midpoint is low + (width - 1) / 2, so its width follows.
            let width = (2.0 * (representative(bucket) - low as f64)).round() as u64 + 1;
            let high = low + width;
            // Values below 1 us are recorded as 1, above the clamp as the clamp.
            let below = if bucket == last {
                1.0
            } else if high <= 1 {
                0.0
            } else {
                latency.cdf(high as f64 / 1000.0, scale)
            };
            cumulative.push(below);
            low = high;
        }
        let starts = (0..1024)
            .map(|j| cumulative.partition_point(|&c| c <= f64::from(j) / 1024.0))
            .collect();
        Sampler { cumulative, starts }
    }

    /// One latency's bucket.
    fn draw(&self, rng: &mut fastrand::Rng) -> usize {
        let u = rng.f64();
        let mut i = self.starts[(u * 1024.0) as usize];
        while self.cumulative[i] <= u {
            i += 1;
        }
        i
    }
}

/// How one version behaves.
pub struct Behaviour {
    /// Share of requests that fail, independently of their latency.
    pub error_rate: f64,
    /// Its latencies.
    pub latency: Sampler,
}

/// What the engine has of one version after one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionWindow {
    pub requests: u64,
    pub errors: u64,
    pub latency: Histogram,
}

impl VersionWindow {
    /// The window as the engine hands it to the judge.
    pub fn sample(&self) -> Sample {
        let q = |q| self.latency.quantile(q);
        Sample {
            requests: self.requests,
            errors: self.errors,
            p50: q(0.5),
            p95: q(0.95),
            p99: q(0.99),
            latency: self.latency.clone(),
        }
    }

    /// Share of requests that failed; 0 without requests.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// Gathers requests into a window, counting latencies in a flat array first
/// (one per histogram bucket up to the clamp) and making the histogram once.
struct Tally {
    requests: u64,
    errors: u64,
    buckets: Vec<u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            requests: 0,
            errors: 0,
            buckets: vec![0; bucket_of(MAX_MICROS) as usize + 1],
        }
    }

    fn serve(&mut self, rng: &mut fastrand::Rng, behaviour: &Behaviour) {
        self.requests += 1;
        if rng.f64() < behaviour.error_rate {
            self.errors += 1;
        }
        self.buckets[behaviour.latency.draw(rng)] += 1;
    }

    fn finish(self) -> VersionWindow {
        let pairs: Vec<(u32, u64)> = (0u32..)
            .zip(self.buckets)
            .filter(|&(_, count)| count > 0)
            .collect();
        VersionWindow {
            requests: self.requests,
            errors: self.errors,
            latency: Histogram::try_from(pairs).expect("buckets of the histogram's own scheme"),
        }
    }
}

/// One window of `requests` requests, each to the canary with probability
/// `canary_share`: the canary's window, then the baseline's.
pub fn split_window(
    rng: &mut fastrand::Rng,
    requests: u64,
    canary_share: f64,
    canary: &Behaviour,
    baseline: &Behaviour,
) -> (VersionWindow, VersionWindow) {
    let (mut c, mut b) = (Tally::new(), Tally::new());
    for _ in 0..requests {
        if rng.f64() < canary_share {
            c.serve(rng, canary);
        } else {
            b.serve(rng, baseline);
        }
    }
    (c.finish(), b.finish())
}

/// One window of `requests` requests all served by one version.
pub fn window(rng: &mut fastrand::Rng, requests: u64, behaviour: &Behaviour) -> VersionWindow {
    let mut tally = Tally::new();
    for _ in 0..requests {
        tally.serve(rng, behaviour);
    }
    tally.finish()
}
