//! Expiry, snooze and pin writes, and the due rows behind them (issue 21).
//!
//! The due rows are the messages themselves (`expires_at` with `expired = 0`,
//! `snoozed_until`), found through partial indexes (migration 0014): no second row per
//! item, and the claim is the row's own state change, so each fires exactly once.
//!
//! Invariants (with `messages`' counter invariant):
//! - A snoozed item (`snoozed_until` set) and an item whose expiry was applied
//!   (`expired = 1`) contribute nothing to `feed_counters`; every change here moves the
//!   counters by `messages::move_counters(before, after)` in the same transaction (which
//!   touches them only for an item at or below the fold's watermark).
//! - A wake claims its item by clearing `snoozed_until` only where it still holds the
//!   value that was due, so a wake and a re-snooze (or two wakes) never both win.
//! - A woken item gets a `seq` above every other (the head of the feed, a new cursor),
//!   and `sqlite_sequence` moves with it so no later insert reuses a number.

use crate::store::sql::{Dialect, OptionalExtension, params};

use super::messages::{self, MESSAGE_COLUMNS, MessageRow, row_to_message};
use super::{Db, StoreResult, message_status};

fn rows(db: &Db<'_>, sql: &str, p: impl crate::store::sql::Params) -> StoreResult<Vec<MessageRow>> {
    Ok(db
        .0
        .prepare_cached(sql)?
        .query_map(p, row_to_message)?
        .collect::<Result<_, _>>()?)
}

