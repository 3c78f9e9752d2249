//! Tenants (spec §4.4), each one store command.

use crate::model::entities::Entity;
use crate::model::{EntityId, Page, PageQuery, RecipientProperties};
use crate::store::recipients::{self, TenantFilter};
use crate::store::{Store, StoreResult};

impl Store {
    /// The tenant, or `None`.
    pub(crate) async fn tenant(&self, id: String) -> StoreResult<Option<Entity>> {
        self.read(move |db| recipients::find_tenant(db, &id)).await
    }

    /// Set: creates the tenant or deep-merges `props` into it; returns the stored tenant.
    pub(crate) async fn set_tenant(
        &self,
        id: EntityId,
        props: RecipientProperties,
    ) -> StoreResult<Entity> {
        self.write(move |db| recipients::upsert_tenant(db, id.as_str(), props.as_map()))
            .await
    }

    /// Deletes the tenant and what is attached to it; whether it existed.
    pub(crate) async fn delete_tenant(&self, id: String) -> StoreResult<bool> {
        self.write(move |db| recipients::delete_tenant(db, &id))
            .await
    }

    /// One page of tenants in creation order, optionally filtered.
    pub(crate) async fn list_tenants(
        &self,
        filter: TenantFilter,
        page: PageQuery,
    ) -> StoreResult<Page<Entity>> {
        self.read(move |db| recipients::list_tenants(db, &filter, &page))
            .await
    }
}
