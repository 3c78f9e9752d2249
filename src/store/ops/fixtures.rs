//! Direct writes for integration tests and benchmarks that need exact rows the API does
//! not make on its own (a feed item with a chosen tenant or source, many channels at
//! once), without reaching past the store boundary for a transaction.

use crate::store::channels;
use crate::store::messages::{self, MessageRow, NewMessage};
use crate::store::{Store, StoreResult};

impl Store {
    /// The UUID of the channel with this key, if it exists.
    pub async fn channel_id(&self, key: String) -> StoreResult<Option<String>> {
        self.read(move |db| Ok(channels::find(db, &key)?.map(|c| c.id)))
            .await
    }

    /// Creates (or finds) a channel per key, in one write; their UUIDs in key order.
    pub async fn ensure_channels(&self, keys: Vec<String>) -> StoreResult<Vec<String>> {
        self.write(move |db| {
            keys.iter()
                .map(|key| channels::ensure(db, key).map(|c| c.id))
                .collect()
        })
        .await
    }

    /// Stores `items` as feed items in one write, as a run's page write would but without
    /// a run; returns the rows stored (an item whose id exists already is skipped). The
    /// caller publishes them if sockets should hear of them.
    pub async fn insert_messages(&self, items: Vec<NewMessage>) -> StoreResult<Vec<MessageRow>> {
        self.write_weighted(items.len(), move |db| {
            let mut rows = Vec::with_capacity(items.len());
            for item in &items {
                rows.extend(messages::insert(db, item)?);
            }
            Ok(rows)
        })
        .await
    }
}
