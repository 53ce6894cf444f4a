//! Blue-green: start green beside blue, check it on preview traffic only (smoke
//! checks, and an analysis of its own numbers against absolute limits), switch all
//! traffic to it in one step, and keep blue running for `scale_down_delay` while
//! post-promotion analysis watches green against blue's last measured window. Any
//! failure, crash or abort until then switches back at once, since blue never
//! stopped.

use std::time::Duration;

use cutover_api::{Event, Outcome, Phase, Role};
use cutover_spec::{BlueGreenSpec, Pause};
use serde::{Deserialize, Serialize};

use crate::judging::{self, Next, Tally};
use crate::state::{Plan, Route, RunState, Target, Weight};
use crate::strategy::{self, Action, Ctx, Observation};

/// Where a blue-green run is (its phase says which stage).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Time spent in the preview analysis or after the switch, in windows judged.
    pub elapsed_ms: u64,
    pub tally: Tally,
    /// The smoke checks passed.
    pub smoke_passed: bool,
}

pub fn step(
    ctx: &Ctx,
    spec: &BlueGreenSpec,
    state: &mut RunState,
    obs: Observation,
) -> Vec<Action> {
    let green = ctx.version;
    match obs {
        Observation::Begin => strategy::starting(state, vec![ctx.release()]),
        Observation::Resumed => {
            if let Some(actions) = strategy::resume_decided(ctx, state) {
                return actions;
            }
            let smoke_pending = !plan(state).smoke_passed && !spec.smoke_checks.is_empty();
            match state.phase {
                Phase::Preview if smoke_pending => {
                    vec![Action::Smoke]
                }
                Phase::Preview | Phase::AwaitingPromotion | Phase::PostPromotion => Vec::new(),
                _ => strategy::starting(state, vec![ctx.release()]),
            }
        }
        Observation::Started { release } => {
            let Some(started) = state.release(&release).cloned() else {
                return Vec::new();
            };
            state
                .routes
                .push(Route::new(&started, Role::Preview, Weight::Fixed(0)));
            state.phase = Phase::Preview;
            let mut actions = vec![strategy::phase_note(state)];
            if spec.smoke_checks.is_empty() {
                actions.extend(after_smoke(ctx, spec, state));
            } else {
                actions.push(Action::Smoke);
            }
            actions
        }
        Observation::StartFailed { release, error } => strategy::roll_back(
            state,
            Outcome::RolledBack,
            format!("{release} never became healthy: {error}; no traffic was ever sent to it"),
        ),
        Observation::Smoke {
            passed: false,
            summary,
        } => strategy::roll_back(
            state,
            Outcome::RolledBack,
            format!(
                "pre-promotion smoke checks failed: {summary}; no production traffic was moved"
            ),
        ),
        Observation::Smoke { passed: true, .. } => {
            plan(state).smoke_passed = true;
            after_smoke(ctx, spec, state)
        }
        Observation::Window(w) => {
            let phase = state.phase.clone();
            let pause = match phase {
                Phase::Preview => spec.preview_analysis.unwrap_or_default(),
                Phase::PostPromotion => spec.scale_down_delay,
                _ => return Vec::new(),
            };
            let p = plan(state);
            p.elapsed_ms += w.length.as_millis() as u64;
            let elapsed = Duration::from_millis(p.elapsed_ms);
            let next = judging::after_window(
                &mut p.tally,
                &ctx.config.analysis,
                Pause::For(pause),
                elapsed,
                &w.report,
            );
            match (next, phase) {
                (Next::Stay, _) => Vec::new(),
                (Next::StepDone, Phase::Preview) => ready_to_switch(ctx, spec, state),
                (Next::StepDone, _) => scale_down(ctx, state),
                (Next::RollBack(reason), Phase::Preview) => strategy::roll_back(
                    state,
                    Outcome::RolledBack,
                    format!("preview analysis failed: {reason}; no production traffic was moved"),
                ),
                (Next::RollBack(reason), _) => strategy::roll_back(
                    state,
                    Outcome::RolledBack,
                    format!("post-promotion analysis failed: {reason}; switched back"),
                ),
            }
        }
        Observation::Control(crate::Control::Promote) => match state.phase.clone() {
            Phase::Preview if smoke_done(spec, state) => {
                let mut actions = vec![strategy::promote_note(
                    "switching now, skipping the rest of the preview analysis",
                )];
                actions.extend(switch(ctx, spec, state));
                actions
            }
            Phase::AwaitingPromotion => {
                let mut actions = vec![strategy::promote_note("switching")];
                actions.extend(switch(ctx, spec, state));
                actions
            }
            Phase::PostPromotion => {
                let mut actions = vec![strategy::promote_note(
                    "ending the post-promotion analysis, scaling blue down now",
                )];
                actions.extend(scale_down(ctx, state));
                actions
            }
            _ => {
                state.promote_requested = true;
                vec![strategy::promote_note(
                    "will switch as soon as green passes its checks",
                )]
            }
        },
        Observation::Control(crate::Control::Abort { by }) => strategy::abort(state, &by),
        Observation::Unhealthy { release, problem } => {
            let after = if state.phase == Phase::PostPromotion {
                "; switched back"
            } else {
                ""
            };
            strategy::roll_back(
                state,
                Outcome::RolledBack,
                format!("{release} became unhealthy: {problem}{after}"),
            )
        }
        Observation::Committed => strategy::promote(state, green),
        Observation::Vetoed(d) => strategy::roll_back(state, d.outcome, d.reason),
        Observation::Scaled { .. } | Observation::ScaleFailed { .. } => Vec::new(),
    }
}

