//! Tenants (spec §4.4): set/get/delete one tenant, list with `tenant_id`/`name` filters,
//! bulk set and bulk delete (ids in the query). Secret key only.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::bulk_run::BulkRun;
use super::recipient_input::{
    IdentifyBody, check_bulk_len, list_query, method_not_allowed, path_id, path_safe_id, properties,
};
use crate::auth::ServerKey;
use crate::error::ApiError;
use crate::model::properties::RecipientKind;
use crate::state::AppState;
use crate::store::recipients::{self, TenantFilter};

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
    let key = id.clone();
    let tenant = state
        .store
        .read(move |db| recipients::get_tenant(db, key.as_str()))
        .await?;
    tenant
        .map(|t| HttpResponse::Ok().json(t))
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
    let tenant = state
        .store
        .write(move |db| recipients::upsert_tenant(db, id.as_str(), props.as_map()))
        .await?;
    Ok(HttpResponse::Ok().json(tenant))
}

async fn delete(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("id", &path)?;
    let key = id.clone();
    let existed = state
        .store
        .write(move |db| recipients::delete_tenant(db, key.as_str()))
        .await?;
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
    let result = state
        .store
        .read(move |db| recipients::list_tenants(db, &filter, &page))
        .await?;
    Ok(HttpResponse::Ok().json(result.into_wire(page.page_size)))
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
    BulkRun::new("tenants.bulk_set")
        .respond(&state, move |db, run| {
            let items = tenants.into_iter().map(|item| match item {
                TenantItem::Id(id) => Map::from_iter([("id".to_owned(), Value::String(id))]),
                TenantItem::Tenant(map) => map,
            });
            run.upsert_each(RecipientKind::Tenant, items, |id, props| {
                recipients::upsert_tenant(db, id, props)
            })
        })
        .await
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
    BulkRun::new("tenants.bulk_delete")
        .respond(&state, move |db, run| {
            run.delete_each(ids, "tenant", |id| recipients::delete_tenant(db, id))
        })
        .await
}
