//! Open batches and their activities (the durable half of the engine's batch step).
//!
//! Invariants:
//! - At most one batch per identity is `open` (a unique partial index).
//! - Joining a batch (a new batch, or an activity appended to an open one) is written by
//!   the caller's transaction that also writes the joining recipient run.
//! - [`close`] deletes an open batch (and its activities) and reports whether it was
//!   still there; the caller writes the continuing run in the same transaction, so each
//!   batch closes exactly once, also across a crash.
//! - A cancelled run's activity is marked `cancelled` and never counted or rendered.

use crate::store::sql::{OptionalExtension, params};
use serde_json::Value;

use super::{Db, StoreResult};
use crate::model::RecipientRef;

/// An open batch as a join sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenBatch {
    pub id: String,
    pub opened_at: String,
    pub closes_at: String,
    pub extend_until: Option<String>,
}

/// A batch to open.
#[derive(Debug, Clone)]
pub struct NewBatch<'a> {
    pub id: &'a str,
    pub identity: &'a str,
    pub opened_at: &'a str,
    pub closes_at: &'a str,
    pub extend_until: Option<&'a str>,
    pub settings: &'a Value,
}

/// One activity of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRow {
    pub seq: i64,
    pub recipient_run: String,
    pub id: String,
    pub actor: Option<RecipientRef>,
    pub data: Value,
    pub inserted_at: String,
}

/// The open batch of `identity`, if any.
pub fn find_open(db: &Db<'_>, identity: &str) -> StoreResult<Option<OpenBatch>> {
    Ok(db
        .0
        .prepare_cached(
            "SELECT id, opened_at, closes_at, extend_until FROM batches \
             WHERE identity = ?1 AND status = 'open'",
        )?
        .query_row([identity], |row| {
            Ok(OpenBatch {
                id: row.get(0)?,
                opened_at: row.get(1)?,
                closes_at: row.get(2)?,
                extend_until: row.get(3)?,
            })
        })
        .optional()?)
}

/// Opens a batch (the caller checked none is open for its identity).
pub fn open(db: &Db<'_>, b: &NewBatch<'_>) -> StoreResult<()> {
    db.0.prepare_cached(
        "INSERT INTO batches(id, identity, status, opened_at, closes_at, extend_until, settings) \
         VALUES (?1, ?2, 'open', ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        b.id,
        b.identity,
        b.opened_at,
        b.closes_at,
        b.extend_until,
        serde_json::to_string(b.settings)?
    ])?;
    Ok(())
}

/// Appends an activity for `recipient_run` (`id`: the activity's id) to `batch_id`.
pub fn add_activity(
    db: &Db<'_>,
    batch_id: &str,
    recipient_run: &str,
    id: &str,
    actor: Option<&RecipientRef>,
    data: &Value,
    inserted_at: &str,
) -> StoreResult<()> {
    db.0.prepare_cached(
        "INSERT INTO batch_activities(batch_id, recipient_run, id, actor, data, inserted_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        batch_id,
        recipient_run,
        id,
        actor.map(serde_json::to_string).transpose()?,
        serde_json::to_string(data)?,
        inserted_at
    ])?;
    Ok(())
}

/// Moves the close of an open batch.
pub fn set_closes_at(db: &Db<'_>, batch_id: &str, closes_at: &str) -> StoreResult<()> {
    db.0.prepare_cached("UPDATE batches SET closes_at = ?2 WHERE id = ?1 AND status = 'open'")?
        .execute(params![batch_id, closes_at])?;
    Ok(())
}

/// (number of live activities, highest activity `seq`) of a batch: what a close read,
/// so the close write can tell whether anything joined or left meanwhile.
pub fn fingerprint(db: &Db<'_>, batch_id: &str) -> StoreResult<(i64, i64)> {
    Ok(db
        .0
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM batch_activities \
             WHERE batch_id = ?1 AND cancelled = 0",
        )?
        .query_row([batch_id], |row| Ok((row.get(0)?, row.get(1)?)))?)
}

