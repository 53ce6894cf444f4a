//! Rolling: replace the old version's instances with the new one's, batch by
//! batch, within `max_surge` extra instances and `max_unavailable` missing ones,
//! judging the new instances against the old after each batch. Traffic is spread
//! over every ready instance of both versions, so each batch shifts it in
//! proportion. Going back runs the same batches in reverse: old instances started
//! and ready first, then new ones drained and stopped, so the app never has fewer
//! than `instances - max_unavailable` ready instances.

use std::time::Duration;

use cutover_api::{Event, Outcome, Phase, Role};
use cutover_spec::{Pause, RollingSpec};
use serde::{Deserialize, Serialize};

use crate::judging::{self, Next, Tally};
use crate::platform::ReleaseSpec;
use crate::state::{Decision, Plan, Route, RunState, Target, Weight};
use crate::strategy::{self, Action, Ctx, Observation};

/// Where a rolling update is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Instances of the old version running.
    pub old: u32,
    /// Instances of the new version running.
    pub new: u32,
    /// The batch in progress, 1-based (0 before the first).
    pub batch: u32,
    /// What the executor was asked to do last and has not reported yet.
    pub pending: Option<Pending>,
    /// Time spent analysing the current batch, in windows judged.
    pub elapsed_ms: u64,
    pub tally: Tally,
    /// Going back, batch by batch.
    pub back: bool,
}

/// A change of instance counts in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pending {
    /// New instances of the rolled-out version (old ones when going back).
    Add { n: u32 },
    /// Old instances (new ones when going back) leaving.
    Remove { n: u32 },
}

/// Instance counts: `n` wanted, at most `surge` more running, at most
/// `unavailable` fewer ready. Both zero cannot make progress; the config refuses
/// it, and here it counts as a surge of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub n: u32,
    pub surge: u32,
    pub unavailable: u32,
}

impl Bounds {
    pub fn of(spec: &RollingSpec, n: u32) -> Bounds {
        let surge = spec.max_surge.surge(n).min(n);
        let unavailable = spec.max_unavailable.unavailable(n).min(n);
        Bounds {
            n,
            surge: if surge == 0 && unavailable == 0 {
                1
            } else {
                surge
            },
            unavailable,
        }
    }

    /// How many incoming instances may run beside `outgoing` ones.
    pub fn incoming_target(self, outgoing: u32) -> u32 {
        self.n.min((self.n + self.surge).saturating_sub(outgoing))
    }

    /// How few outgoing instances must stay beside `incoming` ready ones.
    pub fn outgoing_target(self, incoming: u32) -> u32 {
        self.n
            .saturating_sub(self.unavailable)
            .saturating_sub(incoming)
    }

    /// The batches from `(outgoing, incoming)` to all incoming: how many there will be.
    pub fn batches(self, mut outgoing: u32, mut incoming: u32) -> u32 {
        let mut batches = 0;
        while incoming < self.n || outgoing > 0 {
            let add = self.incoming_target(outgoing).saturating_sub(incoming);
            incoming += add;
            let remove = outgoing.saturating_sub(self.outgoing_target(incoming));
            outgoing -= remove;
            batches += 1;
            if add == 0 && remove == 0 {
                break;
            }
        }
        batches
    }
}

