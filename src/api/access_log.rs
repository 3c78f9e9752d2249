//! The access log: one `request` event per HTTP request, with the request id, method,
//! route PATTERN (e.g. `/v1/users/{user_id}/feeds/{id}`), status, latency, the client
//! address (behind a trusted proxy, the client it forwards for), and the tenant and
//! workflow key where known. Every event logged while the request runs carries the
//! same `request` span (request id + route), so an error line can be joined to its request.
//! The same route pattern, method, status and latency feed `/metrics`
//! (`tidings_http_request_duration_seconds`, `tidings_http_requests_total`).
//!
//! Invariant: nothing here logs a header, a query string, a path value other than a
//! workflow key or tenant id, or a body (the client address is read from forwarding
//! headers only behind a trusted proxy, and logged only as a parsed IP address). Secret keys, user tokens (the socket sends one in
//! its query string) and request bodies therefore never reach a log line.

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::Instrument;

use super::common::RequestIdValue;
use crate::state::AppState;

/// What a handler learned about the request that the log line should carry.
#[derive(Clone, Debug, Default)]
pub struct LogNote {
    pub tenant: Option<String>,
    pub workflow: Option<String>,
}

/// Lets a handler add the tenant it found in the body (e.g. a trigger's `tenant`).
pub fn note_tenant(req: &actix_web::HttpRequest, tenant: &str) {
    let mut ext = req.extensions_mut();
    let note = ext.get_mut::<LogNote>();
    match note {
        Some(n) => n.tenant = Some(tenant.to_owned()),
        None => {
            ext.insert(LogNote {
                tenant: Some(tenant.to_owned()),
                workflow: None,
            });
        }
    }
}

/// The middleware (`actix_web::middleware::from_fn(access_log)`); must run inside
/// `request_id()` so the id is known.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .extensions()
        .get::<RequestIdValue>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "(unmatched)".to_owned());
    // Fixed set: the raw method is client-chosen text (any token, any length).
    let method = crate::metrics::method_label(req.method().as_str());
    let query_tenant = tenant_from_query(req.query_string());
    let client = req
        .app_data::<actix_web::web::Data<AppState>>()
        .and_then(|state| crate::proxies::client_ip(req.head(), &state.settings.trusted_proxies))
        .map(|ip| ip.to_string());
    let app_state = req.app_data::<actix_web::web::Data<AppState>>().cloned();
    let span = tracing::info_span!("request", request_id = %request_id, route = %route);
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed().as_secs_f64();
    let latency_ms = elapsed * 1000.0;
    let _enter = span.enter();
    match &result {
        Ok(res) => {
            let request = res.request();
            let note = request.extensions().get::<LogNote>().cloned();
            let note = note.unwrap_or_default();
            let tenant = note
                .tenant
                .or_else(|| route_param(request, &route, "/v1/tenants/", "id"))
                .or(query_tenant);
            let workflow = note
                .workflow
                .or_else(|| route_param(request, &route, "/v1/workflows/", "key"));
            if let Some(state) = app_state.as_ref().filter(|s| s.settings.metrics) {
                state
                    .metrics
                    .http_request(method, &route, res.status().as_u16(), elapsed);
            }
            tracing::info!(
                target: "tidings::http",
                request_id = %request_id,
                method = %method,
                route = %route,
                status = res.status().as_u16(),
                latency_ms,
                client = client.as_deref(),
                tenant = tenant.as_deref(),
                workflow = workflow.as_deref(),
                "request"
            );
        }
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16();
            if let Some(state) = app_state.as_ref().filter(|s| s.settings.metrics) {
                state.metrics.http_request(method, &route, status, elapsed);
            }
            tracing::warn!(
                target: "tidings::http",
                request_id = %request_id,
                method = %method,
                route = %route,
                status,
                latency_ms,
                client = client.as_deref(),
                "request"
            );
        }
    }
    result
}

/// A path value, but only on the routes where it names a tenant or a workflow.
fn route_param(
    req: &actix_web::HttpRequest,
    route: &str,
    prefix: &str,
    name: &str,
) -> Option<String> {
    if !route.starts_with(prefix) || route.starts_with(&format!("{prefix}bulk")) {
        return None;
    }
    req.match_info().get(name).map(str::to_owned)
}

/// The `tenant` query parameter (feed and message filters); no other parameter is read.
fn tenant_from_query(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "tenant")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty() && v.len() <= 256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tenant_parameter_is_taken_from_a_query() {
        assert_eq!(
            tenant_from_query("user_token=eyJ.secret&tenant=acme&api_key=pk_x").as_deref(),
            Some("acme")
        );
        assert_eq!(tenant_from_query("user_token=eyJ.secret"), None);
        assert_eq!(tenant_from_query("tenant="), None);
    }
}