fn earliest(db: &Db<'_>, sql: &str) -> StoreResult<Option<String>> {
    Ok(db
        .0
        .prepare_cached(sql)?
        .query_row([], |row| row.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// Snoozes message `id` until `until` (or moves its wake time); the row after, or `None`
/// for an unknown id. The item leaves every count now.
pub fn snooze(db: &Db<'_>, id: &str, until: &str, now: &str) -> StoreResult<Option<MessageRow>> {
    let Some(before) = messages::get(db, id)? else {
        return Ok(None);
    };
    db.0.prepare_cached("UPDATE messages SET snoozed_until = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, until, now])?;
    let after = MessageRow {
        snoozed_until: Some(until.to_owned()),
        updated_at: now.to_owned(),
        ..before.clone()
    };
    messages::move_counters(db, &before, &after)?;
    Ok(Some(after))
}

/// Wakes message `id` if it is snoozed with `due` (any snooze when `due` is `None`):
/// unread, unseen, at the head of its feed (new `seq`, `inserted_at` = `now`), counted
/// again. `None` when it was not (or no longer) snoozed that way.
pub fn wake(
    db: &Db<'_>,
    id: &str,
    due: Option<&str>,
    now: &str,
) -> StoreResult<Option<MessageRow>> {
    let Some(before) = messages::get(db, id)? else {
        return Ok(None);
    };
    match (&before.snoozed_until, due) {
        (None, _) => return Ok(None),
        (Some(at), Some(due)) if at != due => return Ok(None),
        _ => {}
    }
    let postgres = db.0.dialect() == Dialect::Postgres;
    // PostgreSQL: the sequence itself, which several nodes' inserts draw from at once (a
    // maximum read here could be taken by another node's insert before this commits).
    let seq: i64 =
        db.0.prepare_cached(if postgres {
            "SELECT nextval(pg_get_serial_sequence('messages', 'seq'))"
        } else {
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0), \
             coalesce((SELECT max(seq) FROM messages), 0)) + 1"
        })?
        .query_row([], |row| row.get(0))?;
    db.0.prepare_cached(
        "UPDATE messages SET seq = ?2, snoozed_until = NULL, read_at = NULL, seen_at = NULL, \
         inserted_at = ?3, updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![id, seq, now])?;
    if !postgres {
        db.0.prepare_cached("UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'messages'")?
            .execute([seq])?;
    }
    let after = MessageRow {
        seq,
        snoozed_until: None,
        read_at: None,
        seen_at: None,
        inserted_at: now.to_owned(),
        updated_at: now.to_owned(),
        ..before.clone()
    };
    messages::move_counters(db, &before, &after)?;
    Ok(Some(after))
}

/// The earliest wake time among snoozed items.
pub fn next_wake(db: &Db<'_>) -> StoreResult<Option<String>> {
    earliest(
        db,
        "SELECT min(snoozed_until) FROM messages WHERE snoozed_until IS NOT NULL",
    )
}

/// Up to `limit` snoozed items due at `now`, earliest first: (id, due time).
pub fn due_wakes(db: &Db<'_>, now: &str, limit: usize) -> StoreResult<Vec<(String, String)>> {
    Ok(db
        .0
        .prepare_cached(
            "SELECT id, snoozed_until FROM messages INDEXED BY messages_snooze_due \
             WHERE snoozed_until IS NOT NULL AND snoozed_until <= ?1 ORDER BY snoozed_until LIMIT ?2",
        )?
        .query_map(params![now, limit as i64], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?)
}

/// The earliest expiry not applied yet.
pub fn next_expiry(db: &Db<'_>) -> StoreResult<Option<String>> {
    earliest(
        db,
        "SELECT min(expires_at) FROM messages WHERE expires_at IS NOT NULL AND expired = 0",
    )
}

/// Applies up to `limit` expiries due at `now`, earliest first: each item leaves the
/// counters and is marked `expired`. Returns the rows as they were (for their feeds).
pub fn expire_due(db: &Db<'_>, now: &str, limit: usize) -> StoreResult<Vec<MessageRow>> {
    let due = rows(
        db,
        &format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages INDEXED BY messages_expiry_due \
             WHERE expires_at IS NOT NULL AND expired = 0 AND expires_at <= ?1 \
             ORDER BY expires_at LIMIT ?2"
        ),
        params![now, limit as i64],
    )?;
    for before in &due {
        db.0.prepare_cached("UPDATE messages SET expired = 1 WHERE id = ?1 AND expired = 0")?
            .execute([&before.id])?;
        let after = MessageRow {
            expired: true,
            ..before.clone()
        };
        messages::move_counters(db, before, &after)?;
    }
    Ok(due)
}

/// The earliest expiry among applied ones (the purge is due a grace period after it).
pub fn next_expired(db: &Db<'_>) -> StoreResult<Option<String>> {
    earliest(db, "SELECT min(expires_at) FROM messages WHERE expired = 1")
}

/// Deletes up to `limit` expired items whose expiry is older than `cutoff`; how many.
pub fn purge_expired(db: &Db<'_>, cutoff: &str, limit: usize) -> StoreResult<usize> {
    let gone = rows(
        db,
        &format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages INDEXED BY messages_expired \
             WHERE expired = 1 AND expires_at < ?1 ORDER BY expires_at LIMIT ?2"
        ),
        params![cutoff, limit as i64],
    )?;
    for m in &gone {
        message_status::delete(db, m)?;
    }
    Ok(gone.len())
}

/// Pins (`Some(now)`) or unpins (`None`) message `id`; the row after, `None` for an
/// unknown id. Counts do not move.
pub fn set_pinned(
    db: &Db<'_>,
    id: &str,
    pinned_at: Option<&str>,
    now: &str,
) -> StoreResult<Option<MessageRow>> {
    let Some(before) = messages::get(db, id)? else {
        return Ok(None);
    };
    // Pinning a pinned item keeps its first pin time.
    let pinned_at = match (pinned_at, &before.pinned_at) {
        (Some(_), Some(first)) => Some(first.clone()),
        (p, _) => p.map(str::to_owned),
    };
    db.0.prepare_cached("UPDATE messages SET pinned_at = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, pinned_at, now])?;
    Ok(Some(MessageRow {
        pinned_at,
        updated_at: now.to_owned(),
        ..before
    }))
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
