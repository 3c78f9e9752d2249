//! Where the engine announces the messages it has committed.
//!
//! The engine never talks to sockets: it hands committed rows to a [`FeedBus`].
//! `realtime::Hub` is the in-process implementation; a transport that fans pushes out
//! between nodes (NATS, Redis) implements the same trait, and nothing in `engine/`
//! changes.

use std::sync::Arc;

use crate::store::messages::MessageRow;

/// Receives messages after their transaction committed, so a subscriber never sees an
/// item that a crash could still take back.
pub trait FeedBus: Send + Sync + 'static {
    /// Announces committed messages. Must never block: the engine calls it on its own
    /// tasks between writes.
    fn publish(&self, messages: &[MessageRow]);
}

/// The bus as the engine holds it: shared by the runner, the resume path and cancels.
pub type SharedBus = Arc<dyn FeedBus>;
