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

    /// Every stored translation: what the engine's render snapshot is built from.
    pub(crate) async fn all_translations(&self) -> StoreResult<Vec<StoredTranslation>> {
        self.read(translations::all).await
    }

    /// Changes whenever the stored translations do (see [`translations::fingerprint`]).
    pub(crate) async fn translations_fingerprint(&self) -> StoreResult<(i64, String)> {
        self.read(translations::fingerprint).await
    }

    /// Stores translation `id` with `content` (already validated), replacing it.
    pub(crate) async fn put_translation(
        &self,
        id: TranslationId,
        content: String,
    ) -> StoreResult<StoredTranslation> {
        self.write(move |db| translations::upsert(db, &id, &content))
            .await
    }
}
