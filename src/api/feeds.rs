//! Feeds (spec §6.1–§6.3): `GET /v1/users/{id}/feeds/{channel}`, its `/settings`, and
//! Tidings' object feeds `GET /v1/objects/{collection}/{id}/feeds/{channel}`.
//!
//! The channel is given by UUID (what the SDKs send) or key; an unknown one is
//! `404 channel_invalid`. An unknown user has an empty feed, not a 404. The tenant
//! restriction returned by `auth::access` is always applied to entries and counts.

use std::collections::HashSet;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::raw_input::query_pairs;
use crate::auth::Caller;
use crate::auth::access::{self, Access};
use crate::error::ApiError;
use crate::model::feed::encode_cursor;
use crate::model::views::{self, RecipientMap};
use crate::model::{CollectionName, EntityId, FeedFilters, FeedMode, FeedQuery, RecipientRef};
use crate::state::AppState;
use crate::store::feeds::{self, FeedCounts, FeedPage, PageBounds};
use crate::store::{Db, StoreResult, channels, recipients};

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

/// Everything one feed response needs, read in one snapshot.
struct FeedData {
    page: FeedPage,
    counts: FeedCounts,
    recipients: RecipientMap,
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
    let wanted = channel.clone();
    let now = state.settings.clock.now();
    let data = state
        .store
        .read(move |db| {
            feeds::snapshot(db, |db| {
                read_feed(
                    db,
                    &wanted,
                    &recipient,
                    &query,
                    restriction.as_deref(),
                    &now,
                )
            })
        })
        .await?
        .ok_or(ApiError::ChannelInvalid(channel))?;
    render(data, page_size, mode, &exclude)
}

/// The page, counts and recipients of one feed view; `None` when the channel is unknown.
fn read_feed(
    db: &Db<'_>,
    channel: &str,
    recipient: &RecipientRef,
    query: &FeedQuery,
    restriction: Option<&[String]>,
    now: &str,
) -> StoreResult<Option<FeedData>> {
    let Some(channel) = channels::find(db, channel)? else {
        return Ok(None);
    };
    let bounds = PageBounds {
        page_size: query.page_size,
        after: query.after,
        before: query.before,
    };
    let page = feeds::page(
        db,
        &channel.id,
        recipient,
        &query.filters,
        restriction,
        bounds,
        now,
    )?;
    let counts = feeds::counts(db, &channel.id, recipient, &query.filters, restriction, now)?;
    let recipients = load_recipients(db, &page, recipient)?;
    Ok(Some(FeedData {
        page,
        counts,
        recipients,
    }))
}

/// The `{entries, meta, page_info, vars}` body.
fn render(
    data: FeedData,
    page_size: u32,
    mode: FeedMode,
    exclude: &[String],
) -> Result<HttpResponse, ApiError> {
    let entries: Vec<Value> = data
        .page
        .items
        .iter()
        .map(|m| views::feed_item(m, &data.recipients, mode))
        .collect();
    let cursor_if = |more: bool, m: Option<&crate::store::messages::MessageRow>| {
        m.filter(|_| more).map(|m| encode_cursor(m.seq))
    };
    let mut body = json!({
        "entries": entries,
        "meta": {
            "__typename": "FeedMetadata",
            "total_count": data.counts.total_count,
            "unread_count": data.counts.unread_count,
            "unseen_count": data.counts.unseen_count,
        },
        "page_info": {
            "__typename": "PageInfo",
            "after": cursor_if(data.page.has_older, data.page.items.last()),
            "before": cursor_if(data.page.has_newer, data.page.items.first()),
            "page_size": page_size,
            "total_count": data.counts.total_count,
        },
        "vars": {},
    });
    views::exclude_paths(&mut body, exclude);
    Ok(HttpResponse::Ok().json(body))
}

/// Full recipient objects for the page's actors and (for rich activities) its recipient.
fn load_recipients(
    db: &Db<'_>,
    page: &FeedPage,
    recipient: &RecipientRef,
) -> StoreResult<RecipientMap> {
    let mut seen = HashSet::new();
    let refs: Vec<RecipientRef> = page
        .items
        .iter()
        .flat_map(|m| m.actors.iter())
        .chain(std::iter::once(recipient))
        .filter(|r| seen.insert((*r).clone()))
        .cloned()
        .collect();
    let found = recipients::get_recipients(db, &refs)?;
    Ok(refs.into_iter().zip(found).collect())
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
    let wanted = channel.clone();
    state
        .store
        .read(move |db| channels::find(db, &wanted))
        .await?
        .ok_or(ApiError::ChannelInvalid(channel))?;
    Ok(HttpResponse::Ok().json(json!({"features": {"branding_required": false}})))
}
