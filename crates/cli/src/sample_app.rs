//! `cutover sample-app`: the built-in HTTP service for demos and tests.
//!
//! `GET /` answers `hello from <version>` (after an optional, jittered delay, and
//! failing with a 500 at an optional rate); `GET /healthz` answers `ok`, or 503 with
//! `--fail-health`. `--crash-after` makes the process exit with code 101 after a
//! while; `--log-errors` writes an error line to stderr for every `GET /` (for
//! the log check). SIGTERM or SIGINT shut it down gracefully, with exit code 0.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

/// The exit code of a process that crashed because of `--crash-after`.
pub const CRASH_EXIT_CODE: i32 = 101;

/// Runs a small HTTP service that says which version it is.
#[derive(Debug, Clone, clap::Args)]
#[command(disable_version_flag = true)]
pub struct SampleAppArgs {
    /// Port to listen on, on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// The version to report in every answer.
    #[arg(long)]
    pub version: String,
    /// Share of `GET /` requests answered with a 500, from 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub error_rate: f64,
    /// Delay before answering `GET /`, in milliseconds (±20% jitter).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Answer the health check (`GET /healthz`) with 503.
    #[arg(long)]
    pub fail_health: bool,
    /// Exit with code 101 after this long (e.g. `10s`), as if crashing.
    #[arg(long)]
    pub crash_after: Option<humantime::Duration>,
    /// Write `ERROR request N failed: payment gateway timed out after Mms` to
    /// stderr for every `GET /`, whatever its answer.
    #[arg(long)]
    pub log_errors: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{s} is not between 0 and 1"))
    }
}

struct App {
    version: String,
    error_rate: f64,
    latency: Duration,
    fail_health: bool,
    log_errors: bool,
    /// `GET /` requests so far.
    requests: AtomicU64,
}

/// Serves until SIGTERM/SIGINT (then returns `Ok`), or exits the process with
/// [`CRASH_EXIT_CODE`] when `--crash-after` elapses.
///
/// # Errors
/// When the port cannot be bound or serving fails.
pub async fn run(args: SampleAppArgs) -> anyhow::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("sample-app {}: cannot listen on {addr}", args.version))?;
    let app = Arc::new(App {
        version: args.version.clone(),
        error_rate: args.error_rate,
        latency: Duration::from_millis(args.latency_ms),
        fail_health: args.fail_health,
        log_errors: args.log_errors,
        requests: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/", get(hello))
        .route("/healthz", get(healthz))
        .with_state(app);

    eprintln!("sample-app {} listening on {addr}", args.version);

    if let Some(after) = args.crash_after {
        let version = args.version.clone();
        let after: Duration = after.into();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            eprintln!(
                "sample-app {version}: crashing after {} as asked (--crash-after), exit code {CRASH_EXIT_CODE}",
                humantime::format_duration(after)
            );
            std::process::exit(CRASH_EXIT_CODE);
        });
    }

    let version = args.version;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let signal = shutdown_signal().await;
            eprintln!("sample-app {version}: {signal}, shutting down");
        })
        .await
        .context("sample-app: serving failed")?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT, to the signal's name.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        // Cannot happen outside of exotic setups; never shut down rather than at once.
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("sample-app: cannot listen for signals: {e}");
            std::future::pending().await
        }
    }
}

