//! Migrations against a real PostgreSQL, started by the test: `initdb` in a temp
//! folder, then `postgres` on 127.0.0.1 at a free port (and a unix socket in the temp
//! folder), stopped when the test ends, panics included (a Drop guard).
//!
//! PostgreSQL refuses to run as root. When the test runs as root (as CI does), the
//! server and `initdb` run as the unprivileged user `nobody` through
//! `setpriv --reuid --regid --clear-groups`, with the temp folder handed to it
//! (`chown`); the migration commands (`psql`) stay the test's own and connect over
//! TCP with trust authentication. Without the PostgreSQL binaries (Debian's
//! `postgresql`, which `.ci/run` installs) or a way to drop root, the tests say
//! SKIPPED and return.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_pipeline::Exit;
use cutover_pipeline::{Direction, RunFacts, migrate_down, migrate_up, validate_migrations};
use cutover_spec::{HookCommand, MigrationValidation, MigrationsSpec};

/// A PostgreSQL server of the test's own.
struct Postgres {
    child: Child,
    port: u16,
    // Removed once the server has stopped (fields drop after `drop`).
    dir: Arc<tempfile::TempDir>,
}

/// What starting a PostgreSQL takes here.
struct Prerequisites {
    /// Where `initdb` and `postgres` are.
    bin: PathBuf,
    /// Who to run them as, when the test runs as root.
    as_user: Option<(u32, u32)>,
}

/// The binaries and the user, or why the test cannot have them.
fn prerequisites() -> Result<Prerequisites, String> {
    let bin = server_bin_dir().ok_or(
        "no PostgreSQL server binaries (initdb, postgres) on PATH or in /usr/lib/postgresql/*/bin; \
         install Debian's `postgresql`",
    )?;
    if which("psql").is_none() {
        return Err("no `psql` on PATH; install Debian's `postgresql-client`".into());
    }
    Ok(Prerequisites {
        bin,
        as_user: unprivileged()?,
    })
}

