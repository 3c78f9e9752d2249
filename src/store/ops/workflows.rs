//! Stored workflow definitions, as the registry loads and upserts them.

use crate::store::channels::{self, Channel};
use crate::store::workflows::{self, StoredWorkflow};
use crate::store::{Store, StoreResult};

impl Store {
    /// Every stored workflow and every channel, in one read: what the registry needs to
    /// compile the stored definitions at start.
    pub(crate) async fn stored_workflows(
        &self,
    ) -> StoreResult<(Vec<StoredWorkflow>, Vec<Channel>)> {
        self.read(|db| Ok((workflows::list(db)?, channels::list(db)?)))
            .await
    }

    /// Stores a workflow definition under `key` and, in the same transaction, makes sure
    /// every channel its steps name exists (so a live workflow never names a missing
    /// channel); returns the stored row and those channels.
    pub(crate) async fn store_workflow(
        &self,
        key: String,
        definition: serde_json::Value,
        channel_keys: Vec<String>,
    ) -> StoreResult<(StoredWorkflow, Vec<Channel>)> {
        self.write(move |db| {
            let mut channels = Vec::with_capacity(channel_keys.len());
            for k in &channel_keys {
                channels.push(channels::ensure(db, k)?);
            }
            let stored = workflows::upsert(db, &key, &definition)?;
            Ok((stored, channels))
        })
        .await
    }
}