pub fn step(ctx: &Ctx, spec: &RollingSpec, state: &mut RunState, obs: Observation) -> Vec<Action> {
    let bounds = Bounds::of(spec, ctx.instances);
    let new_name = ctx.version.to_owned();
    let old_name = state.stable.as_ref().map(|s| s.name.clone());
    match obs {
        Observation::Begin => {
            let old = state.stable.as_ref().map_or(0, |s| s.instances);
            plan(state).old = old;
            // Traffic follows ready instances from the start.
            if let Some(stable) = state.route_mut(Role::Stable) {
                stable.weight = Weight::PerReadyInstance;
            }
            next_batch(ctx, bounds, state)
        }
        Observation::Resumed
            if state
                .decision
                .as_ref()
                .is_some_and(|d| d.outcome == Outcome::Promoted) =>
        {
            strategy::resume_decided(ctx, state).unwrap_or_default()
        }
        Observation::Resumed => match plan(state).pending.take() {
            // What was pending may or may not have happened; the counts say.
            Some(_) => {
                reconcile_counts(ctx, state);
                next_move(ctx, spec, bounds, state)
            }
            None if state.analysis.is_some() => Vec::new(),
            None => next_move(ctx, spec, bounds, state),
        },
        Observation::Started { release } | Observation::Scaled { release } => {
            let p = plan(state);
            match p.pending.take() {
                Some(Pending::Add { n }) if (release == new_name) != p.back => {
                    if p.back {
                        p.old += n;
                    } else {
                        p.new += n;
                    }
                }
                Some(Pending::Remove { n }) => {
                    if p.back {
                        p.new -= n.min(p.new);
                    } else {
                        p.old -= n.min(p.old);
                    }
                }
                other => p.pending = other,
            }
            if release == new_name
                && !state.routes.iter().any(|r| r.release == new_name)
                && let Some(spec) = state.release(&new_name).cloned()
            {
                state
                    .routes
                    .push(Route::new(&spec, Role::Canary, Weight::PerReadyInstance));
            }
            sync_specs(state, old_name.as_deref(), &new_name);
            let mut actions = vec![scaled_note(ctx, state)];
            actions.extend(next_move(ctx, spec, bounds, state));
            actions
        }
        Observation::StartFailed { release, error }
        | Observation::ScaleFailed { release, error } => {
            plan(state).pending = None;
            if plan(state).back {
                return stranded(ctx, state, &release, &error);
            }
            go_back(
                ctx,
                bounds,
                state,
                Outcome::RolledBack,
                format!("{release} could not start new instances: {error}"),
            )
        }
        Observation::Window(w) => {
            let p = plan(state);
            p.elapsed_ms += w.length.as_millis() as u64;
            let elapsed = Duration::from_millis(p.elapsed_ms);
            match judging::after_window(
                &mut p.tally,
                &ctx.config.analysis,
                Pause::For(spec.pause),
                elapsed,
                &w.report,
            ) {
                Next::Stay => Vec::new(),
                Next::StepDone => {
                    state.analysis = None;
                    next_batch(ctx, bounds, state)
                }
                Next::RollBack(reason) => go_back(ctx, bounds, state, Outcome::RolledBack, reason),
            }
        }
        Observation::Control(crate::Control::Promote) => {
            state.promote_requested = true;
            let mut actions = vec![strategy::promote_note(
                "replacing the remaining instances without analysing each batch",
            )];
            if state.analysis.take().is_some() {
                actions.extend(next_batch(ctx, bounds, state));
            }
            actions
        }
        Observation::Control(crate::Control::Abort { by }) => {
            if plan(state).back {
                return Vec::new();
            }
            if state.release(ctx.version).is_none() {
                // Aborted while its first instances were starting: that start was
                // cancelled, so nothing is pending any more.
                plan(state).pending = None;
            }
            let mut actions = vec![strategy::abort_note(&by)];
            actions.extend(go_back(
                ctx,
                bounds,
                state,
                Outcome::Aborted,
                format!("aborted by {by}"),
            ));
            actions
        }
        Observation::Unhealthy { release, problem } if release == new_name => {
            if plan(state).back {
                return Vec::new();
            }
            go_back(
                ctx,
                bounds,
                state,
                Outcome::RolledBack,
                format!("{release} became unhealthy: {problem}"),
            )
        }
        Observation::Committed => strategy::promote(state, &new_name),
        Observation::Vetoed(d) => go_back(ctx, bounds, state, d.outcome, d.reason),
        Observation::Unhealthy { .. } | Observation::Smoke { .. } => Vec::new(),
    }
}

fn plan(state: &mut RunState) -> &mut State {
    match &mut state.plan {
        Plan::Rolling(p) => p,
        // `strategy::step` dispatches only rolling plans here.
        _ => unreachable!("a rolling step on another plan"),
    }
}

/// After a restart with a change in flight: the counts from the releases as
/// recorded (the executor keeps their instance counts up to date).
fn reconcile_counts(ctx: &Ctx, state: &mut RunState) {
    let old = state.stable.as_ref().map_or(0, |s| s.instances);
    let new = state.release(ctx.version).map_or(0, |r| r.instances);
    let p = plan(state);
    p.old = old;
    p.new = new;
}

