//! `migrate-store` on real databases: a SQLite file with rows in every table, copied into
//! a fresh PostgreSQL schema of the test server (`test_engines`). Tests that need
//! PostgreSQL skip without one, unless `TIDINGS_TEST_POSTGRES=require` (CI, scripts/test).

use std::path::{Path, PathBuf};

use super::test_target::{copy, target};
use super::{CopyError, TableCount, migrate_store, tables, verify};
use crate::store::sql::{Conn, Value, params};
use crate::store::{Db, SCHEMA_VERSION, migrations};

/// A SQLite file at the current schema holding `fixture.sql` (a row in every table).
fn source(dir: &Path) -> PathBuf {
    let path = dir.join("source.db");
    let mut conn = rusqlite::Connection::open(&path).expect("open");
    migrations::apply(&mut conn).expect("migrate");
    conn.execute_batch(include_str!("fixture.sql"))
        .expect("fixture");
    // One value larger than a batch's byte budget: that batch is written early.
    conn.execute(
        "INSERT INTO bulk_operations VALUES ('bo-big', ?1, '2026-01-01T00:00:00.000000Z')",
        [format!("{{\"pad\":\"{}\"}}", "x".repeat(5 << 20))],
    )
    .expect("big row");
    path
}

fn sqlite(path: &Path) -> Conn {
    Conn::from(rusqlite::Connection::open(path).expect("open"))
}

