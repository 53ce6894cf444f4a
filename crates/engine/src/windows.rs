//! Whether a deploy may move traffic now: the configured deployment windows and
//! freezes, read in their named time zone. Pure: the time is an argument.

use cutover_spec::{DeployWindow, WEEKDAYS, WindowsSpec};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// The windows' answer for a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowCheck {
    /// Deploys may go on; in words, why.
    Open(String),
    /// They may not: why, and when they next may (none within a week and a day,
    /// or never past a freeze that long).
    Closed { why: String, opens: Option<String> },
}

/// How far ahead the next opening is looked for.
const LOOKAHEAD_DAYS: i64 = 8;

/// Whether `spec` lets a deploy move traffic at `now`.
pub fn check(spec: &WindowsSpec, now: Timestamp) -> WindowCheck {
    let tz = match jiff::tz::db().get(&spec.timezone) {
        Ok(tz) => tz,
        // Checked when the config was read, against the same built-in database.
        Err(e) => {
            return WindowCheck::Closed {
                why: format!("unknown time zone {}: {e}", spec.timezone),
                opens: None,
            };
        }
    };
    let local = now.to_zoned(tz.clone());
    let at = local.datetime();
    if let Some(freeze) = spec.freezes.iter().find(|f| f.from <= at && at < f.until) {
        return WindowCheck::Closed {
            why: format!(
                "deploys are frozen from {} until {} {} ({})",
                show(freeze.from),
                show(freeze.until),
                spec.timezone,
                freeze.reason
            ),
            opens: next_opening(spec, &tz, &local).map(|z| describe(&z, &spec.timezone)),
        };
    }
    if spec.allow.is_empty() {
        return WindowCheck::Open(format!("no freeze holds at {} {}", show(at), spec.timezone));
    }
    match spec.allow.iter().find(|w| is_open(w, at)) {
        Some(w) => WindowCheck::Open(format!(
            "{} {} is inside the window {}",
            show(at),
            spec.timezone,
            window_text(w)
        )),
        None => WindowCheck::Closed {
            why: format!(
                "{} {} is outside every deployment window ({})",
                show(at),
                spec.timezone,
                spec.allow
                    .iter()
                    .map(window_text)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            opens: next_opening(spec, &tz, &local).map(|z| describe(&z, &spec.timezone)),
        },
    }
}

/// Whether the wall-clock time `at` falls in `w`; a window past midnight belongs to
/// the day it opens.
fn is_open(w: &DeployWindow, at: DateTime) -> bool {
    let today = weekday(at.date());
    let yesterday = (today + 6) % 7;
    let minute = u16::from(at.hour() as u8) * 60 + u16::from(at.minute() as u8);
    let on = |day: usize| w.days & (1 << day) != 0;
    if w.from_minute < w.until_minute {
        on(today) && (w.from_minute..w.until_minute).contains(&minute)
    } else {
        (on(today) && minute >= w.from_minute) || (on(yesterday) && minute < w.until_minute)
    }
}

/// The first moment after `now` when a window is open and no freeze holds: a
/// window's opening, or the end of a freeze (which may fall inside a window).
/// Openings are looked for within a week and a day of now and of each freeze's end.
fn next_opening(spec: &WindowsSpec, tz: &TimeZone, now: &Zoned) -> Option<Zoned> {
    let here = now.datetime();
    let starts: Vec<DateTime> = std::iter::once(here)
        .chain(spec.freezes.iter().map(|f| f.until).filter(|&u| u > here))
        .collect();
    let mut candidates: Vec<DateTime> = starts.clone();
    for start in &starts {
        for d in 0..LOOKAHEAD_DAYS {
            let Ok(date) = start.date().checked_add(d.days()) else {
                continue;
            };
            for w in spec
                .allow
                .iter()
                .filter(|w| w.days & (1 << weekday(date)) != 0)
            {
                let opening = date
                    .at(0, 0, 0, 0)
                    .checked_add(i64::from(w.from_minute).minutes());
                candidates.extend(opening.ok());
            }
        }
    }
    candidates.sort();
    candidates
        .into_iter()
        .filter_map(|dt| dt.to_zoned(tz.clone()).ok())
        .filter(|z| z.timestamp() > now.timestamp())
        .find(|z| {
            let at = z.datetime();
            let frozen = spec.freezes.iter().any(|f| f.from <= at && at < f.until);
            let open = spec.allow.is_empty() || spec.allow.iter().any(|w| is_open(w, at));
            !frozen && open
        })
}

/// Monday 0 .. Sunday 6.
fn weekday(date: jiff::civil::Date) -> usize {
    date.weekday().to_monday_zero_offset() as usize
}

/// `mon-fri 09:00-17:00`, the way the config writes it.
fn window_text(w: &DeployWindow) -> String {
    let days: Vec<&str> = (0..7)
        .filter(|d| w.days & (1 << d) != 0)
        .map(|d| WEEKDAYS[d])
        .collect();
    let days = if days.len() == 7 {
        "every day".to_owned()
    } else {
        days.join(",")
    };
    format!("{days} {}-{}", hh_mm(w.from_minute), hh_mm(w.until_minute))
}

fn hh_mm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// `2026-12-07 09:00`.
fn show(at: DateTime) -> String {
    at.strftime("%Y-%m-%d %H:%M").to_string()
}

/// `Mon 2026-12-07 09:00 Europe/Berlin (2026-12-07T08:00:00Z)`.
fn describe(z: &Zoned, zone: &str) -> String {
    format!(
        "{} {zone} ({})",
        z.strftime("%a %Y-%m-%d %H:%M"),
        z.timestamp()
    )
}

#[cfg(test)]
mod tests {
    use cutover_spec::Freeze;
    use jiff::civil::date;

    use super::*;

    fn spec(allow: Vec<DeployWindow>, freezes: Vec<Freeze>) -> WindowsSpec {
        WindowsSpec {
            timezone: "Europe/Berlin".into(),
            allow,
            freezes,
        }
    }

    const WEEKDAYS_9_TO_5: DeployWindow = DeployWindow {
        days: 0b1_1111,
        from_minute: 9 * 60,
        until_minute: 17 * 60,
    };

    /// A wall-clock time in Berlin, as the instant it is.
    fn berlin(y: i16, m: i8, d: i8, h: i8, min: i8) -> Timestamp {
        date(y, m, d)
            .at(h, min, 0, 0)
            .in_tz("Europe/Berlin")
            .unwrap()
            .timestamp()
    }

    #[test]
    fn office_hours_are_read_in_the_named_zone() {
        let s = spec(vec![WEEKDAYS_9_TO_5], vec![]);
        // Wednesday 2026-12-02, 10:00 in Berlin is 09:00 UTC.
        assert!(matches!(
            check(&s, berlin(2026, 12, 2, 10, 0)),
            WindowCheck::Open(_)
        ));
        assert_eq!(
            berlin(2026, 12, 2, 10, 0),
            "2026-12-02T09:00:00Z".parse().unwrap()
        );
        // 08:30 UTC is 09:30 in Berlin: open, though it is before 9 in UTC.
        let t: Timestamp = "2026-12-02T08:30:00Z".parse().unwrap();
        assert!(matches!(check(&s, t), WindowCheck::Open(_)));
        // 16:30 UTC is 17:30 in Berlin: closed, opening Thursday 09:00.
        let t: Timestamp = "2026-12-02T16:30:00Z".parse().unwrap();
        match check(&s, t) {
            WindowCheck::Closed { why, opens } => {
                assert!(
                    why.contains("2026-12-02 17:30 Europe/Berlin is outside"),
                    "{why}"
                );
                assert!(why.contains("mon,tue,wed,thu,fri 09:00-17:00"), "{why}");
                assert_eq!(
                    opens.as_deref(),
                    Some("Thu 2026-12-03 09:00 Europe/Berlin (2026-12-03T08:00:00Z)")
                );
            }
            other => panic!("expected closed, got {other:?}"),
        }
        // Saturday: closed until Monday.
        match check(&s, berlin(2026, 12, 5, 12, 0)) {
            WindowCheck::Closed { opens, .. } => {
                assert!(opens.unwrap().starts_with("Mon 2026-12-07 09:00"));
            }
            other => panic!("expected closed, got {other:?}"),
        }
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_opens() {
        let friday_night = DeployWindow {
            days: 1 << 4,
            from_minute: 22 * 60,
            until_minute: 2 * 60,
        };
        let s = spec(vec![friday_night], vec![]);
        assert!(matches!(
            check(&s, berlin(2026, 12, 4, 23, 0)),
            WindowCheck::Open(_)
        ));
        assert!(matches!(
            check(&s, berlin(2026, 12, 5, 1, 59)),
            WindowCheck::Open(_)
        ));
        assert!(matches!(
            check(&s, berlin(2026, 12, 5, 2, 0)),
            WindowCheck::Closed { .. }
        ));
        // Thursday night is not Friday's window.
        assert!(matches!(
            check(&s, berlin(2026, 12, 4, 1, 0)),
            WindowCheck::Closed { .. }
        ));
    }

    #[test]
    fn a_freeze_closes_an_open_window_and_says_why_and_until_when() {
        let freeze = Freeze {
            from: date(2026, 12, 20).at(0, 0, 0, 0),
            until: date(2027, 1, 5).at(0, 0, 0, 0),
            reason: "year-end freeze".into(),
        };
        let s = spec(vec![WEEKDAYS_9_TO_5], vec![freeze.clone()]);
        match check(&s, berlin(2026, 12, 22, 10, 0)) {
            WindowCheck::Closed { why, opens } => {
                assert!(why.contains("year-end freeze"), "{why}");
                assert!(why.contains("until 2027-01-05 00:00"), "{why}");
                // 2027-01-05 is a Tuesday: the first window after the freeze.
                assert!(opens.unwrap().starts_with("Tue 2027-01-05 09:00"));
            }
            other => panic!("expected closed, got {other:?}"),
        }
        // A freeze alone (no windows) is open outside it, reopening at its end.
        let s = spec(vec![], vec![freeze]);
        assert!(matches!(
            check(&s, berlin(2026, 12, 19, 23, 59)),
            WindowCheck::Open(_)
        ));
        match check(&s, berlin(2026, 12, 20, 0, 0)) {
            WindowCheck::Closed { opens, .. } => {
                assert!(opens.unwrap().starts_with("Tue 2027-01-05 00:00"));
            }
            other => panic!("expected closed, got {other:?}"),
        }
    }

    #[test]
    fn the_window_follows_daylight_saving_time() {
        let s = spec(vec![WEEKDAYS_9_TO_5], vec![]);
        // 08:30 UTC: 09:30 in Berlin in winter (UTC+1), 10:30 in summer (UTC+2).
        // 07:30 UTC: open in summer only.
        let summer: Timestamp = "2026-07-01T07:30:00Z".parse().unwrap();
        let winter: Timestamp = "2026-12-02T07:30:00Z".parse().unwrap();
        assert!(matches!(check(&s, summer), WindowCheck::Open(_)));
        assert!(matches!(check(&s, winter), WindowCheck::Closed { .. }));
    }
}
