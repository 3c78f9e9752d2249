//! Pushes between nodes: several Tidings processes on one PostgreSQL fan their committed
//! items out through NATS, so a socket on any node hears of an item committed on any
//! other.
//!
//! The engine keeps calling its [`FeedBus`](crate::engine::bus::FeedBus); with
//! `--nats-url` that bus is a [`nats::NatsBus`], which hands every announcement to the
//! local hub at once (no latency for this node's sockets) and to NATS for the others,
//! whose hubs push exactly what a local publish would (counts are read from the shared
//! store by the node that pushes). Delivery between nodes is at most once: a push is a
//! nudge plus counts, the feed lives in the database, and a client that lost its socket
//! (or a push) gets everything back by the catch-up read of its rejoin.
//!
//! Subjects: one per deployment, `<prefix>.feeds`, that every node subscribes to (see
//! `README.md`, "Running several nodes", for the choice and its cost).

pub mod nats;
pub mod wire;

use std::sync::Arc;

/// Which bus this node announces committed items on, for `/health` and the start log.
#[derive(Clone)]
pub enum BusStatus {
    /// No `--nats-url`: pushes reach this node's own sockets only.
    Local,
    /// NATS carries pushes to the other nodes; its connection state is live.
    Nats(Arc<nats::Connection>),
}

impl BusStatus {
    /// `/health`'s view: `("local", true)`, or `("connected", true)` /
    /// `("disconnected", false)` for NATS.
    pub fn health(&self) -> BusHealth {
        match self {
            BusStatus::Local => BusHealth::Local,
            BusStatus::Nats(connection) if connection.is_connected() => BusHealth::Connected,
            BusStatus::Nats(_) => BusHealth::Disconnected,
        }
    }
}

/// The bus as `/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusHealth {
    /// In-process only (no NATS configured).
    Local,
    /// NATS configured and connected.
    Connected,
    /// NATS configured and not connected now (the client keeps reconnecting).
    Disconnected,
}
