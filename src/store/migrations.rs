//! Embedded, numbered, forward-only migrations tracked by `PRAGMA user_version`.
//!
//! Invariants: every pending migration is applied in ONE transaction (a crash mid-upgrade
//! leaves the old schema intact), each applied step is logged, and a database whose
//! `user_version` is newer than this binary knows is refused before anything reads it:
//! an older binary never misreads a newer schema.

use rusqlite::{Connection, TransactionBehavior};

use super::{StoreError, StoreResult};

/// Migration `i` (0-based) moves the schema from version `i` to `i + 1`: (name, SQL).
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("migrations/0001_init.sql")),
    (
        "0002_channel_data",
        include_str!("migrations/0002_channel_data.sql"),
    ),
    (
        "0003_subscriptions",
        include_str!("migrations/0003_subscriptions.sql"),
    ),
    (
        "0004_run_records",
        include_str!("migrations/0004_run_records.sql"),
    ),
    ("0005_engine", include_str!("migrations/0005_engine.sql")),
    (
        "0006_audience_cursor",
        include_str!("migrations/0006_audience_cursor.sql"),
    ),
    (
        "0007_schedules",
        include_str!("migrations/0007_schedules.sql"),
    ),
    (
        "0008_retention",
        include_str!("migrations/0008_retention.sql"),
    ),
    (
        "0009_engine_gates",
        include_str!("migrations/0009_engine_gates.sql"),
    ),
    ("0010_batches", include_str!("migrations/0010_batches.sql")),
    (
        "0011_cancel_backlog",
        include_str!("migrations/0011_cancel_backlog.sql"),
    ),
    (
        "0012_recipient_runs_without_fk",
        include_str!("migrations/0012_recipient_runs_without_fk.sql"),
    ),
    (
        "0013_partial_indexes",
        include_str!("migrations/0013_partial_indexes.sql"),
    ),
    (
        "0014_item_lifecycle",
        include_str!("migrations/0014_item_lifecycle.sql"),
    ),
    (
        "0015_translations",
        include_str!("migrations/0015_translations.sql"),
    ),
    ("0016_bounds", include_str!("migrations/0016_bounds.sql")),
    (
        "0017_run_attempts",
        include_str!("migrations/0017_run_attempts.sql"),
    ),
    ("0020_feeds", include_str!("migrations/0020_feeds.sql")),
];

/// The schema version this binary writes (what `PRAGMA user_version` holds after `apply`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies every migration newer than the database, all in one transaction, or refuses a
/// database newer than this binary ([`StoreError::SchemaTooNew`]).
pub(super) fn apply(conn: &mut Connection) -> StoreResult<()> {
    // IMMEDIATE: two processes starting on one file cannot both apply the same step.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    let pending = &MIGRATIONS[current.max(0) as usize..];
    for (offset, (name, sql)) in pending.iter().enumerate() {
        let version = current.max(0) + offset as i64 + 1;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tracing::info!(migration = name, version, "applying migration");
    }
    tx.commit()?;
    if !pending.is_empty() {
        tracing::info!(
            from = current,
            to = SCHEMA_VERSION,
            applied = pending.len(),
            "database schema upgraded"
        );
    }
    Ok(())
}

/// A fresh in-memory database at the current schema, for the store's unit tests (one
/// place instead of a copy per test module).
#[cfg(test)]
pub(crate) fn in_memory() -> Connection {
    let mut conn = Connection::open_in_memory().expect("in-memory db");
    apply(&mut conn).expect("migrations");
    conn
}

