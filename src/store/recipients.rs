//! Recipients: users, objects and tenants, plus what hangs off them (preference sets and
//! channel data). Every read returns the Knock wire shape as a `serde_json::Value`.
//!
//! Invariants:
//! - Stored `properties` hold only client-settable keys (see `model::properties`); the
//!   wire shape is rebuilt on every read (`__typename`, `id`, `updated_at` are ours).
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
use serde_json::{Map, Value, json};

use super::{Db, StoreResult};
use crate::model::RecipientRef;

pub use attached::{
    ChannelDataOwner, delete_channel_data, delete_preference_set, get_channel_data,
    get_preference_set, list_channel_data, list_preference_sets, merge_preference_set,
    preference_set_wire, put_preference_set, set_channel_data,
};
pub use merge::deep_merge;
pub use objects::{
    delete_object, get_object, list_objects, list_tenant_objects, object_exists, upsert_object,
};
pub use tenants::{
    TenantFilter, delete_tenant, ensure_tenant, get_tenant, list_tenants, tenant_preference_set,
    upsert_tenant,
};
pub use users::{
    delete_user, get_user, get_users, list_users, merge_users, upsert_user, user_exists,
};

/// Loads the full recipient a reference names, or `None` if it was never identified.
pub fn get_recipient(db: &Db<'_>, r: &RecipientRef) -> StoreResult<Option<Value>> {
    match r {
        RecipientRef::User(id) => get_user(db, id),
        RecipientRef::Object { id, collection } => get_object(db, collection, id),
    }
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
        .map(|(id, user)| (RecipientRef::User(id), user))
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

/// Loads many recipients in order (feed-item `actors`). A missing one becomes a minimal
/// `{__typename, id[, collection]}` so an item never loses an actor because it was deleted.
pub fn get_recipients(db: &Db<'_>, refs: &[RecipientRef]) -> StoreResult<Vec<Value>> {
    refs.iter()
        .map(|r| Ok(get_recipient(db, r)?.unwrap_or_else(|| minimal(r))))
        .collect()
}

/// The stand-in for a recipient that does not exist (any more).
pub fn minimal(r: &RecipientRef) -> Value {
    match r {
        RecipientRef::User(id) => json!({"__typename": "User", "id": id}),
        RecipientRef::Object { id, collection } => {
            json!({"__typename": "Object", "id": id, "collection": collection})
        }
    }
}

#[cfg(test)]
mod tests;
