//! The shape every strategy has: a pure function from the run's state and one
//! observation to the new state and the actions to take.
//!
//! The executor (`run.rs`) turns the world into [`Observation`]s (a release is up,
//! a window was judged, a person asked for something) and carries out the
//! [`Action`]s; it writes the new state to the store before it acts, so that after
//! a crash the run carries on from the record. A strategy decides; it never waits
//! and never does IO, so each is tested with plain values (`canary.rs`,
//! `blue_green.rs`, `rolling.rs`), and the shared moves (going back, promoting)
//! live here.

use std::time::Duration;

use cutover_analysis::WindowReport;
use cutover_api::{Event, Outcome, Phase, Role};
use cutover_spec::{Config, StrategySpec};

use crate::engine::Control;
use crate::platform::ReleaseSpec;
use crate::state::{Decision, Plan, Route, RunState};
use crate::{blue_green, canary, rolling};

/// What the executor saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The run begins.
    Begin,
    /// The run goes on after a daemon restart: its releases were adopted, its
    /// routes applied again and its analysis set up again.
    Resumed,
    /// A release is up, every instance healthy.
    Started { release: String },
    /// A release could not be started.
    StartFailed { release: String, error: String },
    /// Instances were added to or removed from a release.
    Scaled { release: String },
    /// Instances could not be added to a release.
    ScaleFailed { release: String, error: String },
    /// An analysis window was judged.
    Window(Box<Window>),
    /// Smoke checks ran against the preview.
    Smoke { passed: bool, summary: String },
    /// A release of the run turned unhealthy after it was up.
    Unhealthy { release: String, problem: String },
    /// A person asked for something.
    Control(Control),
    /// After [`Action::Commit`]: nothing stands in the way of the promotion.
    Committed,
    /// After [`Action::Commit`]: the promotion is off, for this reason.
    Vetoed(Decision),
}

/// One judged analysis window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub report: WindowReport,
    /// How long it was.
    pub length: Duration,
}

/// What the executor is asked to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a release; then [`Observation::Started`] or [`Observation::StartFailed`].
    Start(ReleaseSpec),
    /// Start `n` more instances of a release; then `Scaled` or `ScaleFailed`.
    Add { release: String, n: u32 },
    /// Take `n` instances out of a release, drain and stop them; then `Scaled`.
    Remove { release: String, n: u32 },
    /// Run the configured smoke checks against the preview; then `Smoke`.
    Smoke,
    /// Drain a release that no longer has a route, and stop it.
    Retire { release: String },
    /// Record an event.
    Note(Event, String),
    /// The run means to promote ([`RunState::decision`] says why): close it to
    /// requests, and veto on an abort already accepted or a problem with
    /// `check`; then `Committed` or `Vetoed`.
    Commit { check: Vec<String> },
    /// Record the outcome; the run is over.
    Finish(Decision),
}

/// What a strategy knows of the run besides its state.
pub struct Ctx<'a> {
    pub config: &'a Config,
    /// The version being rolled out.
    pub version: &'a str,
    /// Instances per version on the platform.
    pub instances: u32,
}

impl Ctx<'_> {
    /// The release of the version being rolled out.
    pub fn release(&self) -> ReleaseSpec {
        ReleaseSpec {
            name: self.version.to_owned(),
            version: self.version.to_owned(),
            instances: self.instances,
        }
    }
}

/// The plan a run of `kind` starts with.
pub fn plan(config: &Config, switch: bool) -> Plan {
    if switch {
        return Plan::Switch;
    }
    match &config.strategy {
        StrategySpec::Canary(_) => Plan::Canary(canary::State::default()),
        StrategySpec::BlueGreen(_) => Plan::BlueGreen(blue_green::State::default()),
        StrategySpec::Rolling(_) => Plan::Rolling(rolling::State::default()),
    }
}

