//! Tenants (spec §4.4): set/get/delete one tenant, list with `tenant_id`/`name` filters,
//! bulk set and bulk delete (ids in the query). Secret key only.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::recipient_input::{
    IdentifyBody, bulk_item, check_bulk_len, list_query, method_not_allowed, path_id, path_safe_id,
    properties,
};
use crate::auth::ServerKey;
use crate::error::ApiError;
use crate::model::bulk::BulkRun;
use crate::model::entities::Entity;
use crate::model::entities::TenantFilter;
use crate::model::properties::RecipientKind;
use crate::state::AppState;
use crate::store::BulkTarget;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/tenants")
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/tenants/bulk/set")
            .route(web::post().to(bulk_set))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/tenants/bulk/delete")
            .route(web::post().to(bulk_delete))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/tenants/{id}")
            .route(web::get().to(get))
            .route(web::put().to(set))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed)),
    );
}

fn missing(id: &str) -> ApiError {
    ApiError::NotFound(format!("The tenant `{id}`"))
}

async fn get(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("id", &path)?;
    let tenant = state.store.tenant(id.as_str().to_owned()).await?;
    tenant
        .map(|t| HttpResponse::Ok().json(t.into_wire()))
        .ok_or_else(|| missing(id.as_str()))
}

async fn set(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
    body: IdentifyBody,
) -> Result<HttpResponse, ApiError> {
    let id = path_safe_id("id", &path)?;
    let props = properties(RecipientKind::Tenant, body.0)?;
    let tenant = state.store.set_tenant(id, props).await?;
    Ok(HttpResponse::Ok().json(tenant.into_wire()))
}

async fn delete(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("id", &path)?;
    let existed = state.store.delete_tenant(id.as_str().to_owned()).await?;
    if existed {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(missing(id.as_str()))
    }
}

async fn list(
    state: web::Data<AppState>,
    _key: ServerKey,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = list_query(&req, &["tenant_id", "name"])?;
    let mut filter = TenantFilter::default();
    for (key, value) in query.filters {
        match key.as_str() {
            "tenant_id" => filter.tenant_id = Some(value),
            _ => filter.name = Some(value),
        }
    }
    let page = query.page;
    let result = state.store.list_tenants(filter, page).await?;
    Ok(HttpResponse::Ok().json(result.map(Entity::into_wire).into_wire(page.page_size)))
}

#[derive(Debug, Deserialize)]
struct BulkSetRequest {
    tenants: Vec<TenantItem>,
}

/// `InlineTenantRequest`: a bare id or a tenant object with `id`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TenantItem {
    Id(String),
    Tenant(Map<String, Value>),
}

async fn bulk_set(
    state: web::Data<AppState>,
    _key: ServerKey,
    body: web::Json<BulkSetRequest>,
) -> Result<HttpResponse, ApiError> {
    let tenants = body.into_inner().tenants;
    check_bulk_len("tenants", tenants.len())?;
    let items = tenants
        .into_iter()
        .map(|item| match item {
            TenantItem::Id(id) => Map::from_iter([("id".to_owned(), Value::String(id))]),
            TenantItem::Tenant(map) => map,
        })
        .map(|item| bulk_item(RecipientKind::Tenant, item))
        .collect();
    let run = BulkRun::new("tenants.bulk_set");
    let operation = state
        .store
        .bulk_upsert(run, BulkTarget::Tenants, items)
        .await?;
    Ok(HttpResponse::Ok().json(operation.to_wire()))
}

/// Ids come in the query (`tenant_ids[]=a&tenant_ids[]=b`), as Knock documents.
async fn bulk_delete(
    state: web::Data<AppState>,
    _key: ServerKey,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let ids: Vec<String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k == "tenant_ids" || (k.starts_with("tenant_ids[") && k.ends_with(']')))
        .map(|(_, v)| v.into_owned())
        .collect();
    if ids.is_empty() {
        return Err(ApiError::invalid(
            "tenant_ids",
            "pass at least one id as `tenant_ids[]=<id>`",
        ));
    }
    check_bulk_len("tenant_ids", ids.len())?;
    let run = BulkRun::new("tenants.bulk_delete");
    let operation = state
        .store
        .bulk_delete(run, BulkTarget::Tenants, ids)
        .await?;
    Ok(HttpResponse::Ok().json(operation.to_wire()))
}
