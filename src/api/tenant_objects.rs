//! `GET /v1/tenants/{tenant}/objects?collection=` (Tidings' addition): the objects of a
//! tenant, so a tenant admin page can find the object feeds it may follow.
//!
//! "Of a tenant" means: the object has at least one feed item (on any channel, archived
//! or not) that was triggered with that tenant. An object gets there by being notified
//! with `tenant` set, directly or as a subscriber of a notified object. Objects deleted
//! since are not listed (their items stay readable through the object feed).
//!
//! Access: the secret key, or a user token holding a grant on that tenant
//! (`/v1/tenants/{t}` or `/v1/objects/$tenants/{t}`; with `explicit_grants`, the
//! `user/feed_read` grant) — the same grant that lets it read those objects' feeds.

use actix_web::{HttpRequest, HttpResponse, web};

use super::recipient_input::{list_query, method_not_allowed, path_collection, path_id};
use crate::auth::Caller;
use crate::auth::access::{self, Access};
use crate::error::ApiError;
use crate::model::entities::Entity;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/tenants/{tenant}/objects")
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed)),
    );
}

async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = path_id("tenant", &path)?.into_string();
    access::tenant_admin(&caller, &tenant, Access::Read)?;
    let query = list_query(&req, &["collection"])?;
    let collection = query
        .filters
        .iter()
        .rev()
        .find(|(k, _)| k == "collection")
        .map(|(_, v)| path_collection(v).map(|c| c.as_str().to_owned()))
        .transpose()?;
    let (page, include) = (query.page, query.include_preferences);
    let result = state
        .store
        .list_tenant_objects(tenant, collection, page, include)
        .await?;
    Ok(HttpResponse::Ok().json(result.map(Entity::into_wire).into_wire(page.page_size)))
}