/// Every row of `table`, each as its values (PostgreSQL's columns, `rowid` included),
/// sorted so that the two engines' row orders do not matter.
fn rows(conn: &Conn, columns: &[String], table: &str) -> Vec<String> {
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = conn
        .prepare(&format!("SELECT {list} FROM \"{table}\""))
        .expect("select");
    let mut all: Vec<String> = stmt
        .query_map([], |r| {
            (0..columns.len())
                .map(|i| r.get::<_, Value>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("rows")
        .map(|row| format!("{:?}", row.expect("row")))
        .collect();
    all.sort();
    all
}

fn count(conn: &Conn, table: &str) -> u64 {
    tables::count(conn, table).expect("count")
}

#[test]
fn every_row_of_every_table_is_copied_as_sqlite_holds_it_and_sequences_move_past_it() {
    let Some(target) = target() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let path = source(dir.path());
    let before = std::fs::read(&path).expect("read");
    let src = sqlite(&path);
    for table in tables::TABLES {
        assert!(
            count(&src, table) > 0,
            "the fixture has no row in `{table}`"
        );
    }

    let mut progress = Vec::new();
    let report = copy(&path, &target.url, |t| progress.push(t.table)).expect("copy");
    assert_eq!(progress, tables::TABLES);
    assert_eq!(report.source_version, SCHEMA_VERSION);
    assert!(!report.migrated_source);
    let pg = &target.conn;
    for table in tables::TABLES {
        let columns = tables::columns(&src, pg, table).expect("columns").names;
        let mut theirs = rows(pg, &columns, table);
        if *table == "meta" {
            // The one row the copy adds: PostgreSQL's "an existing installation" mark.
            let installed = theirs.iter().position(|r| r.contains("\"installed_at\""));
            theirs.remove(installed.expect("meta.installed_at was added"));
        }
        assert_eq!(rows(&src, &columns, table), theirs, "table `{table}`");
    }
    let counted: Vec<(&str, u64)> = report
        .tables
        .iter()
        .map(|t| (t.table, t.target_rows - t.added))
        .collect();
    let expected: Vec<(&str, u64)> = tables::TABLES
        .iter()
        .map(|t| (*t, count(&src, t)))
        .collect();
    assert_eq!(counted, expected);

    // Sequences: past the largest copied number, and past SQLite's high-water marks of
    // deleted rows (message 40, timer 30), so no number or cursor position is reused.
    let next = |table: &str| {
        report
            .sequences
            .iter()
            .find(|s| s.table == table)
            .map(|s| s.next)
            .expect("sequence moved")
    };
    assert_eq!(next("messages"), 41);
    assert_eq!(next("timers"), 31);
    assert_eq!(next("users"), 10);
    assert_eq!(next("workflow_recipient_runs"), 11);
    assert_eq!(next("batch_activities"), 5);
    assert_eq!(report.sequences.len(), 11, "{:?}", report.sequences);
    for seq in &report.sequences {
        let drawn: i64 = pg
            .query_row(
                "SELECT nextval(pg_get_serial_sequence(?1, ?2))",
                params![seq.table, seq.column],
                |r| r.get(0),
            )
            .expect("nextval");
        assert_eq!(drawn, seq.next, "{}.{}", seq.table, seq.column);
    }
    let message = insert_message(pg);
    assert!(
        message > 41,
        "a message inserted afterwards got seq {message}"
    );

    drop(src);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "the source changed"
    );
}

/// A message written by the store's own insert, on the copy; its `seq`.
fn insert_message(pg: &Conn) -> i64 {
    use crate::model::RecipientRef;
    use crate::store::messages;
    let db = Db::on(pg);
    let message = messages::NewMessage {
        id: "m-after".into(),
        channel_id: "ch-1".into(),
        recipient: RecipientRef::User("u1".into()),
        tenant: None,
        workflow_key: "wf".into(),
        workflow_version_id: "v1".into(),
        workflow_categories: vec![],
        workflow_run_id: "r1".into(),
        workflow_recipient_run_id: "rr1".into(),
        step_ref: "after".into(),
        actors: vec![],
        data: serde_json::json!({}).into(),
        blocks: serde_json::json!([]).into(),
        inserted_at: db.now(),
        batch: None,
        expires_at: None,
        pinned_at: None,
    };
    messages::insert(&db, &message)
        .expect("insert")
        .expect("a new message")
        .seq
}

#[test]
fn a_target_holding_tidings_data_is_refused_and_nothing_is_written() {
    let Some(target) = target() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let path = source(dir.path());
    crate::store::pg::apply(&target.conn).expect("schema");
    target
        .conn
        .execute(
            "INSERT INTO tenants(id, properties, inserted_at, updated_at) VALUES ('t', '{}', 'a', 'a')",
            [],
        )
        .expect("a row");
    let err = copy(&path, &target.url, |_| {}).expect_err("refused");
    assert!(
        matches!(&err, CopyError::TargetNotEmpty { table } if table == "tenants"),
        "{err}"
    );
    for table in tables::TABLES {
        let expected = match *table {
            "tenants" | "meta" | "feed_fold" => 1, // the row above; the schema's seeds
            _ => 0,
        };
        assert_eq!(count(&target.conn, table), expected, "`{table}`");
    }

    // A copy's target is not empty either: a second run is refused.
    let Some(again) = self::target() else { return };
    copy(&path, &again.url, |_| {}).expect("first copy");
    let err = copy(&path, &again.url, |_| {}).expect_err("second copy");
    assert!(matches!(err, CopyError::TargetNotEmpty { .. }), "{err}");
}

#[test]
fn a_copy_failing_half_way_leaves_the_target_empty_and_running_it_again_works() {
    let Some(target) = target() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let path = source(dir.path());
    // The last table copied holds a value PostgreSQL refuses (text with a NUL byte): every
    // table before it was already written inside the copy's transaction.
    let bad = rusqlite::Connection::open(&path).expect("open");
    bad.execute(
        "INSERT INTO translations VALUES ('', 'de', '', ?1, 'a', 'a')",
        ["{\"x\":\"a\u{0}b\"}"],
    )
    .expect("bad row");
    let err = copy(&path, &target.url, |_| {}).expect_err("fails");
    assert!(
        matches!(&err, CopyError::Copy { table, .. } if table == "translations"),
        "{err}"
    );
    for table in tables::TABLES {
        let seeded = tables::SEEDED.iter().any(|(t, _)| t == table);
        assert_eq!(
            count(&target.conn, table),
            u64::from(seeded),
            "`{table}` after a failed copy"
        );
    }
    bad.execute("DELETE FROM translations WHERE locale_code = 'de'", [])
        .expect("fixed");
    drop(bad);
    let report = copy(&path, &target.url, |_| {}).expect("the rerun copies");
    assert!(
        report
            .tables
            .iter()
            .all(|t| t.target_rows == t.source_rows + t.added)
    );
    assert!(count(&target.conn, "objects") > 1000);
}

#[test]
fn an_older_schema_is_migrated_on_a_temporary_copy_and_the_file_is_left_as_it_was() {
    let Some(target) = target() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("old.db");
    let (old, _) = migrations::in_memory_before("0020_feeds");
    old.execute_batch(
        "INSERT INTO messages(id, channel_id, recipient_kind, recipient_id, workflow_key, \
         workflow_version_id, workflow_run_id, workflow_recipient_run_id, step_ref, inserted_at, \
         updated_at) VALUES ('m1', 'ch', 'user', 'u1', 'wf', 'v', 'r', 'rr', 'in_app', 'a', 'a')",
    )
    .expect("an old message");
    old.execute(
        "VACUUM INTO ?1",
        [path.to_str().expect("a UTF-8 temp path")],
    )
    .expect("write the old file");
    let before = std::fs::read(&path).expect("read");

    let report = copy(&path, &target.url, |_| {}).expect("copy");
    assert!(report.migrated_source);
    assert_eq!(report.source_version, SCHEMA_VERSION - 1);
    // Migration 0020 ran (on the copy): the message has its feed key, the feed its row.
    let feed: Option<i64> = target
        .conn
        .query_row("SELECT feed FROM messages WHERE id = 'm1'", [], |r| {
            r.get(0)
        })
        .expect("copied message");
    assert!(feed.is_some());
    assert_eq!(count(&target.conn, "feeds"), 1);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "the source changed"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["old.db"], "the temporary copy was removed");
}

#[test]
fn a_missing_foreign_or_newer_source_is_refused_before_postgresql_is_touched() {
    let dir = tempfile::tempdir().expect("dir");
    // Nothing listens on port 1: reaching the target would fail with another error.
    let nowhere = "postgres://postgres@127.0.0.1:1/postgres";
    let missing = dir.path().join("missing.db");
    let err = migrate_store(&missing, nowhere, |_| {}).expect_err("missing");
    assert!(matches!(err, CopyError::SourceMissing(_)), "{err}");
    assert!(!missing.exists(), "a missing source is not created");

    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "not a database at all, but long enough to have a header",
    )
    .expect("write");
    let err = migrate_store(&text, nowhere, |_| {}).expect_err("text");
    assert!(matches!(err, CopyError::NotTidings { .. }), "{err}");

    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .and_then(|c| c.execute_batch("CREATE TABLE notes (x TEXT)"))
        .expect("another app's database");
    let err = migrate_store(&other, nowhere, |_| {}).expect_err("other app");
    assert!(matches!(err, CopyError::NotTidings { .. }), "{err}");

    let newer = dir.path().join("newer.db");
    let mut conn = rusqlite::Connection::open(&newer).expect("open");
    migrations::apply(&mut conn).expect("schema");
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("newer");
    drop(conn);
    let err = migrate_store(&newer, nowhere, |_| {}).expect_err("newer");
    assert!(matches!(err, CopyError::SourceTooNew { .. }), "{err}");

    let current = dir.path().join("current.db");
    migrations::apply(&mut rusqlite::Connection::open(&current).expect("open")).expect("schema");
    let err = migrate_store(&current, nowhere, |_| {}).expect_err("unreachable");
    assert!(
        matches!(&err, CopyError::Connect(m) if m.contains("refused")),
        "{err}"
    );
}

#[test]
fn a_commit_to_the_source_during_the_copy_is_noticed() {
    let dir = tempfile::tempdir().expect("dir");
    let path = source(dir.path());
    let source = super::source::open(&path).expect("open");
    assert!(!source.changed().expect("check"), "nothing written yet");
    let writer = rusqlite::Connection::open(&path).expect("writer");
    writer
        .execute("UPDATE users SET updated_at = 'later' WHERE id = 'u1'", [])
        .expect("a server's write");
    assert!(source.changed().expect("check"));
}

#[test]
fn the_check_names_the_table_whose_counts_differ() {
    let count = |table, source_rows, target_rows, added| TableCount {
        table,
        source_rows,
        target_rows,
        added,
    };
    assert!(verify(&[count("meta", 5, 6, 1), count("users", 2, 2, 0)]).is_ok());
    let err = verify(&[count("meta", 5, 6, 1), count("messages", 3, 2, 0)]).expect_err("short");
    assert!(
        matches!(&err, CopyError::CountMismatch { table, source_rows: 3, target_rows: 2 } if table == "messages"),
        "{err}"
    );
    assert!(
        verify(&[count("meta", 5, 5, 1)]).is_err(),
        "the added row is missing"
    );
}
