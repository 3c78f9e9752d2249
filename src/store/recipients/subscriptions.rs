//! Object subscriptions (spec §4.3): a recipient (user or object) follows an object. The
//! rows are what fan-out walks (`subscribers_page`) and what the subscription endpoints
//! show as Knock's `Subscription`.
//!
//! Invariants, kept inside the one write that adds subscriptions (any violation is a
//! `StoreError` that rolls the whole call back, so nothing is half-written):
//! - the followed object exists; a subscriber exists or is identified inline in the call;
//! - no object follows itself, and no object-to-object cycle is ever stored;
//! - deleting a user or object deletes the subscriptions on both sides of it
//!   (`delete_for`); messages already delivered stay.

use std::collections::{HashSet, VecDeque};

use crate::store::sql::{OptionalExtension, params};
use serde_json::{Map, Value, json};

use super::attached::{ChannelDataOwner, preference_map};
use super::listing::{self, Listing};
use super::{find_recipient, get_object, object_exists, upsert_object, upsert_user, user_exists};
use crate::model::entities::Subscription;
use crate::model::subscription::{SubscribeRequest, Subscriber};
use crate::model::{Page, PageQuery, RecipientRef};
use crate::store::{Db, StoreError, StoreResult};

/// Most objects a cycle check visits before refusing the subscription as too entangled.
const MAX_CYCLE_CHECK_OBJECTS: usize = 10_000;

pub use crate::model::entities::{Listed, ObjectKey};

/// 404 for an object that does not exist (or was deleted).
fn object_missing(object: &ObjectKey) -> StoreError {
    StoreError::Missing(format!(
        "The object `{}` in collection `{}`",
        object.id, object.collection
    ))
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// One stored row (object, recipient, properties, inserted_at, updated_at).
struct Row {
    object: ObjectKey,
    recipient: RecipientRef,
    properties: Option<String>,
    inserted_at: String,
    updated_at: String,
}

const ROW_COLUMNS: &str = "rowid, object_collection, object_id, recipient_kind, recipient_collection, recipient_id, properties, inserted_at, updated_at";

fn read_row(r: &crate::store::sql::Row<'_>) -> crate::store::sql::Result<(i64, Row)> {
    let kind: String = r.get(3)?;
    let collection: String = r.get(4)?;
    let id: String = r.get(5)?;
    Ok((
        r.get(0)?,
        Row {
            object: ObjectKey::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
            recipient: RecipientRef::from_stored(&kind, &collection, &id),
            properties: r.get(6)?,
            inserted_at: r.get(7)?,
            updated_at: r.get(8)?,
        },
    ))
}

fn owner(r: &RecipientRef) -> ChannelDataOwner<'_> {
    match r {
        RecipientRef::User(id) => ChannelDataOwner::user(id),
        RecipientRef::Object { id, collection } => ChannelDataOwner::object(collection, id),
    }
}

/// The subscription with what it joins; a recipient or object deleted meanwhile is
/// `None` (the wire shows it minimally).
fn wire(db: &Db<'_>, row: &Row, include_preferences: bool) -> StoreResult<Subscription> {
    let object = get_object(db, &row.object.collection, &row.object.id)?;
    let recipient = find_recipient(db, &row.recipient)?;
    let recipient_preferences = if include_preferences {
        Some(preference_map(db, owner(&row.recipient))?)
    } else {
        None
    };
    let properties = match &row.properties {
        Some(text) => serde_json::from_str(text)?,
        None => Value::Null,
    };
    Ok(Subscription {
        object_ref: row.object.as_ref(),
        object,
        recipient_ref: row.recipient.clone(),
        recipient,
        recipient_preferences,
        properties,
        inserted_at: row.inserted_at.clone(),
        updated_at: row.updated_at.clone(),
    })
}

fn stored_row(db: &Db<'_>, object: &ObjectKey, r: &RecipientRef) -> StoreResult<Option<Row>> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM subscriptions WHERE object_collection = ?1 AND object_id = ?2 \
         AND recipient_kind = ?3 AND recipient_collection = ?4 AND recipient_id = ?5"
    );
    Ok(db
        .0
        .prepare_cached(&sql)?
        .query_row(
            params![
                object.collection,
                object.id,
                r.kind(),
                r.collection(),
                r.id()
            ],
            read_row,
        )
        .optional()?
        .map(|(_, row)| row))
}

