//! Tidings: a self-hosted, multi-tenant notification server with live in-app feeds,
//! wire-compatible with Knock's v1 API. See `DESIGN.md` in the shared docs for the map.

/// mimalloc instead of glibc's malloc: a fan-out allocates and frees many small strings
/// and JSON values per item on every thread, and glibc's free lists were ~12% of the
/// runtime threads' samples (BENCHMARKS.md, throughput).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Exported: what the binary (`main.rs`), `tests/` and `benches/` use. The rest is
// `pub(crate)`, so the compiler reports what nothing uses.
pub(crate) mod api;
pub mod auth;
pub(crate) mod backpressure;
pub mod clock;
pub mod cluster;
pub mod config;
pub(crate) mod demo;
pub mod deploy;
pub mod engine;
pub(crate) mod error;
pub mod ids;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod proxies;
pub mod realtime;
pub mod retention;
pub(crate) mod startup;
pub mod state;
pub mod store;

pub use config::Settings;
pub use startup::Application;
