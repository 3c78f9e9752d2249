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
mod listing;
pub mod merge;
mod objects;
pub mod subscriptions;
mod tenants;
mod users;

use serde_json::{Value, json};

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
pub use users::{delete_user, get_user, list_users, merge_users, upsert_user, user_exists};

/// Loads the full recipient a reference names, or `None` if it was never identified.
pub fn get_recipient(db: &Db<'_>, r: &RecipientRef) -> StoreResult<Option<Value>> {
    match r {
        RecipientRef::User(id) => get_user(db, id),
        RecipientRef::Object { id, collection } => get_object(db, collection, id),
    }
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
