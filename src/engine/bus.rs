//! Where the engine announces the messages it has committed.
//!
//! The engine never talks to sockets: it hands committed rows to a [`FeedBus`].
//! `realtime::Hub` is the in-process implementation; a transport that fans pushes out
//! between nodes (NATS, Redis) implements the same trait, and nothing in `engine/`
//! changes.

use std::sync::Arc;

use crate::model::RecipientRef;
use crate::store::messages::MessageRow;

/// A feed as the bus names it: (channel UUID, recipient).
pub type FeedRef = (String, RecipientRef);

/// Receives messages after their transaction committed, so a subscriber never sees an
/// item that a crash could still take back.
pub trait FeedBus: Send + Sync + 'static {
    /// Announces committed messages. Must never block: the engine calls it on its own
    /// tasks between writes.
    fn publish(&self, messages: &[MessageRow]);
    /// Announces committed items that came back into their feeds (a snoozed item woke):
    /// pushed exactly like new ones, but they are not new items.
    fn republish(&self, messages: &[MessageRow]);
    /// Announces that the counts of these feeds changed with no new item (an item
    /// expired or was snoozed): joined sockets get their current counts.
    fn publish_counts(&self, feeds: &[FeedRef]);
}

/// The bus as the engine holds it: shared by the runner, the resume path and cancels.
pub type SharedBus = Arc<dyn FeedBus>;
