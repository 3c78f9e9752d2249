//! Preference sets and channel data attached to a recipient (user, object or tenant).
//!
//! Stored preference-set `body`: the PreferenceSet object as the client sent it, minus
//! `__typename`, `id` and `__persistence_strategy__` (keys like `channel_types`,
//! `channels`, `categories`, `workflows`, `commercial_subscribed`).

use crate::store::sql::{OptionalExtension, params};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::merge::deep_merge;
use crate::store::{Db, StoreResult};

/// Who owns attached rows: `kind` is `'user'`, `'object'` or `'tenant'`; `collection` is
/// `""` except for objects.
#[derive(Debug, Clone, Copy)]
pub struct ChannelDataOwner<'a> {
    pub kind: &'static str,
    pub collection: &'a str,
    pub id: &'a str,
}

impl<'a> ChannelDataOwner<'a> {
    pub fn user(id: &'a str) -> Self {
        ChannelDataOwner {
            kind: "user",
            collection: "",
            id,
        }
    }
    pub fn object(collection: &'a str, id: &'a str) -> Self {
        ChannelDataOwner {
            kind: "object",
            collection,
            id,
        }
    }
    pub fn tenant(id: &'a str) -> Self {
        ChannelDataOwner {
            kind: "tenant",
            collection: "",
            id,
        }
    }
}

/// Keys of a PreferenceSet request that are not settings.
const NON_SETTINGS: &[&str] = &["__typename", "id", "__persistence_strategy__"];

