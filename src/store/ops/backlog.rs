//! The queued work the backpressure limiter samples.

use crate::store::backlog::{self, Backlog};
use crate::store::{Store, StoreResult};

impl Store {
    /// Runs and items waiting, overall and per tenant, in one read.
    pub(crate) async fn backlog(&self) -> StoreResult<Backlog> {
        self.read(backlog::backlog).await
    }
}
