//! Retention deletes, one bounded batch per call: the caller (`crate::retention`) submits
//! each batch as its own writer command, so a large backlog never holds the writer for
//! more than one batch.
//!
//! Invariants: a row is deleted only when its age timestamp is STRICTLY older than the
//! cutoff the caller computed (never one newer than the limit), and every message goes
//! through `message_status::delete`, which takes its contribution out of `feed_counters`
//! in the same transaction, so badge counts stay exact.

use crate::store::sql::Value as Sql;
use crate::store::sql::params_from_iter;

use super::messages::{MESSAGE_COLUMNS, MessageRow, row_to_message};
use super::{Db, StoreResult, message_status};

/// Which age a message rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// Since the item was created (`inserted_at`).
    Inserted,
    /// Since the item was archived (`archived_at`); unarchived items never match.
    Archived,
}

/// Which channels a message rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channels {
    /// Exactly this channel (by id).
    Only(String),
    /// Every channel except these (the ones with their own rule).
    AllExcept(Vec<String>),
}

/// Deletes up to `limit` messages whose `age` timestamp is older than `cutoff`, oldest
/// first, keeping the counters exact. Returns how many were deleted (less than `limit`
/// means nothing more is expired).
pub fn delete_expired_messages(
    db: &Db<'_>,
    age: Age,
    channels: &Channels,
    cutoff: &str,
    limit: usize,
) -> StoreResult<usize> {
    let column = match age {
        Age::Inserted => "inserted_at",
        Age::Archived => "archived_at",
    };
    let mut params = vec![Sql::Text(cutoff.to_owned())];
    let channel_sql = match channels {
        Channels::Only(id) => {
            params.push(Sql::Text(id.clone()));
            " AND channel_id = ?".to_owned()
        }
        Channels::AllExcept(ids) if ids.is_empty() => String::new(),
        Channels::AllExcept(ids) => {
            params.extend(ids.iter().map(|id| Sql::Text(id.clone())));
            format!(
                " AND channel_id NOT IN ({})",
                vec!["?"; ids.len()].join(", ")
            )
        }
    };
    params.push(Sql::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages \
         WHERE {column} IS NOT NULL AND {column} < ?{channel_sql} ORDER BY {column} LIMIT ?"
    );
    let rows: Vec<MessageRow> =
        db.0.prepare_cached(&sql)?
            .query_map(params_from_iter(params.iter()), row_to_message)?
            .collect::<Result<_, _>>()?;
    for row in &rows {
        message_status::delete(db, row)?;
    }
    Ok(rows.len())
}

/// Run states that are final: a run in one of them has nothing left to do.
const FINISHED_RUNS: &str = "('completed', 'failed', 'cancelled')";

/// Recipient-run states that still have work ahead: a delay timer or an open batch that
/// will resume the recipient from its run's request.
const WAITING_RECIPIENT_RUNS: &str = "('queued', 'processing', 'paused')";

