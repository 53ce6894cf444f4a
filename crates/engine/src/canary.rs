//! Canary: shift weight to the new version step by step, judging it at each step
//! against the stable version, or against a fresh baseline of the stable version
//! started beside it (Kayenta's advice: no warm caches, no uptime bias).

use std::time::Duration;

use cutover_api::{Event, Outcome, Phase, Role, format_bp};
use cutover_spec::{Baseline, CanarySpec, Pause};
use serde::{Deserialize, Serialize};

use crate::judging::{self, Next, Tally};
use crate::platform::ReleaseSpec;
use crate::state::{Plan, Route, RunState, Target, Weight};
use crate::strategy::{self, Action, Ctx, Observation};

/// Where a canary is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The current step, 0-based; meaningful once steps began.
    pub step: u32,
    /// Time spent in the current step, in windows judged.
    pub elapsed_ms: u64,
    pub tally: Tally,
}

/// The name of the fresh baseline's release: `+` cannot be part of a version.
pub fn baseline_release(stable: &ReleaseSpec) -> ReleaseSpec {
    ReleaseSpec {
        name: format!("{}+baseline", stable.version),
        version: stable.version.clone(),
        instances: stable.instances.max(1),
    }
}

pub fn step(ctx: &Ctx, spec: &CanarySpec, state: &mut RunState, obs: Observation) -> Vec<Action> {
    let version = ctx.version;
    let fresh = spec.baseline == Baseline::Fresh;
    let baseline = state.stable.as_ref().map(baseline_release);
    let wanted = || {
        let mut releases = vec![ctx.release()];
        if fresh && let Some(b) = &baseline {
            releases.push(b.clone());
        }
        releases
    };
    match obs {
        Observation::Begin => {
            state.sticky = spec.sticky.is_some();
            strategy::starting(state, wanted())
        }
        Observation::Resumed => {
            if let Some(actions) = strategy::resume_decided(ctx, state) {
                return actions;
            }
            match state.phase {
                // Windows go on where they were (the executor set the analysis up again).
                Phase::Step { .. } => Vec::new(),
                _ => strategy::starting(state, wanted()),
            }
        }
        Observation::Started { release } => {
            let Some(started) = state.release(&release).cloned() else {
                return Vec::new();
            };
            let role = if release == version {
                Role::Canary
            } else {
                Role::Baseline
            };
            state
                .routes
                .push(Route::new(&started, role, Weight::Fixed(0)));
            let all_up = wanted()
                .iter()
                .all(|w| state.releases.iter().any(|r| r.name == w.name));
            if !all_up {
                return Vec::new();
            }
            if state.promote_requested {
                let reason = "promoted by request while it was starting, skipping every step";
                return strategy::commit(state, check(ctx), reason.into());
            }
            enter_step(ctx, spec, state, 0)
        }
        Observation::StartFailed { release, error } => strategy::roll_back(
            state,
            Outcome::RolledBack,
            format!(
                "{release} never became healthy: {error}; no traffic was ever sent to {version}"
            ),
        ),
        Observation::Window(w) => {
            let Plan::Canary(c) = &mut state.plan else {
                return Vec::new();
            };
            let Some(step) = spec.steps.get(c.step as usize) else {
                return Vec::new();
            };
            c.elapsed_ms += w.length.as_millis() as u64;
            let elapsed = Duration::from_millis(c.elapsed_ms);
            let next = judging::after_window(
                &mut c.tally,
                &ctx.config.analysis,
                step.pause,
                elapsed,
                &w.report,
            );
            let at = c.step;
            match next {
                Next::Stay => Vec::new(),
                Next::StepDone if (at as usize) + 1 < spec.steps.len() => {
                    enter_step(ctx, spec, state, at + 1)
                }
                Next::StepDone => {
                    let reason = format!("all {} steps passed analysis", spec.steps.len());
                    strategy::commit(state, check(ctx), reason)
                }
                Next::RollBack(reason) => strategy::roll_back(state, Outcome::RolledBack, reason),
            }
        }
        Observation::Control(crate::Control::Promote) => {
            let Phase::Step { step, of, .. } = state.phase else {
                state.promote_requested = true;
                return vec![strategy::promote_note(
                    "will promote as soon as it is healthy",
                )];
            };
            let mut actions = vec![strategy::promote_note("skipping the remaining steps")];
            let reason =
                format!("promoted by request at step {step}/{of}, skipping the remaining steps");
            actions.extend(strategy::commit(state, check(ctx), reason));
            actions
        }
        Observation::Control(crate::Control::Abort { by }) => strategy::abort(state, &by),
        Observation::Unhealthy { release, problem } => strategy::roll_back(
            state,
            Outcome::RolledBack,
            format!("{release} became unhealthy: {problem}"),
        ),
        Observation::Committed => strategy::promote(state, version),
        Observation::Vetoed(d) => strategy::roll_back(state, d.outcome, d.reason),
        Observation::Smoke { .. }
        | Observation::Scaled { .. }
        | Observation::ScaleFailed { .. } => Vec::new(),
    }
}

