//! Unit tests for `store::retention`: exactly the expired rows go, counters equal a recount.

use serde_json::json;

use super::*;
use crate::model::RecipientRef;
use crate::store::messages::{self, NewMessage};

/// 20 messages for u0/u1 on `chan` (even) and `other` (odd), one second apart.
fn seed(db: &Db<'_>) {
    for i in 0..20 {
        messages::insert(
            db,
            &NewMessage {
                id: format!("m{i:02}"),
                channel_id: if i % 2 == 0 { "chan" } else { "other" }.into(),
                recipient: RecipientRef::User(format!("u{}", i % 4 / 2)),
                tenant: (i % 3 == 0).then(|| "acme".to_owned()),
                workflow_key: "wf".into(),
                workflow_version_id: "v".into(),
                workflow_categories: vec![],
                workflow_run_id: format!("r{i}"),
                workflow_recipient_run_id: format!("rr{i}"),
                step_ref: "s".into(),
                actors: vec![],
                data: json!({"i": i}).into(),
                blocks: json!([]).into(),
                inserted_at: at(i),
                batch: None,
                expires_at: None,
                pinned_at: None,
            },
        )
        .expect("insert");
    }
    // Some read, some seen, some archived (at 00:01:xx), so every counter moves.
    db.0.execute_batch(
        "UPDATE messages SET read_at = '2026-01-01T00:00:30.000000Z' WHERE id IN ('m01','m04','m09');
         UPDATE messages SET seen_at = '2026-01-01T00:00:30.000000Z' WHERE id IN ('m02','m04','m11');
         UPDATE messages SET archived_at = '2026-01-01T00:01:05.000000Z' WHERE id IN ('m03','m12');
         UPDATE messages SET archived_at = '2026-01-01T00:01:50.000000Z' WHERE id IN ('m16');",
    )
    .expect("engagement");
    // The first half counted by the fold, the rest in the tail: deletes meet both.
    crate::store::fold::fold(db, 10, &mut Default::default()).expect("fold");
}

fn at(second: usize) -> String {
    format!("2026-01-01T00:00:{second:02}.000000Z")
}

fn remaining(db: &Db<'_>) -> Vec<String> {
    db.0.prepare("SELECT id FROM messages ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Badges (counter rows plus tail, ignoring all-zero ones) equal a recount of the
/// non-archived messages.
fn assert_counters_exact(db: &Db<'_>) {
    let rows = |sql: &str| -> Vec<(String, String, String, i64, i64, i64)> {
        db.0.prepare(sql)
            .expect("prepare")
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let counters = rows(crate::store::fold::BADGES_SQL);
    let recount = rows(
        "SELECT channel_id, recipient_id, coalesce(tenant, ''), count(*), sum(read_at IS NULL), \
         sum(seen_at IS NULL) FROM messages WHERE archived_at IS NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    );
    assert_eq!(counters, recount);
}

fn ids(range: impl Iterator<Item = usize>) -> Vec<String> {
    range.map(|i| format!("m{i:02}")).collect()
}

#[test]
fn items_older_than_the_cutoff_go_in_batches_and_newer_ones_stay() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        seed(&db);
        assert_counters_exact(&db);
        let all = Channels::AllExcept(vec![]);
        // Cutoff = m10's own timestamp: m00..m09 are older, m10 is not (strictly older only).
        let mut batches = Vec::new();
        loop {
            let n = delete_expired_messages(&db, Age::Inserted, &all, &at(10), 3).expect("delete");
            batches.push(n);
            assert_counters_exact(&db);
            if n < 3 {
                break;
            }
        }
        assert_eq!(batches, [3, 3, 3, 1]);
        assert_eq!(remaining(&db), ids(10..20));
    }
}

#[test]
fn archived_items_go_by_archive_time_and_unarchived_ones_never() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        seed(&db);
        let all = Channels::AllExcept(vec![]);
        let cutoff = "2026-01-01T00:01:10.000000Z";
        let n = delete_expired_messages(&db, Age::Archived, &all, cutoff, 100).expect("delete");
        assert_eq!(
            n, 2,
            "m03 and m12 were archived before the cutoff; m16 after"
        );
        let expected: Vec<String> = ids(0..20)
            .into_iter()
            .filter(|id| id != "m03" && id != "m12")
            .collect();
        assert_eq!(remaining(&db), expected);
        assert_counters_exact(&db);
    }
}