/// Keeps the recorded releases' instance counts in step with the plan's.
fn sync_specs(state: &mut RunState, old: Option<&str>, new: &str) {
    let (o, n) = {
        let p = plan(state);
        (p.old, p.new)
    };
    if let Some(stable) = state.stable.as_mut()
        && Some(stable.name.as_str()) == old
    {
        stable.instances = o;
    }
    if let Some(r) = state.releases.iter_mut().find(|r| r.name == new) {
        r.instances = n;
    }
}

fn scaled_note(ctx: &Ctx, state: &mut RunState) -> Action {
    let old_version = state
        .stable
        .as_ref()
        .map_or("nothing".to_owned(), |s| s.version.clone());
    let p = plan(state);
    Action::Note(
        Event::Scaled {
            release: ctx.version.to_owned(),
            version: ctx.version.to_owned(),
            instances: p.new,
        },
        format!(
            "{} instance(s) of {}, {} of {old_version}",
            p.new, ctx.version, p.old
        ),
    )
}

/// What follows a finished change of counts: the rest of the batch, its
/// analysis, the next batch, or the end.
fn next_move(ctx: &Ctx, spec: &RollingSpec, bounds: Bounds, state: &mut RunState) -> Vec<Action> {
    let p = plan(state);
    if p.pending.is_some() {
        return Vec::new();
    }
    if p.back {
        return back_batch(ctx, bounds, state);
    }
    // Within a batch: incoming first, then outgoing.
    let remove = p.old.saturating_sub(bounds.outgoing_target(p.new));
    if remove > 0 {
        return remove_from(state, Some(ctx), remove);
    }
    let promote_requested = state.promote_requested;
    let p = plan(state);
    if p.new == 0 || promote_requested {
        return next_batch(ctx, bounds, state);
    }
    // Judge the batch: the new instances against the old ones.
    p.elapsed_ms = 0;
    // A batch that replaced every old instance leaves them no traffic to
    // compare with in its windows: the old version's numbers from the start of
    // the run stand in.
    state
        .analyse(Target::new(ctx.version, Role::Canary), Some(Role::Stable))
        .seed_from_run_start = true;
    vec![Action::Note(
        Event::Phase {
            phase: state.phase.clone(),
        },
        format!(
            "analysing the new instances against the old for at least {}",
            humantime::format_duration(spec.pause)
        ),
    )]
}

/// Starts the next forward batch, or commits when every instance is replaced.
fn next_batch(ctx: &Ctx, bounds: Bounds, state: &mut RunState) -> Vec<Action> {
    let p = plan(state);
    if p.new >= bounds.n && p.old == 0 {
        let reason = format!(
            "all {} instances replaced batch by batch{}",
            bounds.n,
            if state.promote_requested {
                ", the last ones on request without analysis"
            } else {
                ", each batch passing analysis"
            }
        );
        return strategy::commit(state, vec![ctx.version.to_owned()], reason);
    }
    p.batch += 1;
    let of = p.batch - 1 + bounds.batches(p.old, p.new);
    let (batch, old, new) = (p.batch, p.old, p.new);
    state.phase = Phase::Batch { batch, of };
    let mut actions = vec![Action::Note(
        Event::Phase {
            phase: state.phase.clone(),
        },
        format!("batch {batch}/{of}"),
    )];
    let add = bounds.incoming_target(old).saturating_sub(new);
    if add > 0 {
        actions.extend(add_to(ctx, state, true, add));
    } else {
        let remove = old.saturating_sub(bounds.outgoing_target(new));
        actions.extend(remove_from(state, Some(ctx), remove));
    }
    actions
}

/// Decides to go back and takes the first batch back.
fn go_back(
    ctx: &Ctx,
    bounds: Bounds,
    state: &mut RunState,
    outcome: Outcome,
    reason: String,
) -> Vec<Action> {
    state.decision = Some(Decision {
        outcome,
        reason: reason.clone(),
    });
    state.analysis = None;
    state.phase = Phase::RollingBack;
    plan(state).back = true;
    let mut actions = vec![
        strategy::phase_note(state),
        Action::Note(
            Event::RollingBack {
                reason: reason.clone(),
            },
            format!("rolling back batch by batch: {reason}"),
        ),
    ];
    if plan(state).pending.is_none() {
        actions.extend(back_batch(ctx, bounds, state));
    }
    actions
}

