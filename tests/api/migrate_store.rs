//! `tidings migrate-store` through the real binary: a deployment served on SQLite, stopped,
//! copied into a fresh PostgreSQL schema (from `TIDINGS_TEST_DATABASE_URL`, dropped after),
//! and every way the command must refuse: a target holding data, a missing source, a
//! source a newer Tidings wrote, an unreachable PostgreSQL. Without a PostgreSQL server the
//! tests that need one skip, unless `TIDINGS_TEST_POSTGRES=require` (scripts/test, CI).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::store::sql::{Conn, PgConfig};

use crate::helpers::SECRET_KEY;
use crate::process::Launch;

/// Runs `f` on a thread of its own: the `postgres` client blocks on a runtime of its own,
/// which it cannot start on a thread that drives the test's runtime.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("the PostgreSQL thread"))
}

/// The test server is shared with other suites running at once; when it is full
/// (SQLSTATE 53300, "too many clients") that is waited out, up to a minute, instead of
/// failing a test for what another suite holds.
const FULL_SERVER: &str = "too many clients";
const FULL_SERVER_WAIT: Duration = Duration::from_secs(60);

/// Connects to `url`, waiting out a full server.
fn connect(url: &str) -> Result<Conn, tidings::store::sql::Error> {
    let deadline = Instant::now() + FULL_SERVER_WAIT;
    loop {
        match Conn::connect_postgres(&PgConfig::at(url.to_owned())) {
            Err(e) if e.to_string().contains(FULL_SERVER) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

fn base_url() -> String {
    std::env::var("TIDINGS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh schema of the test PostgreSQL; `url` reaches it (`search_path`). Dropped after.
struct Schema {
    name: String,
    url: String,
}

impl Schema {
    fn new() -> Option<Schema> {
        off_runtime(Schema::create)
    }

    fn create() -> Option<Schema> {
        let admin = match connect(&base_url()) {
            Ok(admin) => admin,
            Err(e) if std::env::var("TIDINGS_TEST_POSTGRES").as_deref() == Ok("require") => {
                panic!("PostgreSQL is required: {e}")
            }
            Err(e) => {
                eprintln!("skipped: no PostgreSQL ({e})");
                return None;
            }
        };
        let name = format!("mst_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute_batch(&format!("CREATE SCHEMA {name}"))
            .expect("create schema");
        let base = base_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        Some(Schema { name, url })
    }

    fn conn(&self) -> Conn {
        connect(&self.url).expect("connect to the test schema")
    }

    /// Runs `f` on a connection to the schema.
    fn with<T: Send>(&self, f: impl FnOnce(&Conn) -> T + Send) -> T {
        off_runtime(|| f(&self.conn()))
    }

    /// Row counts of every table in the schema (empty when it has no tables).
    fn counts(&self) -> Vec<(String, i64)> {
        self.with(counts)
    }
}

/// Every table of the schema a connection reaches, and its row count.
fn counts(conn: &Conn) -> Vec<(String, i64)> {
    let tables: Vec<String> = conn
        .prepare(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
             ORDER BY 1",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("tables");
    tables
        .into_iter()
        .map(|t| {
            let n = conn
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .expect("count");
            (t, n)
        })
        .collect()
}

impl Drop for Schema {
    fn drop(&mut self) {
        let name = &self.name;
        off_runtime(|| {
            if let Ok(admin) = connect(&base_url()) {
                let _ = admin.execute_batch(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
            }
        });
    }
}

/// `tidings migrate-store --from FROM --to TO` in `dir`, run again while the test server is
/// full (the command fails before writing anything then: it could not connect).
async fn migrate(dir: &Path, from: &str, to: &str) -> (bool, String, String) {
    let deadline = Instant::now() + FULL_SERVER_WAIT;
    loop {
        let out = Launch::new(dir, &["migrate-store", "--from", from, "--to", to])
            .output()
            .await;
        if out.0 || !out.2.contains(FULL_SERVER) || Instant::now() > deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every table of the SQLite file and its row count.
fn sqlite_counts(path: &Path) -> Vec<(String, i64)> {
    let conn = crate::db::open(path);
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY 1",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("tables");
    tables
        .into_iter()
        .map(|t| {
            let n = conn
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .expect("count");
            (t, n)
        })
        .collect()
}

/// A SQLite database at the current schema, as `tidings keys` leaves it.
async fn fresh_sqlite(dir: &Path) {
    let (ok, _, stderr) = Launch::new(dir, &["--db", "t.db", "keys"]).output().await;
    assert!(ok, "{stderr}");
}

#[tokio::test]
async fn a_stopped_deployment_is_copied_into_postgresql_with_every_row() {
    if crate::engine::is_postgres() {
        return; // copies a SQLite deployment; runs (against PostgreSQL) in the SQLite pass
    }
    let Some(schema) = Schema::new() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let server = Launch::new(dir.path(), &["serve", "--db", "t.db"])
        .test_keys()
        .env("TIDINGS_LOG", "warn")
        .serve()
        .await;
    let client = reqwest::Client::new();
    for i in 0..3 {
        let res = client
            .post(server.url("/v1/workflows/new-comment/trigger"))
            .bearer_auth(SECRET_KEY)
            .json(&json!({"recipients": ["u1", "u2"], "data": {"comment_preview": i}}))
            .send()
            .await
            .expect("trigger");
        assert_eq!(res.status(), 200);
    }
    let path = dir.path().join("t.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::db::open(&path)
        .query_row("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0))
        .expect("count")
        < 6
    {
        assert!(Instant::now() < deadline, "the runs did not deliver");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (stopped, _, stderr) = server.stop().await;
    assert!(stopped, "{stderr}");
    let before = std::fs::read(&path).expect("read");

    let (ok, stdout, stderr) = migrate(dir.path(), "t.db", &schema.url).await;
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("row counts verified, committed"),
        "{stdout}"
    );
    assert!(stderr.contains("must be stopped"), "{stderr}");
    let source = sqlite_counts(&path);
    let target: Vec<(String, i64)> = schema
        .counts()
        .into_iter()
        // PostgreSQL's own: its migrations and the leases of several nodes.
        .filter(|(t, _)| !["tidings_migrations", "run_leases", "leases"].contains(&t.as_str()))
        .collect();
    let expected: Vec<(String, i64)> = source
        .iter()
        .map(|(t, n)| (t.clone(), if t == "meta" { n + 1 } else { *n }))
        .collect();
    assert_eq!(target, expected, "meta gains installed_at; all else equal");
    assert!(source.iter().any(|(t, n)| t == "messages" && *n == 6));
    for (table, _) in &source {
        assert!(
            stdout.contains(&format!("\n{table} ")),
            "the summary names `{table}`: {stdout}"
        );
    }
    let (copied, next): (Vec<(i64, String)>, i64) = schema.with(|pg| {
        let mut stmt = pg
            .prepare("SELECT seq, id FROM messages ORDER BY seq")
            .expect("prepare");
        let copied = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        let next = pg
            .query_row(
                "SELECT nextval(pg_get_serial_sequence('messages', 'seq'))",
                [],
                |r| r.get(0),
            )
            .expect("nextval");
        (copied, next)
    });
    let sqlite = crate::db::open(&path);
    let mut stmt = sqlite
        .prepare("SELECT seq, id FROM messages ORDER BY seq")
        .expect("prepare");
    let messages: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(copied, messages, "messages keep their seq cursors");
    assert!(next > messages.last().expect("messages").0);
    drop(stmt);
    drop(sqlite);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "the source changed"
    );
}

#[tokio::test]
async fn a_target_holding_tidings_data_is_refused_and_left_as_it_was() {
    if crate::engine::is_postgres() {
        return; // copies a SQLite deployment; runs (against PostgreSQL) in the SQLite pass
    }
    let Some(schema) = Schema::new() else { return };
    let dir = tempfile::tempdir().expect("dir");
    fresh_sqlite(dir.path()).await;
    let (ok, _, stderr) = migrate(dir.path(), "t.db", &schema.url).await;
    assert!(ok, "{stderr}");
    let after_first = schema.counts();
    // Something else in the target too: a user the source does not have.
    schema.with(|pg| {
        pg.execute(
            "INSERT INTO users(id, properties, inserted_at, updated_at) VALUES ('x', '{}', 'a', 'a')",
            [],
        )
        .expect("a row")
    });
    let with_user = schema.counts();
    assert_ne!(after_first, with_user);

    let (ok, stdout, stderr) = migrate(dir.path(), "t.db", &schema.url).await;
    assert!(!ok, "a second copy must be refused: {stdout}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert!(stderr.contains("Nothing was written"), "{stderr}");
    assert_eq!(schema.counts(), with_user, "the refused run wrote nothing");
}

#[tokio::test]
async fn a_missing_source_is_refused_before_the_target_is_touched() {
    if crate::engine::is_postgres() {
        return; // copies a SQLite deployment; runs (against PostgreSQL) in the SQLite pass
    }
    let Some(schema) = Schema::new() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let (ok, _, stderr) = migrate(dir.path(), "nope.db", &schema.url).await;
    assert!(!ok);
    assert!(
        stderr.contains("there is no SQLite database at nope.db"),
        "{stderr}"
    );
    assert!(!dir.path().join("nope.db").exists(), "no file was created");
    assert_eq!(schema.counts(), vec![], "no table was created");
}

#[tokio::test]
async fn a_source_written_by_a_newer_tidings_is_refused() {
    if crate::engine::is_postgres() {
        return; // copies a SQLite deployment; runs (against PostgreSQL) in the SQLite pass
    }
    let dir = tempfile::tempdir().expect("dir");
    fresh_sqlite(dir.path()).await;
    let path = dir.path().join("t.db");
    rusqlite::Connection::open(&path)
        .and_then(|c| c.pragma_update(None, "user_version", 9999))
        .expect("a newer schema version");
    let (ok, _, stderr) = migrate(dir.path(), "t.db", &base_url()).await;
    assert!(!ok);
    assert!(
        stderr.contains("schema version 9999, newer than this binary knows"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_unreachable_postgresql_is_named_and_the_exit_is_non_zero() {
    if crate::engine::is_postgres() {
        return; // copies a SQLite deployment; runs (against PostgreSQL) in the SQLite pass
    }
    let dir = tempfile::tempdir().expect("dir");
    fresh_sqlite(dir.path()).await;
    let nowhere = format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        crate::crash::free_port()
    );
    let (ok, _, stderr) = migrate(dir.path(), "t.db", &nowhere).await;
    assert!(!ok);
    assert!(
        stderr.contains("cannot connect to the PostgreSQL target"),
        "{stderr}"
    );
    assert!(stderr.contains("refused"), "{stderr}");
}

/// The fault: `migrate-store` killed (SIGKILL) half way through. Its one
/// transaction dies with it: the target holds the schema and no data, and the same command
/// run again copies everything.
#[tokio::test]
async fn a_copy_killed_half_way_leaves_no_data_and_running_it_again_copies_everything() {
    if crate::engine::is_postgres() {
        return; // copies a SQLite deployment; runs (against PostgreSQL) in the SQLite pass
    }
    let Some(schema) = Schema::new() else { return };
    let dir = tempfile::tempdir().expect("dir");
    fresh_sqlite(dir.path()).await;
    // Enough rows that copying `objects` takes a while: the kill lands inside it.
    const OBJECTS: i64 = 300_000;
    rusqlite::Connection::open(dir.path().join("t.db"))
        .and_then(|c| {
            c.execute_batch(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {OBJECTS}) \
                 INSERT INTO objects(collection, id, properties, inserted_at, updated_at) \
                 SELECT 'bulk', 'o' || i, '{{\"n\":' || i || '}}', 'a', 'a' FROM n"
            ))
        })
        .expect("many objects");
    // `users` is copied just before `objects`.
    let deadline = Instant::now() + FULL_SERVER_WAIT;
    let copy = loop {
        let copy = Launch::new(
            dir.path(),
            &["migrate-store", "--from", "t.db", "--to", &schema.url],
        )
        .spawn(crate::crash::free_port());
        let full = loop {
            let lines = copy.stderr.lock().expect("lines").join("\n");
            if lines.contains("copied users") {
                break false;
            }
            if lines.contains(FULL_SERVER) {
                break true;
            }
            assert!(Instant::now() < deadline, "the copy did not start: {lines}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        if !full {
            break copy;
        }
        let _ = copy.exit().await;
    };
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &copy.pid().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let (ok, _, stderr) = copy.exit().await;
    assert!(!ok, "killed");
    assert!(
        !stderr.contains("copied objects"),
        "the kill came too late to interrupt the copy: {stderr}"
    );
    // PostgreSQL rolls the transaction back when the connection drops.
    let seeded = ["feed_fold", "meta"];
    for (table, rows) in schema.counts() {
        if table == "tidings_migrations" {
            // One row per PostgreSQL migration, applied before the copy began.
            assert!(rows >= 1, "`{table}` after the kill");
            continue;
        }
        let expected = i64::from(seeded.contains(&table.as_str()));
        assert_eq!(rows, expected, "`{table}` after the kill");
    }

    let (ok, stdout, stderr) = migrate(dir.path(), "t.db", &schema.url).await;
    assert!(ok, "the rerun: {stdout}\n{stderr}");
    let objects = schema
        .counts()
        .into_iter()
        .find(|(t, _)| t == "objects")
        .map(|(_, n)| n);
    assert_eq!(objects, Some(OBJECTS));
}
