//! Real-time feed updates over Knock's Phoenix-channel socket.

pub mod hub;

pub use hub::Hub;

use actix_web::web;

/// Registers the socket route.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
