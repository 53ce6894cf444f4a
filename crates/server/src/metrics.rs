//! `GET /metrics`: the daemon's numbers for Prometheus. Runs by outcome and their
//! durations come from the store (they survive restarts); steps' durations from
//! the events the daemon saw since it started; weights and instances from the
//! engine; requests and latencies from the proxy's own counters and histograms.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cutover_api::{Event, Phase, RunEvent};
use tokio::task::JoinHandle;

use crate::api::{ApiError, AppState};
use crate::prometheus::{CONTENT_TYPE, Exposition, Histogram, Kind};
use crate::streams::AllEvents;

/// Every run, for `cutover_runs_total` and the run durations: a counter must never
/// go down, so none is left out (the store's limit is an SQL integer).
const EVERY_RUN: usize = i64::MAX as usize;

/// Bounds of the run and step duration buckets, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Bounds of the proxy's latency buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The status classes, in the order of the proxy's counts.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// How long runs spent in each stage, from the events since the daemon started.
#[derive(Default)]
pub(crate) struct StepDurations {
    inner: Mutex<Steps>,
}

/// How long the step durations wait for a store that did not answer.
const STORE_RETRY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Steps {
    /// Per run, the stage it is in and since when (ms).
    open: HashMap<String, (&'static str, i64)>,
    by_stage: BTreeMap<&'static str, Histogram>,
}

impl StepDurations {
    /// Follows every run's events until the daemon stops (past a store that did
    /// not answer: the events then resume from the store).
    pub(crate) fn collect(self: Arc<Self>, mut events: AllEvents) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                while let Some(event) = events.next().await {
                    self.observe(&event);
                }
                if events.ended() {
                    break;
                }
                // The store did not answer: a moment for it before catching up.
                tokio::time::sleep(STORE_RETRY).await;
            }
        })
    }

    /// A phase event ends the stage its run was in and starts the next; the final
    /// event ends the last.
    fn observe(&self, event: &RunEvent) {
        let mut steps = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let next = match &event.event {
            Event::Phase { phase } if *phase != Phase::Finished => Some(phase.stage()),
            Event::Phase { .. } | Event::Outcome { .. } => None,
            _ if event.is_final() => None,
            _ => return,
        };
        if let Some((stage, since)) = steps.open.remove(&event.run_id) {
            let seconds = (event.at_ms - since).max(0) as f64 / 1000.0;
            steps
                .by_stage
                .entry(stage)
                .or_insert_with(|| Histogram::new(DURATION_BUCKETS))
                .observe(seconds);
        }
        if let Some(stage) = next
            && !event.is_final()
        {
            steps
                .open
                .insert(event.run_id.clone(), (stage, event.at_ms));
        }
    }

    fn write(&self, out: &mut Exposition, app: &str) {
        let steps = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (stage, histogram) in &steps.by_stage {
            histogram.write(
                out,
                "cutover_step_duration_seconds",
                &[("app", app), ("stage", stage)],
            );
        }
    }
}

/// `GET /metrics`.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get, path = "/metrics", tag = "app",
        responses((status = 200, description = "the daemon's metrics in Prometheus text format", content_type = "text/plain; version=0.0.4", body = String))
    )
)]
pub(crate) async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    let mut out = Exposition::default();
    let app = s.info.app.as_str();
    runs(&mut out, &s, app)?;
    out.family(
        "cutover_step_duration_seconds",
        Kind::Histogram,
        "Time runs spent in each stage (a canary step, a rolling batch, a blue-green \
         phase), for the stages that ended since the daemon started.",
    );
    s.steps.write(&mut out, app);
    backends(&mut out, &s, app).await;
    proxy(&mut out, &s, app);
    mirrors(&mut out, &s, app);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], out.finish()).into_response())
}

/// Finished runs by kind and outcome, and how long they took.
fn runs(out: &mut Exposition, s: &AppState, app: &str) -> Result<(), ApiError> {
    let runs = s.engine.store().runs(app, EVERY_RUN)?;
    let mut outcomes: BTreeMap<(&str, &str), (u64, Histogram)> = BTreeMap::new();
    for run in &runs {
        let (Some(outcome), Some(finished)) = (run.outcome, run.finished_at_ms) else {
            continue;
        };
        let entry = outcomes
            .entry((run.kind.as_str(), outcome.as_str()))
            .or_insert_with(|| (0, Histogram::new(DURATION_BUCKETS)));
        entry.0 += 1;
        entry
            .1
            .observe((finished - run.started_at_ms).max(0) as f64 / 1000.0);
    }
    out.family(
        "cutover_runs_total",
        Kind::Counter,
        "Finished runs by kind and outcome.",
    );
    for ((kind, outcome), (count, _)) in &outcomes {
        let labels = [("app", app), ("kind", *kind), ("outcome", *outcome)];
        out.sample("cutover_runs_total", &labels, *count as f64);
    }
    out.family(
        "cutover_run_duration_seconds",
        Kind::Histogram,
        "How long finished runs took, from start to outcome.",
    );
    for ((kind, outcome), (_, durations)) in &outcomes {
        let labels = [("app", app), ("kind", *kind), ("outcome", *outcome)];
        durations.write(out, "cutover_run_duration_seconds", &labels);
    }
    Ok(())
}

