//! Status changes on messages by id (spec §6.4): `PUT`/`DELETE /v1/messages/{id}/{status}`
//! (with the `unseen`/`unread`/`unarchived` delete aliases) and
//! `POST /v1/messages/batch/{status}`.
//!
//! Access is checked for every message before anything is written, so a batch that names
//! one message the caller may not touch changes nothing (403). Counters move in the same
//! transaction as the timestamps (`store::message_status`).

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value};

use super::messages::{message_missing, recipient_user};
use super::raw_input::optional_json;
use crate::auth::Caller;
use crate::auth::access;
use crate::error::ApiError;
use crate::model::engagement::{EngagementChange, parse_interacted_metadata};
use crate::model::views;
use crate::state::AppState;

/// Most ids one batch call may name. Knock's mobile docs say 50; we accept up to 1,000
/// (one transaction stays short) and refuse more with 422.
pub const MAX_BATCH_IDS: usize = 1000;

const STATUSES: &str = "seen, unseen, read, unread, archived, unarchived, interacted";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/messages/batch/{status}")
            .route(web::post().to(batch))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/messages/{message_id}/{status}")
            .route(web::put().to(put_status))
            .route(web::delete().to(delete_status))
            .default_service(web::to(method_not_allowed)),
    );
}

pub(super) async fn method_not_allowed(
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().to_string()))
}

/// `metadata` from a body, validated (≤ 5 flat keys).
fn metadata(body: Option<&Value>) -> Result<Option<Map<String, Value>>, ApiError> {
    match body {
        None => Ok(None),
        Some(Value::Object(map)) => match map.get("metadata") {
            None => Ok(None),
            Some(m) => parse_interacted_metadata(m).map_err(|e| ApiError::invalid("metadata", e)),
        },
        Some(_) => Err(ApiError::invalid("body", "must be a JSON object")),
    }
}

async fn put_status(
    path: web::Path<(String, String)>,
    caller: Caller,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (id, status) = path.into_inner();
    let body = optional_json(&state, payload).await?;
    let change = match EngagementChange::from_status_path(&status, false) {
        Some(EngagementChange::Interacted(_)) => {
            EngagementChange::Interacted(metadata(body.as_ref())?)
        }
        Some(change) => change,
        None => {
            return Err(ApiError::invalid(
                "status",
                format!("must be one of {STATUSES}"),
            ));
        }
    };
    update_one(&state, &caller, id, change).await
}

async fn delete_status(
    path: web::Path<(String, String)>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, status) = path.into_inner();
    let change = EngagementChange::from_status_path(&status, true).ok_or_else(|| {
        ApiError::invalid(
            "status",
            "must be one of seen, unseen, read, unread, archived, unarchived",
        )
    })?;
    update_one(&state, &caller, id, change).await
}

async fn update_one(
    state: &AppState,
    caller: &Caller,
    id: String,
    change: EngagementChange,
) -> Result<HttpResponse, ApiError> {
    let current = state
        .store
        .message(id.clone())
        .await?
        .ok_or_else(|| message_missing(&id))?;
    access::message(caller, recipient_user(&current), current.tenant.as_deref())?;
    let updated = state
        .store
        .set_message_status(id.clone(), change)
        .await?
        .ok_or_else(|| message_missing(&id))?;
    Ok(HttpResponse::Ok().json(views::message(&updated)))
}

/// `{message_ids: [...], metadata?}`.
fn batch_request(body: Option<Value>) -> Result<(Vec<String>, Option<Value>), ApiError> {
    let Some(body) = body else {
        return Err(ApiError::invalid("message_ids", "is required"));
    };
    let Value::Object(mut map) = body else {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    };
    let ids = message_ids(&mut map)?;
    Ok((ids, Some(Value::Object(map))))
}

/// `POST /v1/messages/batch/{status}`: unknown ids are skipped; the answer lists the
/// updated messages in request order.
async fn batch(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let status = path.into_inner();
    let body = optional_json(&state, payload).await?;
    let change = EngagementChange::from_action(&status)
        .filter(|_| !matches!(status.as_str(), "archive" | "unarchive"))
        .ok_or_else(|| ApiError::invalid("status", format!("must be one of {STATUSES}")))?;
    let (ids, rest) = batch_request(body)?;
    let change = match change {
        EngagementChange::Interacted(_) => EngagementChange::Interacted(metadata(rest.as_ref())?),
        other => other,
    };
    let current = state.store.messages(ids.clone()).await?;
    for m in &current {
        access::message(&caller, recipient_user(m), m.tenant.as_deref())?;
    }
    let updated = state.store.set_message_statuses(ids, change).await?;
    let body: Vec<Value> = updated.iter().map(views::message).collect();
    Ok(HttpResponse::Ok().json(body))
}

/// The `message_ids` of a batch body: required, at most [`MAX_BATCH_IDS`] non-empty
/// strings (every batch endpoint reads them the same way).
pub(super) fn message_ids(
    map: &mut serde_json::Map<String, Value>,
) -> Result<Vec<String>, ApiError> {
    let ids = match map.remove("message_ids") {
        None | Some(Value::Null) => return Err(ApiError::invalid("message_ids", "is required")),
        Some(Value::Array(items)) if items.len() > MAX_BATCH_IDS => {
            return Err(ApiError::invalid(
                "message_ids",
                format!("may name at most {MAX_BATCH_IDS} messages per call"),
            ));
        }
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) if !s.is_empty() => Ok(s),
                _ => Err(ApiError::invalid(
                    "message_ids",
                    "must be a list of message id strings",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(ApiError::invalid(
                "message_ids",
                "must be a list of message id strings",
            ));
        }
    };
    Ok(ids)
}
