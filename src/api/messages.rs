//! Reading messages (spec §6.4): `GET /v1/messages/{id}` (browsers may read their own),
//! and the secret-key lists `GET /v1/messages`, `GET /v1/users/{id}/messages` and
//! `GET /v1/objects/{collection}/{id}/messages` in the `{items, page_info}` envelope.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::feeds::parse_user_id;
use super::raw_input::query_pairs;
use crate::auth::access;
use crate::auth::{Caller, ServerKey};
use crate::error::ApiError;
use crate::model::feed::encode_cursor;
use crate::model::message::MessageRow;
use crate::model::message_params::MessageListQuery;
use crate::model::views;
use crate::model::{CollectionName, EntityId, RecipientRef};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/messages", web::get().to(list_all))
        .route("/v1/users/{user_id}/messages", web::get().to(list_for_user))
        .route(
            "/v1/objects/{collection}/{object_id}/messages",
            web::get().to(list_for_object),
        )
        .route("/v1/messages/{message_id}", web::get().to(get_one));
}

/// The user a message belongs to, for the access policy (`None` for object recipients).
pub(super) fn recipient_user(m: &MessageRow) -> Option<&str> {
    match &m.recipient {
        RecipientRef::User(id) => Some(id),
        RecipientRef::Object { .. } => None,
    }
}

pub(super) fn message_missing(id: &str) -> ApiError {
    ApiError::NotFound(format!("The message `{id}`"))
}

async fn get_one(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let message = readable_message(&caller, &state, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(views::message(&message)))
}

/// Message `id` if `caller` may read it (a missing message and another's are both
/// refused before anything of it is shown).
pub(super) async fn readable_message(
    caller: &Caller,
    state: &AppState,
    id: String,
) -> Result<MessageRow, ApiError> {
    let message = state
        .store
        .message(id.clone())
        .await?
        .ok_or_else(|| message_missing(&id))?;
    access::message_access(
        caller,
        recipient_user(&message),
        message.tenant.as_deref(),
        access::Access::Read,
    )?;
    Ok(message)
}

async fn list_all(
    req: HttpRequest,
    _key: ServerKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = MessageListQuery::from_query(&query_pairs(&req))?;
    list(&state, None, query).await
}

async fn list_for_user(
    req: HttpRequest,
    path: web::Path<String>,
    _key: ServerKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user_id = parse_user_id(&path.into_inner())?;
    let query = MessageListQuery::from_query(&query_pairs(&req))?;
    list(&state, Some(RecipientRef::User(user_id)), query).await
}

async fn list_for_object(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    _key: ServerKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (collection, object_id) = path.into_inner();
    let collection = CollectionName::parse(&collection)
        .map_err(|m| ApiError::invalid("collection", m))?
        .as_str()
        .to_owned();
    let id = EntityId::parse(&object_id)
        .map_err(|m| ApiError::invalid("object_id", m))?
        .into_string();
    let query = MessageListQuery::from_query(&query_pairs(&req))?;
    list(&state, Some(RecipientRef::Object { id, collection }), query).await
}

async fn list(
    state: &AppState,
    recipient: Option<RecipientRef>,
    query: MessageListQuery,
) -> Result<HttpResponse, ApiError> {
    let page_size = query.page_size;
    let page = state.store.list_messages(recipient, query).await?;
    let items: Vec<Value> = page.items.iter().map(views::message).collect();
    let after = page
        .items
        .last()
        .filter(|_| page.has_older)
        .map(|m| encode_cursor(m.seq));
    let before = page
        .items
        .first()
        .filter(|_| page.has_newer)
        .map(|m| encode_cursor(m.seq));
    Ok(HttpResponse::Ok().json(json!({
        "items": items,
        "page_info": {
            "__typename": "PageInfo",
            "after": after,
            "before": before,
            "page_size": page_size,
        },
    })))
}
