//! Engagement writes: one message, a batch by id, or a bulk update over a channel.
//!
//! Invariant: every change goes through `messages::update_engagement` (or, for deletes,
//! takes the message's counter contribution back first), inside the caller's write
//! transaction, so `feed_counters` never drift (both touch them only for a message the
//! fold has counted, see `messages`). A bulk update is one transaction: it
//! applies completely or not at all.

use crate::store::sql::params_from_iter;

use super::feed_sql::{self, Where};
use super::messages::{
    self, CounterDelta, MESSAGE_COLUMNS, MessageRow, adjust_counters, row_to_message,
};
use super::{Db, StoreResult};
use crate::model::engagement::EngagementChange;
use crate::model::message_params::BulkScope;

/// Applies `change` to message `id` at `now`; `None` when there is no such message.
pub fn set_one(
    db: &Db<'_>,
    id: &str,
    change: &EngagementChange,
    now: &str,
) -> StoreResult<Option<MessageRow>> {
    let Some(before) = messages::get(db, id)? else {
        return Ok(None);
    };
    let after = change.apply(&before, now);
    messages::update_engagement(db, &before, &after)?;
    Ok(Some(after))
}

/// Applies `change` to each message in `ids` (duplicates once); unknown ids are skipped.
/// Returns the updated messages in request order.
pub fn set_many(
    db: &Db<'_>,
    ids: &[String],
    change: &EngagementChange,
    now: &str,
) -> StoreResult<Vec<MessageRow>> {
    let mut out: Vec<MessageRow> = Vec::with_capacity(ids.len());
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    for id in ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        if let Some(after) = set_one(db, id, change, now)? {
            out.push(after);
        }
    }
    Ok(out)
}

/// Loads messages by id (request order, unknown ids skipped), for access checks.
pub fn get_many(db: &Db<'_>, ids: &[String]) -> StoreResult<Vec<MessageRow>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(m) = messages::get(db, id)? {
            out.push(m);
        }
    }
    Ok(out)
}

pub use crate::model::message_params::BulkAction;

/// The messages of `channel_id` a bulk scope selects (plus the caller's tenant
/// restriction, `""` = no-tenant items allowed).
fn bulk_where(channel_id: &str, scope: &BulkScope, restriction: Option<&[String]>) -> Where {
    let mut w = Where::default();
    if !scope.delivery_matches {
        w.push("1=0", []);
    }
    match &scope.recipients {
        Some(recipients) if recipients.is_empty() => w.push("1=0", []),
        // The listed feeds by key (through `messages_feed`).
        Some(recipients) => {
            let one = "(recipient_kind = ? AND recipient_collection = ? AND recipient_id = ?)";
            let mut params = vec![crate::store::sql::Value::Text(channel_id.to_owned())];
            params.extend(recipients.iter().flat_map(|r| {
                [r.kind(), r.collection(), r.id()]
                    .map(|s| crate::store::sql::Value::Text(s.to_owned()))
            }));
            w.push(
                format!(
                    "feed IN (SELECT id FROM feeds WHERE channel_id = ? AND ({}))",
                    vec![one; recipients.len()].join(" OR ")
                ),
                params,
            );
        }
        // The whole channel: the messages in `seq` order, as it is most of the table.
        None => w.push(
            "channel_id = ?",
            [crate::store::sql::Value::Text(channel_id.to_owned())],
        ),
    }
    feed_sql::tenants(
        &mut w,
        "coalesce(tenant, '')",
        &scope.tenants,
        scope.has_tenant,
        restriction,
    );
    if !scope.workflows.is_empty() {
        w.push(
            format!(
                "workflow_key IN ({})",
                vec!["?"; scope.workflows.len()].join(", ")
            ),
            scope
                .workflows
                .iter()
                .map(|k| crate::store::sql::Value::Text(k.clone())),
        );
    }
    if let Some(wanted) = &scope.trigger_data {
        feed_sql::trigger_data(&mut w, wanted);
    }
    feed_sql::time_range(&mut w, &scope.inserted_at);
    feed_sql::archived(&mut w, scope.archived);
    for status in &scope.engagement {
        w.push(status.sql(), []);
    }
    w
}

/// Applies `action` to every message the scope selects, in this transaction. Messages
/// already in the target state are left alone. Returns how many messages changed.
pub fn bulk(
    db: &Db<'_>,
    channel_id: &str,
    scope: &BulkScope,
    restriction: Option<&[String]>,
    action: &BulkAction,
    now: &str,
) -> StoreResult<usize> {
    let w = bulk_where(channel_id, scope, restriction);
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE {} ORDER BY seq",
        w.sql()
    );
    let rows: Vec<MessageRow> =
        db.0.prepare_cached(&sql)?
            .query_map(params_from_iter(w.params.iter()), row_to_message)?
            .collect::<Result<_, _>>()?;
    let mut changed = 0;
    for before in rows {
        match action {
            BulkAction::Change(change) => {
                if !change.changes_state(&before) {
                    continue;
                }
                let after = change.apply(&before, now);
                messages::update_engagement(db, &before, &after)?;
            }
            BulkAction::Delete => delete(db, &before)?,
        }
        changed += 1;
    }
    Ok(changed)
}

/// Deletes a message, taking its contribution back out of the counters first.
pub(super) fn delete(db: &Db<'_>, m: &MessageRow) -> StoreResult<()> {
    let c = CounterDelta::contribution(m);
    adjust_counters(
        db,
        m,
        CounterDelta {
            total: -c.total,
            unread: -c.unread,
            unseen: -c.unseen,
        },
    )?;
    db.0.prepare_cached("DELETE FROM messages WHERE seq = ?1")?
        .execute([m.seq])?;
    Ok(())
}

#[cfg(test)]
#[path = "message_status_tests.rs"]
mod tests;
