//! Installation settings kept in `meta`: generated API keys and signing key pairs, and
//! demo mode's markers. First writer wins, so two starts racing keep one value.

use crate::store::{Store, StoreResult, meta};

impl Store {
    /// The stored value named `name`, or `None`.
    pub(crate) async fn setting(&self, name: &'static str) -> StoreResult<Option<String>> {
        self.read(move |db| meta::get(db, name)).await
    }

    /// Stores `candidate` under `name` unless a value is there; returns the value kept.
    pub(crate) async fn keep_setting(
        &self,
        name: &'static str,
        candidate: String,
    ) -> StoreResult<String> {
        self.write(move |db| meta::get_or_insert(db, name, &candidate))
            .await
    }

    /// The two stored values named `names` (a key pair: private, public), each `None`
    /// when missing.
    pub(crate) async fn setting_pair(
        &self,
        names: (&'static str, &'static str),
    ) -> StoreResult<(Option<String>, Option<String>)> {
        self.read(move |db| Ok((meta::get(db, names.0)?, meta::get(db, names.1)?)))
            .await
    }

    /// [`Store::keep_setting`] for both values of a pair in one write, so the pair kept
    /// is one that belongs together when two starts race.
    pub(crate) async fn keep_setting_pair(
        &self,
        names: (&'static str, &'static str),
        candidates: (String, String),
    ) -> StoreResult<(String, String)> {
        self.write(move |db| {
            let first = meta::get_or_insert(db, names.0, &candidates.0)?;
            let second = meta::get_or_insert(db, names.1, &candidates.1)?;
            Ok((first, second))
        })
        .await
    }
}
