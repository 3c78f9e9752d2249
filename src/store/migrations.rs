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
    (
        "0018_run_data",
        include_str!("migrations/0018_run_data.sql"),
    ),
    (
        "0019_lean_recipient_runs",
        include_str!("migrations/0019_lean_recipient_runs.sql"),
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
pub(crate) fn in_memory() -> super::sql::Conn {
    let mut conn = Connection::open_in_memory().expect("in-memory db");
    apply(&mut conn).expect("migrations");
    conn.into()
}

/// An in-memory database at the schema just before migration `name`, then a function
/// applying the rest: for tests of an upgrade path over rows written the old way.
#[cfg(test)]
pub(crate) fn in_memory_before(
    name: &str,
) -> (super::sql::Conn, impl FnOnce(&mut super::sql::Conn)) {
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
    (conn.into(), |conn: &mut super::sql::Conn| {
        apply(conn.sqlite_mut().expect("a SQLite database")).expect("migrations")
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

    /// A database written before plain deliveries stopped storing recipient runs: its
    /// rows keep answering (list, get, old cursors), below everything written after, and
    /// derived records start after its newest message.
    #[test]
    fn old_run_records_answer_after_the_lean_recipient_runs_upgrade() {
        use crate::model::RecipientRef;
        use crate::model::run_records::RunListQuery;
        use crate::store::{Db, messages, run_records, runs};
        let mut conn = migrated_up_to("0019_");
        conn.execute_batch(
            "INSERT INTO workflow_runs(id, workflow_key, request, tenant, status, inserted_at, updated_at) \
             VALUES ('old', 'wf', '{\"actor\": \"boss\"}', NULL, 'completed', \
                     '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z'); \
             INSERT INTO workflow_recipient_runs(rowid, id, workflow_run_id, recipient_kind, recipient_id, \
             status, events, inserted_at, updated_at, workflow_key) VALUES \
             (1, '0190a000-0000-7000-8000-000000000001', 'old', 'user', 'u1', 'completed', \
              '[{\"event\": \"message_created\", \"status\": \"ok\"}]', \
              '2026-01-01T00:00:01.000000Z', '2026-01-01T00:00:01.000000Z', 'wf'), \
             (2, '0190a000-0000-7000-8000-000000000002', 'old', 'user', 'u2', 'completed', '[]', \
              '2026-01-01T00:00:02.000000Z', '2026-01-01T00:00:02.000000Z', 'wf'); \
             INSERT INTO messages(id, channel_id, recipient_kind, recipient_id, workflow_key, \
             workflow_version_id, workflow_run_id, workflow_recipient_run_id, step_ref, inserted_at, updated_at) \
             VALUES ('m1', 'ch', 'user', 'u1', 'wf', 'v', 'old', '0190a000-0000-7000-8000-000000000001', \
                     'in_app', '2026-01-01T00:00:01.000000Z', '2026-01-01T00:00:01.000000Z'), \
                    ('m2', 'ch', 'user', 'u2', 'wf', 'v', 'old', '0190a000-0000-7000-8000-000000000002', \
                     'in_app', '2026-01-01T00:00:02.000000Z', '2026-01-01T00:00:02.000000Z');",
        )
        .expect("old rows");
        apply(&mut conn).expect("upgrade");
        let conn = crate::store::sql::Conn::from(conn);
        let db = Db::on(&conn);
        assert_eq!(
            crate::store::meta::get(&db, "run_records_derived_after_seq").expect("meta"),
            Some("2".into())
        );
        let who = |q: RunListQuery| -> Vec<String> {
            run_records::list(&db, &RunListQuery { page_size: 50, ..q })
                .expect("list")
                .records
                .iter()
                .map(|r| format!("{}/{}/{}", r.workflow_run_id, r.recipient.id(), r.seq))
                .collect()
        };
        assert_eq!(who(RunListQuery::default()), ["old/u2/2", "old/u1/1"]);
        let old = run_records::get(&db, "0190a000-0000-7000-8000-000000000001")
            .expect("get")
            .expect("an old record answers");
        assert_eq!(old.events[0]["event"], "message_created");
        assert_eq!(old.actor, Some(serde_json::json!("boss")));

        // Written after the upgrade: a plain delivery (a message only) and a stored row.
        runs::insert_run(
            &db,
            &runs::NewRun {
                id: "new".into(),
                workflow_key: "wf".into(),
                request: serde_json::json!({"recipients": []}),
                cancellation_key: None,
                tenant: None,
            },
        )
        .expect("run");
        let facts = runs::run_facts(&db, "new").expect("facts");
        let u1 = RecipientRef::User("u1".into());
        let mut message = messages::NewMessage {
            id: "m3".into(),
            channel_id: "ch".into(),
            recipient: u1.clone(),
            tenant: None,
            workflow_key: "wf".into(),
            workflow_version_id: "v".into(),
            workflow_categories: vec![],
            workflow_run_id: "new".into(),
            workflow_recipient_run_id: runs::recipient_run_id("new", &facts, &u1),
            step_ref: "in_app".into(),
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
            .expect("new");
        runs::ensure_recipient_run(
            &db,
            "new",
            &RecipientRef::User("u2".into()),
            "failed",
            &serde_json::json!([]),
        )
        .expect("stored");
        let after = 3 << run_records::POSITION_BITS;
        assert_eq!(
            who(RunListQuery::default()),
            [
                format!("new/u2/{}", after + 1),
                format!("new/u1/{after}"),
                "old/u2/2".into(),
                "old/u1/1".into()
            ]
        );
        // A cursor issued before the upgrade (an old rowid) still pages from its row.
        assert_eq!(
            who(RunListQuery {
                after: Some(2),
                ..Default::default()
            }),
            ["old/u1/1"]
        );
        // A replay of the old run's page finds both recipients reached; of the new run's,
        // u1 (derived) and u2 (stored).
        for run in ["old", "new"] {
            let items = vec![
                RecipientRef::User("u1".into()),
                RecipientRef::User("u2".into()),
            ];
            assert!(
                runs::without_recipient_runs(&db, run, items, |r| r, |_| true)
                    .expect("dedup")
                    .is_empty(),
                "{run}"
            );
        }
        message.id = "m4".into();
        assert!(
            messages::insert(&db, &message).expect("insert").is_none(),
            "the same recipient run and step: exactly once"
        );
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

    #[test]
    fn runs_get_their_data_beside_the_request_and_messages_read_it_unchanged() {
        let mut conn = migrated_up_to("0018_");
        conn.execute_batch(
            "INSERT INTO workflow_runs(id, workflow_key, request, status, inserted_at, updated_at) VALUES \
             ('r1', 'wf', '{\"recipients\":[\"u1\"],\"data\":{\"project\":\"apollo\",\"n\":2}}', 'completed', 'a', 'a'), \
             ('r2', 'wf', '{\"recipients\":[\"u1\"]}', 'completed', 'a', 'a'); \
             INSERT INTO messages(id, channel_id, recipient_kind, recipient_id, workflow_key, workflow_version_id, \
             workflow_run_id, workflow_recipient_run_id, step_ref, data, inserted_at, updated_at) VALUES \
             ('m1', 'ch', 'user', 'u1', 'wf', 'v', 'r1', 'rr1', 's', '', 'a', 'a'), \
             ('m2', 'ch', 'user', 'u1', 'wf', 'v', 'r2', 'rr2', 's', '', 'a', 'a'), \
             ('m3', 'ch', 'user', 'u1', 'wf', 'v', 'r1', 'rr3', 's', '{\"own\":true}', 'a', 'a');",
        )
        .expect("old rows");
        apply(&mut conn).expect("upgrade");
        let data: Vec<String> = conn
            .prepare(&format!(
                "SELECT {} FROM messages ORDER BY id",
                super::super::messages::DATA_SQL
            ))
            .expect("query")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("data");
        assert_eq!(
            data,
            [r#"{"project":"apollo","n":2}"#, "{}", r#"{"own":true}"#]
        );
        let stored: Vec<Option<String>> = conn
            .prepare(
                "SELECT d.data FROM workflow_runs r LEFT JOIN workflow_run_data d ON d.run_id = r.id \
                 ORDER BY r.id",
            )
            .expect("query")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("runs");
        assert_eq!(stored, [Some(r#"{"project":"apollo","n":2}"#.into()), None]);
        // The shared data is read from `workflow_run_data`, not from the request.
        conn.execute("UPDATE workflow_runs SET request = '{}'", [])
            .expect("forget the requests");
        let m1: String = conn
            .query_row(
                &format!(
                    "SELECT {} FROM messages WHERE id = 'm1'",
                    super::super::messages::DATA_SQL
                ),
                [],
                |r| r.get(0),
            )
            .expect("m1");
        assert_eq!(m1, r#"{"project":"apollo","n":2}"#);
    }
}