/// An in-memory database at the schema just before migration `name`, then a function
/// applying the rest: for tests of an upgrade path over rows written the old way.
#[cfg(test)]
pub(crate) fn in_memory_before(name: &str) -> (Connection, impl FnOnce(&mut Connection)) {
    let conn = Connection::open_in_memory().expect("in-memory db");
    let at = MIGRATIONS
        .iter()
        .position(|(n, _)| *n == name)
        .expect("a known migration");
    for (version, (_, sql)) in MIGRATIONS[..at].iter().enumerate() {
        conn.execute_batch(sql).expect("migration");
        conn.pragma_update(None, "user_version", version as i64 + 1)
            .expect("version");
    }
    (conn, |conn: &mut Connection| {
        apply(conn).expect("migrations")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap_or(-1)
    }

    #[test]
    fn pending_migrations_apply_and_a_second_run_is_a_no_op() {
        let mut conn = Connection::open_in_memory().expect("db");
        conn.execute_batch(MIGRATIONS[0].1).expect("v1");
        conn.pragma_update(None, "user_version", 1).expect("v1");
        apply(&mut conn).expect("upgrade");
        assert_eq!(version(&conn), SCHEMA_VERSION);
        apply(&mut conn).expect("again");
        assert_eq!(version(&conn), SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_database_is_refused_and_left_untouched() {
        let mut conn = Connection::open_in_memory().expect("db");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("set");
        let err = apply(&mut conn).expect_err("refused");
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
        assert_eq!(version(&conn), SCHEMA_VERSION + 1);
    }

    /// The version is the list position: a name's number must say it, or two branches
    /// that both took "the next number" would leave a label that lies about the version.
    #[test]
    fn each_migrations_number_is_its_version() {
        for (i, (name, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                name.get(..4),
                Some(format!("{:04}", i + 1).as_str()),
                "{name}"
            );
        }
    }

    #[test]
    fn a_failing_migration_rolls_back_every_step_of_the_upgrade() {
        let mut conn = Connection::open_in_memory().expect("db");
        // A table migration 0001 creates already exists: step 1 fails, nothing is applied.
        conn.execute_batch("CREATE TABLE meta (x)").expect("clash");
        assert!(apply(&mut conn).is_err());
        assert_eq!(version(&conn), 0);
    }

    /// An in-memory database with every migration before the one named `prefix…` applied,
    /// as a database written by the release before it would be.
    fn migrated_up_to(prefix: &str) -> Connection {
        let conn = Connection::open_in_memory().expect("db");
        let at = MIGRATIONS
            .iter()
            .position(|(name, _)| name.starts_with(prefix))
            .expect("migration listed");
        for (_, sql) in &MIGRATIONS[..at] {
            conn.execute_batch(sql).expect("older step");
        }
        conn.pragma_update(None, "user_version", at as i64)
            .expect("version");
        conn
    }

    #[test]
    fn recipient_runs_keep_their_rows_rowids_and_indexes_without_the_foreign_key() {
        let mut conn = migrated_up_to("0012_");
        conn.execute_batch(
            "INSERT INTO workflow_runs(id, workflow_key, request, tenant, status, inserted_at, updated_at) \
             VALUES ('r1', 'wf', '{}', 't1', 'completed', 'a', 'a'); \
             INSERT INTO workflow_recipient_runs(rowid, id, workflow_run_id, recipient_kind, recipient_id, status, \
             events, inserted_at, updated_at) VALUES (7, 'rr7', 'r1', 'user', 'u1', 'completed', '[1]', 'a', 'a');",
        )
        .expect("old rows");
        apply(&mut conn).expect("upgrade");
        let row: (i64, String, String, String) = conn
            .query_row(
                "SELECT rowid, id, workflow_key, events FROM workflow_recipient_runs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("row kept");
        assert_eq!(row, (7, "rr7".into(), "wf".into(), "[1]".into()));
        let foreign_keys: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_foreign_key_list('workflow_recipient_runs')",
                [],
                |r| r.get(0),
            )
            .expect("fk list");
        assert_eq!(foreign_keys, 0);
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type IN ('index', 'trigger') \
                 AND tbl_name = 'workflow_recipient_runs' AND sql IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .expect("indexes");
        assert_eq!(indexes, 6, "five filter indexes and the copy trigger");
    }

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("rows")
            .collect::<Result<Vec<_>, _>>()
            .expect("plan rows");
        rows.join(" / ")
    }

    #[test]
    fn partial_indexes_keep_existing_rows_and_serve_their_queries() {
        let mut conn = migrated_up_to("0013_");
        conn.execute_batch(
            "INSERT INTO workflow_runs(id, workflow_key, request, tenant, status, inserted_at, updated_at) \
             VALUES ('r1', 'wf', '{}', 't1', 'completed', 'a', 'a'), ('r2', 'wf', '{}', NULL, 'completed', 'a', 'a'); \
             INSERT INTO workflow_recipient_runs(id, workflow_run_id, recipient_kind, recipient_id, status, \
             inserted_at, updated_at, workflow_key, tenant) VALUES \
             ('a', 'r1', 'user', 'u1', 'completed', 'a', 'a', 'wf', 't1'), \
             ('b', 'r1', 'user', 'u2', 'paused', 'a', 'a', 'wf', 't1'), \
             ('c', 'r2', 'user', 'u1', 'failed', 'a', 'a', 'wf', NULL); \
             INSERT INTO feed_counters(channel_id, recipient_kind, recipient_collection, recipient_id, tenant, total) \
             VALUES ('ch', 'object', 'projects', 'p1', 't1', 1), ('ch', 'user', '', 'u1', 't1', 1);",
        )
        .expect("old rows");
        apply(&mut conn).expect("upgrade");
        let ids = |sql: &str| -> Vec<String> {
            let mut stmt = conn.prepare(sql).expect("query");
            stmt.query_map([], |r| r.get(0))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("ids")
        };
        let tenant = "SELECT id FROM workflow_recipient_runs WHERE tenant = 't1' ORDER BY rowid";
        assert_eq!(ids(tenant), ["a", "b"]);
        assert!(
            plan(&conn, tenant).contains("workflow_recipient_runs_tenant"),
            "{}",
            plan(&conn, tenant)
        );
        let unfinished = "SELECT id FROM workflow_recipient_runs \
             WHERE status IN ('paused', 'failed') AND status <> 'completed' ORDER BY rowid";
        assert_eq!(ids(unfinished), ["b", "c"]);
        assert!(
            plan(&conn, unfinished).contains("workflow_recipient_runs_status"),
            "{}",
            plan(&conn, unfinished)
        );
        let completed = "SELECT id FROM workflow_recipient_runs WHERE status = 'completed'";
        assert_eq!(ids(completed), ["a"]);
        // Since 0020 the counters are keyed by feed: an object's are found through its
        // feeds (`feeds_object`), the counter by its key.
        let objects = "SELECT f.recipient_id FROM feeds f JOIN feed_counters c ON c.feed = f.id \
             WHERE c.tenant = 't1' AND f.recipient_kind = 'object'";
        assert_eq!(ids(objects), ["p1"]);
        assert!(
            plan(&conn, objects).contains("feeds_object"),
            "{}",
            plan(&conn, objects)
        );
    }
}
