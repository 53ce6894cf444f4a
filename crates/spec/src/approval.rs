//! The APPROVE stage's settings: who must approve a deploy before traffic moves
//! (`approvals:`), and when deploys may happen at all (`windows:`).

use std::time::Duration;

/// `approvals:`: a deploy waits for this many people to approve it before any
/// traffic moves; one rejection ends it (exit 4), and so does the timeout (exit 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalsSpec {
    /// The quorum of a standard (or scheduled) deploy.
    pub standard: Quorum,
    /// The quorum of a `--type hotfix` deploy (`approvals.hotfix`; default: the
    /// standard one).
    pub hotfix: Quorum,
    /// How long a run waits for its quorum (default 24h); it counts from when the
    /// wait began, across daemon restarts.
    pub timeout: Duration,
}

impl ApprovalsSpec {
    /// The quorum a deploy needs: the hotfix one, or the standard one.
    pub fn quorum(&self, hotfix: bool) -> &Quorum {
        if hotfix { &self.hotfix } else { &self.standard }
    }
}

/// How many distinct people, out of whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    /// Distinct approvals needed (1 ..= `from.len()`; the documents' "trio" is 3).
    pub required: u32,
    /// The names that may approve or reject; any other is refused. Never empty.
    pub from: Vec<String>,
}

/// `windows:`: when deploys may move traffic, in one named time zone. Outside
/// every `allow` window, or inside a freeze, a deploy is refused (exit 4) unless
/// it is asked with `--override-window --reason ...`, which is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsSpec {
    /// An IANA time zone name (`Europe/Berlin`, `UTC`); checked against the tz
    /// database built into cutover, so it means the same on every machine.
    pub timezone: String,
    /// When deploys may happen; empty: at any time outside the freezes.
    pub allow: Vec<DeployWindow>,
    /// When they may not, whatever `allow` says.
    pub freezes: Vec<Freeze>,
}

/// Some days of the week, between two times of day (`{ days: [mon-fri], hours: "09:00-17:00" }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployWindow {
    /// Bit `n` set: the window is open on weekday `n`, Monday being 0.
    pub days: u8,
    /// Minutes after midnight the window opens (inclusive).
    pub from_minute: u16,
    /// Minutes after midnight it closes (exclusive). Less than `from_minute`: it
    /// runs past midnight into the next day, and the days name the day it opens.
    pub until_minute: u16,
}

/// A time when no deploy moves traffic: `[from, until)` in the windows' time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    /// Wall-clock times in the windows' zone.
    pub from: jiff::civil::DateTime,
    pub until: jiff::civil::DateTime,
    /// Why, shown to whoever is refused (`year-end freeze`).
    pub reason: String,
}

/// The three-letter weekday names, Monday first, as `days:` spells them.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
