//! Objects (spec §4.2), returned as [`Entity`]s: `model::entities` shapes the `Object`.

use crate::store::sql::{OptionalExtension, params};
use serde_json::{Map, Value};

use super::attached::preference_map;
use super::attached::{self, ChannelDataOwner};
use super::listing::{self, Listing};
use super::merge::{merged, parse_props, parse_stored, split};
use crate::model::entities::{Entity, EntityKey};
use crate::model::{Page, PageQuery};
use crate::store::{Db, StoreResult};

fn wire(collection: &str, id: &str, props: Map<String, Value>, updated_at: String) -> Entity {
    let key = EntityKey::Object {
        collection: collection.to_owned(),
        id: id.to_owned(),
    };
    Entity::new(key, props, updated_at)
}

fn stored(
    db: &Db<'_>,
    collection: &str,
    id: &str,
) -> StoreResult<Option<(Map<String, Value>, String)>> {
    let row: Option<(String, String)> =
        db.0.prepare_cached(
            "SELECT properties, updated_at FROM objects WHERE collection = ?1 AND id = ?2",
        )?
        .query_row([collection, id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(parse_stored).transpose()
}

/// Set: creates the object or deep-merges `props` into it; returns the stored object.
/// `props` should come from `RecipientProperties::parse_object`.
pub fn upsert_object(
    db: &Db<'_>,
    collection: &str,
    id: &str,
    props: &Map<String, Value>,
) -> StoreResult<Entity> {
    let (custom, preferences, channel_data) = split(props);
    let merged = merged(stored(db, collection, id)?.map(|(p, _)| p), &custom)?;
    let now = db.now();
    db.0.prepare_cached(
        "INSERT INTO objects(collection, id, properties, inserted_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
         ON CONFLICT(collection, id) DO UPDATE SET properties = excluded.properties, updated_at = excluded.updated_at",
    )?
    .execute(params![collection, id, serde_json::to_string(&merged)?, now])?;
    attached::apply_inline(
        db,
        ChannelDataOwner::object(collection, id),
        preferences,
        channel_data,
    )?;
    Ok(wire(collection, id, merged, now))
}

/// The object, or `None` if it was never set (or deleted).
pub fn get_object(db: &Db<'_>, collection: &str, id: &str) -> StoreResult<Option<Entity>> {
    Ok(stored(db, collection, id)?
        .map(|(props, updated_at)| wire(collection, id, props, updated_at)))
}

/// Whether an object exists (cheaper than loading it).
pub fn object_exists(db: &Db<'_>, collection: &str, id: &str) -> StoreResult<bool> {
    Ok(db
        .0
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM objects WHERE collection = ?1 AND id = ?2)")?
        .query_row([collection, id], |r| r.get(0))?)
}

/// Deletes the object with its preference sets, channel data and subscriptions (as
/// subscriber and as followed object). Returns whether it existed.
pub fn delete_object(db: &Db<'_>, collection: &str, id: &str) -> StoreResult<bool> {
    let n =
        db.0.prepare_cached("DELETE FROM objects WHERE collection = ?1 AND id = ?2")?
            .execute([collection, id])?;
    attached::delete_all(db, ChannelDataOwner::object(collection, id))?;
    Ok(n > 0)
}

/// One page of a collection's objects in creation order.
pub fn list_objects(
    db: &Db<'_>,
    collection: &str,
    q: &PageQuery,
    include_preferences: bool,
) -> StoreResult<Page<Entity>> {
    let collection_param = collection.to_owned();
    let listing = Listing {
        table: "objects",
        columns: "rowid, collection, id, properties, updated_at",
        filter: "collection = ?1",
        params: vec![&collection_param],
    };
    page_of(db, &listing, q, include_preferences)
}

/// One page of the objects that have feed items in `tenant` (optionally of one
/// `collection`), in creation order. See `api::tenant_objects` for the definition.
pub fn list_tenant_objects(
    db: &Db<'_>,
    tenant: &str,
    collection: Option<&str>,
    q: &PageQuery,
    include_preferences: bool,
) -> StoreResult<Page<Entity>> {
    let tenant_param = tenant.to_owned();
    let collection_param = collection.map(str::to_owned);
    let listing = Listing {
        table: "objects",
        columns: "rowid, collection, id, properties, updated_at",
        // A counter row (the fold made one for every tenant it saw in the feed) or an
        // item of the feed's unfolded tail.
        filter: "(CAST(?1 AS TEXT) IS NULL OR collection = ?1) AND EXISTS (\
                 SELECT 1 FROM feeds f WHERE f.recipient_kind = 'object' \
                 AND f.recipient_collection = objects.collection AND f.recipient_id = objects.id \
                 AND (EXISTS (SELECT 1 FROM feed_counters c WHERE c.feed = f.id AND c.tenant = ?2) \
                      OR EXISTS (SELECT 1 FROM messages m WHERE m.feed = f.id \
                                 AND m.seq > (SELECT folded_through FROM feed_fold) \
                                 AND coalesce(m.tenant, '') = ?2)))",
        params: vec![&collection_param, &tenant_param],
    };
    page_of(db, &listing, q, include_preferences)
}

fn page_of(
    db: &Db<'_>,
    listing: &Listing<'_>,
    q: &PageQuery,
    include_preferences: bool,
) -> StoreResult<Page<Entity>> {
    let page = listing::fetch(db, listing, q, |r| {
        Ok((
            r.get(0)?,
            (
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ),
        ))
    })?;
    let mut entries = Vec::with_capacity(page.entries.len());
    for (collection, id, props, updated_at) in page.entries {
        let collection = collection.as_str();
        let mut object = wire(collection, &id, parse_props(&props)?, updated_at);
        if include_preferences {
            object.preferences = Some(preference_map(
                db,
                ChannelDataOwner::object(collection, &id),
            )?);
        }
        entries.push(object);
    }
    Ok(Page {
        entries,
        after: page.after,
        before: page.before,
    })
}
