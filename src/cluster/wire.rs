//! What one node tells the others about committed items, as JSON on NATS.
//!
//! A message carries what the receiving hub needs to push exactly what a local publish
//! would: each item's feed (channel, recipient) and the fields the socket filters read
//! (tenant, workflow, categories, trigger data, insertion time, pin). The counts are
//! not sent: the receiving node reads them from the shared store, as for its own items.
//! Items of one run share their trigger data, which is sent once per message.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::bus::FeedRef;
use crate::model::RecipientRef;
use crate::model::message::{Blocks, MessageRow};

/// One announcement from one node.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node's `--node-id` (for logs).
    pub node: String,
    /// The sending process, so a node skips its own even if node ids collide.
    pub instance: u64,
    #[serde(flatten)]
    pub body: Body,
}

/// What happened.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// Items committed (or woken from a snooze): pushed like new items.
    Items {
        /// Trigger data, shared by the items that point at it.
        data: Vec<Shared>,
        /// The items, in commit order.
        items: Vec<Item>,
    },
    /// Feeds whose counts changed without a new item (an expiry, a snooze).
    Counts {
        /// The feeds, each once.
        feeds: Vec<FeedRef>,
    },
    /// The sender lost announcements (its queue overflowed or NATS refused them while it
    /// was cut off): every node pushes current counts to all its sockets, which refetch.
    Refresh,
}

/// A JSON value shared by reference on both sides (serde's `Arc` support is a feature
/// this crate does not turn on).
#[derive(Debug, Clone)]
pub struct Shared(pub Arc<Value>);

impl Serialize for Shared {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Shared {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(|v| Shared(Arc::new(v)))
    }
}

/// One committed item, as much of it as a push needs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Item {
    /// The message id (logs; pushes carry no item).
    pub id: String,
    /// The message's sequence number (logs).
    pub seq: i64,
    /// The feed: channel UUID ...
    pub channel: String,
    /// ... and recipient.
    pub recipient: RecipientRef,
    /// For `tenant`/`has_tenant` refs and tenant-restricted tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// For `source` refs.
    pub workflow: String,
    /// For `workflow_categories` refs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Index into the message's `data` (for `trigger_data` refs).
    pub data: usize,
    /// For `inserted_at` ranges.
    pub inserted_at: String,
    /// For `pinned` refs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_at: Option<String>,
}

/// Why a received message was not used.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("undecodable announcement: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("an item points at trigger data {0}, which the message does not carry")]
    MissingData(usize),
}

/// The `Items` body of `messages`, each distinct trigger data once.
pub fn items(messages: &[MessageRow]) -> Body {
    let mut data: Vec<Shared> = Vec::new();
    let items = messages
        .iter()
        .map(|m| {
            // Items of one run share one `Arc`; a few distinct ones per batch at most.
            let index = match data.iter().rposition(|d| Arc::ptr_eq(&d.0, &m.data)) {
                Some(i) => i,
                None => {
                    data.push(Shared(m.data.clone()));
                    data.len() - 1
                }
            };
            Item {
                id: m.id.clone(),
                seq: m.seq,
                channel: m.channel_id.clone(),
                recipient: m.recipient.clone(),
                tenant: m.tenant.clone(),
                workflow: m.workflow_key.clone(),
                categories: m.workflow_categories.clone(),
                data: index,
                inserted_at: m.inserted_at.clone(),
                pinned_at: m.pinned_at.clone(),
            }
        })
        .collect();
    Body::Items { data, items }
}

/// The feeds `messages` belong to, each once: what a receiver needs to push fresh counts
/// when the items themselves are too large to send.
pub fn feeds_of(messages: &[MessageRow]) -> Vec<FeedRef> {
    let mut feeds: Vec<FeedRef> = messages
        .iter()
        .map(|m| (m.channel_id.clone(), m.recipient.clone()))
        .collect();
    feeds.sort();
    feeds.dedup();
    feeds
}

