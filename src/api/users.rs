//! Users (spec §4.1): identify, get and delete one user, list users, and merge two users
//! (the bulk endpoints live in `users_bulk.rs`). `GET`/`PUT /v1/users/{id}` also serve the
//! browser client (public key + user token, which acts only for its own user); the rest
//! need the secret key.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::recipient_input::{IdentifyBody, list_query, method_not_allowed, path_id, properties};
use crate::auth::{Caller, ServerKey, access};
use crate::error::ApiError;
use crate::model::entities::Entity;
use crate::model::properties::RecipientKind;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/users")
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/users/{user_id}/merge")
            .route(web::post().to(merge))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/users/{user_id}")
            .route(web::get().to(get))
            .route(web::put().to(identify))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed)),
    );
}

fn missing(id: &str) -> ApiError {
    ApiError::NotFound(format!("The user `{id}`"))
}

async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("user_id", &path)?;
    access::user_grant(&caller, id.as_str(), access::USER_READ)?;
    let user = state.store.user(id.as_str().to_owned()).await?;
    user.map(|u| HttpResponse::Ok().json(u.into_wire()))
        .ok_or_else(|| missing(id.as_str()))
}

async fn identify(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: IdentifyBody,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("user_id", &path)?;
    access::user_grant(&caller, id.as_str(), access::USER_WRITE)?;
    let props = properties(RecipientKind::User, body.0)?;
    let user = state.store.identify_user(id, props).await?;
    Ok(HttpResponse::Ok().json(user.into_wire()))
}

async fn delete(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("user_id", &path)?;
    let existed = state.store.delete_user(id.as_str().to_owned()).await?;
    if existed {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(missing(id.as_str()))
    }
}

#[derive(Debug, Deserialize)]
struct MergeRequest {
    from_user_id: String,
}

/// `POST /v1/users/{id}/merge`: folds `from_user_id` into this user and deletes it.
async fn merge(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
    body: web::Json<MergeRequest>,
) -> Result<HttpResponse, ApiError> {
    let into = path_id("user_id", &path)?;
    let from = path_id("from_user_id", &body.into_inner().from_user_id)?;
    if into == from {
        return Err(ApiError::invalid(
            "from_user_id",
            "must name a different user than the one merged into",
        ));
    }
    let merged = state.store.merge_users(into.clone(), from.clone()).await?;
    merged
        .map(|u| HttpResponse::Ok().json(u.into_wire()))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "One of the users `{}` and `{}`",
                into.as_str(),
                from.as_str()
            ))
        })
}

async fn list(
    state: web::Data<AppState>,
    _key: ServerKey,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = list_query(&req, &[])?;
    let (page, include) = (query.page, query.include_preferences);
    let result = state.store.list_users(page, include).await?;
    Ok(HttpResponse::Ok().json(result.map(Entity::into_wire).into_wire(page.page_size)))
}
