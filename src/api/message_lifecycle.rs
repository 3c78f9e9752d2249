//! Snooze and pin (Tidings' extensions of Knock's message API, issue 21):
//! `PUT`/`DELETE /v1/messages/{id}/snoozed`, `POST /v1/messages/batch/snoozed` and
//! `PUT`/`DELETE /v1/messages/{id}/pinned`. The secret key, or the recipient's own user
//! token, as for Knock's status changes. Registered before the `{id}/{status}` resource,
//! which would otherwise claim these paths.
//!
//! Access is checked for every message before anything is written, so a batch naming
//! one message the caller may not touch changes nothing (403).

use actix_web::{HttpResponse, web};
use serde_json::Value;

use super::message_status::{message_ids, method_not_allowed};
use super::messages::{message_missing, recipient_user};
use super::raw_input::optional_json;
use crate::auth::Caller;
use crate::auth::access;
use crate::error::ApiError;
use crate::model::{snooze, views};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/messages/batch/snoozed")
            .route(web::post().to(batch_snooze))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/messages/{message_id}/snoozed")
            .route(web::put().to(snooze_one))
            .route(web::delete().to(wake_one))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/messages/{message_id}/pinned")
            .route(web::put().to(pin))
            .route(web::delete().to(unpin))
            .default_service(web::to(method_not_allowed)),
    );
}

/// The body as an object (a missing body is an empty one).
fn object(body: Option<Value>) -> Result<serde_json::Map<String, Value>, ApiError> {
    match body {
        None => Ok(Default::default()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(ApiError::invalid("body", "must be a JSON object")),
    }
}

fn until(
    state: &AppState,
    body: &serde_json::Map<String, Value>,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    snooze::parse_until(body.get("snoozed_until"), state.engine.lifecycle().now())
        .map_err(|m| ApiError::invalid("snoozed_until", m))
}

/// Loads message `id` and checks that `caller` may change it.
async fn writable(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let current = state
        .store
        .message(id.to_owned())
        .await?
        .ok_or_else(|| message_missing(id))?;
    access::message(caller, recipient_user(&current), current.tenant.as_deref())
}

/// `PUT /v1/messages/{id}/snoozed` `{"snoozed_until"}`: the message, snoozed.
async fn snooze_one(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let body = object(optional_json(&state, payload).await?)?;
    let until = until(&state, &body)?;
    writable(&state, &caller, &id).await?;
    let row = state
        .engine
        .lifecycle()
        .snooze(vec![id.clone()], until)
        .await?
        .pop()
        .ok_or_else(|| message_missing(&id))?;
    Ok(HttpResponse::Ok().json(views::message(&row)))
}

/// `DELETE /v1/messages/{id}/snoozed`: wakes it now (a message not snoozed is answered
/// as it is).
async fn wake_one(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    writable(&state, &caller, &id).await?;
    let row = match state.engine.lifecycle().wake_now(id.clone()).await? {
        Some(row) => row,
        None => state
            .store
            .message(id.clone())
            .await?
            .ok_or_else(|| message_missing(&id))?,
    };
    Ok(HttpResponse::Ok().json(views::message(&row)))
}

/// `POST /v1/messages/batch/snoozed` `{"message_ids", "snoozed_until"}`: unknown ids
/// are skipped; the answer lists the snoozed messages in request order.
async fn batch_snooze(
    caller: Caller,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body = object(optional_json(&state, payload).await?)?;
    let ids = message_ids(&mut body)?;
    let until = until(&state, &body)?;
    let current = state.store.messages(ids.clone()).await?;
    for m in &current {
        access::message(&caller, recipient_user(m), m.tenant.as_deref())?;
    }
    let rows = state.engine.lifecycle().snooze(ids, until).await?;
    let body: Vec<Value> = rows.iter().map(views::message).collect();
    Ok(HttpResponse::Ok().json(body))
}

async fn set_pin(
    state: &AppState,
    caller: &Caller,
    id: String,
    pinned: bool,
) -> Result<HttpResponse, ApiError> {
    writable(state, caller, &id).await?;
    let row = state
        .engine
        .lifecycle()
        .pin(id.clone(), pinned)
        .await?
        .ok_or_else(|| message_missing(&id))?;
    Ok(HttpResponse::Ok().json(views::message(&row)))
}

/// `PUT /v1/messages/{id}/pinned`: the message, pinned (a second pin keeps the first
/// `pinned_at`).
async fn pin(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_pin(&state, &caller, path.into_inner(), true).await
}

/// `DELETE /v1/messages/{id}/pinned`: the message, unpinned.
async fn unpin(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_pin(&state, &caller, path.into_inner(), false).await
}
