//! Recipients by reference, for views that show them in full (schedules).

use crate::model::RecipientRef;
use crate::model::entities::Entity;
use crate::store::recipients;
use crate::store::{Store, StoreResult};

impl Store {
    /// The recipients `refs` name, in order, in one read; `None` for one that does not
    /// exist (any more).
    pub(crate) async fn recipients(
        &self,
        refs: Vec<RecipientRef>,
    ) -> StoreResult<Vec<Option<Entity>>> {
        self.read(move |db| recipients::get_recipients(db, &refs))
            .await
    }
}
