//! Demo-mode endpoints (only with `tidings serve --demo`; otherwise they answer 404 like
//! any unknown path):
//! - `GET /demo/v1/identities`: the demo users, admins, tenants and objects;
//! - `POST /demo/v1/token` `{"id"}`: a user token for one of those identities;
//! - `POST /demo/v1/notify` `{"user_id", "tenant"?}` or `{"collection", "object_id"}`:
//!   sends the next sample notification through the engine.
//!
//! They need no credentials (that is the point of a demo), so they exist only when demo
//! mode is on, which `startup` allows only with keys Tidings generated itself.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{HttpResponse, guard, web};
use serde::Deserialize;
use serde_json::json;

use crate::demo::{self, Target};
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/demo/v1/identities",
        web::get().guard(guard::fn_guard(demo_on)).to(identities),
    )
    .route(
        "/demo/v1/token",
        web::post().guard(guard::fn_guard(demo_on)).to(token),
    )
    .route(
        "/demo/v1/notify",
        web::post().guard(guard::fn_guard(demo_on)).to(notify),
    );
}

/// Without demo mode the routes do not match, so the paths answer 404 `route_missing`
/// like any unknown path (before any body is read).
fn demo_on(ctx: &guard::GuardContext<'_>) -> bool {
    ctx.app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.settings.demo)
}

async fn identities() -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({
        "identities": demo::IDENTITIES,
        "tenants": demo::TENANTS,
        "objects": demo::OBJECTS,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    id: String,
}

async fn token(
    state: web::Data<AppState>,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let who = demo::identity(&body.id)
        .ok_or_else(|| ApiError::invalid("id", "is not one of the demo identities"))?;
    let token =
        demo::mint(&state.keys, who, crate::clock::unix_now()).map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok().json(json!({
        "user_id": who.id,
        "token": token,
        "expires_in": demo::TOKEN_TTL_SECS,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyRequest {
    user_id: Option<String>,
    tenant: Option<String>,
    collection: Option<String>,
    object_id: Option<String>,
}

/// Which sample comes next (they rotate through the demo workflows).
static NEXT_SAMPLE: AtomicUsize = AtomicUsize::new(1000);

async fn notify(
    state: web::Data<AppState>,
    body: web::Json<NotifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let target = match &*body {
        NotifyRequest {
            user_id: Some(id),
            tenant,
            collection: None,
            object_id: None,
        } => Target::User {
            id,
            tenant: tenant.as_deref(),
        },
        NotifyRequest {
            user_id: None,
            tenant: None,
            collection: Some(collection),
            object_id: Some(id),
        } => Target::Object { collection, id },
        _ => {
            return Err(ApiError::invalid(
                "user_id",
                "send either `user_id` (and optionally `tenant`) or `collection` and `object_id`",
            ));
        }
    };
    let n = NEXT_SAMPLE.fetch_add(1, Ordering::Relaxed);
    let run = demo::notify(&state.engine, n, target).await?;
    Ok(HttpResponse::Ok().json(json!({"workflow_run_id": run})))
}
