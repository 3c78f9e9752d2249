//! Preference sets (spec §5.2) for users and objects: list, get, put (replace, or deep
//! merge with `__persistence_strategy__: "merge"`), delete, and the deprecated
//! sub-resource PUTs the browser client's `preferences.*` helpers still call.
//! User preferences are reachable by a browser (public key + that user's token).

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use super::recipient_input::{path_collection, path_id};
use crate::auth::{Caller, ServerKey, access};
use crate::error::ApiError;
use crate::model::entities::EntityKey;
use crate::model::preferences;
use crate::state::AppState;

/// Preference set ids are `default` or a tenant id; both follow the id rules.
const SUB_RESOURCES: &[&str] = &["channel_types", "workflows", "categories"];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/users/{user_id}/preferences", web::get().to(list_user))
        .route(
            "/v1/users/{user_id}/preferences/{set_id}",
            web::get().to(get_user_set),
        )
        .route(
            "/v1/users/{user_id}/preferences/{set_id}",
            web::put().to(put_user_set),
        )
        .route(
            "/v1/users/{user_id}/preferences/{set_id}",
            web::delete().to(delete_user_set),
        )
        .route(
            "/v1/users/{user_id}/preferences/{set_id}/{section}",
            web::put().to(put_user_section),
        )
        .route(
            "/v1/users/{user_id}/preferences/{set_id}/{section}/{key}",
            web::put().to(put_user_setting),
        )
        .route(
            "/v1/objects/{collection}/{object_id}/preferences",
            web::get().to(list_object),
        )
        .route(
            "/v1/objects/{collection}/{object_id}/preferences/{set_id}",
            web::get().to(get_object_set),
        )
        .route(
            "/v1/objects/{collection}/{object_id}/preferences/{set_id}",
            web::put().to(put_object_set),
        )
        .route(
            "/v1/objects/{collection}/{object_id}/preferences/{set_id}",
            web::delete().to(delete_object_set),
        )
        .route(
            "/v1/objects/{collection}/{object_id}/preferences/{set_id}/{section}",
            web::put().to(put_object_section),
        )
        .route(
            "/v1/objects/{collection}/{object_id}/preferences/{set_id}/{section}/{key}",
            web::put().to(put_object_setting),
        );
}

/// A preference owner (user or object), parsed from the path.
struct Owner(EntityKey);

impl Owner {
    /// A user owner; `grant` is what an `explicit_grants` token must hold on the user.
    fn user(caller: &Caller, raw_id: &str, grant: &str) -> Result<Owner, ApiError> {
        let id = path_id("user_id", raw_id)?;
        access::user_grant(caller, id.as_str(), grant)?;
        Ok(Owner(EntityKey::User(id.into_string())))
    }

    fn object(collection: &str, raw_id: &str) -> Result<Owner, ApiError> {
        let collection = path_collection(collection)?;
        let id = path_id("object_id", raw_id)?;
        Ok(Owner(EntityKey::Object {
            collection: collection.as_str().to_owned(),
            id: id.into_string(),
        }))
    }

    fn key(self) -> EntityKey {
        self.0
    }
}

fn set_id(raw: &str) -> Result<String, ApiError> {
    path_id("set_id", raw).map(|id| id.into_string())
}

fn body_object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::invalid("body", "must be a JSON object")),
    }
}

async fn list(state: &AppState, owner: Owner) -> Result<HttpResponse, ApiError> {
    let sets = state.store.preference_sets(owner.key()).await?;
    let wire: Vec<Value> = sets
        .into_iter()
        .map(|(id, body)| preferences::to_wire(&id, &Value::Object(body)))
        .collect();
    Ok(HttpResponse::Ok().json(wire))
}

async fn get(state: &AppState, owner: Owner, set_id: String) -> Result<HttpResponse, ApiError> {
    let key = set_id.clone();
    let body = state.store.preference_set(owner.key(), key).await?;
    // A set never written is all-unset (everything allowed), not an error: clients render it.
    Ok(HttpResponse::Ok().json(preferences::to_wire(
        &set_id,
        &Value::Object(body.unwrap_or_default()),
    )))
}

async fn put(
    state: &AppState,
    owner: Owner,
    set_id: String,
    body: Value,
) -> Result<HttpResponse, ApiError> {
    preferences::validate(&body).map_err(ApiError::invalid_fields)?;
    let key = set_id.clone();
    let stored = state
        .store
        .put_preference_set(owner.key(), key, body)
        .await?;
    Ok(HttpResponse::Ok().json(preferences::to_wire(&set_id, &Value::Object(stored))))
}

