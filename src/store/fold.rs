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
//!   upserts the counters and moves the watermark to `end`, all in one transaction (on
//!   SQLite the writer's, on PostgreSQL its own): a crash leaves either the chunk folded
//!   or not, never half.
//! - Messages only ever get a `seq` above every existing one (`AUTOINCREMENT`, and a wake
//!   takes the next number), so nothing appears below the watermark after it moved.
//!
//! Several PostgreSQL writers (DESIGN.md, "The fold across writers") add two races, and
//! neither is closed by making writers wait for the fold:
//! - A sequence number is handed out before its insert commits, so a chunk must not pass
//!   a number still held by an open transaction. The fold reads the sequence's high-water
//!   mark, then takes a transaction id of its own ([`Horizon`]); that mark is safe once no
//!   transaction older than that id is open (every writer has its transaction id before
//!   it takes a number: `Conn::begin`). Until then the fold goes only as far
//!   as an earlier mark already proven safe.
//! - A status change on an item the fold is counting must land on one side of the
//!   watermark: [`adjust_counters`](super::messages::adjust_counters) holds the shared
//!   side of the fold's lock from its watermark read to its commit, and the fold takes the
//!   exclusive side without queueing (it tries, and waits briefly only after several
//!   misses), so a fan-out's inserts never wait for the fold, and a status change at most
//!   briefly.

use super::sql::{Dialect, OptionalExtension};
use super::{Db, StoreResult};

/// Most sequence numbers (so at most this many messages) one call folds: about the cost
/// of one fan-out page in the writer's bulk lane.
pub const CHUNK: i64 = 5_000;

/// The advisory lock (PostgreSQL) status changes share and the fold takes alone: keyed by
/// the schema (advisory locks are per database, and several deployments, or the tests,
/// may share one database in schemas of their own) and "fold" in ASCII (0x666f6c64).
macro_rules! fold_lock {
    () => {
        "hashtext(current_schema()), 1718578276"
    };
}

/// Takes the shared side of the fold's lock until the transaction ends (status changes).
pub const SHARE_FOLD_LOCK: &str =
    concat!("SELECT pg_advisory_xact_lock_shared(", fold_lock!(), ")");

/// Consecutive calls that found the fold's lock held before one waits for it (at most
/// [`FOLD_LOCK_WAIT`]): status changes come and go, so a try almost always succeeds, and
/// a steady stream of them must still not keep the fold out for good.
const TRIES_BEFORE_WAITING: u32 = 5;

/// The longest the fold waits for the fold's lock when it waits at all; status changes
/// queued behind it wait at most this long.
const FOLD_LOCK_WAIT: &str = "100ms";

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

/// What the fold on PostgreSQL remembers between calls: a sequence high-water mark that
/// becomes safe to fold through once no transaction older than the fold's at the time is
/// open, and how many calls in a row found the fold's lock taken. One per folding node;
/// losing it (a restart, the duties lease moving) only delays the fold by a call.
#[derive(Debug, Default)]
pub struct Horizon {
    pending: Option<PendingMark>,
    missed_lock: u32,
}

#[derive(Debug)]
struct PendingMark {
    /// Every sequence number up to here was handed out before `taken_by` began.
    through: i64,
    /// The transaction id the fold took just after reading `through`: once no older
    /// transaction is open, every number up to `through` is committed or gone.
    taken_by: i64,
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

/// Folds the messages in `(folded_through, folded_through + limit]` (up to the newest
/// one it may) and moves the watermark past them. Returns the progress after it; an
/// unchanged watermark with messages unfolded means "not now" (PostgreSQL: the lock was
/// taken, or no mark is safe yet), and the caller tries again at its next tick.
///
/// On PostgreSQL call it in a transaction of its own ([`fold_in_own_transaction`]): the
/// lock it takes lasts until that transaction ends.
pub fn fold(db: &Db<'_>, limit: i64, horizon: &mut Horizon) -> StoreResult<Progress> {
    let postgres = db.0.dialect() == Dialect::Postgres;
    if postgres && !take_fold_lock(db, horizon)? {
        return progress(db);
    }
    let before = progress(db)?;
    if before.unfolded() == 0 {
        return Ok(before);
    }
    let safe = if postgres {
        safe_end(db, horizon)?
    } else {
        // One writer, and the fold runs in its transaction: every number is settled.
        before.newest
    };
    let end = before.folded_through.saturating_add(limit.max(1)).min(safe);
    if end <= before.folded_through {
        return Ok(before);
    }
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
        newest: before.newest.max(end),
    })
}