/// The strategy's step: the new state (in place) and the actions to take.
pub fn step(ctx: &Ctx, state: &mut RunState, obs: Observation) -> Vec<Action> {
    match (&state.plan, &ctx.config.strategy) {
        (Plan::Switch, _) => switch(ctx, state, obs),
        (Plan::Canary(_), StrategySpec::Canary(spec)) => canary::step(ctx, spec, state, obs),
        (Plan::BlueGreen(_), StrategySpec::BlueGreen(spec)) => {
            blue_green::step(ctx, spec, state, obs)
        }
        (Plan::Rolling(_), StrategySpec::Rolling(spec)) => rolling::step(ctx, spec, state, obs),
        // The run's config is recorded with it and never changes, so its plan
        // always matches its strategy.
        _ => roll_back(
            state,
            Outcome::Failed,
            "the run's recorded state does not match its strategy".into(),
        ),
    }
}

/// A first deploy or a rollback: start the version, then give it all traffic.
fn switch(ctx: &Ctx, state: &mut RunState, obs: Observation) -> Vec<Action> {
    let version = ctx.version;
    match obs {
        Observation::Begin => starting(state, vec![ctx.release()]),
        Observation::Resumed => resume_decided(ctx, state).unwrap_or_else(|| {
            // Interrupted while starting: start again (what had started was stopped).
            starting(state, vec![ctx.release()])
        }),
        Observation::Started { .. } => {
            let reason = match &state.stable {
                None => "first version of the app: started, healthy and serving".to_owned(),
                Some(from) => format!("switched from {} at once, without analysis", from.version),
            };
            commit(state, vec![version.to_owned()], reason)
        }
        Observation::StartFailed { error, .. } => {
            let keeps = match &state.stable {
                Some(s) => format!("; {} keeps serving", s.version),
                None => String::new(),
            };
            roll_back(
                state,
                Outcome::RolledBack,
                format!("{version} never became healthy: {error}{keeps}"),
            )
        }
        Observation::Control(Control::Abort { by }) => abort(state, &by),
        Observation::Committed => promote(state, version),
        Observation::Vetoed(d) => roll_back(state, d.outcome, d.reason),
        Observation::Unhealthy { release, problem } => roll_back(
            state,
            Outcome::RolledBack,
            format!("{release} became unhealthy: {problem}"),
        ),
        _ => Vec::new(),
    }
}

/// Enter the starting phase and start `releases`.
pub fn starting(state: &mut RunState, releases: Vec<ReleaseSpec>) -> Vec<Action> {
    state.phase = Phase::Starting;
    let to_start: Vec<ReleaseSpec> = releases
        .into_iter()
        .filter(|r| state.releases.iter().all(|have| have.name != r.name))
        .collect();
    let what: Vec<String> = to_start
        .iter()
        .map(|r| format!("{} ({} instance(s))", r.name, r.instances))
        .collect();
    let mut actions = vec![Action::Note(
        Event::Phase {
            phase: state.phase.clone(),
        },
        format!("starting {}, waiting for health", what.join(" and ")),
    )];
    actions.extend(to_start.into_iter().map(Action::Start));
    actions
}

/// The event saying the run entered `state.phase`.
pub fn phase_note(state: &RunState) -> Action {
    Action::Note(
        Event::Phase {
            phase: state.phase.clone(),
        },
        format!("phase: {}", state.phase),
    )
}

/// Means to promote: sets the decision and asks for the last word.
pub fn commit(state: &mut RunState, check: Vec<String>, reason: String) -> Vec<Action> {
    state.decision = Some(Decision {
        outcome: Outcome::Promoted,
        reason,
    });
    vec![Action::Commit { check }]
}

/// The promotion, once committed: `release` takes all traffic as the stable
/// version; everything else the app ran is drained and stopped.
pub fn promote(state: &mut RunState, release: &str) -> Vec<Action> {
    let decision = state.decision.clone().unwrap_or(Decision {
        outcome: Outcome::Promoted,
        reason: "promoted".into(),
    });
    state.phase = Phase::Promoting;
    state.analysis = None;
    // Nothing to stick to once one version serves.
    state.sticky = false;
    let Some(new) = state.release(release).cloned() else {
        return roll_back(
            state,
            Outcome::Failed,
            format!("{release} is not among the run's releases"),
        );
    };
    state.routes = Route::stable_only(&new);
    let mut actions = vec![phase_note(state)];
    let others = state.stable.iter().chain(&state.releases);
    for other in others.filter(|r| r.name != release) {
        actions.push(Action::Retire {
            release: other.name.clone(),
        });
    }
    actions.push(Action::Finish(decision));
    actions
}

