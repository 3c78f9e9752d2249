//! Counts committed items on their way to the realtime bus: every message the engine
//! commits is announced exactly once through `FeedBus::publish`, after its commit, so the
//! count is of durable items without touching the engine.

use prometheus::IntCounter;

use crate::engine::bus::{FeedBus, FeedRef, SharedBus};
use crate::model::message::MessageRow;

/// A [`FeedBus`] that counts, then forwards to the real bus.
pub struct CountingBus {
    inner: SharedBus,
    items: IntCounter,
}

impl CountingBus {
    pub fn new(inner: SharedBus, items: IntCounter) -> Self {
        CountingBus { inner, items }
    }
}

impl FeedBus for CountingBus {
    fn publish(&self, messages: &[MessageRow]) {
        self.items.inc_by(messages.len() as u64);
        self.inner.publish(messages);
    }

    fn republish(&self, messages: &[MessageRow]) {
        self.inner.republish(messages);
    }

    fn publish_counts(&self, feeds: &[FeedRef]) {
        self.inner.publish_counts(feeds);
    }
}
