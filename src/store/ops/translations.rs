//! Stored translations as the translations API reads them.

use crate::model::translations::TranslationId;
use crate::store::translations::{self, StoredTranslation};
use crate::store::{Store, StoreResult};

/// The filters of a translation listing (each `None` = any).
#[derive(Debug, Clone, Default)]
pub struct TranslationFilter {
    pub locale: Option<String>,
    pub namespace: Option<String>,
    pub tenant: Option<String>,
}

impl Store {
    /// Translations matching `filter`, at most `limit`.
    pub(crate) async fn translations(
        &self,
        filter: TranslationFilter,
        limit: usize,
    ) -> StoreResult<Vec<StoredTranslation>> {
        self.read(move |db| {
            translations::list(
                db,
                filter.locale.as_deref(),
                filter.namespace.as_deref(),
                filter.tenant.as_deref(),
                limit,
            )
        })
        .await
    }

    /// One translation, or `None`.
    pub(crate) async fn translation(
        &self,
        id: TranslationId,
    ) -> StoreResult<Option<StoredTranslation>> {
        self.read(move |db| translations::get(db, &id)).await
    }
}
