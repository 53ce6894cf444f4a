//! The SQLite implementation of the store.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, params};

use cutover_api::{ApprovalRecord, Event, Phase, RunEvent, Verdict};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::records::{MeasurementRecord, NewRun, Outcome, RunKind, RunRecord};

/// What can go wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or migrated.
    #[error("could not open the store at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A query failed.
    #[error("store query failed")]
    Query(#[from] rusqlite::Error),
    /// A stored JSON column did not decode (a newer or damaged database).
    #[error("stored data could not be decoded")]
    Decode(#[from] serde_json::Error),
    /// No run has this id.
    #[error("no run with id {0}")]
    NoSuchRun(String),
    /// This person already decided on this run.
    #[error("{by} already decided on run {run_id} ({verdict})")]
    AlreadyDecided {
        run_id: String,
        by: String,
        verdict: &'static str,
    },
}

/// The store: one SQLite connection, serialised by a mutex. Every call is one short
/// statement or transaction, so holding the lock across it is cheap.
pub struct Store {
    conn: Mutex<Connection>,
}

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    app            TEXT NOT NULL,
    version        TEXT NOT NULL,
    stable         TEXT,
    kind           TEXT NOT NULL,
    phase          TEXT NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER,
    outcome        TEXT,
    reason         TEXT
);
CREATE INDEX runs_by_app ON runs (app, started_at_ms);
CREATE TABLE events (
    run_id    TEXT NOT NULL REFERENCES runs (id),
    seq       INTEGER NOT NULL,
    at_ms     INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    message   TEXT NOT NULL,
    weight_bp INTEGER,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE measurements (
    run_id    TEXT NOT NULL REFERENCES runs (id),
    seq       INTEGER NOT NULL,
    at_ms     INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    weight_bp INTEGER NOT NULL,
    report    TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"#,
    // Typed events and phases, the run's own state and config, what the app serves.
    r#"
ALTER TABLE events ADD COLUMN data TEXT;
ALTER TABLE runs ADD COLUMN state TEXT;
ALTER TABLE runs ADD COLUMN config TEXT;
CREATE TABLE serving (
    app   TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
"#,
    // People's decisions on runs waiting for approval: one per person per run.
    r#"
CREATE TABLE approvals (
    run_id  TEXT NOT NULL REFERENCES runs (id),
    by      TEXT NOT NULL,
    verdict TEXT NOT NULL,
    at_ms   INTEGER NOT NULL,
    comment TEXT,
    PRIMARY KEY (run_id, by)
);
"#,
];

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    ///
    /// # Errors
    /// When the file cannot be opened or is not a cutover database.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            migrate(&conn)?;
            Ok(conn)
        };
        let conn = open().map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// A throwaway store, for tests and examples.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        migrate(&conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (each call
        // is its own transaction), so a poisoned lock is still safe to use.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn insert_run(&self, run: &NewRun) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO runs (id, app, version, stable, kind, phase, started_at_ms, config)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                run.id,
                run.app,
                run.version,
                run.stable,
                run.kind.as_str(),
                serde_json::to_string(&Phase::Pending)?,
                run.started_at_ms,
                run.config,
            ],
        )?;
        Ok(())
    }

    /// Records the phase a run is about to enter and the state it carries there,
    /// in one statement.
    pub fn save_state(
        &self,
        run_id: &str,
        phase: &Phase,
        state: &impl Serialize,
    ) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE runs SET phase = ?2, state = ?3 WHERE id = ?1",
            params![
                run_id,
                serde_json::to_string(phase)?,
                serde_json::to_string(state)?
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchRun(run_id.to_owned()));
        }
        Ok(())
    }

    /// The state last saved with [`Store::save_state`], `None` if none was.
    pub fn state<T: DeserializeOwned>(&self, run_id: &str) -> Result<Option<T>, StoreError> {
        let state: Option<Option<String>> = self
            .conn()
            .query_row("SELECT state FROM runs WHERE id = ?1", [run_id], |r| {
                r.get(0)
            })
            .optional()?;
        match state {
            None => Err(StoreError::NoSuchRun(run_id.to_owned())),
            Some(None) => Ok(None),
            Some(Some(json)) => Ok(Some(serde_json::from_str(&json)?)),
        }
    }

    /// The config text the run was started with.
    pub fn run_config(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row("SELECT config FROM runs WHERE id = ?1", [run_id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NoSuchRun(run_id.to_owned()))
    }

    /// Records what the app serves (its stable release), for a restarted daemon.
    pub fn set_serving(&self, app: &str, state: &impl Serialize) -> Result<(), StoreError> {
        self.conn()
            .execute(SET_SERVING, params![app, serde_json::to_string(state)?])?;
        Ok(())
    }

    /// What [`Store::set_serving`] recorded last, `None` if nothing was.
    pub fn serving<T: DeserializeOwned>(&self, app: &str) -> Result<Option<T>, StoreError> {
        let state: Option<String> = self
            .conn()
            .query_row("SELECT state FROM serving WHERE app = ?1", [app], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(state.map(|s| serde_json::from_str(&s)).transpose()?)
    }

    /// Appends an event to the run's timeline and returns it with its sequence number.
    pub fn append_event(
        &self,
        run_id: &str,
        at_ms: i64,
        event: &Event,
        message: &str,
        weight_bp: Option<u16>,
    ) -> Result<RunEvent, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let event = insert_event(&tx, run_id, at_ms, event, message, weight_bp)?;
        tx.commit()?;
        Ok(event)
    }

    /// The run's events after `seq`, in order; the last one carries the run's
    /// outcome once it has one.
    pub fn events_after(&self, run_id: &str, seq: i64) -> Result<Vec<RunEvent>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT e.seq, e.at_ms, e.kind, e.message, e.weight_bp, e.data, r.outcome
             FROM events e JOIN runs r ON r.id = e.run_id
             WHERE e.run_id = ?1 AND e.seq > ?2 ORDER BY e.seq",
        )?;
        let rows = stmt.query_map(params![run_id, seq], |r| {
            let kind: String = r.get(2)?;
            let data: Option<String> = r.get(5)?;
            let outcome: Option<String> = r.get(6)?;
            Ok(RunEvent {
                run_id: run_id.to_owned(),
                seq: r.get(0)?,
                at_ms: r.get(1)?,
                event: decode_event(&kind, data.as_deref()),
                message: r.get(3)?,
                weight_bp: r.get(4)?,
                outcome: (kind == OUTCOME_EVENT)
                    .then(|| outcome.as_deref().map(decode_outcome))
                    .flatten(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn add_measurement(&self, run_id: &str, m: &MeasurementRecord) -> Result<(), StoreError> {
        let report = serde_json::to_string(&m.report)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM measurements WHERE run_id = ?1",
            [run_id],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO measurements (run_id, seq, at_ms, step, weight_bp, report) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run_id, seq, m.at_ms, m.step as i64, m.weight_bp, report],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks the run as ended and appends its final `outcome` event, in one
    /// transaction: a reader sees either both or neither. `serving`, when given,
    /// is an app and what it serves from now on, as JSON (see
    /// [`Store::set_serving`]), recorded in the same transaction.
    pub fn finish_run(
        &self,
        run_id: &str,
        at_ms: i64,
        outcome: Outcome,
        reason: &str,
        message: &str,
        serving: Option<(&str, &str)>,
    ) -> Result<RunEvent, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some((app, state)) = serving {
            tx.execute(SET_SERVING, params![app, state])?;
        }
        let n = tx.execute(
            "UPDATE runs SET finished_at_ms = ?2, outcome = ?3, reason = ?4, phase = ?5 WHERE id = ?1",
            params![
                run_id,
                at_ms,
                outcome.as_str(),
                reason,
                serde_json::to_string(&Phase::Finished)?
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchRun(run_id.to_owned()));
        }
        let event = Event::Outcome {
            reason: reason.to_owned(),
        };
        let mut event = insert_event(&tx, run_id, at_ms, &event, message, None)?;
        tx.commit()?;
        event.outcome = Some(outcome);
        Ok(event)
    }

    pub fn run(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        self.conn()
            .query_row(
                &format!("{RUN_COLUMNS} WHERE id = ?1"),
                [run_id],
                run_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchRun(run_id.to_owned()))
    }

    /// The app's runs, newest first.
    pub fn runs(&self, app: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "{RUN_COLUMNS} WHERE app = ?1 ORDER BY started_at_ms DESC, rowid DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![app, limit as i64], run_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Runs that started and never recorded an outcome: what a restarted daemon must settle.
    pub fn unfinished_runs(&self, app: &str) -> Result<Vec<RunRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "{RUN_COLUMNS} WHERE app = ?1 AND outcome IS NULL ORDER BY rowid"
        ))?;
        let rows = stmt.query_map([app], run_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Versions that were promoted, newest first, without repeats: the first is what
    /// serves now, the second is where `cutover rollback` goes.
    pub fn promoted_versions(&self, app: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT version FROM runs WHERE app = ?1 AND outcome = 'promoted' ORDER BY finished_at_ms DESC, rowid DESC",
        )?;
        let mut out: Vec<String> = Vec::new();
        for v in stmt.query_map([app], |r| r.get::<_, String>(0))? {
            let v = v?;
            if out.len() == limit {
                break;
            }
            if !out.contains(&v) {
                out.push(v);
            }
        }
        Ok(out)
    }

    pub fn events(&self, run_id: &str) -> Result<Vec<RunEvent>, StoreError> {
        self.events_after(run_id, 0)
    }

    /// Records a person's decision on a run; each person decides once per run.
    ///
    /// # Errors
    /// [`StoreError::AlreadyDecided`] when `a.by` already decided on this run
    /// (nothing is changed).
    pub fn add_approval(&self, run_id: &str, a: &ApprovalRecord) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let earlier: Option<String> = tx
            .query_row(
                "SELECT verdict FROM approvals WHERE run_id = ?1 AND by = ?2",
                params![run_id, a.by],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(verdict) = earlier {
            return Err(StoreError::AlreadyDecided {
                run_id: run_id.to_owned(),
                by: a.by.clone(),
                verdict: decode_verdict(&verdict).as_str(),
            });
        }
        tx.execute(
            "INSERT INTO approvals (run_id, by, verdict, at_ms, comment) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run_id, a.by, a.verdict.as_str(), a.at_ms, a.comment],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The decisions on a run, oldest first.
    pub fn approvals(&self, run_id: &str) -> Result<Vec<ApprovalRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT by, verdict, at_ms, comment FROM approvals WHERE run_id = ?1 ORDER BY at_ms, rowid",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok(ApprovalRecord {
                by: r.get(0)?,
                verdict: decode_verdict(&r.get::<_, String>(1)?),
                at_ms: r.get(2)?,
                comment: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn measurements(&self, run_id: &str) -> Result<Vec<MeasurementRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT at_ms, step, weight_bp, report FROM measurements WHERE run_id = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([run_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, u16>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (at_ms, step, weight_bp, report) = row?;
            out.push(MeasurementRecord {
                at_ms,
                step: step as usize,
                weight_bp,
                report: serde_json::from_str(&report)?,
            });
        }
        Ok(out)
    }
}

const SET_SERVING: &str = "INSERT INTO serving (app, state) VALUES (?1, ?2)
     ON CONFLICT (app) DO UPDATE SET state = excluded.state";

/// The kind of a run's last event, written with its outcome.
pub const OUTCOME_EVENT: &str = "outcome";

fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    at_ms: i64,
    event: &Event,
    message: &str,
    weight_bp: Option<u16>,
) -> Result<RunEvent, StoreError> {
    let seq: i64 = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE run_id = ?1",
        [run_id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO events (run_id, seq, at_ms, kind, message, weight_bp, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            run_id,
            seq,
            at_ms,
            event.kind(),
            message,
            weight_bp,
            serde_json::to_string(event)?
        ],
    )?;
    Ok(RunEvent {
        run_id: run_id.to_owned(),
        seq,
        at_ms,
        event: event.clone(),
        message: message.to_owned(),
        weight_bp,
        outcome: None,
    })
}

/// An event as stored: typed since the second migration; an older row (no data)
/// is read by its kind alone, as [`Event::Other`] unless the kind needs no fields.
fn decode_event(kind: &str, data: Option<&str>) -> Event {
    let json = match data {
        Some(data) => data.to_owned(),
        None => serde_json::json!({ "kind": kind }).to_string(),
    };
    serde_json::from_str(&json).unwrap_or(Event::Other)
}

fn decode_verdict(v: &str) -> Verdict {
    if v == "approve" {
        Verdict::Approve
    } else {
        Verdict::Reject
    }
}

fn decode_outcome(o: &str) -> Outcome {
    match o {
        "promoted" => Outcome::Promoted,
        "aborted" => Outcome::Aborted,
        "failed" => Outcome::Failed,
        "blocked" => Outcome::Blocked,
        _ => Outcome::RolledBack,
    }
}

/// A phase as stored: JSON since the second migration; older rows hold words.
fn decode_phase(phase: &str, finished: bool) -> Phase {
    serde_json::from_str(phase).unwrap_or(if finished {
        Phase::Finished
    } else {
        Phase::Pending
    })
}

const RUN_COLUMNS: &str = "SELECT id, app, version, stable, kind, phase, started_at_ms, finished_at_ms, outcome, reason FROM runs";

fn run_from_row(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
    let kind: String = r.get(4)?;
    let phase: String = r.get(5)?;
    let outcome: Option<String> = r.get(8)?;
    Ok(RunRecord {
        id: r.get(0)?,
        app: r.get(1)?,
        version: r.get(2)?,
        stable: r.get(3)?,
        kind: match kind.as_str() {
            "initial" => RunKind::Initial,
            "rollback" => RunKind::Rollback,
            "blue_green" => RunKind::BlueGreen,
            "rolling" => RunKind::Rolling,
            _ => RunKind::Canary,
        },
        phase: decode_phase(&phase, outcome.is_some()),
        started_at_ms: r.get(6)?,
        finished_at_ms: r.get(7)?,
        outcome: outcome.as_deref().map(decode_outcome),
        reason: r.get(9)?,
    })
}

/// Applies the migrations the database has not seen, tracked by `user_version`.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, version: &str) -> NewRun {
        NewRun {
            id: id.into(),
            app: "shop".into(),
            version: version.into(),
            stable: None,
            kind: RunKind::Canary,
            started_at_ms: 1,
            config: "app: shop\n".into(),
        }
    }

    fn warning() -> Event {
        Event::Warning
    }

    #[test]
    fn each_person_decides_once_per_run_and_decisions_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cutover.db");
        let approve = |by: &str, at_ms| ApprovalRecord {
            by: by.into(),
            verdict: Verdict::Approve,
            at_ms,
            comment: None,
        };
        {
            let store = Store::open(&path).unwrap();
            store.insert_run(&run("r1", "v2")).unwrap();
            store.insert_run(&run("r2", "v3")).unwrap();
            store.add_approval("r1", &approve("bob", 20)).unwrap();
            store.add_approval("r1", &approve("alice", 10)).unwrap();
            // The same person on another run is another decision.
            store.add_approval("r2", &approve("alice", 30)).unwrap();
            let again = ApprovalRecord {
                verdict: Verdict::Reject,
                comment: Some("changed my mind".into()),
                ..approve("alice", 40)
            };
            match store.add_approval("r1", &again) {
                Err(StoreError::AlreadyDecided { by, verdict, .. }) => {
                    assert_eq!((by.as_str(), verdict), ("alice", "approve"));
                }
                other => panic!("expected AlreadyDecided, got {other:?}"),
            }
        }
        let store = Store::open(&path).unwrap();
        let names: Vec<String> = store
            .approvals("r1")
            .unwrap()
            .into_iter()
            .map(|a| a.by)
            .collect();
        assert_eq!(
            names,
            ["alice", "bob"],
            "oldest first, the refused one not kept"
        );
        assert_eq!(store.approvals("r2").unwrap().len(), 1);
        assert!(store.approvals("nope").unwrap().is_empty());
    }

    #[test]
    fn a_run_its_state_and_events_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cutover.db");
        let phase = Phase::Step {
            step: 1,
            of: 3,
            weight_bp: 1000,
        };
        {
            let store = Store::open(&path).unwrap();
            store.insert_run(&run("r1", "v1")).unwrap();
            store
                .save_state("r1", &phase, &serde_json::json!({ "step": 0 }))
                .unwrap();
            store
                .append_event(
                    "r1",
                    5,
                    &Event::Phase {
                        phase: phase.clone(),
                    },
                    "10%",
                    Some(1000),
                )
                .unwrap();
            store.set_serving("shop", &"v0").unwrap();
        }
        let store = Store::open(&path).unwrap();
        let r = store.run("r1").unwrap();
        assert_eq!(r.phase, phase);
        assert_eq!(r.outcome, None);
        assert_eq!(
            store.state::<serde_json::Value>("r1").unwrap(),
            Some(serde_json::json!({ "step": 0 }))
        );
        assert_eq!(
            store.run_config("r1").unwrap().as_deref(),
            Some("app: shop\n")
        );
        assert_eq!(
            store.serving::<String>("shop").unwrap().as_deref(),
            Some("v0")
        );
        assert_eq!(store.serving::<String>("other").unwrap(), None);
        assert_eq!(store.unfinished_runs("shop").unwrap().len(), 1);
        let events = store.events("r1").unwrap();
        assert_eq!(events[0].weight_bp, Some(1000));
        assert_eq!(events[0].event, Event::Phase { phase });
    }

    #[test]
    fn rows_from_before_typed_events_are_still_read() {
        let store = Store::open_in_memory().unwrap();
        store.insert_run(&run("r1", "v1")).unwrap();
        store
            .conn()
            .execute_batch(
                "UPDATE runs SET phase = 'step 1/3';
                 INSERT INTO events (run_id, seq, at_ms, kind, message) VALUES ('r1', 1, 1, 'weight', 'old');",
            )
            .unwrap();
        assert_eq!(store.run("r1").unwrap().phase, Phase::Pending);
        let events = store.events("r1").unwrap();
        assert_eq!(
            (events[0].event.clone(), events[0].message.as_str()),
            (Event::Other, "old")
        );
    }

    #[test]
    fn event_sequence_numbers_count_per_run() {
        let store = Store::open_in_memory().unwrap();
        store.insert_run(&run("a", "v1")).unwrap();
        store.insert_run(&run("b", "v2")).unwrap();
        assert_eq!(
            store
                .append_event("a", 1, &warning(), "m", None)
                .unwrap()
                .seq,
            1
        );
        assert_eq!(
            store
                .append_event("a", 2, &warning(), "m", None)
                .unwrap()
                .seq,
            2
        );
        assert_eq!(
            store
                .append_event("b", 3, &warning(), "m", None)
                .unwrap()
                .seq,
            1
        );
    }

    #[test]
    fn promoted_versions_are_newest_first_without_repeats() {
        let store = Store::open_in_memory().unwrap();
        for (i, v) in ["v1", "v2", "v3", "v2"].iter().enumerate() {
            let id = format!("r{i}");
            store.insert_run(&run(&id, v)).unwrap();
            store
                .finish_run(&id, i as i64 + 10, Outcome::Promoted, "ok", "live", None)
                .unwrap();
        }
        store.insert_run(&run("bad", "v4")).unwrap();
        let last = store
            .finish_run(
                "bad",
                100,
                Outcome::RolledBack,
                "errors",
                "rolled back",
                None,
            )
            .unwrap();
        assert_eq!(last.event.kind(), OUTCOME_EVENT);
        assert_eq!(last.outcome, Some(Outcome::RolledBack));
        assert_eq!(store.events_after("bad", 0).unwrap(), vec![last]);
        assert_eq!(store.run("bad").unwrap().phase, Phase::Finished);
        assert_eq!(
            store.promoted_versions("shop", 2).unwrap(),
            vec!["v2", "v3"]
        );
        assert!(store.unfinished_runs("shop").unwrap().is_empty());
    }

    #[test]
    fn unknown_run_is_an_error_not_a_silent_no_op() {
        let store = Store::open_in_memory().unwrap();
        assert!(matches!(
            store.save_state("nope", &Phase::Starting, &()),
            Err(StoreError::NoSuchRun(_))
        ));
        assert!(matches!(store.run("nope"), Err(StoreError::NoSuchRun(_))));
        assert!(matches!(
            store.state::<()>("nope"),
            Err(StoreError::NoSuchRun(_))
        ));
    }
}
