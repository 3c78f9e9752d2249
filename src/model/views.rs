//! Wire views of a stored message: the `FeedItem` of a feed (spec §6.1) and the `Message`
//! of the messages API (spec §6.4). Pure shaping; recipients are looked up by the caller
//! and passed in, so this module does no I/O.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::engagement::engagement_statuses;
use super::entities::{Entity, recipient_or_minimal};
use super::feed::{FeedMode, encode_cursor};
use super::message::MessageRow;
use super::recipient::RecipientRef;

/// Full recipient objects by reference, for `actors` and `activities[].recipient`.
pub type RecipientMap = HashMap<RecipientRef, Value>;

/// The wire shapes of looked-up recipients (a minimal stand-in for one that is gone).
pub fn recipient_map(found: Vec<(RecipientRef, Option<Entity>)>) -> RecipientMap {
    found
        .into_iter()
        .map(|(r, entity)| {
            let wire = recipient_or_minimal(&r, entity);
            (r, wire)
        })
        .collect()
}

fn recipient_json(map: &RecipientMap, r: &RecipientRef) -> Value {
    map.get(r).cloned().unwrap_or_else(|| match r {
        RecipientRef::User(id) => json!({"__typename": "User", "id": id}),
        RecipientRef::Object { id, collection } => {
            json!({"__typename": "Object", "id": id, "collection": collection})
        }
    })
}