/// The earliest close among open batches.
pub fn earliest_due(db: &Db<'_>) -> StoreResult<Option<String>> {
    Ok(db
        .0
        .prepare_cached(
            "SELECT closes_at FROM batches WHERE status = 'open' ORDER BY closes_at LIMIT 1",
        )?
        .query_row([], |row| row.get(0))
        .optional()?)
}

/// Up to `limit` open batches due at `now`, earliest first: (id, settings).
pub fn due(db: &Db<'_>, now: &str, limit: usize) -> StoreResult<Vec<(String, Value)>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT id, settings FROM batches WHERE status = 'open' AND closes_at <= ?1 \
         ORDER BY closes_at LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit as i64], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, settings) = row?;
        out.push((id, serde_json::from_str(&settings)?));
    }
    Ok(out)
}

fn activity_row(
    row: &crate::store::sql::Row<'_>,
) -> crate::store::sql::Result<(i64, String, String, Option<String>, String, String)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

/// Up to `limit` live activities of a batch, oldest first (`newest_first` reverses).
pub fn activities(
    db: &Db<'_>,
    batch_id: &str,
    newest_first: bool,
    limit: usize,
) -> StoreResult<Vec<ActivityRow>> {
    let sql = if newest_first {
        "SELECT seq, recipient_run, id, actor, data, inserted_at FROM batch_activities \
         WHERE batch_id = ?1 AND cancelled = 0 ORDER BY seq DESC LIMIT ?2"
    } else {
        "SELECT seq, recipient_run, id, actor, data, inserted_at FROM batch_activities \
         WHERE batch_id = ?1 AND cancelled = 0 ORDER BY seq LIMIT ?2"
    };
    let mut stmt = db.0.prepare_cached(sql)?;
    let rows = stmt.query_map(params![batch_id, limit as i64], activity_row)?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, recipient_run, id, actor, data, inserted_at) = row?;
        out.push(ActivityRow {
            seq,
            recipient_run,
            id,
            actor: actor.map(|a| serde_json::from_str(&a)).transpose()?,
            data: serde_json::from_str(&data)?,
            inserted_at,
        });
    }
    Ok(out)
}

/// The distinct actors of a batch's live activities in order of first appearance (up to
/// `limit`), and how many distinct actors there are.
pub fn actors(db: &Db<'_>, batch_id: &str, limit: usize) -> StoreResult<(Vec<RecipientRef>, i64)> {
    let total: i64 =
        db.0.prepare_cached(
            "SELECT COUNT(DISTINCT actor) FROM batch_activities \
             WHERE batch_id = ?1 AND cancelled = 0 AND actor IS NOT NULL",
        )?
        .query_row([batch_id], |row| row.get(0))?;
    let mut stmt = db.0.prepare_cached(
        "SELECT actor FROM batch_activities WHERE batch_id = ?1 AND cancelled = 0 AND actor IS NOT NULL \
         GROUP BY actor ORDER BY MIN(seq) LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![batch_id, limit as i64], |row| {
        row.get::<_, String>(0)
    })?;
    let mut list = Vec::new();
    for row in rows {
        list.push(serde_json::from_str(&row?)?);
    }
    Ok((list, total))
}