fn smoke_done(spec: &BlueGreenSpec, state: &mut RunState) -> bool {
    plan(state).smoke_passed || spec.smoke_checks.is_empty()
}

fn plan(state: &mut RunState) -> &mut State {
    match &mut state.plan {
        Plan::BlueGreen(p) => p,
        // `strategy::step` dispatches only blue-green plans here.
        _ => unreachable!("a blue-green step on another plan"),
    }
}

/// Smoke checks passed (or there were none): preview analysis, or on.
fn after_smoke(ctx: &Ctx, spec: &BlueGreenSpec, state: &mut RunState) -> Vec<Action> {
    match spec.preview_analysis {
        Some(d) if !d.is_zero() && !state.promote_requested => {
            plan(state).elapsed_ms = 0;
            state.analyse(Target::new(ctx.version, Role::Preview), None);
            vec![Action::Note(
                Event::Phase {
                    phase: state.phase.clone(),
                },
                format!(
                    "analysing {}'s preview traffic for {} against the absolute limits",
                    ctx.version,
                    humantime::format_duration(d)
                ),
            )]
        }
        _ => ready_to_switch(ctx, spec, state),
    }
}

/// Green passed its checks: switch, or wait for `cutover promote`.
fn ready_to_switch(ctx: &Ctx, spec: &BlueGreenSpec, state: &mut RunState) -> Vec<Action> {
    state.analysis = None;
    if spec.auto_promote || state.promote_requested {
        return switch(ctx, spec, state);
    }
    state.phase = Phase::AwaitingPromotion;
    vec![Action::Note(
        Event::Phase {
            phase: state.phase.clone(),
        },
        format!(
            "{} passed its pre-promotion checks; waiting for `cutover promote` to switch",
            ctx.version
        ),
    )]
}

/// All traffic to green in one step; blue stays up for the way back.
fn switch(ctx: &Ctx, spec: &BlueGreenSpec, state: &mut RunState) -> Vec<Action> {
    if let Some(green) = state.routes.iter_mut().find(|r| r.role == Role::Preview) {
        green.role = Role::Canary;
        green.weight = Weight::Fixed(10_000);
    }
    state.set_weight(Role::Stable, 0);
    state.phase = Phase::PostPromotion;
    plan(state).elapsed_ms = 0;
    let blue = state
        .stable
        .as_ref()
        .map_or("nothing".to_owned(), |s| s.version.clone());
    let mut actions = vec![Action::Note(
        Event::Phase {
            phase: state.phase.clone(),
        },
        format!(
            "switched: 100% of traffic to {}; {blue} keeps running for {} as the way back",
            ctx.version,
            humantime::format_duration(spec.scale_down_delay)
        ),
    )];
    if spec.scale_down_delay.is_zero() {
        let reason = format!("switched from {blue}; no post-promotion wait configured");
        actions.extend(strategy::commit(
            state,
            vec![ctx.version.to_owned()],
            reason,
        ));
        return actions;
    }
    // Judged against blue's last production traffic, from before the switch.
    state
        .analyse(Target::new(ctx.version, Role::Canary), Some(Role::Stable))
        .seed_from_run_start = true;
    actions
}

/// The post-promotion analysis is over: commit, then blue is drained and stopped.
fn scale_down(ctx: &Ctx, state: &mut RunState) -> Vec<Action> {
    let reason = format!(
        "switched from {} and passed post-promotion analysis",
        state
            .stable
            .as_ref()
            .map_or("nothing", |s| s.version.as_str())
    );
    strategy::commit(state, vec![ctx.version.to_owned()], reason)
}