/// Compact mode keeps only top-level scalars of `data`.
fn compact_data(data: &Value) -> Value {
    match data {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_object() && !v.is_array())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// One `FeedItem`. Compact mode caps `actors` at one, drops `activities` and nested data.
pub fn feed_item(m: &MessageRow, recipients: &RecipientMap, mode: FeedMode) -> Value {
    let actors: Vec<Value> = match mode {
        FeedMode::Compact => m.actors.iter().take(1),
        FeedMode::Rich => m.actors.iter().take(usize::MAX),
    }
    .map(|a| recipient_json(recipients, a))
    .collect();
    let mut item = json!({
        "__cursor": encode_cursor(m.seq),
        "__typename": "FeedItem",
        "id": m.id,
        "actors": actors,
        "total_actors": m
            .batch
            .as_ref()
            .and_then(|b| b["total_actors"].as_u64())
            .unwrap_or(m.actors.len() as u64),
        "blocks": m.blocks,
        "data": if mode == FeedMode::Compact { compact_data(&m.data) } else { (*m.data).clone() },
        "inserted_at": m.inserted_at,
        "updated_at": m.updated_at,
        "read_at": m.read_at,
        "seen_at": m.seen_at,
        "archived_at": m.archived_at,
        "interacted_at": m.interacted_at,
        "link_clicked_at": m.link_clicked_at,
        "clicked_at": m.link_clicked_at,
        // Tidings' extensions (the SDKs pass unknown fields through).
        "expires_at": m.expires_at,
        "snoozed_until": m.snoozed_until,
        "pinned_at": m.pinned_at,
        "source": {
            "__typename": "NotificationSource",
            "key": m.workflow_key,
            "version_id": m.workflow_version_id,
            "categories": m.workflow_categories,
        },
        "tenant": m.tenant,
    });
    if mode == FeedMode::Rich {
        item["activities"] = Value::Array(activities(m, recipients));
        item["total_activities"] = json!(
            m.batch
                .as_ref()
                .and_then(|b| b["total_activities"].as_u64())
                .unwrap_or(1)
        );
    }
    item
}

/// A message's `Activity` list: a batch's rendered activities (actors as the batch
/// closed), or the one trigger that produced a message without a batch.
pub fn activities(m: &MessageRow, recipients: &RecipientMap) -> Vec<Value> {
    let Some(list) = m.batch.as_ref().and_then(|b| b["activities"].as_array()) else {
        return vec![activity(m, recipients)];
    };
    let recipient = recipient_json(recipients, &m.recipient);
    list.iter()
        .map(|a| {
            json!({
                "__typename": "Activity",
                "id": a["id"],
                "inserted_at": a["inserted_at"],
                "updated_at": a["inserted_at"],
                "actor": a["actor"],
                "recipient": recipient,
                "data": a["data"],
            })
        })
        .collect()
}

/// The one `Activity` a message records: the trigger that produced it.
pub fn activity(m: &MessageRow, recipients: &RecipientMap) -> Value {
    json!({
        "__typename": "Activity",
        "id": m.id,
        "inserted_at": m.inserted_at,
        "updated_at": m.inserted_at,
        "actor": m.actors.first().map(|a| recipient_json(recipients, a)),
        "recipient": recipient_json(recipients, &m.recipient),
        "data": &*m.data,
    })
}

/// The message's events, newest first, derived from its current timestamps: `sent` at
/// creation, then one per engagement status it holds now (a cleared status has none).
pub fn events(m: &MessageRow) -> Vec<Value> {
    let mut events: Vec<(&str, &str)> = vec![("message.sent", m.inserted_at.as_str())];
    for (kind, at) in [
        ("message.seen", &m.seen_at),
        ("message.read", &m.read_at),
        ("message.interacted", &m.interacted_at),
        ("message.link_clicked", &m.link_clicked_at),
        ("message.archived", &m.archived_at),
    ] {
        if let Some(at) = at {
            events.push((kind, at));
        }
    }
    events.sort_by(|a, b| b.1.cmp(a.1));
    events
        .into_iter()
        .map(|(kind, at)| {
            json!({
                "__typename": "MessageEvent",
                "id": event_id(&m.id, kind),
                "type": kind,
                "recipient": m.recipient.to_wire(),
                "data": null,
                "inserted_at": at,
            })
        })
        .collect()
}

/// A stable 27-character base62 id for (message, event type), shaped like Knock's ids.
fn event_id(message_id: &str, kind: &str) -> String {
    use sha2::Digest;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = sha2::Sha256::digest(format!("{message_id}/{kind}").as_bytes());
    digest
        .iter()
        .cycle()
        .take(27)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// One `Message` (spec §6.4). In-app messages are `delivered` as soon as they exist.
pub fn message(m: &MessageRow) -> Value {
    json!({
        "__typename": "Message",
        "id": m.id,
        "channel_id": m.channel_id,
        "recipient": m.recipient.to_wire(),
        "actors": m.actors.iter().map(RecipientRef::to_wire).collect::<Vec<_>>(),
        "workflow": m.workflow_key,
        "tenant": m.tenant,
        "status": "delivered",
        "engagement_statuses": engagement_statuses(m),
        "read_at": m.read_at,
        "seen_at": m.seen_at,
        "archived_at": m.archived_at,
        "interacted_at": m.interacted_at,
        "link_clicked_at": m.link_clicked_at,
        "clicked_at": m.link_clicked_at,
        "scheduled_at": null,
        // Tidings' extensions (the SDKs pass unknown fields through).
        "expires_at": m.expires_at,
        "snoozed_until": m.snoozed_until,
        "pinned_at": m.pinned_at,
        "inserted_at": m.inserted_at,
        "updated_at": m.updated_at,
        "source": {
            "__typename": "NotificationSource",
            "key": m.workflow_key,
            "version_id": m.workflow_version_id,
            "categories": m.workflow_categories,
            "step_ref": m.step_ref,
            "type": "workflow",
            "workflow_run_id": m.workflow_run_id,
            "workflow_recipient_run_id": m.workflow_recipient_run_id,
        },
        "data": &*m.data,
        "metadata": m.metadata,
    })
}

/// A message's rendered content (`GET /v1/messages/{id}/content`): Knock's
/// `MessageContent` with the in-app feed channel's `MessageInAppFeedContent`, the blocks
/// exactly as the feed item carries them.
pub fn message_content(m: &MessageRow) -> Value {
    json!({
        "__typename": "MessageContent",
        "message_id": m.id,
        "inserted_at": m.inserted_at,
        "data": {
            "__typename": "MessageInAppFeedContent",
            "blocks": &*m.blocks,
        },
    })
}

/// Drops `exclude` paths (`entries.archived_at`, `meta`, up to three levels) from a
/// response; arrays apply the rest of the path to each element.
pub fn exclude_paths(body: &mut Value, paths: &[String]) {
    for path in paths {
        let parts: Vec<&str> = path.split('.').take(3).collect();
        drop_path(body, &parts);
    }
}

fn drop_path(value: &mut Value, parts: &[&str]) {
    match (value, parts) {
        (_, []) => {}
        (Value::Array(items), _) => items.iter_mut().for_each(|v| drop_path(v, parts)),
        (Value::Object(map), [last]) => {
            map.remove(*last);
        }
        (Value::Object(map), [head, rest @ ..]) => {
            if let Some(child) = map.get_mut(*head) {
                drop_path(child, rest);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_items_drop_nested_data_and_activities() {
        let mut m = crate::model::feed::tests::row(Some("acme"));
        m.actors = vec![
            RecipientRef::User("a1".into()),
            RecipientRef::User("a2".into()),
        ];
        let compact = feed_item(&m, &RecipientMap::new(), FeedMode::Compact);
        assert_eq!(compact["data"], json!({"page": "p1", "n": 3}));
        assert_eq!(compact["actors"].as_array().map(Vec::len), Some(1));
        assert_eq!(compact["total_actors"], 2);
        assert!(compact.get("activities").is_none());
        let rich = feed_item(&m, &RecipientMap::new(), FeedMode::Rich);
        assert_eq!(rich["data"]["nested"], json!({"a": 1}));
        assert_eq!(rich["total_activities"], 1);
        assert_eq!(rich["activities"][0]["recipient"]["id"], "u");
    }

    #[test]
    fn a_batch_message_shows_its_activities_and_counts() {
        let mut m = crate::model::feed::tests::row(None);
        m.actors = vec![RecipientRef::User("a1".into())];
        m.batch = Some(std::sync::Arc::new(json!({
            "activities": [{"id": "x1", "inserted_at": "t1", "actor": {"id": "a1"}, "data": {"n": 1}},
                           {"id": "x2", "inserted_at": "t2", "actor": null, "data": {"n": 2}}],
            "total_activities": 7, "total_actors": 3})));
        let rich = feed_item(&m, &RecipientMap::new(), FeedMode::Rich);
        assert_eq!(rich["total_activities"], 7);
        assert_eq!(rich["total_actors"], 3);
        assert_eq!(rich["activities"][1]["data"], json!({"n": 2}));
        assert_eq!(rich["activities"][0]["__typename"], "Activity");
        assert_eq!(rich["activities"][0]["recipient"]["id"], "u");
        let compact = feed_item(&m, &RecipientMap::new(), FeedMode::Compact);
        assert!(compact.get("activities").is_none());
        assert_eq!(compact["total_actors"], 3);
    }

    #[test]
    fn events_follow_the_timestamps_newest_first_with_stable_ids() {
        let mut m = crate::model::feed::tests::row(None);
        m.read_at = Some("2026-01-05T00:00:00.000000Z".into());
        let events = events(&m);
        let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(kinds, vec!["message.read", "message.sent"]);
        assert_eq!(events[0]["id"].as_str().map(str::len), Some(27));
        assert_eq!(events[0]["id"], super::events(&m)[0]["id"]);
        assert_ne!(events[0]["id"], events[1]["id"]);
    }

    #[test]
    fn exclude_drops_fields_inside_arrays() {
        let mut body = json!({"entries": [{"a": 1, "b": 2}], "vars": {}});
        exclude_paths(&mut body, &["entries.a".into(), "vars".into()]);
        assert_eq!(body, json!({"entries": [{"b": 2}]}));
    }
}