#[test]
fn a_channel_rule_touches_only_its_channel_and_the_default_skips_it() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        seed(&db);
        let only = Channels::Only("chan".into());
        delete_expired_messages(&db, Age::Inserted, &only, &at(6), 100).expect("delete");
        // chan = even ids: m00, m02, m04 went; odd ones (other) all stay.
        let after_chan: Vec<String> = ids(0..20)
            .into_iter()
            .filter(|id| !["m00", "m02", "m04"].contains(&id.as_str()))
            .collect();
        assert_eq!(remaining(&db), after_chan);
        let rest = Channels::AllExcept(vec!["chan".into()]);
        delete_expired_messages(&db, Age::Inserted, &rest, &at(20), 100).expect("delete");
        let odd_gone: Vec<String> = after_chan
            .into_iter()
            .filter(|id| id[1..].parse::<usize>().is_ok_and(|i| i % 2 == 0))
            .collect();
        assert_eq!(
            remaining(&db),
            odd_gone,
            "every `other` item went, no `chan` item"
        );
        assert_counters_exact(&db);
    }
}

#[test]
fn only_finished_runs_older_than_the_cutoff_are_deleted_with_their_recipient_runs() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        seed(&db);
        conn.execute("DELETE FROM messages WHERE workflow_run_id != 'r5'", [])
            .expect("keep one message");
        for (id, status, updated) in [
            ("old-done", "completed", at(1)),
            ("old-failed", "failed", at(2)),
            ("old-queued", "queued", at(3)),
            ("new-done", "completed", at(30)),
            // Old and finished, but message m05 (run `r5`) still reads its data from it.
            ("r5", "completed", at(4)),
        ] {
            conn.execute(
                "INSERT INTO workflow_runs(id, workflow_key, request, status, inserted_at, updated_at) \
                 VALUES (?1, 'wf', '{}', ?2, ?3, ?3)",
                crate::store::sql::params![id, status, updated],
            )
            .expect("run");
            conn.execute(
                "INSERT INTO workflow_run_data(run_id, data) VALUES (?1, '{}')",
                [id],
            )
            .expect("run data");
            conn.execute(
                "INSERT INTO workflow_recipient_runs(id, workflow_run_id, recipient_kind, recipient_id, status, inserted_at, updated_at) \
                 VALUES (?1, ?2, 'user', 'u1', 'completed', ?3, ?3)",
                crate::store::sql::params![format!("rr-{id}"), id, updated],
            )
            .expect("recipient run");
        }
        assert_eq!(delete_expired_runs(&db, &at(10), 1).expect("delete"), 1);
        assert_eq!(delete_expired_runs(&db, &at(10), 10).expect("delete"), 1);
        assert_eq!(delete_expired_runs(&db, &at(10), 10).expect("delete"), 0);
        let runs: Vec<String> = conn
            .prepare("SELECT id FROM workflow_runs ORDER BY id")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(runs, ["new-done", "old-queued", "r5"]);
        let orphans: i64 = conn
            .query_row(
                "SELECT count(*) FROM workflow_recipient_runs WHERE workflow_run_id NOT IN (SELECT id FROM workflow_runs)",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(orphans, 0);
        let orphaned_data: i64 = conn
            .query_row(
                "SELECT count(*) FROM workflow_run_data WHERE run_id NOT IN (SELECT id FROM workflow_runs)",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(orphaned_data, 0, "a deleted run takes its data along");
    }
}

