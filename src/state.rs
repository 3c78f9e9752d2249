//! `AppState`: what every HTTP handler and socket session reaches through
//! `web::Data<AppState>`. It lives apart from `startup` (which builds it, binds the server
//! and runs the shutdown sequence) so that `api/` and `realtime/` depend on the shared state
//! only, never on the module that assembles them: the dependencies point inward.

use crate::auth::Keys;
use crate::backpressure::Backpressure;
use crate::config::Settings;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::realtime::{Hub, SocketLimits};
use crate::retention::Retention;
use crate::store::Store;

/// Shared state every handler reaches through `web::Data<AppState>`.
pub struct AppState {
    pub settings: Settings,
    pub store: Store,
    pub keys: Keys,
    pub(crate) engine: Engine,
    pub hub: Hub,
    /// Which bus carries pushes (this node alone, or NATS and its state): `/health`.
    pub bus: crate::cluster::BusStatus,
    /// The retention and housekeeping task.
    pub(crate) retention: Retention,
    /// Open sockets per user and per source address (`--ws-max-per-user`/`-address`).
    pub(crate) sockets: SocketLimits,
    /// Trigger rate limits and the backlog gate (`--trigger-rate-per-key` and siblings).
    pub(crate) backpressure: Backpressure,
    /// The `/metrics` series (one registry per server).
    pub metrics: Metrics,
}