/// One batch back: old instances started first, then new ones removed; at the
/// end the new release is retired and the run finishes.
fn back_batch(ctx: &Ctx, bounds: Bounds, state: &mut RunState) -> Vec<Action> {
    let p = plan(state);
    let (old, new) = (p.old, p.new);
    let target = state.stable.as_ref().map_or(0, |_| bounds.n);
    if old >= target && new == 0 {
        state.routes.retain(|r| r.role == Role::Stable);
        let mut actions: Vec<Action> = state
            .releases
            .iter()
            .map(|r| Action::Retire {
                release: r.name.clone(),
            })
            .collect();
        let decision = state.decision.clone().unwrap_or(Decision {
            outcome: Outcome::RolledBack,
            reason: "rolled back".into(),
        });
        actions.push(Action::Finish(decision));
        return actions;
    }
    let add = bounds
        .incoming_target(new)
        .saturating_sub(old)
        .min(target - old.min(target));
    if add > 0 {
        return add_to(ctx, state, false, add);
    }
    let remove = new.saturating_sub(bounds.outgoing_target(old));
    if remove > 0 {
        return remove_from(state, None, remove);
    }
    // Nothing can move (no old version to go back to): drop what is left.
    remove_from(state, None, new)
}

/// Going back, the old version could not start more instances. One version
/// must end up serving alone: the old one while it still has instances (fewer
/// than wanted), else the new one, which serves everything already.
fn stranded(ctx: &Ctx, state: &mut RunState, release: &str, error: &str) -> Vec<Action> {
    let why = state
        .decision
        .as_ref()
        .map_or_else(String::new, |d| format!("{}; ", d.reason));
    let old = plan(state).old;
    let (keep, reason) = match state.stable.clone() {
        Some(stable) if old > 0 => (
            stable,
            format!(
                "{why}going back, {release} could not start more instances ({error}); \
                 it serves with {old} instance(s), fewer than configured, and {} was stopped",
                ctx.version
            ),
        ),
        _ => match state.release(ctx.version).cloned() {
            Some(new) => (
                new,
                format!(
                    "{why}going back, {release} could not start again ({error}); \
                     {} keeps serving as the stable version",
                    ctx.version
                ),
            ),
            None => {
                return vec![Action::Finish(Decision {
                    outcome: Outcome::Failed,
                    reason: format!("{why}{release} could not start again: {error}"),
                })];
            }
        },
    };
    state.routes = Route::stable_only(&keep);
    let mut actions = vec![Action::Note(Event::Warning, reason.clone())];
    let others = state.stable.iter().chain(&state.releases);
    actions.extend(
        others
            .filter(|r| r.name != keep.name)
            .map(|r| Action::Retire {
                release: r.name.clone(),
            }),
    );
    actions.push(Action::Finish(Decision {
        outcome: Outcome::Failed,
        reason,
    }));
    actions
}

/// Adds `n` instances: of the new version (`forward`), or of the old one.
fn add_to(ctx: &Ctx, state: &mut RunState, forward: bool, n: u32) -> Vec<Action> {
    plan(state).pending = Some(Pending::Add { n });
    if forward {
        if state.release(ctx.version).is_none() {
            return vec![Action::Start(ReleaseSpec {
                name: ctx.version.to_owned(),
                version: ctx.version.to_owned(),
                instances: n,
            })];
        }
        return vec![Action::Add {
            release: ctx.version.to_owned(),
            n,
        }];
    }
    match &state.stable {
        Some(stable) => vec![Action::Add {
            release: stable.name.clone(),
            n,
        }],
        None => {
            plan(state).pending = None;
            Vec::new()
        }
    }
}

