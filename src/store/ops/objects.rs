//! Objects (spec §4.2) and the tenant admin's object list, each one store command.

use crate::model::entities::Entity;
use crate::model::{CollectionName, EntityId, Page, PageQuery, RecipientProperties};
use crate::store::recipients;
use crate::store::{Store, StoreResult};

impl Store {
    /// The object, or `None` if never set (or deleted).
    pub(crate) async fn object(
        &self,
        collection: String,
        id: String,
    ) -> StoreResult<Option<Entity>> {
        self.read(move |db| recipients::get_object(db, &collection, &id))
            .await
    }

    /// Set: creates the object or deep-merges `props` into it; returns the stored object.
    pub(crate) async fn set_object(
        &self,
        collection: CollectionName,
        id: EntityId,
        props: RecipientProperties,
    ) -> StoreResult<Entity> {
        self.write(move |db| {
            recipients::upsert_object(db, collection.as_str(), id.as_str(), props.as_map())
        })
        .await
    }

    /// Deletes the object with everything attached to it; whether it existed.
    pub(crate) async fn delete_object(&self, collection: String, id: String) -> StoreResult<bool> {
        self.write(move |db| recipients::delete_object(db, &collection, &id))
            .await
    }

    /// One page of a collection's objects in creation order.
    pub(crate) async fn list_objects(
        &self,
        collection: CollectionName,
        page: PageQuery,
        include_preferences: bool,
    ) -> StoreResult<Page<Entity>> {
        self.read(move |db| {
            recipients::list_objects(db, collection.as_str(), &page, include_preferences)
        })
        .await
    }

    /// One page of the objects with feed items in `tenant` (optionally of one collection).
    pub(crate) async fn list_tenant_objects(
        &self,
        tenant: String,
        collection: Option<String>,
        page: PageQuery,
        include_preferences: bool,
    ) -> StoreResult<Page<Entity>> {
        self.read(move |db| {
            recipients::list_tenant_objects(
                db,
                &tenant,
                collection.as_deref(),
                &page,
                include_preferences,
            )
        })
        .await
    }
}
