//! Reading a feed: a page of messages by cursor, and its badge counts.
//!
//! Counts (DESIGN.md "Counts"): when the view is the common scope (channel, recipient,
//! tenant/`has_tenant`, `archived=exclude`) they come from `feed_counters` in O(1) rows;
//! any other filter falls back to an indexed `COUNT`. `total_count` follows every filter
//! including `status`; `unread_count`/`unseen_count` follow the scope but not `status`
//! (spec §6.1), so badges stay stable while a UI toggles All/Unread/Read.

use rusqlite::params_from_iter;
use serde::Serialize;

use super::feed_sql::{self, Where};
use super::messages::{MESSAGE_COLUMNS, MessageRow, row_to_message};
use super::{Db, StoreResult};
use crate::model::{FeedFilters, RecipientRef, StatusFilter};

/// The badge counts of one feed view, as `meta` and socket metadata carry them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FeedCounts {
    pub total_count: i64,
    pub unread_count: i64,
    pub unseen_count: i64,
}

impl FeedCounts {
    /// From the scope's (all, unread, unseen) aggregates: `total_count` applies `status`.
    fn from_scope(status: StatusFilter, all: i64, unread: i64, unseen: i64) -> Self {
        let total_count = match status {
            StatusFilter::All => all,
            StatusFilter::Unread => unread,
            StatusFilter::Read => all - unread,
            StatusFilter::Unseen => unseen,
            StatusFilter::Seen => all - unseen,
        };
        FeedCounts {
            total_count,
            unread_count: unread,
            unseen_count: unseen,
        }
    }
}

/// The counts of a feed view. `tenant_restriction` is what `auth::access` returned:
/// `Some(tenants)` limits the view to those tenants (`""` = items without a tenant).
pub fn counts(
    db: &Db<'_>,
    channel_id: &str,
    recipient: &RecipientRef,
    filters: &FeedFilters,
    tenant_restriction: Option<&[String]>,
) -> StoreResult<FeedCounts> {
    if filters.counter_scope() {
        counts_from_counters(db, channel_id, recipient, filters, tenant_restriction)
    } else {
        counts_by_query(db, channel_id, recipient, filters, tenant_restriction)
    }
}

/// O(1) path: sums the (at most a few per tenant) counter rows of the feed.
pub(crate) fn counts_from_counters(
    db: &Db<'_>,
    channel_id: &str,
    recipient: &RecipientRef,
    filters: &FeedFilters,
    tenant_restriction: Option<&[String]>,
) -> StoreResult<FeedCounts> {
    let mut w = Where::default();
    feed_sql::feed(&mut w, channel_id, recipient);
    feed_sql::tenant(&mut w, "tenant", filters, tenant_restriction);
    let sql = format!(
        "SELECT coalesce(sum(total), 0), coalesce(sum(unread), 0), coalesce(sum(unseen), 0) \
         FROM feed_counters WHERE {}",
        w.sql()
    );
    aggregate(db, &sql, &w, filters.status)
}

/// Fallback: one indexed `COUNT` over the feed's messages.
pub(crate) fn counts_by_query(
    db: &Db<'_>,
    channel_id: &str,
    recipient: &RecipientRef,
    filters: &FeedFilters,
    tenant_restriction: Option<&[String]>,
) -> StoreResult<FeedCounts> {
    let w = feed_sql::view(channel_id, recipient, filters, tenant_restriction, false);
    let sql = format!(
        "SELECT count(*), coalesce(sum(read_at IS NULL), 0), coalesce(sum(seen_at IS NULL), 0) \
         FROM messages WHERE {}",
        w.sql()
    );
    aggregate(db, &sql, &w, filters.status)
}