/// Removes `n` instances: of the old version going forward (`ctx` given), of the
/// new one going back.
fn remove_from(state: &mut RunState, forward: Option<&Ctx>, n: u32) -> Vec<Action> {
    let release = match forward {
        Some(_) => state.stable.as_ref().map(|s| s.name.clone()),
        None => state.releases.first().map(|r| r.name.clone()),
    };
    let Some(release) = release else {
        return Vec::new();
    };
    plan(state).pending = Some(Pending::Remove { n });
    vec![Action::Remove { release, n }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use cutover_spec::Count;

    fn bounds(n: u32, surge: u32, unavailable: u32) -> Bounds {
        Bounds::of(
            &RollingSpec {
                max_surge: Count::Absolute(surge),
                max_unavailable: Count::Absolute(unavailable),
                pause: Duration::from_secs(1),
            },
            n,
        )
    }

    /// The counts after each batch, and the lowest number of instances up
    /// (all counted ready, as they are between batches) at any moment.
    fn walk(b: Bounds) -> (Vec<(u32, u32)>, u32) {
        let (mut old, mut new) = (b.n, 0);
        let mut trail = Vec::new();
        let mut lowest = old;
        while new < b.n || old > 0 {
            let add = b.incoming_target(old).saturating_sub(new);
            new += add;
            let remove = old.saturating_sub(b.outgoing_target(new));
            old -= remove;
            lowest = lowest.min(old + new);
            trail.push((old, new));
            assert!(add > 0 || remove > 0, "stuck at {old} old, {new} new");
            assert!(old + new <= b.n + b.surge, "over the surge at {old}+{new}");
        }
        (trail, lowest)
    }

    #[test]
    fn surge_one_unavailable_zero_replaces_one_at_a_time_never_below_n() {
        let b = bounds(4, 1, 0);
        let (trail, lowest) = walk(b);
        assert_eq!(trail, [(3, 1), (2, 2), (1, 3), (0, 4)]);
        assert_eq!(lowest, 4);
        assert_eq!(b.batches(4, 0), 4);
    }

    #[test]
    fn unavailable_only_removes_first_then_replaces() {
        let b = bounds(4, 0, 1);
        let (trail, lowest) = walk(b);
        assert_eq!(trail, [(3, 0), (2, 1), (1, 2), (0, 3), (0, 4)]);
        assert_eq!(lowest, 3);
        assert_eq!(b.batches(4, 0), 5);
    }

    #[test]
    fn both_allow_bigger_batches() {
        let (trail, lowest) = walk(bounds(4, 1, 1));
        assert_eq!(trail, [(2, 1), (0, 3), (0, 4)]);
        assert_eq!(lowest, 3);
    }

    #[test]
    fn percentages_round_like_kubernetes() {
        let spec = RollingSpec {
            max_surge: Count::Percent(cutover_spec::Percent::from_percent(10.0).unwrap()),
            max_unavailable: Count::Percent(cutover_spec::Percent::from_percent(20.0).unwrap()),
            pause: Duration::ZERO,
        };
        // 10% of 3 rounds up to 1; 20% of 3 rounds down to 0.
        assert_eq!(
            Bounds::of(&spec, 3),
            Bounds {
                n: 3,
                surge: 1,
                unavailable: 0
            }
        );
    }
}

#[cfg(test)]
mod resume_tests {
    use super::*;
    use crate::state::Plan;

    fn spec(name: &str, instances: u32) -> ReleaseSpec {
        ReleaseSpec {
            name: name.into(),
            version: name.into(),
            instances,
        }
    }

    /// Regression: a rolling run killed while promoting resumed into a new
    /// analysis (of a version no longer in the canary role) instead of finishing
    /// its promotion.
    #[test]
    fn a_run_resumed_while_promoting_finishes_the_promotion() {
        let config = cutover_spec::parse(
            "app: shop\nplatform:\n  local:\n    command: [\"x\", \"${PORT}\"]\n    instances: 2\nstrategy:\n  rolling: {}\n",
            "cutover.yaml",
        )
        .unwrap();
        let cutover_spec::StrategySpec::Rolling(rolling) = &config.strategy else {
            unreachable!("the config names rolling")
        };
        let ctx = Ctx {
            config: &config,
            version: "v2",
            instances: 2,
        };
        let mut state = RunState::new(
            Some(spec("v1", 0)),
            Plan::Rolling(State::default()),
            Default::default(),
        );
        state.releases.push(spec("v2", 2));
        strategy::commit(&mut state, vec!["v2".into()], "all replaced".into());
        let _ = strategy::promote(&mut state, "v2");
        assert_eq!(state.phase, Phase::Promoting);

        let actions = step(&ctx, rolling, &mut state, Observation::Resumed);
        assert!(state.analysis.is_none(), "{:?}", state.analysis);
        assert_eq!(state.routes, Route::stable_only(&spec("v2", 2)));
        assert!(actions.contains(&Action::Retire {
            release: "v1".into()
        }));
        assert!(matches!(
            actions.last(),
            Some(Action::Finish(d)) if d.outcome == Outcome::Promoted
        ));
    }
}