async fn hello(State(app): State<Arc<App>>) -> (StatusCode, String) {
    // Decided before the delay, with the thread's generator, never held across await.
    let (delay, fail) = {
        let mut rng = fastrand::Rng::new();
        (
            jittered(&mut rng, app.latency),
            injects_error(&mut rng, app.error_rate),
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let n = app.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if app.log_errors {
        eprintln!(
            "ERROR request {n} failed: payment gateway timed out after {}ms",
            delay.as_millis()
        );
    }
    if fail {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: injected error\n", app.version),
        )
    } else {
        (StatusCode::OK, format!("hello from {}\n", app.version))
    }
}

async fn healthz(State(app): State<Arc<App>>) -> (StatusCode, &'static str) {
    if app.fail_health {
        (StatusCode::SERVICE_UNAVAILABLE, "failing (--fail-health)")
    } else {
        (StatusCode::OK, "ok")
    }
}

/// Whether this request gets an injected error: true with probability `rate`.
fn injects_error(rng: &mut fastrand::Rng, rate: f64) -> bool {
    // `f64()` is in [0, 1): a rate of 0 never fails, a rate of 1 always does.
    rate > 0.0 && rng.f64() < rate
}

/// `base` ±20%, uniformly.
fn jittered(rng: &mut fastrand::Rng, base: Duration) -> Duration {
    if base.is_zero() {
        return base;
    }
    base.mul_f64(0.8 + 0.4 * rng.f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SampleAppArgs,
    }

    fn parse(argv: &[&str]) -> Result<SampleAppArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("sample-app").chain(argv.iter().copied()))
            .map(|c| c.args)
    }

    #[test]
    fn parses_all_flags() {
        let args = parse(&[
            "--port",
            "8081",
            "--version",
            "v2",
            "--error-rate",
            "0.05",
            "--latency-ms",
            "20",
            "--fail-health",
            "--crash-after",
            "10s",
            "--log-errors",
        ])
        .unwrap();
        assert!(args.log_errors);
        assert_eq!(args.port, 8081);
        assert_eq!(args.version, "v2");
        assert!((args.error_rate - 0.05).abs() < 1e-12);
        assert_eq!(args.latency_ms, 20);
        assert!(args.fail_health);
        assert_eq!(
            args.crash_after.map(Duration::from),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn defaults() {
        let args = parse(&["--port", "1", "--version", "v1"]).unwrap();
        assert_eq!(args.error_rate, 0.0);
        assert_eq!(args.latency_ms, 0);
        assert!(!args.fail_health);
        assert!(args.crash_after.is_none());
        assert!(!args.log_errors);
    }

    #[test]
    fn port_and_version_are_required() {
        assert!(parse(&["--version", "v1"]).is_err());
        assert!(parse(&["--port", "1"]).is_err());
    }

    #[test]
    fn error_rate_must_be_a_fraction() {
        for bad in ["1.5", "-0.1", "NaN", "inf", "five"] {
            assert!(
                parse(&["--port", "1", "--version", "v", "--error-rate", bad]).is_err(),
                "{bad}"
            );
        }
        for good in ["0", "1", "0.5"] {
            assert!(
                parse(&["--port", "1", "--version", "v", "--error-rate", good]).is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn crash_after_takes_human_durations() {
        let args = parse(&["--port", "1", "--version", "v", "--crash-after", "1m 30s"]).unwrap();
        assert_eq!(
            args.crash_after.map(Duration::from),
            Some(Duration::from_secs(90))
        );
        assert!(parse(&["--port", "1", "--version", "v", "--crash-after", "soon"]).is_err());
    }

    #[test]
    fn error_rate_extremes() {
        let mut rng = fastrand::Rng::with_seed(7);
        assert!((0..10_000).all(|_| !injects_error(&mut rng, 0.0)));
        assert!((0..10_000).all(|_| injects_error(&mut rng, 1.0)));
    }

    #[test]
    fn error_rate_is_respected_on_average() {
        let mut rng = fastrand::Rng::with_seed(42);
        let n = 100_000;
        let errors = (0..n).filter(|_| injects_error(&mut rng, 0.05)).count();
        let rate = errors as f64 / f64::from(n);
        assert!((0.045..0.055).contains(&rate), "{rate}");
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let mut rng = fastrand::Rng::with_seed(1);
        let base = Duration::from_millis(100);
        let samples: Vec<Duration> = (0..10_000).map(|_| jittered(&mut rng, base)).collect();
        assert!(
            samples
                .iter()
                .all(|d| (Duration::from_millis(80)..=Duration::from_millis(120)).contains(d))
        );
        // And actually varies, both ways.
        assert!(samples.iter().any(|d| *d < Duration::from_millis(90)));
        assert!(samples.iter().any(|d| *d > Duration::from_millis(110)));
        assert_eq!(jittered(&mut rng, Duration::ZERO), Duration::ZERO);
    }
}