fn aggregate(db: &Db<'_>, sql: &str, w: &Where, status: StatusFilter) -> StoreResult<FeedCounts> {
    let (all, unread, unseen) =
        db.0.prepare_cached(sql)?
            .query_row(params_from_iter(w.params.iter()), |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
    Ok(FeedCounts::from_scope(status, all, unread, unseen))
}

/// Runs `f` in one read transaction, so a page, its counts and its `page_info` all see
/// the same committed state even while the writer commits in between.
pub fn snapshot<T>(db: &Db<'_>, f: impl FnOnce(&Db<'_>) -> StoreResult<T>) -> StoreResult<T> {
    db.0.execute_batch("BEGIN DEFERRED")?;
    let result = f(db);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    db.0.execute_batch(end)?;
    result
}

/// One page of a feed, newest first.
#[derive(Debug, Clone, Default)]
pub struct FeedPage {
    pub items: Vec<MessageRow>,
    /// Older items exist in the view beyond the last item (→ `page_info.after`).
    pub has_older: bool,
    /// Newer items exist in the view before the first item (→ `page_info.before`).
    pub has_newer: bool,
}

/// Where a page starts, by message sequence (decoded cursors).
#[derive(Debug, Clone, Copy, Default)]
pub struct PageBounds {
    pub page_size: u32,
    /// Only items older than this sequence.
    pub after: Option<i64>,
    /// Only items newer than this sequence; the page is the ones immediately newer.
    pub before: Option<i64>,
}

/// Lists one page of the view. With `before`, returns the `page_size` items immediately
/// newer than the cursor (still newest first), which is what the real-time refetch needs.
pub fn page(
    db: &Db<'_>,
    channel_id: &str,
    recipient: &RecipientRef,
    filters: &FeedFilters,
    tenant_restriction: Option<&[String]>,
    bounds: PageBounds,
) -> StoreResult<FeedPage> {
    let scope = feed_sql::view(channel_id, recipient, filters, tenant_restriction, true);
    page_in(db, &scope, bounds)
}

/// Pages through the messages `scope` selects, by `seq`. Shared with the messages API.
pub(super) fn page_in(db: &Db<'_>, scope: &Where, bounds: PageBounds) -> StoreResult<FeedPage> {
    use rusqlite::types::Value as SqlValue;
    let limit = i64::from(bounds.page_size.max(1));
    let mut w = Where::default();
    w.push(format!("({})", scope.sql()), scope.params.iter().cloned());
    if let Some(after) = bounds.after {
        w.push("seq < ?", [SqlValue::Integer(after)]);
    }
    if let Some(before) = bounds.before {
        w.push("seq > ?", [SqlValue::Integer(before)]);
    }
    let order = if bounds.before.is_some() {
        "ASC"
    } else {
        "DESC"
    };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE {} ORDER BY seq {order} LIMIT ?",
        w.sql()
    );
    let mut params = w.params;
    params.push(SqlValue::Integer(limit + 1));
    let mut items: Vec<MessageRow> =
        db.0.prepare_cached(&sql)?
            .query_map(params_from_iter(params.iter()), row_to_message)?
            .collect::<Result<_, _>>()?;
    let overflow = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let exists = |op: &str, seq: i64| -> StoreResult<bool> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE {} AND seq {op} ?)",
            scope.sql()
        );
        let mut params = scope.params.clone();
        params.push(SqlValue::Integer(seq));
        Ok(db
            .0
            .prepare_cached(&sql)?
            .query_row(params_from_iter(params.iter()), |row| row.get(0))?)
    };
    let (has_older, has_newer) = if bounds.before.is_some() {
        items.reverse();
        let older = match items.last() {
            Some(last) => exists("<", last.seq)?,
            None => false,
        };
        (older, overflow)
    } else {
        let newer = match items.first() {
            Some(first) => exists(">", first.seq)?,
            None => false,
        };
        (overflow, newer)
    };
    Ok(FeedPage {
        items,
        has_older,
        has_newer,
    })
}

#[cfg(test)]
#[path = "feeds_tests.rs"]
mod tests;
