//! The hub: which sessions are joined to which feed, and publishing after commit.

use crate::store::Store;
use crate::store::messages::MessageRow;

#[derive(Clone)]
pub struct Hub {
    #[allow(dead_code)]
    store: Store,
    #[allow(dead_code)]
    queue: usize,
}

impl Hub {
    pub fn new(store: Store, queue: usize) -> Self {
        Hub { store, queue }
    }

    /// Called by the engine after messages committed.
    pub fn publish(&self, _messages: &[MessageRow]) {}

    /// Closes every socket (code 1001) on shutdown.
    pub fn shutdown(&self) {}
}
