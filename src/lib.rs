//! Tidings: a self-hosted, multi-tenant notification server with live in-app feeds,
//! wire-compatible with Knock's v1 API. See `DESIGN.md` in the shared docs for the map.

pub mod api;
pub mod auth;
pub mod backpressure;
pub mod clock;
pub mod config;
pub mod demo;
pub mod deploy;
pub mod engine;
pub mod error;
pub mod ids;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod realtime;
pub mod retention;
pub mod startup;
pub mod state;
pub mod store;

pub use config::Settings;
pub use startup::Application;
