//! Listing messages for the messages API (`GET /v1/messages`, `GET /v1/users/{id}/messages`):
//! newest first, cursor-paged by `seq` like feeds.

use crate::store::sql::Value as SqlValue;

use super::feed_sql::{self, Where};
use super::feeds::{FeedPage, PageBounds, page_in};
use super::{Db, StoreResult};
use crate::model::RecipientRef;
use crate::model::message_params::MessageListQuery;

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

/// The `WHERE` clause of a list; `channel_id` is already resolved to a UUID.
fn list_where(
    recipient: Option<&RecipientRef>,
    channel_id: Option<&str>,
    q: &MessageListQuery,
) -> Where {
    let mut w = Where::default();
    if !q.delivery_matches() {
        w.push("1=0", []);
    }
    match (recipient, channel_id) {
        // One feed: by its key (through `messages_feed`).
        (Some(r), Some(c)) => feed_sql::feed(&mut w, c, r),
        (Some(r), None) => w.push(
            "recipient_kind = ? AND recipient_collection = ? AND recipient_id = ?",
            [text(r.kind()), text(r.collection()), text(r.id())],
        ),
        (None, Some(c)) => w.push("channel_id = ?", [text(c)]),
        (None, None) => {}
    }
    if let Some(t) = &q.tenant {
        w.push("tenant = ?", [text(t)]);
    }
    for status in &q.engagement {
        w.push(status.sql(), []);
    }
    if !q.message_ids.is_empty() {
        w.push(
            format!("id IN ({})", vec!["?"; q.message_ids.len()].join(", ")),
            q.message_ids.iter().map(|id| text(id)),
        );
    }
    if let Some(id) = &q.workflow_run_id {
        w.push("workflow_run_id = ?", [text(id)]);
    }
    if let Some(id) = &q.workflow_recipient_run_id {
        w.push("workflow_recipient_run_id = ?", [text(id)]);
    }
    let content = crate::model::FeedFilters {
        source: q.source.clone(),
        workflow_categories: q.workflow_categories.clone(),
        trigger_data: q.trigger_data.clone(),
        inserted_at: q.inserted_at.clone(),
        ..Default::default()
    };
    feed_sql::content(&mut w, &content);
    w
}

/// One page of messages matching `q`, newest first.
pub fn list(
    db: &Db<'_>,
    recipient: Option<&RecipientRef>,
    channel_id: Option<&str>,
    q: &MessageListQuery,
) -> StoreResult<FeedPage> {
    let bounds = PageBounds {
        page_size: q.page_size,
        after: q.after,
        before: q.before,
    };
    let scope = list_where(recipient, channel_id, q);
    page_in(db, &scope, bounds)
}
