//! A recipient's preference sets (spec §5) as the preferences API reads and writes them.

use serde_json::{Map, Value};

use super::owner;
use crate::model::entities::EntityKey;
use crate::model::preferences;
use crate::store::recipients;
use crate::store::{Store, StoreResult};

impl Store {
    /// `(set_id, body)` of each of the owner's preference sets.
    pub(crate) async fn preference_sets(
        &self,
        key: EntityKey,
    ) -> StoreResult<Vec<(String, Map<String, Value>)>> {
        self.read(move |db| recipients::list_preference_sets(db, owner(&key)))
            .await
    }

    /// One preference-set body, or `None` when never written.
    pub(crate) async fn preference_set(
        &self,
        key: EntityKey,
        set_id: String,
    ) -> StoreResult<Option<Map<String, Value>>> {
        self.read(move |db| recipients::get_preference_set(db, owner(&key), &set_id))
            .await
    }

    /// PUT: applies `body` to the stored set (`model::preferences::apply_put`: replace,
    /// or merge under `__persistence_strategy__: merge`) and stores the result, in one
    /// write so a concurrent PUT cannot interleave; returns the stored body.
    pub(crate) async fn put_preference_set(
        &self,
        key: EntityKey,
        set_id: String,
        body: Value,
    ) -> StoreResult<Map<String, Value>> {
        self.write(move |db| {
            let owner = owner(&key);
            let existing = recipients::get_preference_set(db, owner, &set_id)?.map(Value::Object);
            let next = preferences::apply_put(existing.as_ref(), &body);
            let map = next.as_object().cloned().unwrap_or_default();
            recipients::put_preference_set(db, owner, &set_id, &map)?;
            Ok(map)
        })
        .await
    }

    /// Deletes one preference set; whether it existed.
    pub(crate) async fn delete_preference_set(
        &self,
        key: EntityKey,
        set_id: String,
    ) -> StoreResult<bool> {
        self.write(move |db| recipients::delete_preference_set(db, owner(&key), &set_id))
            .await
    }
}
