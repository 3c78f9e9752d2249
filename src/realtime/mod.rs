//! Real-time feed updates over Knock's Phoenix-channel socket (spec §7).
//!
//! `frames` speaks Phoenix v2 JSON, `topic` and `join` parse what a client asks for,
//! `socket` authenticates the upgrade, `session` runs one socket, `joins` handles
//! `phx_join`, and `hub` maps feeds to sessions and publishes after commit.

mod frame_guard;
pub mod frames;
pub mod hub;
mod inbound;
pub mod join;
mod joins;
mod outbox;
mod overflow_close;
mod session;
mod socket;
pub mod socket_limits;
pub mod topic;

pub use hub::{Hub, HubStats, WeakHub};
pub use socket_limits::SocketLimits;

use actix_web::web;

/// Registers the socket route (`GET /ws/v1/websocket`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    socket::routes(cfg);
}
