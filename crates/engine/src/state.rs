//! A run's state as data: everything needed to carry it on after a restart, written
//! to the store before anything it implies is done.
//!
//! Two parts: the facts the executor keeps (which releases the run started, the
//! routing intent, what is being analysed and the baseline carried between
//! windows) and the strategy's own [`Plan`]. Durations are kept as time spent
//! (`elapsed_ms`), not as deadlines, so a run resumed after a restart picks up its
//! pause with the time it had left, whatever the clock did meanwhile.

use cutover_analysis::Sample;
use cutover_analysis::policy::JudgeState;
use cutover_api::{Outcome, Phase, Role};
use serde::{Deserialize, Serialize};

use crate::platform::ReleaseSpec;
use crate::{blue_green, canary, rolling};

/// One release in the routing intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The release's name (see [`ReleaseSpec::name`]).
    pub release: String,
    pub version: String,
    pub role: Role,
    pub weight: Weight,
    /// Share of the stable version's requests also copied to this release, in
    /// basis points (a canary step's `mirror`); the copies' answers are measured
    /// as [`Role::Shadow`] and discarded. 0: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mirror_bp: u16,
}

fn is_zero(bp: &u16) -> bool {
    *bp == 0
}

impl Route {
    pub fn new(release: &ReleaseSpec, role: Role, weight: Weight) -> Route {
        Route {
            release: release.name.clone(),
            version: release.version.clone(),
            role,
            weight,
            mirror_bp: 0,
        }
    }

    /// `release` as the stable version, with all traffic.
    pub fn stable_only(release: &ReleaseSpec) -> Vec<Route> {
        vec![Route::new(release, Role::Stable, Weight::Fixed(10_000))]
    }
}

/// How much of the traffic a route gets, relative to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weight {
    /// This much, in basis points of the whole.
    Fixed(u32),
    /// One share per ready instance: traffic spread evenly over every ready
    /// instance of every route weighted this way (a rolling update).
    PerReadyInstance,
}

/// What is being measured, window after window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// What is judged.
    pub canary: Target,
    /// What it is judged against; `None` for absolute limits only.
    pub baseline: Option<Target>,
    /// The baseline's last window with enough requests, for windows in which it
    /// served too few (at 100% it serves none).
    pub carried: Option<Sample>,
    /// The carried baseline starts from the stable version's numbers since the
    /// run began, not from nothing (blue-green's post-promotion analysis, where
    /// blue's last production traffic is what green is judged against).
    pub seed_from_run_start: bool,
    /// Changed to start windows afresh with the same targets (a new canary step:
    /// a window never mixes two weights).
    pub epoch: u32,
    /// The judge's memory: the sequential tests over the run, the latencies of
    /// the step. Carried to the next step when the targets stay the same.
    #[serde(default)]
    pub judge: JudgeState,
}

/// A version in a role, as measured by the traffic layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub version: String,
    pub role: Role,
}

impl Target {
    pub fn new(version: &str, role: Role) -> Target {
        Target {
            version: version.to_owned(),
            role,
        }
    }
}

/// How a run ends, once it has decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub reason: String,
}

/// The strategy's own state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum Plan {
    /// A first deploy or a rollback: start, then give it all traffic.
    Switch,
    Canary(canary::State),
    BlueGreen(blue_green::State),
    Rolling(rolling::State),
}

/// The whole state of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub phase: Phase,
    /// The release the app served when the run started, if any.
    pub stable: Option<ReleaseSpec>,
    /// The releases this run started that still run.
    pub releases: Vec<ReleaseSpec>,
    /// The routing intent, applied whenever it changes.
    pub routes: Vec<Route>,
    /// Whether clients stick to the version they first got, by cookie.
    pub sticky: bool,
    pub analysis: Option<Analysis>,
    pub plan: Plan,
    /// `cutover promote` arrived while the new version was starting.
    pub promote_requested: bool,
    /// Set once the run has decided how it ends; the rest is carrying it out.
    pub decision: Option<Decision>,
    /// The stages around the rollout and how each went.
    #[serde(default)]
    pub pipeline: crate::pipeline::Pipeline,
}

impl RunState {
    pub fn new(
        stable: Option<ReleaseSpec>,
        plan: Plan,
        pipeline: crate::pipeline::Pipeline,
    ) -> RunState {
        let routes = stable
            .iter()
            .map(|s| Route::new(s, Role::Stable, Weight::Fixed(10_000)))
            .collect();
        RunState {
            phase: Phase::Pending,
            stable,
            releases: Vec::new(),
            routes,
            sticky: false,
            analysis: None,
            plan,
            promote_requested: false,
            decision: None,
            pipeline,
        }
    }

    /// The run's release named `name`, or the stable one.
    pub fn release(&self, name: &str) -> Option<&ReleaseSpec> {
        self.releases
            .iter()
            .chain(self.stable.iter())
            .find(|r| r.name == name)
    }

    /// The route of `role`, if any.
    pub fn route_mut(&mut self, role: Role) -> Option<&mut Route> {
        self.routes.iter_mut().find(|r| r.role == role)
    }

    /// Judges `canary` from now on, window after window afresh, against the stable
    /// version in `baseline`'s role (`None`: on absolute limits only). The baseline
    /// carried from earlier windows is kept, and so are the judge's sequential
    /// tests when the versions stay the same (a new step of the same canary).
    pub fn analyse(&mut self, canary: Target, baseline: Option<Role>) -> &mut Analysis {
        let previous = self.analysis.take();
        let baseline =
            baseline.and_then(|role| self.stable.as_ref().map(|s| Target::new(&s.version, role)));
        let judge = previous
            .as_ref()
            .filter(|a| {
                // The same versions (whatever their roles: a shadow step, then a
                // canary step) are the same question, "is the new version worse
                // than the old", so the tests' evidence carries on; starting
                // them afresh would spend their alpha twice.
                let version = |t: &Target| t.version.clone();
                a.canary.version == canary.version
                    && a.baseline.as_ref().map(version) == baseline.as_ref().map(version)
            })
            .map(|a| {
                let mut judge = a.judge.clone();
                judge.next_step();
                judge
            })
            .unwrap_or_default();
        self.analysis.insert(Analysis {
            canary,
            baseline,
            carried: previous.as_ref().and_then(|a| a.carried.clone()),
            seed_from_run_start: false,
            epoch: previous.map_or(0, |a| a.epoch + 1),
            judge,
        })
    }

    /// Sets a fixed weight on `role`'s route, if there is one.
    pub fn set_weight(&mut self, role: Role, bp: u32) {
        if let Some(r) = self.route_mut(role) {
            r.weight = Weight::Fixed(bp);
        }
    }

    /// Sets the share of the stable's requests mirrored to `role`'s route, if
    /// there is one.
    pub fn set_mirror(&mut self, role: Role, bp: u16) {
        if let Some(r) = self.route_mut(role) {
            r.mirror_bp = bp;
        }
    }
}