/// What the proxy routes to now: each backend's weight and instances.
async fn backends(out: &mut Exposition, s: &AppState, app: &str) {
    let status = s.engine.status().await;
    out.family(
        "cutover_weight_ratio",
        Kind::Gauge,
        "Share of the requests that pin no version, per version and role (0 to 1).",
    );
    for b in &status.backends {
        let labels = [
            ("app", app),
            ("version", &b.version),
            ("role", b.role.as_str()),
        ];
        out.sample(
            "cutover_weight_ratio",
            &labels,
            f64::from(b.weight_bp) / 10_000.0,
        );
    }
    out.family(
        "cutover_instances",
        Kind::Gauge,
        "Instances per version and role, by health: ready (passing health checks and \
         given traffic) or not_ready.",
    );
    for b in &status.backends {
        let not_ready = b.instances.saturating_sub(b.ready_instances);
        for (state, count) in [("ready", b.ready_instances), ("not_ready", not_ready)] {
            let labels = [
                ("app", app),
                ("version", &b.version),
                ("role", b.role.as_str()),
                ("state", state),
            ];
            out.sample("cutover_instances", &labels, f64::from(count));
        }
    }
    out.family(
        "cutover_instance_ready",
        Kind::Gauge,
        "1 for each instance that is healthy and in the proxy's routes, by address \
         (instances not ready are counted in cutover_instances{state=\"not_ready\"}).",
    );
    // `address`, not `instance`: Prometheus gives every scraped series an
    // `instance` label of its own (the daemon's address).
    for (version, role, address) in s.traffic.routed_instances() {
        let address = address.to_string();
        let labels = [
            ("app", app),
            ("version", &version),
            ("role", role.as_str()),
            ("address", &address),
        ];
        out.sample("cutover_instance_ready", &labels, 1.0);
    }
}

/// What the mirrors did per version they copied to: copies sent, and skipped.
fn mirrors(out: &mut Exposition, s: &AppState, app: &str) {
    out.family(
        "cutover_mirror_requests_total",
        Kind::Counter,
        "Requests picked to be copied to a version (mirrored), by result: mirrored \
         (sent), skipped_full (as many copies in flight as allowed, or the instance \
         full) or skipped_too_large (a body over the limit), since the daemon started.",
    );
    for (version, counts) in s.traffic.mirror_counts() {
        for (result, count) in [
            ("mirrored", counts.mirrored),
            ("skipped_full", counts.skipped_full),
            ("skipped_too_large", counts.skipped_too_large),
        ] {
            let labels = [
                ("app", app),
                ("version", version.as_str()),
                ("result", result),
            ];
            out.sample("cutover_mirror_requests_total", &labels, count as f64);
        }
    }
}

/// The proxy's requests by status class and latency, per version and role.
fn proxy(out: &mut Exposition, s: &AppState, app: &str) {
    let stats = s.traffic.stats();
    out.family(
        "cutover_proxy_requests_total",
        Kind::Counter,
        "Responses the proxy passed on per version and role, by status class, since \
         the daemon started (the proxy's own 502 and 504 for a version included).",
    );
    for (version, role, stats) in &stats {
        for (class, count) in STATUS_CLASSES.iter().zip(stats.status_classes()) {
            let labels = [
                ("app", app),
                ("version", version.as_str()),
                ("role", role.as_str()),
                ("class", *class),
            ];
            out.sample("cutover_proxy_requests_total", &labels, count as f64);
        }
    }
    out.family(
        "cutover_proxy_latency_seconds",
        Kind::Histogram,
        "Time to response headers per version and role, since the daemon started \
         (from the proxy's histograms, within 1%).",
    );
    for (version, role, stats) in &stats {
        let snapshot = stats.snapshot();
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .map(|&bound| {
                let at_most = std::time::Duration::from_secs_f64(bound);
                (bound, snapshot.latency_at_most(at_most))
            })
            .collect();
        let labels = [
            ("app", app),
            ("version", version.as_str()),
            ("role", role.as_str()),
        ];
        out.histogram(
            "cutover_proxy_latency_seconds",
            &labels,
            &buckets,
            snapshot.latency_sum().as_secs_f64(),
            snapshot.latency_count(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, at_ms: i64, event: Event, final_: bool) -> RunEvent {
        RunEvent {
            run_id: "r1".into(),
            seq,
            at_ms,
            event,
            message: String::new(),
            weight_bp: None,
            outcome: final_.then_some(cutover_api::Outcome::Promoted),
        }
    }

    #[test]
    fn a_stage_lasts_from_its_phase_event_to_the_next_or_the_end() {
        let steps = StepDurations::default();
        let step = |step| Event::Phase {
            phase: Phase::Step {
                step,
                of: 2,
                weight_bp: 5_000,
            },
        };
        steps.observe(&event(
            1,
            0,
            Event::Phase {
                phase: Phase::Starting,
            },
            false,
        ));
        steps.observe(&event(2, 2_000, step(1), false));
        steps.observe(&event(3, 3_000, Event::Warning, false));
        steps.observe(&event(4, 32_000, step(2), false));
        steps.observe(&event(
            5,
            40_000,
            Event::Outcome {
                reason: String::new(),
            },
            true,
        ));
        let mut out = Exposition::default();
        steps.write(&mut out, "shop");
        let text = out.finish();
        assert!(
            text.contains("cutover_step_duration_seconds_sum{app=\"shop\",stage=\"starting\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("cutover_step_duration_seconds_sum{app=\"shop\",stage=\"step\"} 38\n"),
            "{text}"
        );
        assert!(
            text.contains("cutover_step_duration_seconds_count{app=\"shop\",stage=\"step\"} 2\n"),
            "{text}"
        );
        assert!(steps.inner.lock().unwrap().open.is_empty());
    }
}
