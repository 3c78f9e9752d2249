//! Objects (spec §4.2): set/get/delete one object, list a collection, bulk set and bulk
//! delete. Secret key only. Exact paths only, so the sub-resources other modules own
//! (`/feeds`, `/messages`, `/subscriptions`, `/preferences`, `/channel_data`) stay theirs.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::recipient_input::{
    IdentifyBody, bulk_item, check_bulk_len, list_query, method_not_allowed, path_collection,
    path_id, path_safe_id, properties,
};
use crate::auth::ServerKey;
use crate::error::ApiError;
use crate::model::bulk::BulkRun;
use crate::model::entities::Entity;
use crate::model::properties::RecipientKind;
use crate::model::{CollectionName, EntityId};
use crate::state::AppState;
use crate::store::BulkTarget;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/objects/{collection}")
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/objects/{collection}/bulk/set")
            .route(web::post().to(bulk_set))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/objects/{collection}/bulk/delete")
            .route(web::post().to(bulk_delete))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/objects/{collection}/{id}")
            .route(web::get().to(get))
            .route(web::put().to(set))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed)),
    );
}

/// `{collection}/{id}` from the path, both validated.
fn object_path(path: web::Path<(String, String)>) -> Result<(CollectionName, EntityId), ApiError> {
    let (collection, id) = path.into_inner();
    Ok((path_collection(&collection)?, path_id("id", &id)?))
}

fn missing(collection: &str, id: &str) -> ApiError {
    ApiError::NotFound(format!("The object `{id}` in collection `{collection}`"))
}

async fn get(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id) = object_path(path)?;
    let (c, i) = (collection.as_str().to_owned(), id.as_str().to_owned());
    let object = state.store.object(c, i).await?;
    object
        .map(|o| HttpResponse::Ok().json(o.into_wire()))
        .ok_or_else(|| missing(collection.as_str(), id.as_str()))
}

async fn set(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String)>,
    body: IdentifyBody,
) -> Result<HttpResponse, ApiError> {
    let (collection, id) = object_path(path)?;
    let id = path_safe_id("id", id.as_str())?;
    let props = properties(RecipientKind::Object, body.0)?;
    let object = state.store.set_object(collection, id, props).await?;
    Ok(HttpResponse::Ok().json(object.into_wire()))
}

async fn delete(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id) = object_path(path)?;
    let (c, i) = (collection.as_str().to_owned(), id.as_str().to_owned());
    let existed = state.store.delete_object(c, i).await?;
    if existed {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(missing(collection.as_str(), id.as_str()))
    }
}

async fn list(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let collection = path_collection(&path)?;
    let query = list_query(&req, &[])?;
    let (page, include) = (query.page, query.include_preferences);
    let result = state.store.list_objects(collection, page, include).await?;
    Ok(HttpResponse::Ok().json(result.map(Entity::into_wire).into_wire(page.page_size)))
}

#[derive(Debug, Deserialize)]
struct BulkSetRequest {
    objects: Vec<Map<String, Value>>,
}

async fn bulk_set(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
    body: web::Json<BulkSetRequest>,
) -> Result<HttpResponse, ApiError> {
    let collection = path_collection(&path)?;
    let objects = body.into_inner().objects;
    check_bulk_len("objects", objects.len())?;
    let run = BulkRun::in_collection("objects.bulk_set", collection.as_str());
    // Items may repeat the collection; it is the path's either way.
    let items = objects
        .into_iter()
        .map(|mut item| {
            item.remove("collection");
            bulk_item(RecipientKind::Object, item)
        })
        .collect();
    let target = BulkTarget::Objects(collection.as_str().to_owned());
    let operation = state.store.bulk_upsert(run, target, items).await?;
    Ok(HttpResponse::Ok().json(operation.to_wire()))
}

#[derive(Debug, Deserialize)]
struct BulkDeleteRequest {
    object_ids: Vec<String>,
}

async fn bulk_delete(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
    body: web::Json<BulkDeleteRequest>,
) -> Result<HttpResponse, ApiError> {
    let collection = path_collection(&path)?;
    let ids = body.into_inner().object_ids;
    check_bulk_len("object_ids", ids.len())?;
    let run = BulkRun::in_collection("objects.bulk_delete", collection.as_str());
    let target = BulkTarget::Objects(collection.as_str().to_owned());
    let operation = state.store.bulk_delete(run, target, ids).await?;
    Ok(HttpResponse::Ok().json(operation.to_wire()))
}
