//! The registry of in-app feed channels.

use crate::store::channels::{self, Channel};
use crate::store::{Store, StoreResult};

impl Store {
    /// Every channel.
    pub(crate) async fn channels(&self) -> StoreResult<Vec<Channel>> {
        self.read(channels::list).await
    }

    /// The channel with this UUID or key, or `None`.
    pub(crate) async fn channel(&self, id_or_key: String) -> StoreResult<Option<Channel>> {
        self.read(move |db| channels::find(db, &id_or_key)).await
    }

    /// A round trip through a reader (health checks): fails when the database cannot
    /// be read.
    pub(crate) async fn ping(&self) -> StoreResult<()> {
        self.read(|db| channels::list(db).map(|_| ())).await
    }
}