/// Deletes up to `limit` finished workflow runs last updated before `cutoff`, with their
/// recipient runs. Queued or waiting runs are never touched, nor a run any stored message
/// still belongs to: messages read their shared `data` from their run (`workflow_run_data`,
/// `messages::DATA_SQL`), so a run lives as long as its items. A run is `completed` once
/// its last audience page is written, while some recipients may still wait in a long
/// delay or batch that resumes from the run's request: such a run stays until they finish.
/// Returns how many went.
pub fn delete_expired_runs(db: &Db<'_>, cutoff: &str, limit: usize) -> StoreResult<usize> {
    let ids: Vec<String> =
        db.0.prepare_cached(&format!(
            "SELECT id FROM workflow_runs r WHERE updated_at < ?1 AND status IN {FINISHED_RUNS} \
             AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.workflow_run_id = r.id) \
             AND NOT EXISTS (SELECT 1 FROM workflow_recipient_runs w \
                             WHERE w.workflow_run_id = r.id AND w.status IN {WAITING_RECIPIENT_RUNS}) \
             ORDER BY updated_at LIMIT ?2"
        ))?
        .query_map(
            crate::store::sql::params![cutoff, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    for id in &ids {
        db.0.prepare_cached("DELETE FROM workflow_recipient_runs WHERE workflow_run_id = ?1")?
            .execute([id])?;
        db.0.prepare_cached("DELETE FROM workflow_run_data WHERE run_id = ?1")?
            .execute([id])?;
        db.0.prepare_cached("DELETE FROM workflow_run_data_values WHERE run_id = ?1")?
            .execute([id])?;
        db.0.prepare_cached("DELETE FROM workflow_runs WHERE id = ?1")?
            .execute([id])?;
    }
    Ok(ids.len())
}

/// Deletes up to `limit` idempotency keys stored before `cutoff` (through
/// `idempotency_keys_inserted`, so a batch costs the same however many keys wait).
pub fn delete_expired_idempotency_keys(
    db: &Db<'_>,
    cutoff: &str,
    limit: usize,
) -> StoreResult<usize> {
    Ok(db
        .0
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE key IN \
             (SELECT key FROM idempotency_keys WHERE inserted_at < ?1 ORDER BY inserted_at LIMIT ?2)",
        )?
        .execute(crate::store::sql::params![cutoff, sql_limit(limit)])?)
}

/// Deletes up to `limit` throttle / `trigger_frequency` windows that closed before `now`.
/// A closed window decides nothing: the next pass through its gate opens a new one
/// (`timers::gate_pass`). Gates that never close (`once`) are kept.
pub fn delete_expired_gates(db: &Db<'_>, now: &str, limit: usize) -> StoreResult<usize> {
    Ok(db
        .0
        .prepare_cached(
            "DELETE FROM engine_gates WHERE key IN \
             (SELECT key FROM engine_gates WHERE closes_at IS NOT NULL AND closes_at < ?1 \
              ORDER BY closes_at LIMIT ?2)",
        )?
        .execute(crate::store::sql::params![now, sql_limit(limit)])?)
}

/// Deletes up to `limit` bulk operations recorded before `cutoff` (every stored operation
/// is finished: `store::bulk` records them completed).
pub fn delete_expired_bulk_operations(
    db: &Db<'_>,
    cutoff: &str,
    limit: usize,
) -> StoreResult<usize> {
    Ok(db
        .0
        .prepare_cached(
            "DELETE FROM bulk_operations WHERE id IN \
             (SELECT id FROM bulk_operations WHERE inserted_at < ?1 ORDER BY inserted_at LIMIT ?2)",
        )?
        .execute(crate::store::sql::params![cutoff, sql_limit(limit)])?)
}

/// Deletes up to `limit` released cancellations: rows of `workflow_cancellations` that
/// cover no queued run any more (the test of the trigger that releases them when a run
/// leaves `queued`; a row outlives it when its runs went another way, e.g. deleted with
/// their recipient). Such a row can never match again: runs are inserted after it.
pub fn delete_released_cancellations(db: &Db<'_>, limit: usize) -> StoreResult<usize> {
    Ok(db
        .0
        .prepare_cached(
            "DELETE FROM workflow_cancellations WHERE (workflow_key, cancellation_key, \
             recipient_kind, recipient_collection, recipient_id) IN \
             (SELECT c.workflow_key, c.cancellation_key, c.recipient_kind, c.recipient_collection, \
              c.recipient_id FROM workflow_cancellations c WHERE NOT EXISTS \
              (SELECT 1 FROM workflow_runs r WHERE r.workflow_key = c.workflow_key \
               AND r.cancellation_key = c.cancellation_key AND r.status = 'queued' \
               AND r.inserted_at <= c.created_at) LIMIT ?1)",
        )?
        .execute([sql_limit(limit)])?)
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
