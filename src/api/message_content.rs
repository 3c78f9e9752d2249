//! A message's rendered content (Knock's `GET /v1/messages/{id}/content` and
//! `GET /v1/messages/batch/content`): the `MessageContent` shape with the in-app feed
//! channel's blocks, as the feed item carries them.
//!
//! Access is a message read's: the secret key reads any message, a user token only its
//! own (a tenant-scoped grant only its tenant's). The batch answers the messages the
//! caller may read, in the order named; unknown ids and others' messages are left out
//! alike, so the answer says nothing about messages the caller cannot see.

use actix_web::{HttpRequest, HttpResponse, web};

use super::messages::{readable_message, recipient_user};
use super::raw_input::query_pairs;
use crate::auth::Caller;
use crate::auth::access;
use crate::error::ApiError;
use crate::model::message_params::content_message_ids;
use crate::model::views;
use crate::state::AppState;

/// Registered before `/v1/messages/{id}` and the `{id}/{status}` resource, which would
/// otherwise claim these paths.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/messages/batch/content", web::get().to(batch_content))
        .route(
            "/v1/messages/{message_id}/content",
            web::get().to(one_content),
        );
}

async fn one_content(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let message = readable_message(&caller, &state, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(views::message_content(&message)))
}

async fn batch_content(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ids = content_message_ids(&query_pairs(&req))?;
    let found = state.store.messages(ids).await?;
    let contents: Vec<_> = found
        .iter()
        .filter(|m| {
            access::message_access(
                &caller,
                recipient_user(m),
                m.tenant.as_deref(),
                access::Access::Read,
            )
            .is_ok()
        })
        .map(views::message_content)
        .collect();
    Ok(HttpResponse::Ok().json(contents))
}
