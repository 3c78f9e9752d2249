//! Bulk user endpoints (spec §4.1, §4.5): `POST /v1/users/bulk/identify`, `/bulk/delete`
//! and `/bulk/preferences`. Each applies synchronously in one write transaction and
//! answers the recorded, `completed` `BulkOperation`. Items that fail validation are
//! reported in `error_items`; a body of the wrong shape or over 1,000 items is a 422 and
//! changes nothing. Secret key only.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::recipient_input::{bulk_item, check_bulk_len, method_not_allowed, path_id};
use crate::auth::ServerKey;
use crate::error::ApiError;
use crate::model::bulk::BulkRun;
use crate::model::properties::RecipientKind;
use crate::model::{EntityId, preferences};
use crate::state::AppState;
use crate::store::BulkTarget;

pub fn routes(cfg: &mut web::ServiceConfig) {
    for (path, handler) in [
        ("/v1/users/bulk/identify", web::post().to(bulk_identify)),
        ("/v1/users/bulk/delete", web::post().to(bulk_delete)),
        (
            "/v1/users/bulk/preferences",
            web::post().to(bulk_preferences),
        ),
    ] {
        cfg.service(
            web::resource(path)
                .route(handler)
                .default_service(web::to(method_not_allowed)),
        );
    }
}

#[derive(Debug, Deserialize)]
struct BulkIdentifyRequest {
    users: Vec<Map<String, Value>>,
}

async fn bulk_identify(
    state: web::Data<AppState>,
    _key: ServerKey,
    body: web::Json<BulkIdentifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let users = body.into_inner().users;
    check_bulk_len("users", users.len())?;
    let items = users
        .into_iter()
        .map(|item| bulk_item(RecipientKind::User, item))
        .collect();
    let run = BulkRun::new("users.bulk_identify");
    let operation = state
        .store
        .bulk_upsert(run, BulkTarget::Users, items)
        .await?;
    Ok(HttpResponse::Ok().json(operation.to_wire()))
}

#[derive(Debug, Deserialize)]
struct BulkDeleteRequest {
    user_ids: Vec<String>,
}

async fn bulk_delete(
    state: web::Data<AppState>,
    _key: ServerKey,
    body: web::Json<BulkDeleteRequest>,
) -> Result<HttpResponse, ApiError> {
    let ids = body.into_inner().user_ids;
    check_bulk_len("user_ids", ids.len())?;
    let run = BulkRun::new("users.bulk_delete");
    let operation = state.store.bulk_delete(run, BulkTarget::Users, ids).await?;
    Ok(HttpResponse::Ok().json(operation.to_wire()))
}

#[derive(Debug, Deserialize)]
struct BulkPreferencesRequest {
    user_ids: Vec<String>,
    preferences: Map<String, Value>,
}

/// Replaces one preference set (`preferences.id`, default `default`) for every user named.
async fn bulk_preferences(
    state: web::Data<AppState>,
    _key: ServerKey,
    body: web::Json<BulkPreferencesRequest>,
) -> Result<HttpResponse, ApiError> {
    let BulkPreferencesRequest {
        user_ids,
        preferences: set,
    } = body.into_inner();
    check_bulk_len("user_ids", user_ids.len())?;
    let set = Value::Object(set);
    preferences::validate(&set).map_err(|errors| {
        ApiError::invalid_fields(
            errors
                .into_iter()
                .map(|e| {
                    crate::error::FieldError::new(format!("preferences.{}", e.field), e.message)
                })
                .collect(),
        )
    })?;
    let set_id = match set.get("id") {
        None | Some(Value::Null) => EntityId::parse("default").map_err(ApiError::Internal)?,
        Some(Value::String(s)) => path_id("preferences.id", s)?,
        Some(_) => return Err(ApiError::invalid("preferences.id", "must be a string")),
    };
    // Bulk preferences always replace the set (spec: a destructive operation).
    let body = match preferences::apply_put(None, &set) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let run = BulkRun::new("users.bulk_set_preferences");
    let operation = state
        .store
        .bulk_set_user_preferences(run, user_ids, set_id, body)
        .await?;
    Ok(HttpResponse::Ok().json(operation.to_wire()))
}