/// The recipient runs of a batch's live activities, oldest first.
pub fn live_runs(db: &Db<'_>, batch_id: &str) -> StoreResult<Vec<String>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT recipient_run FROM batch_activities WHERE batch_id = ?1 AND cancelled = 0 ORDER BY seq",
    )?;
    let rows = stmt.query_map([batch_id], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Claims a batch's close: `true` when it was still open (the caller now owns it). The
/// batch and its activities are deleted: the message it produces carries what it shows,
/// so closed batches cost no storage.
pub fn close(db: &Db<'_>, batch_id: &str) -> StoreResult<bool> {
    let claimed =
        db.0.prepare_cached("DELETE FROM batches WHERE id = ?1 AND status = 'open'")?
            .execute([batch_id])?
            == 1;
    if claimed {
        db.0.prepare_cached("DELETE FROM batch_activities WHERE batch_id = ?1")?
            .execute([batch_id])?;
    }
    Ok(claimed)
}

/// Removes `recipient_run`'s activity from any OPEN batch (a cancel); the window stays.
pub fn cancel_activity(db: &Db<'_>, recipient_run: &str) -> StoreResult<usize> {
    Ok(db
        .0
        .prepare_cached(
            "UPDATE batch_activities SET cancelled = 1 WHERE recipient_run = ?1 AND cancelled = 0 \
             AND batch_id IN (SELECT id FROM batches WHERE status = 'open')",
        )?
        .execute([recipient_run])?)
}

/// Number of open batches (tests).
#[cfg(test)]
pub fn open_count(db: &Db<'_>) -> StoreResult<u64> {
    Ok(db
        .0
        .prepare_cached("SELECT COUNT(*) FROM batches WHERE status = 'open'")?
        .query_row([], |row| row.get(0))?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::migrations;

    fn open_db() -> crate::store::sql::Conn {
        let mut conn = rusqlite::Connection::open_in_memory().expect("memory db");
        conn.pragma_update(None, "foreign_keys", "ON").expect("fk");
        migrations::apply(&mut conn).expect("migrations");
        conn.into()
    }

    #[test]
    fn one_open_batch_per_identity_cancels_leave_it_open_and_close_claims_once() {
        let conn = open_db();
        let db = Db::on(&conn);
        let settings = json!({"render_limit": 2, "order": "asc"});
        let batch = NewBatch {
            id: "b1",
            identity: "wf\u{1f}s\u{1f}user::u\u{1f}\u{1f}",
            opened_at: "2026-03-01T09:00:00.000000Z",
            closes_at: "2026-03-01T09:05:00.000000Z",
            extend_until: None,
            settings: &settings,
        };
        open(&db, &batch).expect("open");
        assert!(
            open(
                &db,
                &NewBatch {
                    id: "b2",
                    ..batch.clone()
                }
            )
            .is_err(),
            "a second open batch"
        );
        let found = find_open(&db, batch.identity).expect("find").expect("open");
        assert_eq!(found.id, "b1");
        let al = RecipientRef::User("al".into());
        let bo = RecipientRef::User("bo".into());
        for (rr, actor, n) in [("rr1", &al, 1), ("rr2", &bo, 2), ("rr3", &al, 3)] {
            add_activity(
                &db,
                "b1",
                rr,
                &format!("a{n}"),
                Some(actor),
                &json!({"n": n}),
                "t",
            )
            .expect("add");
        }
        assert_eq!(fingerprint(&db, "b1").expect("fp").0, 3);
        assert_eq!(cancel_activity(&db, "rr1").expect("cancel"), 1);
        assert_eq!(live_runs(&db, "b1").expect("runs"), ["rr2", "rr3"]);
        let newest = activities(&db, "b1", true, 1).expect("newest");
        assert_eq!(newest[0].data, json!({"n": 3}));
        assert_eq!(actors(&db, "b1", 10).expect("actors"), (vec![bo, al], 2));
        assert_eq!(
            earliest_due(&db).expect("due").as_deref(),
            Some(batch.closes_at)
        );
        assert_eq!(
            due(&db, "2026-03-01T09:04:59.000000Z", 10)
                .expect("due")
                .len(),
            0
        );
        assert_eq!(due(&db, batch.closes_at, 10).expect("due").len(), 1);
        assert!(close(&db, "b1").expect("close"));
        assert!(
            !close(&db, "b1").expect("close twice"),
            "a close is claimed once"
        );
        assert_eq!(open_count(&db).expect("count"), 0);
        assert_eq!(
            fingerprint(&db, "b1").expect("fp"),
            (0, 0),
            "activities went too"
        );
        assert_eq!(cancel_activity(&db, "rr2").expect("cancel"), 0);
    }
}
