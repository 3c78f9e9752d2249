//! Demo mode's seed data.

use serde_json::{Map, Value};

use crate::model::subscription::SubscribeRequest;
use crate::store::recipients::subscriptions::{self, ObjectKey};
use crate::store::recipients::upsert_object;
use crate::store::{Store, StoreResult};

impl Store {
    /// Creates each demo object with `props` and subscribes its followers, in one write,
    /// so the seeded object notifications fan out to the same people on every fresh
    /// database.
    pub(crate) async fn seed_demo_objects(
        &self,
        objects: Vec<(ObjectKey, Map<String, Value>, SubscribeRequest)>,
    ) -> StoreResult<()> {
        self.write(move |db| {
            for (key, props, request) in &objects {
                upsert_object(db, &key.collection, &key.id, props)?;
                subscriptions::subscribe(db, key, request, "")?;
            }
            Ok(())
        })
        .await
    }
}