/// PostgreSQL: [`fold`] in a read-write transaction of its own on `db`'s connection (a
/// pooled reader's, whose default is read-only), committed, or rolled back on an error
/// (a lock timeout ends the transaction).
pub fn fold_in_own_transaction(
    db: &Db<'_>,
    limit: i64,
    horizon: &mut Horizon,
) -> StoreResult<Progress> {
    db.0.execute_batch("BEGIN READ WRITE")?;
    match fold(db, limit, horizon) {
        Ok(progress) => {
            db.0.execute_batch("COMMIT")?;
            Ok(progress)
        }
        Err(e) => {
            let _ = db.0.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Takes the fold's lock for this transaction: tries, and after [`TRIES_BEFORE_WAITING`]
/// misses in a row waits up to [`FOLD_LOCK_WAIT`]. Whether it has it.
fn take_fold_lock(db: &Db<'_>, horizon: &mut Horizon) -> StoreResult<bool> {
    let taken = if horizon.missed_lock < TRIES_BEFORE_WAITING {
        db.0.prepare_cached(concat!(
            "SELECT pg_try_advisory_xact_lock(",
            fold_lock!(),
            ")"
        ))?
        .query_row([], |r| r.get::<_, bool>(0))?
    } else {
        // The fold's transaction holds nothing yet, so waiting here cannot deadlock.
        db.0.execute_batch(&format!("SET LOCAL lock_timeout = '{FOLD_LOCK_WAIT}'"))?;
        let waited =
            db.0.prepare_cached(concat!("SELECT pg_advisory_xact_lock(", fold_lock!(), ")"))?
                .query_row([], |_| Ok(()));
        if let Err(e) = waited {
            // A lock timeout ends the transaction; the caller rolls it back and the
            // fold tries again at its next tick.
            horizon.missed_lock += 1;
            return Err(e.into());
        }
        db.0.execute_batch("SET LOCAL lock_timeout = 0")?;
        true
    };
    horizon.missed_lock = if taken { 0 } else { horizon.missed_lock + 1 };
    Ok(taken)
}

/// PostgreSQL: the highest sequence number the fold may pass now (see the module's
/// note). Reads the high-water mark, then takes this transaction's id: a transaction
/// holding a number up to the mark took its id before that number, so before this one.
/// The mark is safe once no transaction older than this one is open, which the oldest
/// open id (`pg_snapshot_xmin`) tells at once, or at a later call.
///
/// Not the snapshot's in-progress list: it leaves out transactions newer than the latest
/// one to end (they are past its `xmax`), which is exactly a writer whose page is the
/// newest thing happening.
fn safe_end(db: &Db<'_>, horizon: &mut Horizon) -> StoreResult<i64> {
    let high: i64 =
        db.0.prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'messages'")?
            .query_row([], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
    let me: i64 =
        db.0.prepare_cached("SELECT pg_current_xact_id()::text::bigint")?
            .query_row([], |r| r.get(0))?;
    // A later statement, so a snapshot taken after this transaction had its id.
    let oldest_open: i64 =
        db.0.prepare_cached("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")?
            .query_row([], |r| r.get(0))?;
    if oldest_open >= me {
        horizon.pending = None;
        return Ok(high);
    }
    let mut safe = 0;
    if let Some(pending) = &horizon.pending {
        if oldest_open < pending.taken_by {
            return Ok(0);
        }
        safe = pending.through;
    }
    horizon.pending = Some(PendingMark {
        through: high,
        taken_by: me,
    });
    Ok(safe)
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
