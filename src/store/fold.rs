//! The fold: moves the messages past the watermark into `feed_counters`, a bounded chunk
//! per call (migration 0020 describes the tables).
//!
//! Why: a delivered item then writes its message row and nothing else; the counter rows
//! are updated later, once per (feed, tenant) of a chunk instead of once per item, in
//! key order.
//!
//! Invariants:
//! - `feed_counters` covers exactly the messages with `seq <= folded_through`; a badge
//!   adds the tail above it live (`feeds::counts_from_counters`), so it is exact whenever
//!   the fold runs, or whether it runs at all.
//! - One call aggregates the messages in `(folded_through, end]` by their current state,
//!   upserts the counters and moves the watermark to `end`, all in the caller's (the
//!   writer's) transaction: a crash leaves either the chunk folded or not, never half.
//! - Messages only ever get a `seq` above every existing one (`AUTOINCREMENT`, and a wake
//!   takes the next number), so nothing appears below the watermark after it moved.

use super::{Db, StoreResult};

/// Most sequence numbers (so at most this many messages) one call folds: about the cost
/// of one fan-out page in the writer's bulk lane.
pub const CHUNK: i64 = 5_000;

/// How far the fold has come: the watermark and the newest message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub folded_through: i64,
    pub newest: i64,
}

impl Progress {
    /// Messages (at most; sequence numbers have gaps) still in the tail.
    pub fn unfolded(&self) -> i64 {
        (self.newest - self.folded_through).max(0)
    }
}

/// The watermark and the newest message's `seq` (two index edges, cheap on a reader).
pub fn progress(db: &Db<'_>) -> StoreResult<Progress> {
    Ok(db.0.prepare_cached(
        "SELECT (SELECT folded_through FROM feed_fold), coalesce((SELECT max(seq) FROM messages), 0)",
    )?
    .query_row([], |r| {
        Ok(Progress {
            folded_through: r.get(0)?,
            newest: r.get(1)?,
        })
    })?)
}

/// Folds the messages in `(folded_through, folded_through + limit]` (up to the newest)
/// and moves the watermark past them. Returns the progress after it.
pub fn fold(db: &Db<'_>, limit: i64) -> StoreResult<Progress> {
    // Several nodes' writers: wait out every other open write transaction first, so
    // each sequence number up to the newest is committed (or gone) and no status change
    // lands between this read and the watermark's move (see `Conn::begin`).
    db.0.exclude_other_writers()?;
    let before = progress(db)?;
    if before.unfolded() == 0 {
        return Ok(before);
    }
    let end = before
        .folded_through
        .saturating_add(limit.max(1))
        .min(before.newest);
    // One row per (feed, tenant) of the chunk, even when it counts nothing: a counter row
    // also says the recipient had items in that tenant (`recipients::objects`).
    // `count(*) FILTER`, native on both engines, not `sum(flag)`: PostgreSQL runs
    // `sum(boolean)` through an aggregate written in SQL, a function call per row.
    db.0.prepare_cached(
        "INSERT INTO feed_counters(feed, tenant, total, unread, unseen) \
         SELECT feed, coalesce(tenant, ''), count(*) FILTER (WHERE counted), \
         count(*) FILTER (WHERE counted AND read_at IS NULL), \
         count(*) FILTER (WHERE counted AND seen_at IS NULL) FROM \
         (SELECT feed, tenant, read_at, seen_at, \
          (archived_at IS NULL AND snoozed_until IS NULL AND expired = 0) AS counted \
          FROM messages WHERE seq > ?1 AND seq <= ?2) AS chunk \
         WHERE true GROUP BY feed, coalesce(tenant, '') \
         ON CONFLICT(feed, tenant) DO UPDATE SET total = feed_counters.total + excluded.total, \
         unread = feed_counters.unread + excluded.unread, unseen = feed_counters.unseen + excluded.unseen",
    )?
    .execute([before.folded_through, end])?;
    db.0.prepare_cached("UPDATE feed_fold SET folded_through = ?1")?
        .execute([end])?;
    Ok(Progress {
        folded_through: end,
        newest: before.newest,
    })
}

/// Every feed's badges as (channel, recipient id, tenant, total, unread, unseen): the
/// counter rows plus the tail, all-zero rows left out; for tests to compare with a recount.
#[cfg(test)]
pub(crate) const BADGES_SQL: &str = "SELECT channel_id, recipient_id, tenant, sum(total), sum(unread), sum(unseen) FROM ( \
     SELECT f.channel_id, f.recipient_id, c.tenant, c.total, c.unread, c.unseen \
     FROM feed_counters c JOIN feeds f ON f.id = c.feed \
     UNION ALL SELECT channel_id, recipient_id, coalesce(tenant, ''), 1, \
     CASE WHEN read_at IS NULL THEN 1 ELSE 0 END, CASE WHEN seen_at IS NULL THEN 1 ELSE 0 END \
     FROM messages WHERE seq > (SELECT folded_through FROM feed_fold) \
     AND archived_at IS NULL AND snoozed_until IS NULL AND expired = 0) AS badges \
     GROUP BY 1, 2, 3 HAVING sum(total) != 0 OR sum(unread) != 0 OR sum(unseen) != 0 ORDER BY 1, 2, 3";

#[cfg(test)]
#[path = "fold_tests.rs"]
mod tests;