/// Back to the stable version: all traffic on it, then every release the run
/// started drained and stopped. The outcome is fixed from here.
pub fn roll_back(state: &mut RunState, outcome: Outcome, reason: String) -> Vec<Action> {
    let decision = Decision { outcome, reason };
    state.decision = Some(decision.clone());
    state.phase = Phase::RollingBack;
    state.analysis = None;
    state.sticky = false;
    state.routes.retain(|r| r.role == Role::Stable);
    state.set_weight(Role::Stable, 10_000);
    let mut actions = vec![
        phase_note(state),
        Action::Note(
            Event::RollingBack {
                reason: decision.reason.clone(),
            },
            format!("rolling back: {}", decision.reason),
        ),
    ];
    actions.extend(state.releases.iter().map(|r| Action::Retire {
        release: r.name.clone(),
    }));
    actions.push(Action::Finish(decision));
    actions
}

/// A person's abort: back to stable.
pub fn abort(state: &mut RunState, by: &str) -> Vec<Action> {
    let mut actions = vec![abort_note(by)];
    actions.extend(roll_back(
        state,
        Outcome::Aborted,
        format!("aborted by {by}"),
    ));
    actions
}

/// A person's abort, recorded.
pub fn abort_note(by: &str) -> Action {
    Action::Note(
        Event::Command {
            command: cutover_api::Command::Abort,
            by: by.to_owned(),
        },
        format!("abort requested by {by}"),
    )
}

/// A person's promote, recorded.
pub fn promote_note(what: &str) -> Action {
    Action::Note(
        Event::Command {
            command: cutover_api::Command::Promote,
            by: "a person (cutover promote)".into(),
        },
        format!("promote requested: {what}"),
    )
}

/// After a restart, a run that had decided carries its decision out again (each
/// step is idempotent: what was already retired is no longer among the releases).
/// `None` when it had not decided.
pub fn resume_decided(ctx: &Ctx, state: &mut RunState) -> Option<Vec<Action>> {
    let decision = state.decision.clone()?;
    Some(match (decision.outcome, &state.phase) {
        (Outcome::Promoted, Phase::Promoting) => promote(state, ctx.version),
        // Committed but not yet acted on: ask for the last word again.
        (Outcome::Promoted, _) => vec![Action::Commit {
            check: vec![ctx.version.to_owned()],
        }],
        (outcome, _) => roll_back(state, outcome, decision.reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Weight;

    pub(crate) fn spec(name: &str) -> ReleaseSpec {
        ReleaseSpec {
            name: name.into(),
            version: name.into(),
            instances: 1,
        }
    }

    #[test]
    fn rolling_back_keeps_only_the_stable_route_and_retires_the_run_s_releases() {
        let mut state = RunState::new(Some(spec("v1")), Plan::Switch, Default::default());
        state.releases.push(spec("v2"));
        state
            .routes
            .push(Route::new(&spec("v2"), Role::Canary, Weight::Fixed(5_000)));
        state.set_weight(Role::Stable, 5_000);
        let actions = roll_back(&mut state, Outcome::RolledBack, "errors".into());
        assert_eq!(
            state.routes,
            vec![Route::new(&spec("v1"), Role::Stable, Weight::Fixed(10_000))]
        );
        assert_eq!(state.phase, Phase::RollingBack);
        let retired: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Retire { release } => Some(release.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(retired, ["v2"]);
        assert!(
            matches!(actions.last(), Some(Action::Finish(d)) if d.outcome == Outcome::RolledBack)
        );
    }

    #[test]
    fn promoting_routes_everything_to_the_new_release_then_retires_the_rest() {
        let mut state = RunState::new(Some(spec("v1")), Plan::Switch, Default::default());
        state.releases.push(spec("v2"));
        state.releases.push(spec("v1+baseline"));
        commit(&mut state, vec!["v2".into()], "passed".into());
        let actions = promote(&mut state, "v2");
        assert_eq!(
            state.routes,
            vec![Route::new(&spec("v2"), Role::Stable, Weight::Fixed(10_000))]
        );
        let retired: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Retire { release } => Some(release.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(retired, ["v1", "v1+baseline"]);
        assert!(
            matches!(actions.last(), Some(Action::Finish(d)) if d.outcome == Outcome::Promoted && d.reason == "passed")
        );
    }
}
