//! Cancels recorded for runs whose fan-out has not finished (`workflow_cancellations`),
//! so a cancel that arrives before a recipient run reaches its pause still cancels it.
//!
//! Invariants:
//! - A cancel records a row only while a `queued` run of its workflow and key, inserted
//!   at or before the cancel, exists; a run leaving `queued` drops the rows no other
//!   queued run needs (migration 0011's trigger). The table stays as small as the
//!   backlog's cancelled keys.
//! - Both the record and [`covering`] run inside writer transactions, and a run's
//!   `inserted_at` and a row's `created_at` come from the same clock (`Db::now`) read
//!   in the writer, so "inserted at or before the cancel" is commit order: a cancel never
//!   reaches a run triggered after it.

use crate::store::sql::{OptionalExtension, params};

use super::{Db, StoreResult};
use crate::model::RecipientRef;

/// Records the cancel of `workflow_key` + `cancellation_key` (for `recipients`, or every
/// recipient when `None`) if a queued run it covers exists. Returns whether it did. A
/// repeated cancel moves `created_at` forward, so it also covers runs triggered since.
pub fn record(
    db: &Db<'_>,
    workflow_key: &str,
    cancellation_key: &str,
    recipients: Option<&[RecipientRef]>,
) -> StoreResult<bool> {
    let now = db.now();
    let pending: Option<i64> =
        db.0.prepare_cached(
            "SELECT 1 FROM workflow_runs WHERE workflow_key = ?1 AND cancellation_key = ?2 \
             AND status = 'queued' AND inserted_at <= ?3 LIMIT 1",
        )?
        .query_row(params![workflow_key, cancellation_key, now], |row| {
            row.get(0)
        })
        .optional()?;
    if pending.is_none() {
        return Ok(false);
    }
    let mut insert = db.0.prepare_cached(
        "INSERT INTO workflow_cancellations(workflow_key, cancellation_key, recipient_kind, \
         recipient_collection, recipient_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT(workflow_key, cancellation_key, recipient_kind, recipient_collection, recipient_id) \
         DO UPDATE SET created_at = CASE WHEN excluded.created_at > workflow_cancellations.created_at \
         THEN excluded.created_at ELSE workflow_cancellations.created_at END",
    )?;
    match recipients {
        None => {
            insert.execute(params![workflow_key, cancellation_key, "", "", "", now])?;
        }
        Some(list) => {
            for r in list {
                insert.execute(params![
                    workflow_key,
                    cancellation_key,
                    r.kind(),
                    r.collection(),
                    r.id(),
                    now
                ])?;
            }
        }
    }
    Ok(true)
}

/// The run's cancellation key when a recorded cancel covers `recipient` in run `run_id`
/// (same workflow and key, for that recipient or all, recorded at or after the run's
/// insert); `None` otherwise.
pub fn covering(
    db: &Db<'_>,
    run_id: &str,
    recipient: &RecipientRef,
) -> StoreResult<Option<String>> {
    Ok(db
        .0
        .prepare_cached(
            "SELECT r.cancellation_key FROM workflow_runs r JOIN workflow_cancellations c \
             ON c.workflow_key = r.workflow_key AND c.cancellation_key = r.cancellation_key \
             WHERE r.id = ?1 AND c.created_at >= r.inserted_at \
             AND ((c.recipient_kind = '' AND c.recipient_collection = '' AND c.recipient_id = '') \
               OR (c.recipient_kind = ?2 AND c.recipient_collection = ?3 AND c.recipient_id = ?4)) \
             LIMIT 1",
        )?
        .query_row(
            params![
                run_id,
                recipient.kind(),
                recipient.collection(),
                recipient.id()
            ],
            |row| row.get(0),
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::{self, NewRun};
    use serde_json::json;

    fn run(db: &Db<'_>, id: &str, key: Option<&str>) {
        runs::insert_run(
            db,
            &NewRun {
                id: id.into(),
                workflow_key: "wf".into(),
                request: json!({"recipients": ["u1", "u2"]}),
                cancellation_key: key.map(str::to_owned),
                tenant: None,
            },
        )
        .expect("run");
    }

    fn rows(conn: &crate::store::sql::Conn) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM workflow_cancellations", [], |r| {
            r.get(0)
        })
        .expect("count")
    }

    fn user(id: &str) -> RecipientRef {
        RecipientRef::User(id.into())
    }

    #[test]
    fn a_cancel_without_a_queued_run_of_its_key_records_nothing() {
        for test_db in crate::store::test_engines::engines() {
            eprintln!("engine: {}", test_db.engine);
            let conn = &test_db.conn;
            let db = Db::on(conn);
            assert!(!record(&db, "wf", "ck", None).expect("record"));
            run(&db, "r1", Some("other"));
            assert!(!record(&db, "wf", "ck", None).expect("record"));
            run(&db, "r2", Some("ck"));
            runs::set_run_status(&db, "r2", "completed").expect("done");
            assert!(!record(&db, "wf", "ck", None).expect("record"));
            assert_eq!(rows(conn), 0);
        }
    }

    #[test]
    fn a_cancel_covers_its_recipients_of_runs_triggered_before_it_only() {
        for test_db in crate::store::test_engines::engines() {
            eprintln!("engine: {}", test_db.engine);
            let conn = &test_db.conn;
            let db = Db::on(conn);
            run(&db, "r1", Some("ck"));
            assert!(record(&db, "wf", "ck", Some(&[user("u1")])).expect("record"));
            run(&db, "r2", Some("ck"));
            assert!(covering(&db, "r1", &user("u1")).expect("u1").is_some());
            assert!(covering(&db, "r1", &user("u2")).expect("u2").is_none());
            assert!(
                covering(&db, "r2", &user("u1"))
                    .expect("later run")
                    .is_none(),
                "a run triggered after the cancel is not cancelled by it"
            );
            assert!(record(&db, "wf", "ck", None).expect("all"));
            assert!(
                covering(&db, "r1", &user("u2"))
                    .expect("all covers u2")
                    .is_some()
            );
            assert!(
                covering(&db, "r2", &user("u1"))
                    .expect("repeat covers r2")
                    .is_some()
            );
        }
    }

    #[test]
    fn rows_are_released_when_no_queued_run_of_their_key_remains() {
        for test_db in crate::store::test_engines::engines() {
            eprintln!("engine: {}", test_db.engine);
            let conn = &test_db.conn;
            let db = Db::on(conn);
            run(&db, "r1", Some("ck"));
            run(&db, "r2", Some("ck"));
            assert!(record(&db, "wf", "ck", None).expect("record"));
            assert!(record(&db, "wf", "ck", Some(&[user("u1")])).expect("record"));
            assert_eq!(rows(conn), 2);
            runs::set_run_status(&db, "r1", "completed").expect("r1 done");
            assert_eq!(rows(conn), 2, "r2 still needs them");
            runs::set_run_status(&db, "r2", "failed").expect("r2 done");
            assert_eq!(rows(conn), 0);
        }
    }
}
