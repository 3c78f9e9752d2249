//! Subscriptions of recipients to objects (spec §4.3), single and bulk.

use crate::model::bulk::BulkOperation;
use crate::model::entities::Subscription;
use crate::model::subscription::{BulkGroup, SubscribeRequest};
use crate::model::{Page, PageQuery, RecipientRef};
use crate::store::recipients::object_exists;
use crate::store::recipients::subscriptions::{self, Listed, ObjectKey};
use crate::store::{Store, StoreError, StoreResult, bulk};

impl Store {
    /// Subscribes `request`'s subscribers (identifying inline ones) to `object`, which
    /// must exist, in one write; the resulting subscriptions in request order.
    pub(crate) async fn subscribe(
        &self,
        object: ObjectKey,
        request: SubscribeRequest,
    ) -> StoreResult<Vec<Subscription>> {
        self.write(move |db| subscriptions::subscribe(db, &object, &request, ""))
            .await
    }

    /// Removes the named subscriptions of `object` (which must exist); the removed ones.
    pub(crate) async fn unsubscribe(
        &self,
        object: ObjectKey,
        refs: Vec<RecipientRef>,
    ) -> StoreResult<Vec<Subscription>> {
        self.write(move |db| subscriptions::unsubscribe(db, &object, &refs))
            .await
    }

    /// One page of subscriptions, from either side.
    pub(crate) async fn subscriptions(
        &self,
        listed: Listed,
        page: PageQuery,
        include_preferences: bool,
    ) -> StoreResult<Page<Subscription>> {
        self.read(move |db| subscriptions::list(db, &listed, &page, include_preferences))
            .await
    }

    /// Bulk add: every group's subscribers to its object of `collection`, all or nothing
    /// (a missing object refuses the whole call), recorded as `name`.
    pub(crate) async fn bulk_subscribe(
        &self,
        name: &'static str,
        collection: String,
        groups: Vec<BulkGroup<SubscribeRequest>>,
    ) -> StoreResult<BulkOperation> {
        self.write(move |db| {
            let mut applied = 0;
            for (i, group) in groups.iter().enumerate() {
                let object = ObjectKey::new(collection.as_str(), group.object_id.as_str());
                if !object_exists(db, &object.collection, &object.id)? {
                    return Err(StoreError::Invalid {
                        field: format!("subscriptions[{i}].id"),
                        message: format!(
                            "the object `{}` in collection `{}` does not exist",
                            object.id, object.collection
                        ),
                    });
                }
                let at = format!("subscriptions[{i}]");
                applied += subscriptions::subscribe(db, &object, &group.request, &at)?.len();
            }
            bulk::record_completed(db, name, applied, Vec::new())
        })
        .await
    }

    /// Bulk delete: removes each group's subscriptions where they exist, recorded as `name`.
    pub(crate) async fn bulk_unsubscribe(
        &self,
        name: &'static str,
        collection: String,
        groups: Vec<BulkGroup<Vec<RecipientRef>>>,
    ) -> StoreResult<BulkOperation> {
        self.write(move |db| {
            let mut applied = 0;
            for group in &groups {
                let object = ObjectKey::new(collection.as_str(), group.object_id.as_str());
                applied += subscriptions::unsubscribe_existing(db, &object, &group.request)?.len();
            }
            bulk::record_completed(db, name, applied, Vec::new())
        })
        .await
    }
}
