//! Recipients: users, objects and tenants, plus what hangs off them (preference sets and
//! channel data). Reads return `model::entities::Entity`; `model` shapes the wire.
//!
//! Invariants:
//! - Stored `properties` hold only client-settable keys (see `model::properties`); the
//!   wire shape is rebuilt on every read by `model::entities`.
//! - Upserts deep-merge (`merge::deep_merge`): a key can be set to `null`, never removed.
//! - `preferences` and `channel_data` in a body never become custom properties: they go
//!   to `preference_sets` / `channel_data` rows in the same transaction.
//! - The merged custom properties stay within 256 kB, or the upsert fails with
//!   `StoreError::Invalid` and changes nothing.

mod attached;
mod caps;
mod listing;
pub mod merge;
mod objects;
pub mod subscriptions;
mod tenants;
mod users;

use std::collections::HashMap;

use crate::store::sql::params;
use serde_json::{Map, Value};

use super::{Db, StoreResult};
use crate::model::RecipientRef;
use crate::model::entities::Entity;
pub use crate::model::entities::minimal;

pub use attached::{
    ChannelDataOwner, delete_channel_data, delete_preference_set, get_channel_data,
    get_preference_set, list_preference_sets, put_preference_set, set_channel_data,
};
pub use objects::{
    delete_object, get_object, list_objects, list_tenant_objects, object_exists, upsert_object,
};
pub use tenants::{
    TenantFilter, delete_tenant, ensure_tenant, find_tenant, list_tenants, tenant_preference_set,
    upsert_tenant,
};
pub use users::{
    delete_user, get_user, list_users, merge_users, upsert_user, upsert_users, user_exists,
};

/// Loads the recipient a reference names, or `None` if it was never identified.
pub fn find_recipient(db: &Db<'_>, r: &RecipientRef) -> StoreResult<Option<Entity>> {
    match r {
        RecipientRef::User(id) => get_user(db, id),
        RecipientRef::Object { id, collection } => get_object(db, collection, id),
    }
}

/// [`find_recipient`] in its wire shape (shaped by `model::entities`), as the engine's
/// templates read it.
pub fn get_recipient(db: &Db<'_>, r: &RecipientRef) -> StoreResult<Option<Value>> {
    Ok(find_recipient(db, r)?.map(Entity::into_wire))
}

/// [`find_tenant`] in its wire shape (shaped by `model::entities`), as the engine's
/// templates read it.
pub fn get_tenant(db: &Db<'_>, id: &str) -> StoreResult<Option<Value>> {
    Ok(find_tenant(db, id)?.map(Entity::into_wire))
}

/// Loads a fan-out page's recipients: what [`get_recipient`] returns for each, keyed by
/// reference (absent = never identified). Users in one query; objects one by one.
pub fn get_recipients_by_ref(
    db: &Db<'_>,
    refs: &[&RecipientRef],
) -> StoreResult<HashMap<RecipientRef, Value>> {
    let user_ids: Vec<&str> = refs
        .iter()
        .filter_map(|r| match r {
            RecipientRef::User(id) => Some(id.as_str()),
            RecipientRef::Object { .. } => None,
        })
        .collect();
    let mut out: HashMap<RecipientRef, Value> = users::get_users(db, &user_ids)?
        .into_iter()
        .map(|(id, user)| (RecipientRef::User(id), user.into_wire()))
        .collect();
    for r in refs {
        if let RecipientRef::Object { .. } = r
            && let Some(object) = get_recipient(db, r)?
        {
            out.insert((*r).clone(), object);
        }
    }
    Ok(out)
}

/// The preference-set bodies named `set_ids` of each of `refs`, in one query, keyed by
/// (recipient, set id); what [`get_preference_set`] returns for each pair.
pub fn get_preference_sets_by_ref(
    db: &Db<'_>,
    refs: &[&RecipientRef],
    set_ids: &[&str],
) -> StoreResult<HashMap<(RecipientRef, String), Map<String, Value>>> {
    // One query per (kind, collection) among `refs` (one for a page of users): the
    // group's ids as one JSON array drive the loop, each a primary-key lookup, and each
    // row comes back with its position in the array.
    let mut groups: Vec<((&str, &str), Vec<&RecipientRef>)> = Vec::new();
    for r in refs {
        let group = (r.kind(), r.collection());
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.push(r),
            None => groups.push((group, vec![r])),
        }
    }
    let mut stmt = db.0.prepare_cached(
        "SELECT CAST(r.key AS INTEGER), p.set_id, p.body \
         FROM json_each(?1) AS r CROSS JOIN preference_sets AS p \
         WHERE p.recipient_kind = ?3 AND p.recipient_collection = ?4 \
           AND p.recipient_id = r.value \
           AND p.set_id IN (SELECT value FROM json_each(?2))",
    )?;
    let set_ids = serde_json::to_string(set_ids)?;
    let mut out = HashMap::new();
    for ((kind, collection), members) in &groups {
        let ids: Vec<&str> = members.iter().map(|r| r.id()).collect();
        let rows = stmt.query_map(
            params![serde_json::to_string(&ids)?, set_ids, kind, collection],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            },
        )?;
        for row in rows {
            let (at, set_id, body) = row?;
            if let Some(r) = usize::try_from(at).ok().and_then(|i| members.get(i)) {
                out.insert(((*r).clone(), set_id), serde_json::from_str(&body)?);
            }
        }
    }
    Ok(out)
}

/// Loads many recipients in order (feed-item `actors`); `None` for one that does not
/// exist (any more): the wire shows a minimal stand-in, so an item never loses an actor.
pub fn get_recipients(db: &Db<'_>, refs: &[RecipientRef]) -> StoreResult<Vec<Option<Entity>>> {
    refs.iter().map(|r| find_recipient(db, r)).collect()
}

#[cfg(test)]
mod tests;