async fn delete(state: &AppState, owner: Owner, set_id: String) -> Result<HttpResponse, ApiError> {
    let key = set_id.clone();
    let existed = state.store.delete_preference_set(owner.key(), key).await?;
    if existed {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!("The preference set `{set_id}`")))
    }
}

/// The deprecated sub-resources exist only for the sections a set has; others are 404.
fn known_section(section: &str) -> Result<(), ApiError> {
    if SUB_RESOURCES.contains(&section) {
        Ok(())
    } else {
        Err(ApiError::RouteMissing(format!(
            "preferences sub-resource `{section}`"
        )))
    }
}

/// Deprecated `PUT …/preferences/{set}/{channel_types|workflows|categories}`: replaces
/// that section of the set.
fn section_body(section: &str, body: Value) -> Result<Value, ApiError> {
    known_section(section)?;
    Ok(json!({"__persistence_strategy__": "merge", section: body_object(body)?}))
}

/// Deprecated `PUT …/{section}/{key}` with `{subscribed: bool}` (or, for workflows and
/// categories, a settings object): sets that one setting.
fn setting_body(section: &str, key: &str, body: Value) -> Result<Value, ApiError> {
    known_section(section)?;
    let map = body_object(body)?;
    let value = match map.get("subscribed") {
        Some(Value::Bool(b)) => Value::Bool(*b),
        Some(_) => return Err(ApiError::invalid("subscribed", "must be a boolean")),
        None if section != "channel_types" => Value::Object(map),
        None => return Err(ApiError::invalid("subscribed", "is required")),
    };
    Ok(json!({"__persistence_strategy__": "merge", section: {key: value}}))
}

async fn list_user(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    list(
        &state,
        Owner::user(&caller, &path, access::PREFERENCES_READ)?,
    )
    .await
}

async fn get_user_set(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (user, set) = path.into_inner();
    get(
        &state,
        Owner::user(&caller, &user, access::PREFERENCES_READ)?,
        set_id(&set)?,
    )
    .await
}

async fn put_user_set(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (user, set) = path.into_inner();
    put(
        &state,
        Owner::user(&caller, &user, access::PREFERENCES_WRITE)?,
        set_id(&set)?,
        body.into_inner(),
    )
    .await
}

async fn delete_user_set(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (user, set) = path.into_inner();
    delete(
        &state,
        Owner::user(&caller, &user, access::PREFERENCES_WRITE)?,
        set_id(&set)?,
    )
    .await
}

async fn put_user_section(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (user, set, section) = path.into_inner();
    let owner = Owner::user(&caller, &user, access::PREFERENCES_WRITE)?;
    put(
        &state,
        owner,
        set_id(&set)?,
        section_body(&section, body.into_inner())?,
    )
    .await
}

async fn put_user_setting(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (user, set, section, key) = path.into_inner();
    let owner = Owner::user(&caller, &user, access::PREFERENCES_WRITE)?;
    put(
        &state,
        owner,
        set_id(&set)?,
        setting_body(&section, &key, body.into_inner())?,
    )
    .await
}

async fn list_object(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id) = path.into_inner();
    list(&state, Owner::object(&collection, &id)?).await
}

async fn get_object_set(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id, set) = path.into_inner();
    get(&state, Owner::object(&collection, &id)?, set_id(&set)?).await
}

async fn put_object_set(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id, set) = path.into_inner();
    put(
        &state,
        Owner::object(&collection, &id)?,
        set_id(&set)?,
        body.into_inner(),
    )
    .await
}

async fn delete_object_set(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id, set) = path.into_inner();
    delete(&state, Owner::object(&collection, &id)?, set_id(&set)?).await
}

async fn put_object_section(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String, String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id, set, section) = path.into_inner();
    let owner = Owner::object(&collection, &id)?;
    put(
        &state,
        owner,
        set_id(&set)?,
        section_body(&section, body.into_inner())?,
    )
    .await
}

async fn put_object_setting(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String, String, String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id, set, section, key) = path.into_inner();
    let owner = Owner::object(&collection, &id)?;
    put(
        &state,
        owner,
        set_id(&set)?,
        setting_body(&section, &key, body.into_inner())?,
    )
    .await
}
