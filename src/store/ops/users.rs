//! Users (spec §4.1): identify, read, delete, merge and list, each one store command.

use crate::model::entities::Entity;
use crate::model::{EntityId, Page, PageQuery, RecipientProperties};
use crate::store::recipients;
use crate::store::{Store, StoreResult};

impl Store {
    /// The user, or `None` if never identified (or deleted).
    pub(crate) async fn user(&self, id: String) -> StoreResult<Option<Entity>> {
        self.read(move |db| recipients::get_user(db, &id)).await
    }

    /// Identify: creates the user or deep-merges `props` into it (inline preferences and
    /// channel data in the same transaction); returns the stored user.
    pub(crate) async fn identify_user(
        &self,
        id: EntityId,
        props: RecipientProperties,
    ) -> StoreResult<Entity> {
        self.write(move |db| recipients::upsert_user(db, id.as_str(), props.as_map()))
            .await
    }

    /// Deletes the user with everything attached to it; whether it existed.
    pub(crate) async fn delete_user(&self, id: String) -> StoreResult<bool> {
        self.write(move |db| recipients::delete_user(db, &id)).await
    }

    /// Merges user `from` into `into` and deletes `from`, atomically; `None` (nothing
    /// changed) when either is missing.
    pub(crate) async fn merge_users(
        &self,
        into: EntityId,
        from: EntityId,
    ) -> StoreResult<Option<Entity>> {
        self.write(move |db| recipients::merge_users(db, into.as_str(), from.as_str()))
            .await
    }

    /// One page of users in identify order, optionally with their preference sets.
    pub(crate) async fn list_users(
        &self,
        page: PageQuery,
        include_preferences: bool,
    ) -> StoreResult<Page<Entity>> {
        self.read(move |db| recipients::list_users(db, &page, include_preferences))
            .await
    }
}
