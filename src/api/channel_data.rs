//! Channel data (spec §4.1, §8): `GET`/`PUT`/`DELETE /v1/users/{id}/channel_data/{channel_id}`
//! and the same under `/v1/objects/{collection}/{id}`. Shape
//! `{__typename: "ChannelData", channel_id, data}`. A `PUT` replaces that channel's data
//! and creates the recipient if it was never identified (the browser client may call it
//! right after its fire-and-forget identify). User paths accept a user token for its own
//! user; object paths need the secret key.
//!
//! Data is kept only for channels that exist (a `PUT` naming another answers 404
//! `channel_invalid`), under the channel's UUID (the path may name its key), within the
//! per-recipient caps of `store::recipients` (422 naming the limit).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::recipient_input::{method_not_allowed, path_collection, path_id};
use crate::auth::{Caller, ServerKey, access};
use crate::error::ApiError;
use crate::model::entities::EntityKey;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/users/{user_id}/channel_data/{channel_id}")
            .route(web::get().to(get_user_data))
            .route(web::put().to(put_user_data))
            .route(web::delete().to(delete_user_data))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/objects/{collection}/{id}/channel_data/{channel_id}")
            .route(web::get().to(get_object_data))
            .route(web::put().to(put_object_data))
            .route(web::delete().to(delete_object_data))
            .default_service(web::to(method_not_allowed)),
    );
}

#[derive(Debug, Deserialize)]
struct ChannelDataRequest {
    data: Map<String, Value>,
}

/// Who the path names, validated.
enum Owner {
    User(String),
    Object(String, String),
}

impl Owner {
    fn key(self) -> EntityKey {
        match self {
            Owner::User(id) => EntityKey::User(id),
            Owner::Object(collection, id) => EntityKey::Object { collection, id },
        }
    }
}

fn channel(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() || raw.len() > 256 {
        return Err(ApiError::invalid(
            "channel_id",
            "must be 1 to 256 characters",
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "channel_id",
            "must not contain control characters",
        ));
    }
    Ok(raw.to_owned())
}

fn missing(channel_id: &str) -> ApiError {
    ApiError::NotFound(format!("Channel data for channel `{channel_id}`"))
}

fn wire(channel_id: &str, data: Value) -> Value {
    json!({"__typename": "ChannelData", "channel_id": channel_id, "data": data})
}

/// A user owner; `grant` is what an `explicit_grants` token must hold on the user.
fn user_owner(caller: &Caller, user_id: &str, grant: &str) -> Result<Owner, ApiError> {
    let id = path_id("user_id", user_id)?;
    access::user_grant(caller, id.as_str(), grant)?;
    Ok(Owner::User(id.into_string()))
}

fn object_owner(collection: &str, id: &str) -> Result<Owner, ApiError> {
    let collection = path_collection(collection)?;
    let id = path_id("id", id)?;
    Ok(Owner::Object(
        collection.as_str().to_owned(),
        id.into_string(),
    ))
}

async fn read(
    state: &AppState,
    owner: Owner,
    channel_id: String,
) -> Result<HttpResponse, ApiError> {
    let c = channel_id.clone();
    let data = state.store.channel_data(owner.key(), c).await?;
    data.map(|d| HttpResponse::Ok().json(wire(&channel_id, d)))
        .ok_or_else(|| missing(&channel_id))
}

async fn write(
    state: &AppState,
    owner: Owner,
    channel_id: String,
    data: Map<String, Value>,
) -> Result<HttpResponse, ApiError> {
    let c = channel_id.clone();
    let known = state
        .store
        .channel(c)
        .await?
        .ok_or_else(|| ApiError::ChannelInvalid(channel_id.clone()))?;
    let c = known.id;
    let data = Value::Object(data);
    let stored = data.clone();
    let channel_id = state.store.set_channel_data(owner.key(), c, stored).await?;
    Ok(HttpResponse::Ok().json(wire(&channel_id, data)))
}

async fn remove(
    state: &AppState,
    owner: Owner,
    channel_id: String,
) -> Result<HttpResponse, ApiError> {
    let c = channel_id.clone();
    let existed = state.store.delete_channel_data(owner.key(), c).await?;
    if existed {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(missing(&channel_id))
    }
}

async fn get_user_data(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, channel_id) = path.into_inner();
    let owner = user_owner(&caller, &user_id, access::CHANNEL_DATA_READ)?;
    read(&state, owner, channel(&channel_id)?).await
}

async fn put_user_data(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<ChannelDataRequest>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, channel_id) = path.into_inner();
    let owner = user_owner(&caller, &user_id, access::CHANNEL_DATA_WRITE)?;
    write(&state, owner, channel(&channel_id)?, body.into_inner().data).await
}

async fn delete_user_data(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, channel_id) = path.into_inner();
    let owner = user_owner(&caller, &user_id, access::CHANNEL_DATA_WRITE)?;
    remove(&state, owner, channel(&channel_id)?).await
}

async fn get_object_data(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id, channel_id) = path.into_inner();
    let owner = object_owner(&collection, &id)?;
    read(&state, owner, channel(&channel_id)?).await
}

async fn put_object_data(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String, String)>,
    body: web::Json<ChannelDataRequest>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id, channel_id) = path.into_inner();
    let owner = object_owner(&collection, &id)?;
    write(&state, owner, channel(&channel_id)?, body.into_inner().data).await
}

async fn delete_object_data(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id, channel_id) = path.into_inner();
    let owner = object_owner(&collection, &id)?;
    remove(&state, owner, channel(&channel_id)?).await
}
