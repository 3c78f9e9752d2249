//! Timers and paused recipient runs (the durable half of the engine's scheduler).
//!
//! Invariants:
//! - A paused recipient run, its `resume` state and its timer are written in one
//!   transaction (the caller's write).
//! - [`claim`] deletes a timer and reports whether it was still there; the caller records
//!   the fired work in the same transaction, so each timer fires exactly once, and a
//!   cancel (which deletes the timer) and a firing can never both win.

use crate::store::sql::{OptionalExtension, params};
use serde_json::Value;

use super::{Db, StoreResult};
use crate::model::RecipientRef;

/// A timer kind: a paused recipient run resumes (target = recipient run id).
pub const RESUME: &str = "resume";

/// One due item.
#[derive(Debug, Clone, PartialEq)]
pub struct Timer {
    pub id: i64,
    pub due_at: String,
    pub kind: String,
    pub target: String,
}

/// Sets (or moves) the timer of (`kind`, `target`) to `due_at`.
pub fn set(db: &Db<'_>, kind: &str, target: &str, due_at: &str) -> StoreResult<()> {
    db.0.prepare_cached(
        "INSERT INTO timers(due_at, kind, target) VALUES (?1, ?2, ?3) \
         ON CONFLICT(kind, target) DO UPDATE SET due_at = excluded.due_at",
    )?
    .execute(params![due_at, kind, target])?;
    Ok(())
}

/// The earliest due time, if any timer is pending.
pub fn earliest(db: &Db<'_>) -> StoreResult<Option<String>> {
    Ok(db
        .0
        .prepare_cached("SELECT due_at FROM timers ORDER BY due_at, id LIMIT 1")?
        .query_row([], |row| row.get(0))
        .optional()?)
}

/// Up to `limit` timers due at or before `now`, earliest first.
pub fn due(db: &Db<'_>, now: &str, limit: usize) -> StoreResult<Vec<Timer>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT id, due_at, kind, target FROM timers WHERE due_at <= ?1 ORDER BY due_at, id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit as i64], |row| {
        Ok(Timer {
            id: row.get(0)?,
            due_at: row.get(1)?,
            kind: row.get(2)?,
            target: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes timer `id`; `true` when it was still pending (the caller now owns firing it).
pub fn claim(db: &Db<'_>, id: i64) -> StoreResult<bool> {
    Ok(db
        .0
        .prepare_cached("DELETE FROM timers WHERE id = ?1")?
        .execute([id])?
        == 1)
}

/// Deletes the timer of (`kind`, `target`), if any.
pub fn remove(db: &Db<'_>, kind: &str, target: &str) -> StoreResult<bool> {
    Ok(db
        .0
        .prepare_cached("DELETE FROM timers WHERE kind = ?1 AND target = ?2")?
        .execute(params![kind, target])?
        == 1)
}

/// A recipient run as the resume path needs it.
#[derive(Debug, Clone)]
pub struct RecipientRun {
    pub workflow_run_id: String,
    pub recipient: RecipientRef,
    pub status: String,
    pub resume: Option<Value>,
}

pub fn get_recipient_run(db: &Db<'_>, id: &str) -> StoreResult<Option<RecipientRun>> {
    db.0.prepare_cached(
        "SELECT id, workflow_run_id, recipient_kind, recipient_collection, recipient_id, status, resume \
         FROM workflow_recipient_runs WHERE id = ?1",
    )?
    .query_row([id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            RecipientRef::from_stored(
                &row.get::<_, String>(2)?,
                &row.get::<_, String>(3)?,
                &row.get::<_, String>(4)?,
            ),
            row.get::<_, String>(5)?,
            row.get::<_, Option<String>>(6)?,
        ))
    })
    .optional()?
    .map(|(_id, workflow_run_id, recipient, status, resume)| {
        Ok(RecipientRun {
            workflow_run_id,
            recipient,
            status,
            resume: resume.map(|r| serde_json::from_str(&r)).transpose()?,
        })
    })
    .transpose()
}

/// Appends `events` to recipient run `id` and sets its `status` and `resume` state.
pub fn update_recipient_run(
    db: &Db<'_>,
    id: &str,
    status: &str,
    events: &[Value],
    resume: Option<&Value>,
) -> StoreResult<()> {
    let old: String =
        db.0.prepare_cached("SELECT events FROM workflow_recipient_runs WHERE id = ?1")?
            .query_row([id], |row| row.get(0))?;
    let mut all: Vec<Value> = serde_json::from_str(&old)?;
    all.extend(events.iter().cloned());
    db.0.prepare_cached(
        "UPDATE workflow_recipient_runs SET status = ?2, events = ?3, resume = ?4, updated_at = ?5 WHERE id = ?1",
    )?
    .execute(params![
        id,
        status,
        serde_json::to_string(&all)?,
        resume.map(serde_json::to_string).transpose()?,
        db.now()
    ])?;
    Ok(())
}

/// Paused recipient runs of `workflow_key` triggered with `cancellation_key`, optionally
/// only those of `recipients`.
pub fn paused_by_cancellation_key(
    db: &Db<'_>,
    workflow_key: &str,
    cancellation_key: &str,
    recipients: Option<&[RecipientRef]>,
) -> StoreResult<Vec<String>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT rr.id, rr.recipient_kind, rr.recipient_collection, rr.recipient_id \
         FROM workflow_runs r JOIN workflow_recipient_runs rr ON rr.workflow_run_id = r.id \
         WHERE r.workflow_key = ?1 AND r.cancellation_key = ?2 AND rr.status = 'paused'",
    )?;
    let rows = stmt.query_map(params![workflow_key, cancellation_key], |row| {
        Ok((
            row.get::<_, String>(0)?,
            RecipientRef::from_stored(
                &row.get::<_, String>(1)?,
                &row.get::<_, String>(2)?,
                &row.get::<_, String>(3)?,
            ),
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, recipient) = row?;
        if recipients.is_none_or(|list| list.contains(&recipient)) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Passes gate `key` (see `engine::walk::Gate`) if it is open: fewer than `limit` passes
/// in its current window, or no window (then one opens now, closing at `closes_at`; none
/// = never). Records the pass. `false` = closed.
pub fn gate_pass(
    db: &Db<'_>,
    key: &str,
    limit: u32,
    closes_at: Option<&str>,
    now: &str,
) -> StoreResult<bool> {
    let row: Option<(i64, Option<String>)> =
        db.0.prepare_cached("SELECT count, closes_at FROM engine_gates WHERE key = ?1")?
            .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
    match row {
        Some((count, open_until)) if open_until.as_deref().is_none_or(|c| c > now) => {
            if count >= i64::from(limit) {
                return Ok(false);
            }
            db.0.prepare_cached("UPDATE engine_gates SET count = count + 1 WHERE key = ?1")?
                .execute([key])?;
        }
        _ => {
            db.0.prepare_cached(
                "INSERT INTO engine_gates(key, opened_at, closes_at, count) VALUES (?1, ?2, ?3, 1) \
                 ON CONFLICT(key) DO UPDATE SET opened_at = excluded.opened_at, \
                 closes_at = excluded.closes_at, count = 1",
            )?
            .execute(params![key, now, closes_at])?;
        }
    }
    Ok(true)
}
