//! The reads a run's audience expansion makes (`engine::audience`): subscribers of an
//! object page by page, the objects that follow an object, and an object's stored view.
//! The expansion itself (what comes next, where the cursor moves) is the engine's pure
//! logic over [`AudienceReads`]; [`Store::expand_audience`] runs it inside one read.

use serde_json::Value;

use super::super::recipients::subscriptions::{self, ObjectKey, SubscriberRow};
use super::super::{Db, Store, StoreResult, recipients};
use crate::model::RecipientRef;

/// One subscriber of an object: who, with which subscription properties, at which
/// position (what the fan-out cursor stores).
pub type Subscriber = SubscriberRow;

/// What the audience expansion reads (implemented by the store inside one read, and by
/// in-memory fakes in the engine's unit tests).
pub trait AudienceReads {
    /// Up to `limit` subscribers of `object` after position `after`, in position order.
    fn subscribers_page(
        &self,
        object: &ObjectKey,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<Subscriber>>;

    /// The first object following `parent` after subscription position `after`.
    fn next_object_subscriber(
        &self,
        parent: &ObjectKey,
        after: i64,
    ) -> StoreResult<Option<(i64, ObjectKey)>>;

    /// The stored recipient (`None` when never identified).
    fn recipient(&self, r: &RecipientRef) -> StoreResult<Option<Value>>;
}

impl AudienceReads for Db<'_> {
    fn subscribers_page(
        &self,
        object: &ObjectKey,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<Subscriber>> {
        subscriptions::subscribers_page(self, object, after, limit)
    }

    fn next_object_subscriber(
        &self,
        parent: &ObjectKey,
        after: i64,
    ) -> StoreResult<Option<(i64, ObjectKey)>> {
        subscriptions::next_object_subscriber(self, parent, after)
    }

    fn recipient(&self, r: &RecipientRef) -> StoreResult<Option<Value>> {
        recipients::get_recipient(self, r)
    }
}

impl Store {
    /// Runs one step of a run's audience expansion (`expand`, the engine's pure cursor
    /// logic) over a consistent read: the page it returns and its cursor come from one
    /// snapshot.
    pub async fn expand_audience<T, F>(&self, expand: F) -> StoreResult<T>
    where
        F: FnOnce(&dyn AudienceReads) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.read(move |db| expand(db)).await
    }
}