/// The release whose health vetoes the promotion: the canary's (the baseline's
/// problems end the run too, but not by veto).
fn check(ctx: &Ctx) -> Vec<String> {
    vec![ctx.version.to_owned()]
}

/// Enters step `i`: its weight and mirror, fresh windows.
///
/// A step that sends the canary no traffic of its own but mirrors some (`weight:
/// 0%`, `mirror: 20%`) judges the canary's answers to the copies ([`Role::Shadow`])
/// against the stable's answers in the same windows (all of them, not only the
/// originals of the copies): a version judged before it serves a single client.
fn enter_step(ctx: &Ctx, spec: &CanarySpec, state: &mut RunState, i: u32) -> Vec<Action> {
    let step = spec.steps[i as usize];
    let bp = u32::from(step.weight.basis_points());
    let mirror_bp = step.mirror.map_or(0, |m| m.basis_points());
    let shadow_only = bp == 0 && mirror_bp > 0;
    let has_baseline = state.routes.iter().any(|r| r.role == Role::Baseline);
    // The baseline gets the canary's share, taken from the stable's; both as
    // much as there is room for at the high steps.
    let baseline_bp = if has_baseline { bp.min(10_000 - bp) } else { 0 };
    state.set_weight(Role::Canary, bp);
    state.set_mirror(Role::Canary, mirror_bp);
    state.set_weight(Role::Baseline, baseline_bp);
    state.set_weight(Role::Stable, 10_000 - bp - baseline_bp);
    let of = spec.steps.len() as u32;
    state.phase = Phase::Step {
        step: i + 1,
        of,
        weight_bp: bp as u16,
    };
    if let Plan::Canary(c) = &mut state.plan {
        c.step = i;
        c.elapsed_ms = 0;
    }
    // The copies are of the stable's requests, and a fresh baseline gets none of
    // them: a shadow is judged against the stable itself.
    let (canary_role, baseline_role) = match (shadow_only, has_baseline) {
        (true, _) => (Role::Shadow, Role::Stable),
        (false, true) => (Role::Canary, Role::Baseline),
        (false, false) => (Role::Canary, Role::Stable),
    };
    state.analyse(Target::new(ctx.version, canary_role), Some(baseline_role));
    let pause = match step.pause {
        Pause::For(d) => format!("for at least {}", humantime::format_duration(d)),
        Pause::UntilPromoted => "until `cutover promote`".into(),
    };
    let against = if has_baseline && !shadow_only {
        " against a fresh baseline"
    } else {
        ""
    };
    let mirror = if mirror_bp > 0 {
        format!(
            ", mirroring {} of the stable's requests to it",
            format_bp(mirror_bp)
        )
    } else {
        String::new()
    };
    vec![Action::Note(
        Event::Phase {
            phase: state.phase.clone(),
        },
        format!(
            "step {}/{of}: {} of traffic to {}{mirror}, analysing {pause}{against}",
            i + 1,
            format_bp(bp as u16),
            ctx.version
        ),
    )]
}
