//! `GET /v1/bulk_operations/{id}` (spec §4.5): the record of a bulk call. Bulk calls run
//! synchronously, so every stored operation is already `completed`.

use actix_web::{HttpResponse, web};

use super::recipient_input::method_not_allowed;
use crate::auth::ServerKey;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/bulk_operations/{id}")
            .route(web::get().to(get))
            .default_service(web::to(method_not_allowed)),
    );
}

async fn get(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let key = id.clone();
    let operation = state.store.bulk_operation(key).await?;
    operation
        .map(|op| HttpResponse::Ok().json(op.to_wire()))
        .ok_or_else(|| ApiError::NotFound(format!("The bulk operation `{id}`")))
}
