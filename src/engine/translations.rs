//! The translations every render reads (issue 21 item 4): stored rows, loaded from
//! knock-cli's `translations/` directory at start (`translations/<locale>/<locale>.json`,
//! `translations/<locale>/<namespace>.<locale>.json`), upserted over HTTP, and held as an
//! immutable snapshot swapped after each commit, so a run reads one consistent set.

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::model::translations::StoredTranslation;
use crate::model::translations::{
    TranslationError, TranslationId, TranslationSet, parse_content, parse_locale, parse_namespace,
};
use crate::store::{Store, StoreError};

/// The locale a render falls back to last (Knock: the account's default locale).
pub const DEFAULT_LOCALE: &str = "en";

/// Stored translations and the snapshot renders read.
pub struct Translations {
    store: Store,
    current: RwLock<Arc<TranslationSet>>,
    default_locale: RwLock<String>,
    /// The store's fingerprint when the snapshot was last taken by [`Self::follow_store`].
    seen: tokio::sync::Mutex<Option<(i64, String)>>,
}

/// Why loading the directory failed.
#[derive(Debug, thiserror::Error)]
pub enum TranslationLoadError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Translations {
    /// Empty until [`Translations::load`].
    pub fn new(store: Store) -> Self {
        Translations {
            store,
            current: RwLock::new(Arc::new(TranslationSet::new([], DEFAULT_LOCALE))),
            default_locale: RwLock::new(DEFAULT_LOCALE.to_owned()),
            seen: tokio::sync::Mutex::new(None),
        }
    }

    /// Sets the locale renders fall back to last (`--default-locale`).
    pub async fn set_default_locale(&self, locale: &str) -> Result<(), StoreError> {
        *self
            .default_locale
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = locale.to_owned();
        self.refresh().await
    }

    /// The snapshot renders read now.
    pub fn snapshot(&self) -> Arc<TranslationSet> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stores every file of `dir` (a missing directory is fine), then takes a snapshot of
    /// everything stored.
    pub async fn load(&self, dir: &Path) -> Result<(), TranslationLoadError> {
        for (id, content) in read_dir(dir)? {
            self.store.put_translation(id, content).await?;
        }
        self.refresh().await?;
        Ok(())
    }

    /// Stores one translation (content already validated) and refreshes the snapshot.
    pub async fn upsert(
        &self,
        id: TranslationId,
        content: String,
    ) -> Result<StoredTranslation, StoreError> {
        let row = self.store.put_translation(id, content).await?;
        self.refresh().await?;
        Ok(row)
    }

    /// With several nodes: takes a new snapshot when the stored translations changed since
    /// the last call (another node upserted one), so renders here use it too. One cheap
    /// read when nothing changed.
    pub async fn follow_store(&self) -> Result<(), StoreError> {
        let mut seen = self.seen.lock().await;
        let now = self.store.translations_fingerprint().await?;
        if seen.as_ref() != Some(&now) {
            self.refresh().await?;
            *seen = Some(now);
        }
        Ok(())
    }

    async fn refresh(&self) -> Result<(), StoreError> {
        let rows = self.store.all_translations().await?;
        let sets = rows
            .into_iter()
            .filter_map(|r| parse_content(&r.content).ok().map(|c| (r.id, c)));
        let default_locale = self
            .default_locale
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let set = Arc::new(TranslationSet::new(sets, &default_locale));
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = set;
        Ok(())
    }
}

/// The translation files of a knock-cli `translations/` directory, validated.
fn read_dir(dir: &Path) -> Result<Vec<(TranslationId, String)>, TranslationLoadError> {
    let file_error = |path: &Path, message: String| TranslationLoadError::File {
        path: path.display().to_string(),
        message,
    };
    let Ok(locales) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut locale_dirs: Vec<_> = locales.filter_map(Result::ok).map(|e| e.path()).collect();
    locale_dirs.sort();
    for locale_dir in locale_dirs.into_iter().filter(|p| p.is_dir()) {
        let name = locale_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let locale = parse_locale(name).map_err(|e| file_error(&locale_dir, e.message))?;
        let mut files: Vec<_> = std::fs::read_dir(&locale_dir)
            .map_err(|e| file_error(&locale_dir, e.to_string()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        for file in files.into_iter().filter(|p| p.is_file()) {
            let file_name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            // `<locale>.json` or `<namespace>.<locale>.json`; other files are not ours.
            let Some(stem) = file_name.strip_suffix(".json") else {
                continue;
            };
            let namespace = match stem.rsplit_once('.') {
                None if stem.eq_ignore_ascii_case(name) => None,
                Some((ns, l)) if l.eq_ignore_ascii_case(name) => Some(
                    parse_namespace(ns)
                        .map_err(|e: TranslationError| file_error(&file, e.message))?,
                ),
                _ => continue,
            };
            let text =
                std::fs::read_to_string(&file).map_err(|e| file_error(&file, e.to_string()))?;
            parse_content(&text).map_err(|e| file_error(&file, e.message))?;
            out.push((
                TranslationId {
                    tenant: None,
                    locale_code: locale.clone(),
                    namespace,
                },
                text,
            ));
        }
    }
    Ok(out)
}