impl Postgres {
    /// Start one. The binaries are there, so a server that does not start is a
    /// failure (with its log), not a skip; a port taken between picking it and
    /// binding it is retried with another.
    fn start(pre: &Prerequisites) -> Postgres {
        let dir = Arc::new(tempfile::tempdir().expect("a temp folder"));
        if let Some((uid, gid)) = pre.as_user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("cannot hand the temp folder to uid {uid}: {e}"));
        }
        let data = dir.path().join("data");
        let initdb = command(pre.as_user, &pre.bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "cutover", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(log_file(dir.path()))
            .stderr(log_file(dir.path()))
            .status()
            .expect("run initdb");
        assert!(initdb.success(), "initdb failed:\n{}", read_log(dir.path()));
        for attempt in 1..=3 {
            let port = free_port();
            let child = command(pre.as_user, &pre.bin.join("postgres"))
                .arg("-D")
                .arg(&data)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
                .arg(dir.path())
                .args([
                    "-c",
                    "fsync=off",
                    "-c",
                    "shared_buffers=16MB",
                    "-c",
                    "max_connections=20",
                ])
                .stdout(log_file(dir.path()))
                .stderr(log_file(dir.path()))
                .spawn()
                .expect("run postgres");
            let mut pg = Postgres {
                child,
                port,
                dir: dir.clone(),
            };
            match pg.wait_ready() {
                Ok(()) => return pg,
                Err(log) if attempt < 3 && log.contains("could not bind") => continue,
                Err(log) => panic!("PostgreSQL did not start: {log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "postgres exited ({status}):\n{}",
                    read_log(self.dir.path())
                ));
            }
            if self.psql("postgres", "SELECT 1").is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "postgres was not ready in 30s:\n{}",
                    read_log(self.dir.path())
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, database: &str) -> String {
        format!("postgresql://cutover@127.0.0.1:{}/{database}", self.port)
    }

    /// Run `sql` in `database`; its output, unaligned and without headers.
    fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .arg(self.url(database))
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn has_table(&self, database: &str, table: &str) -> bool {
        self.psql(
            database,
            &format!("SELECT to_regclass('public.{table}') IS NOT NULL"),
        )
        .expect("query the catalog")
            == "t"
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program` run as `uid:gid` through `setpriv` when given, else as the test.
fn command(as_user: Option<(u32, u32)>, program: &Path) -> Command {
    let mut c = match as_user {
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg(program);
            c
        }
        None => Command::new(program),
    };
    c.stdin(Stdio::null());
    c
}

/// `None` when not root; else `nobody`'s uid and gid, if it can be switched to.
fn unprivileged() -> Result<Option<(u32, u32)>, String> {
    if effective_uid()? != 0 {
        return Ok(None);
    }
    if which("setpriv").is_none() {
        return Err("running as root, and no `setpriv` to run PostgreSQL as `nobody`".into());
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.as_slice() {
                ["nobody", _, uid, gid, ..] => Some((uid.parse().ok()?, gid.parse().ok()?)),
                _ => None,
            }
        })
        .map(Some)
        .ok_or_else(|| "running as root, and no user `nobody` to run PostgreSQL as".to_owned())
}

/// The second field of `Uid:` in `/proc/self/status`.
fn effective_uid() -> Result<u32, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        .ok_or_else(|| "cannot read the effective uid from /proc/self/status".to_owned())
}

fn server_bin_dir() -> Option<PathBuf> {
    if let (Some(initdb), Some(_)) = (which("initdb"), which("postgres")) {
        return Some(initdb.canonicalize().ok()?.parent()?.to_path_buf());
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("postgres").is_file())
        .collect();
    // The newest version; names are major versions (13, 15, 16).
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// The server's log, appended to by every process that writes it.
fn log_file(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("postgres.log"))
        .expect("open the PostgreSQL log")
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
}

/// A started PostgreSQL, or `None` after saying loudly why there can be none.
fn postgres() -> Option<Postgres> {
    match prerequisites() {
        Ok(pre) => Some(Postgres::start(&pre)),
        Err(why) => {
            eprintln!("SKIPPED: no PostgreSQL for the migration tests: {why}");
            None
        }
    }
}

/// A folder with `up.sql` and `down.sql`.
fn scripts(up: &str, down: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("up.sql"), up).unwrap();
    std::fs::write(dir.path().join("down.sql"), down).unwrap();
    dir
}

/// `psql <database> -f <file>`, the way a production migration names its database.
fn psql_file(url: &str, file: &str, dir: &Path) -> HookCommand {
    HookCommand {
        run: ["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", file]
            .map(String::from)
            .to_vec(),
        timeout: Duration::from_secs(60),
        workdir: dir.to_path_buf(),
    }
}

/// The same script against whatever `DATABASE_URL` says, as the validation gives it.
fn psql_env(file: &str, dir: &Path) -> HookCommand {
    HookCommand {
        run: vec![
            "sh".into(),
            "-c".into(),
            format!("exec psql \"$DATABASE_URL\" -X -q -v ON_ERROR_STOP=1 -f {file}"),
        ],
        timeout: Duration::from_secs(60),
        workdir: dir.to_path_buf(),
    }
}

fn facts(receipts: &Path) -> RunFacts {
    RunFacts {
        app: "shop".into(),
        version: "v2".into(),
        previous_version: Some("v1".into()),
        run_id: "run-1".into(),
        outcome: None,
        reason: None,
        receipts_dir: receipts.to_path_buf(),
    }
}

const UP: &str = "CREATE TABLE widgets (id serial PRIMARY KEY, name text NOT NULL);\n";
const DOWN: &str = "DROP TABLE widgets;\n";

#[tokio::test]
async fn up_creates_the_table_and_a_reversible_down_removes_it() {
    let Some(pg) = postgres() else { return };
    pg.psql("postgres", "CREATE DATABASE app").unwrap();
    let sql = scripts(UP, DOWN);
    let receipts = tempfile::tempdir().unwrap();
    let spec = MigrationsSpec {
        up: psql_file(&pg.url("app"), "up.sql", sql.path()),
        down: Some(psql_file(&pg.url("app"), "down.sql", sql.path())),
        reversible: true,
        validate: None,
    };
    let facts = facts(receipts.path());

    let up = migrate_up(&spec, &facts).await;
    assert!(up.passed(), "{}", up.to_markdown());
    assert_eq!(up.direction, Direction::Up);
    assert!(pg.has_table("app", "widgets"));
    assert!(receipts.path().join("migrations/up.log").is_file());

    let down = migrate_down(&spec, &facts)
        .await
        .expect("reversible: down runs");
    assert!(down.passed(), "{}", down.to_markdown());
    assert!(!pg.has_table("app", "widgets"));
    assert!(
        down.to_markdown()
            .starts_with("## Migration `down`: passed")
    );

    // Not reversible: a rollback leaves the schema alone.
    let kept = MigrationsSpec {
        reversible: false,
        ..spec
    };
    assert!(migrate_down(&kept, &facts).await.is_none());
}

#[tokio::test]
async fn a_failing_up_is_reported_with_its_output() {
    let Some(pg) = postgres() else { return };
    pg.psql("postgres", "CREATE DATABASE app").unwrap();
    let sql = scripts(
        "CREATE TABLE widgets (id serial, size nonsense_type);\n",
        DOWN,
    );
    let receipts = tempfile::tempdir().unwrap();
    let spec = MigrationsSpec {
        up: psql_file(&pg.url("app"), "up.sql", sql.path()),
        down: None,
        reversible: false,
        validate: None,
    };
    let up = migrate_up(&spec, &facts(receipts.path())).await;
    assert!(!up.passed());
    assert!(
        matches!(up.result.exit, Exit::Code { code: 3 }),
        "{:?}",
        up.result.exit
    );
    assert!(
        up.result
            .output_tail
            .contains("type \"nonsense_type\" does not exist"),
        "{}",
        up.result.output_tail
    );
    let md = up.to_markdown();
    assert!(md.starts_with("## Migration `up`: FAILED"), "{md}");
    assert!(md.contains("nonsense_type"), "{md}");
    assert!(!pg.has_table("app", "widgets"));
}

#[tokio::test]
async fn the_validation_runs_up_down_up_against_the_scratch_database_only() {
    let Some(pg) = postgres() else { return };
    pg.psql("postgres", "CREATE DATABASE app").unwrap();
    pg.psql("postgres", "CREATE DATABASE scratch").unwrap();
    // A down that leaves the table behind would make the second up fail: the
    // check catches a down that does not revert.
    let sql = scripts(UP, DOWN);
    let receipts = tempfile::tempdir().unwrap();
    let spec = MigrationsSpec {
        up: psql_env("up.sql", sql.path()),
        down: Some(psql_env("down.sql", sql.path())),
        reversible: true,
        validate: Some(MigrationValidation {
            database_url: pg.url("scratch"),
        }),
    };
    let report = validate_migrations(&spec, &facts(receipts.path()))
        .await
        .expect("validate is configured");
    assert!(report.passed(), "{}", report.to_markdown());
    let directions: Vec<Direction> = report.steps.iter().map(|s| s.direction).collect();
    assert_eq!(directions, [Direction::Up, Direction::Down, Direction::Up]);
    assert!(pg.has_table("scratch", "widgets"));
    assert!(!pg.has_table("app", "widgets"));
    assert_eq!(report.database, pg.url("scratch"));
    for log in [
        "validate-1-up.log",
        "validate-2-down.log",
        "validate-3-up.log",
    ] {
        assert!(
            receipts.path().join("migrations").join(log).is_file(),
            "{log}"
        );
    }
    assert!(
        report
            .to_markdown()
            .starts_with("# Migration validation: PASS")
    );
}

#[tokio::test]
async fn a_down_that_does_not_revert_fails_the_validation() {
    let Some(pg) = postgres() else { return };
    pg.psql("postgres", "CREATE DATABASE scratch").unwrap();
    let receipts = tempfile::tempdir().unwrap();
    for (down, evidence, failed_at) in [
        // A down that fails.
        (
            "DROP TABLE gadgets;\n",
            "table \"gadgets\" does not exist",
            2,
        ),
        // A down that succeeds but leaves the table: the second up fails.
        ("SELECT 1;\n", "relation \"widgets\" already exists", 3),
    ] {
        pg.psql("scratch", "DROP TABLE IF EXISTS widgets").unwrap();
        let sql = scripts(UP, down);
        let spec = MigrationsSpec {
            up: psql_env("up.sql", sql.path()),
            down: Some(psql_env("down.sql", sql.path())),
            reversible: false,
            validate: Some(MigrationValidation {
                database_url: pg.url("scratch"),
            }),
        };
        let report = validate_migrations(&spec, &facts(receipts.path()))
            .await
            .expect("validate is configured");
        assert!(!report.passed());
        assert_eq!(report.steps.len(), failed_at, "{}", report.to_markdown());
        let last = report.steps.last().unwrap();
        assert!(!last.passed());
        assert!(
            last.result.output_tail.contains(evidence),
            "{}",
            last.result.output_tail
        );
        let md = report.to_markdown();
        assert!(md.starts_with("# Migration validation: FAIL"), "{md}");
        assert!(md.contains(evidence), "{md}");
        if failed_at == 2 {
            assert!(
                md.contains("## 3. `up`: not run, an earlier step failed"),
                "{md}"
            );
        }
    }
}
