//! Channel data of users and objects (spec §4.1, §4.2).

use serde_json::{Map, Value};

use super::owner;
use crate::model::entities::EntityKey;
use crate::store::recipients;
use crate::store::{Store, StoreResult};

impl Store {
    /// The owner's data for a channel, or `None`.
    pub(crate) async fn channel_data(
        &self,
        key: EntityKey,
        channel: String,
    ) -> StoreResult<Option<Value>> {
        self.read(move |db| recipients::get_channel_data(db, owner(&key), &channel))
            .await
    }

    /// Replaces the owner's data for `channel_id`, first creating the user or object
    /// (with no properties) when it does not exist yet, all in one write; returns the
    /// channel id the data is stored under.
    pub(crate) async fn set_channel_data(
        &self,
        key: EntityKey,
        channel_id: String,
        data: Value,
    ) -> StoreResult<String> {
        self.write(move |db| {
            match &key {
                EntityKey::User(id) => {
                    if !recipients::user_exists(db, id)? {
                        recipients::upsert_user(db, id, &Map::new())?;
                    }
                }
                EntityKey::Object { collection, id } => {
                    if recipients::get_object(db, collection, id)?.is_none() {
                        recipients::upsert_object(db, collection, id, &Map::new())?;
                    }
                }
                EntityKey::Tenant(_) => {}
            }
            recipients::set_channel_data(db, owner(&key), &channel_id, &data)
        })
        .await
    }

    /// Deletes the owner's data for a channel; whether it existed.
    pub(crate) async fn delete_channel_data(
        &self,
        key: EntityKey,
        channel: String,
    ) -> StoreResult<bool> {
        self.write(move |db| recipients::delete_channel_data(db, owner(&key), &channel))
            .await
    }
}