fn exists(db: &Db<'_>, r: &RecipientRef) -> StoreResult<bool> {
    match r {
        RecipientRef::User(id) => user_exists(db, id),
        RecipientRef::Object { id, collection } => object_exists(db, collection, id),
    }
}

/// Objects that (directly) follow `object`.
fn object_subscribers(db: &Db<'_>, object: &ObjectKey) -> StoreResult<Vec<ObjectKey>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT recipient_collection, recipient_id FROM subscriptions \
         WHERE object_collection = ?1 AND object_id = ?2 AND recipient_kind = 'object'",
    )?;
    let rows = stmt
        .query_map([&object.collection, &object.id], |r| {
            Ok(ObjectKey::new(
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Whether `target` is reachable from `from` by following subscriber edges (so adding
/// `from` as a subscriber of `target` would close a cycle).
fn reaches(db: &Db<'_>, from: &ObjectKey, target: &ObjectKey, at: &str) -> StoreResult<bool> {
    let mut seen: HashSet<ObjectKey> = HashSet::from([from.clone()]);
    let mut queue = VecDeque::from([from.clone()]);
    while let Some(next) = queue.pop_front() {
        if &next == target {
            return Ok(true);
        }
        for subscriber in object_subscribers(db, &next)? {
            if seen.len() >= MAX_CYCLE_CHECK_OBJECTS {
                return Err(invalid(
                    at,
                    format!(
                        "follows more than {MAX_CYCLE_CHECK_OBJECTS} objects through subscriptions; cannot check for a cycle"
                    ),
                ));
            }
            if seen.insert(subscriber.clone()) {
                queue.push_back(subscriber);
            }
        }
    }
    Ok(false)
}

/// Makes sure one subscriber can follow `object`: identifies it when inline, otherwise it
/// must exist; it is not the object itself and closes no cycle. `at` names the field.
fn admit(db: &Db<'_>, object: &ObjectKey, s: &Subscriber, at: &str) -> StoreResult<()> {
    if s.reference == object.as_ref() {
        return Err(invalid(at, "an object cannot subscribe to itself"));
    }
    match (&s.inline, &s.reference) {
        (Some(props), RecipientRef::User(id)) => {
            upsert_user(db, id, props)?;
        }
        (Some(props), RecipientRef::Object { id, collection }) => {
            upsert_object(db, collection, id, props)?;
        }
        (None, r) if !exists(db, r)? => {
            let what = match r {
                RecipientRef::User(id) => format!("the user `{id}` does not exist"),
                RecipientRef::Object { id, collection } => {
                    format!("the object `{id}` in collection `{collection}` does not exist")
                }
            };
            return Err(invalid(
                at,
                format!("{what}; identify it first or pass it inline (e.g. {{\"id\": ...}})"),
            ));
        }
        (None, _) => {}
    }
    if let RecipientRef::Object { id, collection } = &s.reference {
        let subscriber = ObjectKey::new(collection.as_str(), id.as_str());
        if reaches(db, &subscriber, object, at)? {
            return Err(invalid(
                at,
                format!(
                    "`{collection}/{id}` already receives what `{}/{}` receives through subscriptions; subscribing it would make a cycle",
                    object.collection, object.id
                ),
            ));
        }
    }
    Ok(())
}

/// Adds (or updates the properties of) `request`'s subscribers to `object`, which must
/// exist. Returns the resulting `Subscription`s in request order. `at` prefixes the field
/// names of errors (bulk groups).
pub fn subscribe(
    db: &Db<'_>,
    object: &ObjectKey,
    request: &SubscribeRequest,
    at: &str,
) -> StoreResult<Vec<Subscription>> {
    if !object_exists(db, &object.collection, &object.id)? {
        return Err(object_missing(object));
    }
    let properties = request
        .properties
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    let now = db.now();
    let mut out = Vec::with_capacity(request.subscribers.len());
    for (i, s) in request.subscribers.iter().enumerate() {
        let field = if at.is_empty() {
            format!("recipients[{i}]")
        } else {
            format!("{at}.recipients[{i}]")
        };
        admit(db, object, s, &field)?;
        let r = &s.reference;
        db.0.prepare_cached(
            "INSERT INTO subscriptions(object_collection, object_id, recipient_kind, recipient_collection, recipient_id, properties, inserted_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
             ON CONFLICT(object_collection, object_id, recipient_kind, recipient_collection, recipient_id) \
             DO UPDATE SET properties = excluded.properties, updated_at = excluded.updated_at",
        )?
        .execute(params![
            object.collection,
            object.id,
            r.kind(),
            r.collection(),
            r.id(),
            properties,
            now
        ])?;
        if let Some(row) = stored_row(db, object, r)? {
            out.push(wire(db, &row, false)?);
        }
    }
    Ok(out)
}

/// Removes the named subscriptions of `object` (which must exist); returns the removed
/// `Subscription`s. References that were not subscribed are skipped.
pub fn unsubscribe(
    db: &Db<'_>,
    object: &ObjectKey,
    refs: &[RecipientRef],
) -> StoreResult<Vec<Subscription>> {
    if !object_exists(db, &object.collection, &object.id)? {
        return Err(object_missing(object));
    }
    unsubscribe_existing(db, object, refs)
}

/// [`unsubscribe`] without the existence check (bulk delete skips what is not there).
pub fn unsubscribe_existing(
    db: &Db<'_>,
    object: &ObjectKey,
    refs: &[RecipientRef],
) -> StoreResult<Vec<Subscription>> {
    let mut out = Vec::new();
    for r in refs {
        let Some(row) = stored_row(db, object, r)? else {
            continue;
        };
        out.push(wire(db, &row, false)?);
        db.0.prepare_cached(
            "DELETE FROM subscriptions WHERE object_collection = ?1 AND object_id = ?2 \
             AND recipient_kind = ?3 AND recipient_collection = ?4 AND recipient_id = ?5",
        )?
        .execute(params![
            object.collection,
            object.id,
            r.kind(),
            r.collection(),
            r.id()
        ])?;
    }
    Ok(out)
}

/// One page of subscriptions in the order they were first made. For `SubscribersOf`, the
/// object must exist (a deleted object has no subscriptions to show).
pub fn list(
    db: &Db<'_>,
    listed: &Listed,
    q: &PageQuery,
    include_preferences: bool,
) -> StoreResult<Page<Subscription>> {
    let (side_collection, side_id, kind, filter) = match listed {
        Listed::SubscribersOf(object, only) => {
            if !object_exists(db, &object.collection, &object.id)? {
                return Err(object_missing(object));
            }
            let only: Vec<Value> = only
                .iter()
                .map(|r| json!([r.kind(), r.collection(), r.id()]))
                .collect();
            (
                object.collection.clone(),
                object.id.clone(),
                String::new(),
                only,
            )
        }
        Listed::FollowedBy(r, only) => {
            let only: Vec<Value> = only.iter().map(|o| json!([o.collection, o.id])).collect();
            (
                r.collection().to_owned(),
                r.id().to_owned(),
                r.kind().to_owned(),
                only,
            )
        }
    };
    let filter = (!filter.is_empty()).then(|| Value::Array(filter).to_string());
    let listing = match listed {
        Listed::SubscribersOf(..) => Listing {
            table: "subscriptions",
            columns: "rowid, object_collection, object_id, recipient_kind, recipient_collection, recipient_id, properties, inserted_at, updated_at",
            filter: "object_collection = ?1 AND object_id = ?2 AND (CAST(?3 AS TEXT) IS NULL OR EXISTS (\
                     SELECT 1 FROM json_each(?3) f WHERE json_extract(f.value, '$[0]') = recipient_kind \
                     AND json_extract(f.value, '$[1]') = recipient_collection AND json_extract(f.value, '$[2]') = recipient_id))",
            params: vec![&side_collection, &side_id, &filter],
        },
        Listed::FollowedBy(..) => Listing {
            table: "subscriptions",
            columns: "rowid, object_collection, object_id, recipient_kind, recipient_collection, recipient_id, properties, inserted_at, updated_at",
            filter: "recipient_kind = ?4 AND recipient_collection = ?1 AND recipient_id = ?2 AND (CAST(?3 AS TEXT) IS NULL OR EXISTS (\
                     SELECT 1 FROM json_each(?3) f WHERE json_extract(f.value, '$[0]') = object_collection \
                     AND json_extract(f.value, '$[1]') = object_id))",
            params: vec![&side_collection, &side_id, &filter, &kind],
        },
    };
    let page = listing::fetch(db, &listing, q, read_row)?;
    let entries = page
        .entries
        .iter()
        .map(|row| wire(db, row, include_preferences))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page {
        entries,
        after: page.after,
        before: page.before,
    })
}

/// Deletes every subscription `owner` takes part in, as subscriber and (objects) as the
/// followed object. Called when a user or object is deleted.
pub(super) fn delete_for(db: &Db<'_>, owner: &ChannelDataOwner<'_>) -> StoreResult<()> {
    db.0.prepare_cached(
        "DELETE FROM subscriptions WHERE recipient_kind = ?1 AND recipient_collection = ?2 AND recipient_id = ?3",
    )?
    .execute(params![owner.kind, owner.collection, owner.id])?;
    if owner.kind == "object" {
        db.0.prepare_cached(
            "DELETE FROM subscriptions WHERE object_collection = ?1 AND object_id = ?2",
        )?
        .execute(params![owner.collection, owner.id])?;
    }
    Ok(())
}

/// Moves user `from`'s subscriptions to `into` (user merge); where `into` already follows
/// the same object, `into`'s subscription wins and `from`'s goes with `from`.
pub(super) fn adopt_user_subscriptions(db: &Db<'_>, into: &str, from: &str) -> StoreResult<()> {
    db.0.prepare_cached(
        "UPDATE subscriptions SET recipient_id = ?1 \
         WHERE recipient_kind = 'user' AND recipient_collection = '' AND recipient_id = ?2 \
         AND NOT EXISTS (SELECT 1 FROM subscriptions kept WHERE kept.object_collection = subscriptions.object_collection \
           AND kept.object_id = subscriptions.object_id AND kept.recipient_kind = 'user' \
           AND kept.recipient_collection = '' AND kept.recipient_id = ?1)",
    )?
    .execute([into, from])?;
    Ok(())
}

/// One subscriber of an object as fan-out sees it: who, with which subscription
/// properties, and its position (the fan-out cursor).
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriberRow {
    pub position: i64,
    pub recipient: RecipientRef,
    pub properties: Option<Map<String, Value>>,
}

/// The first object following `object` whose subscription row is after `after`, with that
/// row's position (fan-out's depth-2 hubs, in order).
pub fn next_object_subscriber(
    db: &Db<'_>,
    object: &ObjectKey,
    after: i64,
) -> StoreResult<Option<(i64, ObjectKey)>> {
    Ok(db
        .0
        .prepare_cached(
            "SELECT rowid, recipient_collection, recipient_id FROM subscriptions \
             WHERE object_collection = ?1 AND object_id = ?2 AND recipient_kind = 'object' AND rowid > ?3 \
             ORDER BY rowid LIMIT 1",
        )?
        .query_row(params![object.collection, object.id, after], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                ObjectKey::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
            ))
        })
        .optional()?)
}

/// Up to `limit` subscribers of `object` after position `after`, in position order.
pub fn subscribers_page(
    db: &Db<'_>,
    object: &ObjectKey,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<SubscriberRow>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT rowid, recipient_kind, recipient_collection, recipient_id, properties FROM subscriptions \
         WHERE object_collection = ?1 AND object_id = ?2 AND rowid > ?3 ORDER BY rowid LIMIT ?4",
    )?;
    let rows: Vec<(i64, String, String, String, Option<String>)> = stmt
        .query_map(
            params![object.collection, object.id, after, limit as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(position, kind, collection, id, props)| {
            Ok(SubscriberRow {
                position,
                recipient: RecipientRef::from_stored(&kind, &collection, &id),
                properties: props.map(|p| serde_json::from_str(&p)).transpose()?,
            })
        })
        .collect()
}
