//! Feeds (spec §6.1–§6.3): `GET /v1/users/{id}/feeds/{channel}`, its `/settings`, and
//! Tidings' object feeds `GET /v1/objects/{collection}/{id}/feeds/{channel}`.
//!
//! The channel is given by UUID (what the SDKs send) or key; an unknown one is
//! `404 channel_invalid`. An unknown user has an empty feed, not a 404. The tenant
//! restriction returned by `auth::access` is always applied to entries and counts.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::raw_input::query_pairs;
use crate::auth::Caller;
use crate::auth::access::{self, Access};
use crate::error::ApiError;
use crate::model::feed::encode_cursor;
use crate::model::message::MessageRow;
use crate::model::views;
use crate::model::{CollectionName, EntityId, FeedFilters, FeedMode, FeedQuery, RecipientRef};
use crate::state::AppState;
use crate::store::FeedView;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/users/{user_id}/feeds/{channel}",
        web::get().to(user_feed),
    )
    .route(
        "/v1/users/{user_id}/feeds/{channel}/settings",
        web::get().to(settings),
    )
    .route(
        "/v1/objects/{collection}/{object_id}/feeds/{channel}",
        web::get().to(object_feed),
    );
}

pub(super) fn parse_user_id(raw: &str) -> Result<String, ApiError> {
    EntityId::parse(raw)
        .map(EntityId::into_string)
        .map_err(|m| ApiError::invalid("user_id", m))
}

async fn user_feed(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, channel) = path.into_inner();
    let user_id = parse_user_id(&user_id)?;
    let query = FeedFilters::from_query(&query_pairs(&req))?;
    let restriction = access::user_feed(
        &caller,
        &user_id,
        query.filters.tenant.as_deref(),
        Access::Read,
    )?;
    feed_response(
        &state,
        channel,
        RecipientRef::User(user_id),
        query,
        restriction,
    )
    .await
}

async fn object_feed(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (collection, object_id, channel) = path.into_inner();
    let collection = CollectionName::parse(&collection)
        .map_err(|m| ApiError::invalid("collection", m))?
        .as_str()
        .to_owned();
    let object_id = EntityId::parse(&object_id)
        .map_err(|m| ApiError::invalid("object_id", m))?
        .into_string();
    let query = FeedFilters::from_query(&query_pairs(&req))?;
    let restriction = access::object_feed(&caller, &collection, &object_id, Access::Read)?;
    let recipient = RecipientRef::Object {
        id: object_id,
        collection,
    };
    feed_response(&state, channel, recipient, query, restriction).await
}

async fn feed_response(
    state: &AppState,
    channel: String,
    recipient: RecipientRef,
    query: FeedQuery,
    restriction: Option<Vec<String>>,
) -> Result<HttpResponse, ApiError> {
    let page_size = query.page_size;
    let mode = query.mode;
    let exclude = query.exclude.clone();
    let now = state.settings.clock.now();
    let view = state
        .store
        .feed_view(channel.clone(), recipient, query, restriction, now)
        .await?
        .ok_or(ApiError::ChannelInvalid(channel))?;
    render(view, page_size, mode, &exclude)
}

/// The `{entries, meta, page_info, vars}` body.
fn render(
    view: FeedView,
    page_size: u32,
    mode: FeedMode,
    exclude: &[String],
) -> Result<HttpResponse, ApiError> {
    let recipients = views::recipient_map(view.recipients);
    let (page, counts) = (view.page, view.counts);
    let entries: Vec<Value> = page
        .items
        .iter()
        .map(|m| views::feed_item(m, &recipients, mode))
        .collect();
    let cursor_if =
        |more: bool, m: Option<&MessageRow>| m.filter(|_| more).map(|m| encode_cursor(m.seq));
    let mut body = json!({
        "entries": entries,
        "meta": {
            "__typename": "FeedMetadata",
            "total_count": counts.total_count,
            "unread_count": counts.unread_count,
            "unseen_count": counts.unseen_count,
        },
        "page_info": {
            "__typename": "PageInfo",
            "after": cursor_if(page.has_older, page.items.last()),
            "before": cursor_if(page.has_newer, page.items.first()),
            "page_size": page_size,
            "total_count": counts.total_count,
        },
        "vars": {},
    });
    views::exclude_paths(&mut body, exclude);
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /v1/users/{id}/feeds/{channel}/settings`: the React feed shows "Powered by Knock"
/// only when `branding_required`; a self-hosted server never requires it.
async fn settings(
    path: web::Path<(String, String)>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, channel) = path.into_inner();
    let user_id = parse_user_id(&user_id)?;
    access::user_resource(&caller, &user_id)?;
    state
        .store
        .channel(channel.clone())
        .await?
        .ok_or(ApiError::ChannelInvalid(channel))?;
    Ok(HttpResponse::Ok().json(json!({"features": {"branding_required": false}})))
}
