//! Every run ends with a recorded outcome and a final event, whatever happens to
//! its executor: a store failure or even a panic sends the traffic back to stable
//! and ends the run as failed. Also the recording every run shares: events and
//! receipts.

use std::sync::Arc;

use cutover_api::{Event, Outcome};
use cutover_store::NewRun;
use tracing::{info, warn};

use crate::engine::{EngineError, Inner, Serving, lock};
use crate::events::{error_chain, now_ms};
use crate::run::Runner;
use crate::strategy::Observation;

/// The failure of a run whose task panicked.
pub(crate) const PANICKED: &str = "the run's task panicked";

/// How a run that failed with `failure` ends, and why. Once the new version is the
/// stable one (`committed`) it has all traffic and the old one is going or gone:
/// the run has promoted, whatever failed after that. Before, the traffic goes back
/// to stable ([`Inner::evacuate`]).
pub(crate) fn failed(committed: bool, failure: &str) -> (Outcome, String) {
    if committed {
        (
            Outcome::Promoted,
            format!("live, but finishing the run failed: {failure}"),
        )
    } else {
        (
            Outcome::Failed,
            format!("internal error, traffic returned to stable: {failure}"),
        )
    }
}

impl Inner {
    /// Drives the run and makes sure it ends with a recorded outcome and a final
    /// event, whatever happens to the driver: a store failure or even a panic sends
    /// the traffic back to stable and ends the run as failed.
    pub(crate) async fn supervise(self: Arc<Self>, runner: Runner, first: Observation) {
        let run = runner.run.clone();
        let driver = tokio::spawn(runner.drive(first));
        let failure = match driver.await {
            Ok(Ok(decision)) => return self.finish(&run, decision.outcome, &decision.reason),
            Ok(Err(EngineError::Suspended)) => return self.suspend(&run),
            Ok(Err(e)) => error_chain(&e),
            Err(e) if e.is_panic() => PANICKED.to_owned(),
            Err(_) => "the run's task was cancelled".to_owned(),
        };
        let committed = self.stable_version().as_deref() == Some(&run.version);
        let (outcome, reason) = failed(committed, &failure);
        if !committed {
            warn!(run = %run.id, error = %failure, "the run failed; evacuating to stable");
            self.evacuate().await;
        }
        self.finish(&run, outcome, &reason);
    }

    /// Leaves a run that waited before its rollout as recorded (nothing of it
    /// runs), and frees the app: the next daemon resumes it from its state.
    fn suspend(&self, run: &NewRun) {
        info!(run = %run.id, version = %run.version, "run suspended before its rollout; the next daemon resumes it");
        lock(&self.active).run.take();
        self.idle.send_replace(true);
    }

    /// Records the outcome with its final event, records what the app serves now,
    /// writes the receipts, frees the app for the next run, then announces the end.
    pub(crate) fn finish(&self, run: &NewRun, outcome: Outcome, reason: &str) {
        let message = match outcome {
            Outcome::Promoted => format!("{} is live: {reason}", run.version),
            Outcome::RolledBack => format!("{} rolled back: {reason}", run.version),
            Outcome::Aborted => format!("{} aborted: {reason}", run.version),
            Outcome::Blocked => format!("{} blocked: {reason}", run.version),
            Outcome::Failed => format!("{} failed: {reason}", run.version),
        };
        let at = now_ms();
        // What the app serves now, recorded with the outcome: a restarted daemon
        // never adopts a version the run retired.
        let serving = serde_json::to_string(&Serving {
            stable: self.stable_release(),
        })
        .ok();
        let app = self.app();
        let recorded = self.store.finish_run(
            &run.id,
            at,
            outcome,
            reason,
            &message,
            serving.as_deref().map(|s| (app.as_str(), s)),
        );
        self.write_receipts(&run.id);
        // Free the app before announcing the end, so a client reacting to the final
        // event can start the next run at once.
        lock(&self.active).run.take();
        self.idle.send_replace(true);
        info!(run = %run.id, version = %run.version, outcome = outcome.as_str(), reason = %reason, "run finished");
        let event = match recorded {
            Ok(event) => event,
            Err(e) => {
                warn!(run = %run.id, error = %e, "could not record the outcome");
                // Not in the store: past every stored event, so streams deliver it
                // last; kept for clients that ask after the broadcast.
                let event = cutover_api::RunEvent {
                    run_id: run.id.clone(),
                    seq: i64::MAX,
                    at_ms: at,
                    event: Event::Outcome {
                        reason: reason.to_owned(),
                    },
                    message,
                    weight_bp: None,
                    outcome: Some(outcome),
                };
                lock(&self.unrecorded).insert(run.id.clone(), event.clone());
                event
            }
        };
        let _ = self.events.send(event);
    }

    /// Records an event of `run` and broadcasts it.
    pub(crate) fn emit(
        &self,
        run: &NewRun,
        event: Event,
        message: &str,
        weight_bp: Option<u16>,
    ) -> Result<(), EngineError> {
        let record = self
            .store
            .append_event(&run.id, now_ms(), &event, message, weight_bp)?;
        info!(run = %run.id, version = %run.version, kind = event.kind(), weight_bp, "{message}");
        let _ = self.events.send(record);
        Ok(())
    }

    pub(crate) fn write_receipts(&self, run_id: &str) {
        match crate::receipts::write(&self.store, &self.runs_dir, run_id) {
            Ok(dir) => info!(run = %run_id, dir = %dir.display(), "receipts written"),
            Err(e) => warn!(run = %run_id, error = %e, "could not write receipts"),
        }
    }
}
