//! Reading a feed: a page of messages by cursor, and its badge counts.
//!
//! Counts (DESIGN.md "Counts"): when the view is the common scope (channel, recipient,
//! tenant/`has_tenant`, `archived=exclude`) they come from `feed_counters` in O(1) rows
//! plus the feed's short unfolded tail (see `store::fold`);
//! any other filter falls back to an indexed `COUNT`. `total_count` follows every filter
//! including `status`; `unread_count`/`unseen_count` follow the scope but not `status`
//! (spec §6.1), so badges stay stable while a UI toggles All/Unread/Read.

use crate::store::sql::params_from_iter;

use super::feed_sql::{self, Where};
use super::messages::{MESSAGE_COLUMNS, MessageRow, row_to_message};
use super::{Db, StoreResult};
use crate::model::{FeedFilters, RecipientRef, StatusFilter};

pub use crate::model::feed_counts::FeedCounts;

impl FeedCounts {
    /// From the scope's (all, unread, unseen) aggregates: `total_count` applies `status`.
    fn from_scope(status: StatusFilter, all: i64, unread: i64, unseen: i64) -> Self {
        let total_count = match status {
            StatusFilter::All | StatusFilter::Snoozed => all,
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

/// The counts of a feed view at `now` (the injectable clock's reading: items past their
/// expiry count nowhere). `tenant_restriction` is what `auth::access` returned:
/// `Some(tenants)` limits the view to those tenants (`""` = items without a tenant).
/// For `status=snoozed`, `total_count` counts the snoozed items and the badges stay the
/// feed's own.
pub fn counts(
    db: &Db<'_>,
    channel_id: &str,
    recipient: &RecipientRef,
    filters: &FeedFilters,
    tenant_restriction: Option<&[String]>,
    now: &str,
) -> StoreResult<FeedCounts> {
    if filters.status == StatusFilter::Snoozed {
        let badges = FeedFilters {
            status: StatusFilter::All,
            ..filters.clone()
        };
        let badges = counts(db, channel_id, recipient, &badges, tenant_restriction, now)?;
        let snoozed = counts_by_query(db, channel_id, recipient, filters, tenant_restriction, now)?;
        return Ok(FeedCounts {
            total_count: snoozed.total_count,
            ..badges
        });
    }
    if filters.counter_scope() {
        counts_from_counters(db, channel_id, recipient, filters, tenant_restriction, now)
    } else {
        counts_by_query(db, channel_id, recipient, filters, tenant_restriction, now)
    }
}

/// O(1) path, in ONE statement (one snapshot, even outside a read transaction, while the
/// fold commits): the feed's counter rows (at most a few per tenant, covering the messages
/// up to the fold's watermark), plus a live count of the feed's tail past the watermark (a
/// range on `messages_feed`, a few items: see `store::fold`), less the counted items past
/// their expiry that the expiry due-source has not taken out yet (a range over
/// `messages_feed_expiring`, empty but for the moment between an expiry and its firing),
/// so a read never counts an expired item and never misses a new one.
pub(crate) fn counts_from_counters(
    db: &Db<'_>,
    channel_id: &str,
    recipient: &RecipientRef,
    filters: &FeedFilters,
    tenant_restriction: Option<&[String]>,
    now: &str,
) -> StoreResult<FeedCounts> {
    use crate::store::sql::Value as SqlValue;
    const WATERMARK: &str = "(SELECT folded_through FROM feed_fold)";
    let mut counted = Where::default();
    feed_sql::feed(&mut counted, channel_id, recipient);
    feed_sql::tenant(&mut counted, "tenant", filters, tenant_restriction);
    let mut tail = Where::default();
    feed_sql::feed(&mut tail, channel_id, recipient);
    tail.push(format!("seq > {WATERMARK}"), []);
    tail.push(
        "archived_at IS NULL AND snoozed_until IS NULL AND expired = 0 \
         AND (expires_at IS NULL OR expires_at > ?)",
        [SqlValue::Text(now.to_owned())],
    );
    feed_sql::tenant(
        &mut tail,
        "coalesce(tenant, '')",
        filters,
        tenant_restriction,
    );
    let mut lapsed = Where::default();
    feed_sql::feed(&mut lapsed, channel_id, recipient);
    lapsed.push(
        "expires_at IS NOT NULL AND expired = 0 AND expires_at <= ?",
        [SqlValue::Text(now.to_owned())],
    );
    lapsed.push(
        format!("archived_at IS NULL AND snoozed_until IS NULL AND seq <= {WATERMARK}"),
        [],
    );
    feed_sql::tenant(
        &mut lapsed,
        "coalesce(tenant, '')",
        filters,
        tenant_restriction,
    );
    let sql = format!(
        "SELECT c.total + t.total - l.total, c.unread + t.unread - l.unread, \
         c.unseen + t.unseen - l.unseen FROM \
         (SELECT coalesce(sum(total), 0) AS total, coalesce(sum(unread), 0) AS unread, \
          coalesce(sum(unseen), 0) AS unseen FROM feed_counters WHERE {}) c, \
         (SELECT count(*) AS total, count(*) FILTER (WHERE read_at IS NULL) AS unread, \
          count(*) FILTER (WHERE seen_at IS NULL) AS unseen FROM messages INDEXED BY messages_feed \
          WHERE {}) t, \
         (SELECT count(*) AS total, count(*) FILTER (WHERE read_at IS NULL) AS unread, \
          count(*) FILTER (WHERE seen_at IS NULL) AS unseen FROM messages INDEXED BY messages_feed_expiring \
          WHERE {}) l",
        counted.sql(),
        tail.sql(),
        lapsed.sql()
    );
    let mut all = counted;
    all.params.extend(tail.params);
    all.params.extend(lapsed.params);
    let (total, unread, unseen) = totals(db, &sql, &all)?;
    Ok(FeedCounts::from_scope(
        filters.status,
        total,
        unread,
        unseen,
    ))
}

/// Fallback: one indexed `COUNT` over the feed's messages.
///
/// (Counts here and in [`counts_from_counters`] are `count(*) FILTER (WHERE …)`, which
/// both engines have natively, rather than SQLite's `sum(flag)`, which PostgreSQL runs
/// through an aggregate written in SQL, one function call per row.)
pub(crate) fn counts_by_query(
    db: &Db<'_>,
    channel_id: &str,
    recipient: &RecipientRef,
    filters: &FeedFilters,
    tenant_restriction: Option<&[String]>,
    now: &str,
) -> StoreResult<FeedCounts> {
    let w = feed_sql::view(
        channel_id,
        recipient,
        filters,
        tenant_restriction,
        false,
        now,
    );
    let sql = format!(
        "SELECT count(*) AS total, count(*) FILTER (WHERE read_at IS NULL) AS unread, \
         count(*) FILTER (WHERE seen_at IS NULL) AS unseen FROM messages WHERE {}",
        w.sql()
    );
    let (all, unread, unseen) = totals(db, &sql, &w)?;
    Ok(FeedCounts::from_scope(filters.status, all, unread, unseen))
}

fn totals(db: &Db<'_>, sql: &str, w: &Where) -> StoreResult<(i64, i64, i64)> {
    Ok(db
        .0
        .prepare_cached(sql)?
        .query_row(params_from_iter(w.params.iter()), |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?)
}

/// Runs `f` in one read transaction, so a page, its counts and its `page_info` all see
/// the same committed state even while the writer commits in between.
pub fn snapshot<T>(db: &Db<'_>, f: impl FnOnce(&Db<'_>) -> StoreResult<T>) -> StoreResult<T> {
    db.0.begin_snapshot()?;
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

/// Lists one page of the view at `now`. With `before`, returns the `page_size` items
/// immediately newer than the cursor (still newest first), which is what the real-time
/// refetch needs.
pub fn page(
    db: &Db<'_>,
    channel_id: &str,
    recipient: &RecipientRef,
    filters: &FeedFilters,
    tenant_restriction: Option<&[String]>,
    bounds: PageBounds,
    now: &str,
) -> StoreResult<FeedPage> {
    let scope = feed_sql::view(
        channel_id,
        recipient,
        filters,
        tenant_restriction,
        true,
        now,
    );
    page_in(db, &scope, bounds)
}

/// Pages through the messages `scope` selects, by `seq`. Shared with the messages API.
pub(super) fn page_in(db: &Db<'_>, scope: &Where, bounds: PageBounds) -> StoreResult<FeedPage> {
    use crate::store::sql::Value as SqlValue;
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
        // A first page (no cursor) starts at the newest item of the view: nothing in it is
        // newer, so that needs no statement.
        let newer = match (items.first(), bounds.after) {
            (Some(first), Some(_)) => exists(">", first.seq)?,
            _ => false,
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

#[cfg(test)]
#[path = "trigger_data_tests.rs"]
mod trigger_data_tests;
