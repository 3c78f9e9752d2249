//! Messages as the messages API reads and changes them (spec §6.4): lookups, lists,
//! status changes one by one, in batches and in bulk over a channel.

use crate::model::RecipientRef;
use crate::model::bulk::BulkOperation;
use crate::model::engagement::EngagementChange;
use crate::model::entities::Entity;
use crate::model::message::MessageRow;
use crate::model::message_params::{BulkScope, MessageListQuery};
use crate::store::feeds::FeedPage;
use crate::store::message_status::{self, BulkAction};
use crate::store::{Store, StoreResult, bulk, channels, message_queries, messages, recipients};

impl Store {
    /// The message, or `None`.
    pub(crate) async fn message(&self, id: String) -> StoreResult<Option<MessageRow>> {
        self.read(move |db| messages::get(db, &id)).await
    }

    /// Messages by id in request order, unknown ids skipped.
    pub(crate) async fn messages(&self, ids: Vec<String>) -> StoreResult<Vec<MessageRow>> {
        self.read(move |db| message_status::get_many(db, &ids))
            .await
    }

    /// The message with its first actor and its recipient (`None` for one that does not
    /// exist any more), read in one snapshot; `None` when there is no such message.
    pub(crate) async fn message_with_people(
        &self,
        id: String,
    ) -> StoreResult<Option<(MessageRow, Vec<(RecipientRef, Option<Entity>)>)>> {
        self.read(move |db| {
            let Some(m) = messages::get(db, &id)? else {
                return Ok(None);
            };
            let refs: Vec<_> = m
                .actors
                .iter()
                .take(1)
                .chain(std::iter::once(&m.recipient))
                .cloned()
                .collect();
            let found = recipients::get_recipients(db, &refs)?;
            Ok(Some((m, refs.into_iter().zip(found).collect())))
        })
        .await
    }

    /// One page of messages matching `query`, optionally of one recipient. The query's
    /// `channel_id` is a filter: an unknown channel simply has no messages.
    pub(crate) async fn list_messages(
        &self,
        recipient: Option<RecipientRef>,
        query: MessageListQuery,
    ) -> StoreResult<FeedPage> {
        self.read(move |db| {
            let channel_id = match &query.channel {
                None => None,
                Some(wanted) => match channels::find(db, wanted)? {
                    Some(c) => Some(c.id),
                    None => return Ok(FeedPage::default()),
                },
            };
            message_queries::list(db, recipient.as_ref(), channel_id.as_deref(), &query)
        })
        .await
    }

    /// Applies `change` to one message now (its feed counters in the same transaction);
    /// `None` when there is no such message.
    pub(crate) async fn set_message_status(
        &self,
        id: String,
        change: EngagementChange,
    ) -> StoreResult<Option<MessageRow>> {
        self.write(move |db| message_status::set_one(db, &id, &change, &db.now()))
            .await
    }

    /// Applies `change` to each message of `ids` now, in one write; the updated messages
    /// in request order (unknown ids skipped).
    pub(crate) async fn set_message_statuses(
        &self,
        ids: Vec<String>,
        change: EngagementChange,
    ) -> StoreResult<Vec<MessageRow>> {
        self.write(move |db| message_status::set_many(db, &ids, &change, &db.now()))
            .await
    }

    /// Applies `action` to every message of `channel` the scope selects and records the
    /// `BulkOperation` as `name`, in one write; `None` when the channel is unknown.
    pub(crate) async fn bulk_message_status(
        &self,
        channel: String,
        scope: BulkScope,
        restriction: Option<Vec<String>>,
        action: BulkAction,
        name: String,
    ) -> StoreResult<Option<BulkOperation>> {
        self.write(move |db| {
            let Some(found) = channels::find(db, &channel)? else {
                return Ok(None);
            };
            let now = db.now();
            let changed =
                message_status::bulk(db, &found.id, &scope, restriction.as_deref(), &action, &now)?;
            bulk::record_completed(db, &name, changed, Vec::new()).map(Some)
        })
        .await
    }
}