fn strip(patch: &Map<String, Value>) -> Map<String, Value> {
    patch
        .iter()
        .filter(|(k, _)| !NON_SETTINGS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Decodes `(key, JSON text)` rows, as both attached tables store them.
fn decode_keyed<T: DeserializeOwned>(
    rows: impl Iterator<Item = crate::store::sql::Result<(String, String)>>,
) -> StoreResult<Vec<(String, T)>> {
    let mut out = Vec::new();
    for row in rows {
        let (key, text) = row?;
        out.push((key, serde_json::from_str(&text)?));
    }
    Ok(out)
}

/// Loads one preference-set body.
pub fn get_preference_set(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
    set_id: &str,
) -> StoreResult<Option<Map<String, Value>>> {
    let body: Option<String> = db
        .0
        .prepare_cached(
            "SELECT body FROM preference_sets WHERE recipient_kind = ?1 AND recipient_collection = ?2 \
             AND recipient_id = ?3 AND set_id = ?4",
        )?
        .query_row(params![owner.kind, owner.collection, owner.id, set_id], |r| r.get(0))
        .optional()?;
    Ok(body.map(|text| serde_json::from_str(&text)).transpose()?)
}

/// Every preference set of a recipient, ordered by set id.
pub fn list_preference_sets(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
) -> StoreResult<Vec<(String, Map<String, Value>)>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT set_id, body FROM preference_sets WHERE recipient_kind = ?1 AND recipient_collection = ?2 \
         AND recipient_id = ?3 ORDER BY set_id",
    )?;
    let rows = stmt.query_map(params![owner.kind, owner.collection, owner.id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    decode_keyed(rows)
}

/// Deep-merges `patch` into a preference set (creating it). Inline `preferences` in
/// identify/set calls use this (spec §5.2: inline preferences merge, not replace).
pub fn merge_preference_set(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
    set_id: &str,
    patch: &Map<String, Value>,
) -> StoreResult<Map<String, Value>> {
    let mut body = get_preference_set(db, owner, set_id)?.unwrap_or_default();
    deep_merge(&mut body, &strip(patch));
    write_preference_set(db, owner, set_id, &body)?;
    Ok(body)
}

/// Removes one preference set; returns whether it existed.
pub fn delete_preference_set(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
    set_id: &str,
) -> StoreResult<bool> {
    let n =
        db.0.prepare_cached(
            "DELETE FROM preference_sets WHERE recipient_kind = ?1 AND recipient_collection = ?2 \
             AND recipient_id = ?3 AND set_id = ?4",
        )?
        .execute(params![owner.kind, owner.collection, owner.id, set_id])?;
    Ok(n > 0)
}

/// The id a channel's data is stored under: the UUID of the channel `raw` names (by UUID
/// or key), or `raw` itself when no channel has it (a row stored before channels were
/// checked can still be read and deleted).
fn stored_channel_id(db: &Db<'_>, raw: &str) -> StoreResult<String> {
    Ok(crate::store::channels::find(db, raw)?.map_or_else(|| raw.to_owned(), |c| c.id))
}

/// Channel data for one channel, as stored (`{tokens: [...]}` etc.).
pub fn get_channel_data(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
    channel_id: &str,
) -> StoreResult<Option<Value>> {
    let channel_id = stored_channel_id(db, channel_id)?;
    let data: Option<String> =
        db.0.prepare_cached(
            "SELECT data FROM channel_data WHERE recipient_kind = ?1 AND recipient_collection = ?2 \
             AND recipient_id = ?3 AND channel_id = ?4",
        )?
        .query_row(
            params![owner.kind, owner.collection, owner.id, channel_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(data.map(|text| serde_json::from_str(&text)).transpose()?)
}

/// Replaces the channel data for one channel (channel data merges shallowly by channel).
/// The channel must exist (by UUID or key); the data is stored under its UUID, which is
/// returned. Fails with [`StoreError::Invalid`](crate::store::StoreError) past a cap
/// (see `caps`).
pub fn set_channel_data(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
    channel_id: &str,
    data: &Value,
) -> StoreResult<String> {
    let channel_id = super::caps::channel_for_data(db, channel_id)?;
    store_channel_data(db, owner, &channel_id, data)?;
    Ok(channel_id)
}

/// Upserts one channel-data row under `channel_id` as given, within the caps.
fn store_channel_data(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
    channel_id: &str,
    data: &Value,
) -> StoreResult<()> {
    let text = serde_json::to_string(data)?;
    super::caps::check_channel_data(db, owner, channel_id, &text)?;
    db.0.prepare_cached(
        "INSERT INTO channel_data(recipient_kind, recipient_collection, recipient_id, channel_id, data, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT(recipient_kind, recipient_collection, recipient_id, channel_id) \
         DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
    )?
    .execute(params![
        owner.kind,
        owner.collection,
        owner.id,
        channel_id,
        text,
        db.now()
    ])?;
    Ok(())
}

/// Every channel's data for a recipient, ordered by channel id.
pub fn list_channel_data(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
) -> StoreResult<Vec<(String, Value)>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT channel_id, data FROM channel_data WHERE recipient_kind = ?1 AND recipient_collection = ?2 \
         AND recipient_id = ?3 ORDER BY channel_id",
    )?;
    let rows = stmt.query_map(params![owner.kind, owner.collection, owner.id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    decode_keyed(rows)
}

/// Stores a whole preference-set body, replacing what was there (PUT without the merge
/// strategy, and copying sets between recipients). Strips `__typename`/`id`/strategy keys.
pub fn put_preference_set(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
    set_id: &str,
    body: &Map<String, Value>,
) -> StoreResult<()> {
    write_preference_set(db, owner, set_id, &strip(body))
}

/// Upserts a preference-set row with `body` exactly as given (already stripped), within
/// the caps (see `caps`).
fn write_preference_set(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
    set_id: &str,
    body: &Map<String, Value>,
) -> StoreResult<()> {
    let text = serde_json::to_string(body)?;
    super::caps::check_preference_set(db, owner, set_id, &text)?;
    db.0.prepare_cached(
        "INSERT INTO preference_sets(recipient_kind, recipient_collection, recipient_id, set_id, body, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT(recipient_kind, recipient_collection, recipient_id, set_id) \
         DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
    )?
    .execute(params![
        owner.kind,
        owner.collection,
        owner.id,
        set_id,
        text,
        db.now()
    ])?;
    Ok(())
}

/// Copies `from`'s preference sets and channel data to `to` where `to` has none of its
/// own (shallow: by set id and by channel id). Used by user merge, where the primary wins.
pub(super) fn adopt_missing(
    db: &Db<'_>,
    to: ChannelDataOwner<'_>,
    from: ChannelDataOwner<'_>,
) -> StoreResult<()> {
    for (set_id, body) in list_preference_sets(db, from)? {
        if get_preference_set(db, to, &set_id)?.is_none() {
            put_preference_set(db, to, &set_id, &body)?;
        }
    }
    for (channel_id, data) in list_channel_data(db, from)? {
        // As stored: a row kept from before channels were checked moves as it is.
        if get_channel_data(db, to, &channel_id)?.is_none() {
            store_channel_data(db, to, &channel_id, &data)?;
        }
    }
    Ok(())
}

/// Removes one channel's data.
pub fn delete_channel_data(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
    channel_id: &str,
) -> StoreResult<bool> {
    let channel_id = stored_channel_id(db, channel_id)?;
    let n =
        db.0.prepare_cached(
            "DELETE FROM channel_data WHERE recipient_kind = ?1 AND recipient_collection = ?2 \
             AND recipient_id = ?3 AND channel_id = ?4",
        )?
        .execute(params![owner.kind, owner.collection, owner.id, channel_id])?;
    Ok(n > 0)
}

/// Applies the `preferences` and `channel_data` parts of an identify/set body. A `null`
/// entry removes that set / channel's data; anything not an object is ignored (the edge
/// has already rejected it).
pub(super) fn apply_inline(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
    preferences: Option<&Value>,
    channel_data: Option<&Value>,
) -> StoreResult<()> {
    if let Some(Value::Object(sets)) = preferences {
        for (set_id, patch) in sets {
            match patch {
                Value::Object(patch) => {
                    merge_preference_set(db, owner, set_id, patch)?;
                }
                Value::Null => {
                    delete_preference_set(db, owner, set_id)?;
                }
                _ => {}
            }
        }
    }
    if let Some(Value::Object(channels)) = channel_data {
        for (channel_id, data) in channels {
            match data {
                Value::Null => {
                    delete_channel_data(db, owner, channel_id)?;
                }
                Value::Object(_) => {
                    set_channel_data(db, owner, channel_id, data)?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Removes everything attached to a recipient (on delete), subscriptions and the
/// schedules addressed to it included.
pub(super) fn delete_all(db: &Db<'_>, owner: ChannelDataOwner<'_>) -> StoreResult<()> {
    super::subscriptions::delete_for(db, &owner)?;
    crate::store::schedules::delete_for_recipient(db, owner.kind, owner.collection, owner.id)?;
    db.0.prepare_cached(
        "DELETE FROM preference_sets WHERE recipient_kind = ?1 AND recipient_collection = ?2 AND recipient_id = ?3",
    )?
    .execute(params![owner.kind, owner.collection, owner.id])?;
    db.0.prepare_cached(
        "DELETE FROM channel_data WHERE recipient_kind = ?1 AND recipient_collection = ?2 AND recipient_id = ?3",
    )?
    .execute(params![owner.kind, owner.collection, owner.id])?;
    Ok(())
}

/// `(set_id, body)` of each of a recipient's preference sets, for listings that include
/// them (`model::entities` shapes them).
pub(super) fn preference_map(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
) -> StoreResult<Vec<(String, Map<String, Value>)>> {
    list_preference_sets(db, owner)
}