#[test]
fn a_finished_run_whose_recipients_still_wait_in_a_delay_or_batch_is_kept() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        for (run, recipient_status) in [("waiting", "paused"), ("done", "completed")] {
            conn.execute(
                "INSERT INTO workflow_runs(id, workflow_key, request, status, inserted_at, updated_at) \
                 VALUES (?1, 'wf', '{}', 'completed', ?2, ?2)",
                crate::store::sql::params![run, at(1)],
            )
            .expect("run");
            for (i, status) in ["completed", recipient_status].into_iter().enumerate() {
                conn.execute(
                    "INSERT INTO workflow_recipient_runs(id, workflow_run_id, recipient_kind, recipient_id, status, inserted_at, updated_at) \
                     VALUES (?1, ?2, 'user', ?3, ?4, ?5, ?5)",
                    crate::store::sql::params![format!("rr-{run}-{i}"), run, format!("u{i}"), status, at(1)],
                )
                .expect("recipient run");
            }
        }
        assert_eq!(delete_expired_runs(&db, &at(10), 10).expect("delete"), 1);
        let left: Vec<String> = conn
            .prepare("SELECT id FROM workflow_runs")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(left, ["waiting"]);
        let recipient_runs: i64 = conn
            .query_row(
                "SELECT count(*) FROM workflow_recipient_runs WHERE workflow_run_id = 'waiting'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(recipient_runs, 2);
    }
}

#[test]
fn idempotency_keys_older_than_the_cutoff_go_in_batches() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        for i in 0..5 {
            conn.execute(
                "INSERT INTO idempotency_keys(key, request_hash, workflow_run_id, request_id, inserted_at) \
                 VALUES (?1, 'h', 'r', 'q', ?2)",
                crate::store::sql::params![format!("k{i}"), at(i)],
            )
            .expect("key");
        }
        assert_eq!(
            delete_expired_idempotency_keys(&db, &at(3), 2).expect("d"),
            2
        );
        assert_eq!(
            delete_expired_idempotency_keys(&db, &at(3), 2).expect("d"),
            1
        );
        let left: i64 = conn
            .query_row("SELECT count(*) FROM idempotency_keys", [], |r| r.get(0))
            .expect("count");
        assert_eq!(left, 2);
    }
}

/// Housekeeping deletes (issue 17 item 10): each takes at most `limit` rows, only the
/// expired ones, and repeated calls drain a backlog.
#[test]
fn housekeeping_deletes_go_in_bounded_batches_and_keep_live_rows() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        let old = "2026-01-01T00:00:00.000000Z";
        let new = "2026-01-03T00:00:00.000000Z";
        let cutoff = "2026-01-02T00:00:00.000000Z";
        db.0.execute_batch(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1199)
             INSERT INTO idempotency_keys SELECT 'k' || i, 'h', 'r', 'q', CASE WHEN i < 1100 THEN '{old}' ELSE '{new}' END FROM n;
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 699)
             INSERT INTO engine_gates SELECT 'g' || i, '{old}', CASE WHEN i < 600 THEN '{old}' WHEN i < 650 THEN '{new}' ELSE NULL END, 1 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 9)
             INSERT INTO bulk_operations SELECT 'b' || i, '{{}}', CASE WHEN i < 7 THEN '{old}' ELSE '{new}' END FROM n;
             INSERT INTO workflow_cancellations VALUES ('wf', 'gone', '', '', '', '{old}');"
        ))
        .expect("seed");
        let count = |table: &str| -> i64 {
            db.0.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .expect("count")
        };
        let mut batches = Vec::new();
        loop {
            let n = delete_expired_idempotency_keys(&db, cutoff, 500).expect("keys");
            batches.push(n);
            if n < 500 {
                break;
            }
        }
        assert_eq!(batches, [500, 500, 100]);
        assert_eq!(count("idempotency_keys"), 100, "the fresh ones stay");
        assert_eq!(delete_expired_gates(&db, cutoff, 500).expect("gates"), 500);
        assert_eq!(delete_expired_gates(&db, cutoff, 500).expect("gates"), 100);
        assert_eq!(count("engine_gates"), 100, "open and `once` windows stay");
        assert_eq!(
            delete_expired_bulk_operations(&db, cutoff, 5).expect("bulk"),
            5
        );
        assert_eq!(
            delete_expired_bulk_operations(&db, cutoff, 5).expect("bulk"),
            2
        );
        assert_eq!(count("bulk_operations"), 3);
        assert_eq!(delete_released_cancellations(&db, 500).expect("cancels"), 1);
        assert_eq!(count("workflow_cancellations"), 0);
    }
}