/// Rows the local hub can publish, rebuilt from `items`. Fields no push reads (content,
/// engagement, run ids) are left empty.
pub fn rows(data: &[Shared], items: Vec<Item>) -> Result<Vec<MessageRow>, WireError> {
    items
        .into_iter()
        .map(|item| {
            let data = data
                .get(item.data)
                .map(|d| d.0.clone())
                .ok_or(WireError::MissingData(item.data))?;
            Ok(MessageRow {
                seq: item.seq,
                id: item.id,
                channel_id: item.channel,
                recipient: item.recipient,
                tenant: item.tenant,
                workflow_key: item.workflow,
                workflow_version_id: String::new(),
                workflow_categories: item.categories,
                workflow_run_id: String::new(),
                workflow_recipient_run_id: String::new(),
                step_ref: String::new(),
                actors: Vec::new(),
                data,
                blocks: Blocks::new(Value::Null),
                metadata: Value::Null,
                updated_at: item.inserted_at.clone(),
                inserted_at: item.inserted_at,
                seen_at: None,
                read_at: None,
                archived_at: None,
                interacted_at: None,
                link_clicked_at: None,
                batch: None,
                expires_at: None,
                expired: false,
                snoozed_until: None,
                pinned_at: item.pinned_at,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, recipient: RecipientRef, data: &Arc<Value>) -> MessageRow {
        let mut rows = rows(
            &[Shared(data.clone())],
            vec![Item {
                id: format!("m{seq}"),
                seq,
                channel: "c1".into(),
                recipient,
                tenant: Some("acme".into()),
                workflow: "welcome".into(),
                categories: vec!["news".into()],
                data: 0,
                inserted_at: "2026-01-01T00:00:00.000000Z".into(),
                pinned_at: None,
            }],
        )
        .expect("rows");
        rows.remove(0)
    }

    #[test]
    fn items_round_trip_with_shared_data_sent_once() {
        let shared = Arc::new(serde_json::json!({"project": "p1"}));
        let other = Arc::new(serde_json::json!({"project": "p2"}));
        let object = RecipientRef::Object {
            id: "p1".into(),
            collection: "projects".into(),
        };
        let sent = vec![
            row(1, RecipientRef::User("u1".into()), &shared),
            row(2, object.clone(), &shared),
            row(3, RecipientRef::User("u2".into()), &other),
        ];
        let envelope = Envelope {
            node: "n1".into(),
            instance: 7,
            body: items(&sent),
        };
        let text = serde_json::to_vec(&envelope).expect("encode");
        let back: Envelope = serde_json::from_slice(&text).expect("decode");
        assert_eq!((back.node.as_str(), back.instance), ("n1", 7));
        let Body::Items { data, items } = back.body else {
            panic!("items expected");
        };
        assert_eq!(data.len(), 2, "the shared data is sent once");
        let got = rows(&data, items).expect("rows");
        assert_eq!(got.len(), 3);
        for (a, b) in sent.iter().zip(&got) {
            assert_eq!(
                (&a.id, a.seq, &a.channel_id, &a.recipient, &a.tenant),
                (&b.id, b.seq, &b.channel_id, &b.recipient, &b.tenant)
            );
            assert_eq!(
                (&a.workflow_key, &a.workflow_categories, &a.data),
                (&b.workflow_key, &b.workflow_categories, &b.data)
            );
            assert_eq!(
                (&a.inserted_at, &a.pinned_at),
                (&b.inserted_at, &b.pinned_at)
            );
        }
        assert_eq!(got[1].recipient, object);
    }

    #[test]
    fn counts_round_trip_and_bad_input_is_an_error_not_a_panic() {
        let feeds = vec![("c1".to_owned(), RecipientRef::User("u1".into()))];
        let envelope = Envelope {
            node: "n1".into(),
            instance: 1,
            body: Body::Counts {
                feeds: feeds.clone(),
            },
        };
        let text = serde_json::to_vec(&envelope).expect("encode");
        let back: Envelope = serde_json::from_slice(&text).expect("decode");
        assert!(matches!(back.body, Body::Counts { feeds: f } if f == feeds));
        assert!(serde_json::from_slice::<Envelope>(b"{\"kind\":\"nope\"}").is_err());
        let dangling = Item {
            id: "m".into(),
            seq: 1,
            channel: "c".into(),
            recipient: RecipientRef::User("u".into()),
            tenant: None,
            workflow: "w".into(),
            categories: Vec::new(),
            data: 3,
            inserted_at: String::new(),
            pinned_at: None,
        };
        assert!(matches!(
            rows(&[], vec![dangling]),
            Err(WireError::MissingData(3))
        ));
    }

    #[test]
    fn feeds_of_names_each_feed_once() {
        let data = Arc::new(Value::Null);
        let rows = vec![
            row(1, RecipientRef::User("u1".into()), &data),
            row(2, RecipientRef::User("u1".into()), &data),
            row(3, RecipientRef::User("u2".into()), &data),
        ];
        assert_eq!(feeds_of(&rows).len(), 2);
    }
}
