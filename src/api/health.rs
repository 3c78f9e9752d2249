//! `GET /health`: liveness plus a database round trip, for load balancers, and the
//! state of the bus that carries pushes between nodes.
//!
//! A store that does not answer is an error, as before. The bus never makes the
//! node unhealthy: with NATS down, reads, writes and this node's own pushes still work,
//! and other nodes' sockets catch up when they rejoin; the answer stays 200 with
//! `"status": "degraded"` and `"nats": "disconnected"`, so a load balancer keeps the
//! node and an operator sees why.

use actix_web::{HttpResponse, web};

use crate::cluster::BusHealth;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health));
}

async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.ping().await?;
    let node = &state.settings.node_id;
    let body = match state.bus.health() {
        BusHealth::Local => serde_json::json!({"status": "ok", "node_id": node, "bus": "local"}),
        BusHealth::Connected => serde_json::json!({
            "status": "ok", "node_id": node, "bus": "nats", "nats": "connected"
        }),
        BusHealth::Disconnected => serde_json::json!({
            "status": "degraded", "node_id": node, "bus": "nats", "nats": "disconnected"
        }),
    };
    Ok(HttpResponse::Ok().json(body))
}
