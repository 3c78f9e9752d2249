//! `GET /metrics`: Prometheus text exposition (see `crate::metrics` for the series).
//!
//! Served without credentials on the API port, as most services expose it to their
//! scraper: it names route patterns, counts and timings, never an id, key or tenant. Turn
//! it off with `--metrics false` where the port is public and no proxy hides the path; it
//! then answers 404 like any unknown route.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;
use crate::metrics::Snapshot;
use crate::state::AppState;

/// Prometheus' text format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.settings.metrics {
        return Err(ApiError::RouteMissing(format!("GET {}", req.path())));
    }
    let backlog = state.backpressure.backlog().current().await;
    // Run rows are stamped with the server's clock when accepted, so lag is measured on it.
    let runner_lag_seconds = backlog
        .oldest_queued_at
        .as_deref()
        .and_then(crate::clock::parse)
        .map_or(0.0, |at| {
            (state.settings.clock.now_utc() - at)
                .num_microseconds()
                .unwrap_or(0)
                .max(0) as f64
                / 1e6
        });
    // Two index edges on a reader connection.
    let unfolded_items = state
        .store
        .fold_progress()
        .await
        .map_err(ApiError::from)?
        .unfolded();
    let snapshot = Snapshot {
        queued_runs: backlog.queued_runs,
        queued_items: backlog.queued_items,
        running_runs: state.engine.running_runs(),
        failed_runs: state.engine.failed_runs(),
        runner_lag_seconds,
        hub: state.hub.stats(),
        wal_bytes: state.store.wal_bytes(),
        unfolded_items: u64::try_from(unfolded_items).unwrap_or(0),
    };
    let text = state
        .metrics
        .render(&snapshot)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(text))
}
