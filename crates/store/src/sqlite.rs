//! The SQLite implementation of the store.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::records::{EventRecord, MeasurementRecord, NewRun, Outcome, RunKind, RunRecord};

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
}

/// The store: one SQLite connection, serialised by a mutex. Every call is one short
/// statement or transaction, so holding the lock across it is cheap.
pub struct Store {
    conn: Mutex<Connection>,
}

const MIGRATIONS: &[&str] = &[r#"
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
"#];

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
            "INSERT INTO runs (id, app, version, stable, kind, phase, started_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, 'created', ?6)",
            params![
                run.id,
                run.app,
                run.version,
                run.stable,
                run.kind.as_str(),
                run.started_at_ms
            ],
        )?;
        Ok(())
    }

    /// Records the phase a run is about to enter.
    pub fn set_phase(&self, run_id: &str, phase: &str) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE runs SET phase = ?2 WHERE id = ?1",
            params![run_id, phase],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchRun(run_id.to_owned()));
        }
        Ok(())
    }

    /// Appends an event to the run's timeline and returns it with its sequence number.
    pub fn append_event(
        &self,
        run_id: &str,
        at_ms: i64,
        kind: &str,
        message: &str,
        weight_bp: Option<u16>,
    ) -> Result<EventRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let event = insert_event(&tx, run_id, at_ms, kind, message, weight_bp)?;
        tx.commit()?;
        Ok(event)
    }

    /// The run's events after `seq`, in order.
    pub fn events_after(&self, run_id: &str, seq: i64) -> Result<Vec<EventRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT seq, at_ms, kind, message, weight_bp FROM events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![run_id, seq], |r| {
            Ok(EventRecord {
                seq: r.get(0)?,
                at_ms: r.get(1)?,
                kind: r.get(2)?,
                message: r.get(3)?,
                weight_bp: r.get(4)?,
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
    /// transaction: a reader sees either both or neither.
    pub fn finish_run(
        &self,
        run_id: &str,
        at_ms: i64,
        outcome: Outcome,
        reason: &str,
        message: &str,
    ) -> Result<EventRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE runs SET finished_at_ms = ?2, outcome = ?3, reason = ?4, phase = 'finished' WHERE id = ?1",
            params![run_id, at_ms, outcome.as_str(), reason],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchRun(run_id.to_owned()));
        }
        let event = insert_event(&tx, run_id, at_ms, OUTCOME_EVENT, message, None)?;
        tx.commit()?;
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

    pub fn events(&self, run_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        self.events_after(run_id, 0)
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

/// The kind of a run's last event, written with its outcome.
pub const OUTCOME_EVENT: &str = "outcome";

fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    at_ms: i64,
    kind: &str,
    message: &str,
    weight_bp: Option<u16>,
) -> Result<EventRecord, StoreError> {
    let seq: i64 = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE run_id = ?1",
        [run_id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO events (run_id, seq, at_ms, kind, message, weight_bp) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![run_id, seq, at_ms, kind, message, weight_bp],
    )?;
    Ok(EventRecord {
        seq,
        at_ms,
        kind: kind.to_owned(),
        message: message.to_owned(),
        weight_bp,
    })
}

const RUN_COLUMNS: &str = "SELECT id, app, version, stable, kind, phase, started_at_ms, finished_at_ms, outcome, reason FROM runs";

fn run_from_row(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
    let kind: String = r.get(4)?;
    let outcome: Option<String> = r.get(8)?;
    Ok(RunRecord {
        id: r.get(0)?,
        app: r.get(1)?,
        version: r.get(2)?,
        stable: r.get(3)?,
        kind: match kind.as_str() {
            "initial" => RunKind::Initial,
            "rollback" => RunKind::Rollback,
            _ => RunKind::Canary,
        },
        phase: r.get(5)?,
        started_at_ms: r.get(6)?,
        finished_at_ms: r.get(7)?,
        outcome: outcome.map(|o| match o.as_str() {
            "promoted" => Outcome::Promoted,
            "aborted" => Outcome::Aborted,
            "failed" => Outcome::Failed,
            _ => Outcome::RolledBack,
        }),
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
        }
    }

    #[test]
    fn a_run_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cutover.db");
        {
            let store = Store::open(&path).unwrap();
            store.insert_run(&run("r1", "v1")).unwrap();
            store.set_phase("r1", "step 1/3").unwrap();
            store
                .append_event("r1", 5, "weight", "10%", Some(1000))
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let r = store.run("r1").unwrap();
        assert_eq!(r.phase, "step 1/3");
        assert_eq!(r.outcome, None);
        assert_eq!(store.unfinished_runs("shop").unwrap().len(), 1);
        assert_eq!(store.events("r1").unwrap()[0].weight_bp, Some(1000));
    }

    #[test]
    fn event_sequence_numbers_count_per_run() {
        let store = Store::open_in_memory().unwrap();
        store.insert_run(&run("a", "v1")).unwrap();
        store.insert_run(&run("b", "v2")).unwrap();
        assert_eq!(store.append_event("a", 1, "x", "m", None).unwrap().seq, 1);
        assert_eq!(store.append_event("a", 2, "x", "m", None).unwrap().seq, 2);
        assert_eq!(store.append_event("b", 3, "x", "m", None).unwrap().seq, 1);
    }

    #[test]
    fn promoted_versions_are_newest_first_without_repeats() {
        let store = Store::open_in_memory().unwrap();
        for (i, v) in ["v1", "v2", "v3", "v2"].iter().enumerate() {
            let id = format!("r{i}");
            store.insert_run(&run(&id, v)).unwrap();
            store
                .finish_run(&id, i as i64 + 10, Outcome::Promoted, "ok", "live")
                .unwrap();
        }
        store.insert_run(&run("bad", "v4")).unwrap();
        let last = store
            .finish_run("bad", 100, Outcome::RolledBack, "errors", "rolled back")
            .unwrap();
        assert_eq!(last.kind, OUTCOME_EVENT);
        assert_eq!(store.events_after("bad", 0).unwrap(), vec![last]);
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
            store.set_phase("nope", "x"),
            Err(StoreError::NoSuchRun(_))
        ));
        assert!(matches!(store.run("nope"), Err(StoreError::NoSuchRun(_))));
    }
}
