//! A message's history (spec §6.4): `GET /v1/messages/{id}/activities` and
//! `GET /v1/messages/{id}/events`, in the `{items, page_info}` envelope.
//!
//! Tidings records one activity per message (the trigger that produced it), and derives
//! events from the message's current timestamps; both lists therefore fit one page.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::messages::{message_missing, recipient_user};
use super::raw_input::query_pairs;
use crate::auth::Caller;
use crate::auth::access;
use crate::error::ApiError;
use crate::model::FeedFilters;
use crate::model::message::MessageRow;
use crate::model::views::{self, RecipientMap};
use crate::state::AppState;

/// Registered before the `{id}/{status}` resource, which would otherwise claim these paths.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/messages/{message_id}/activities",
        web::get().to(activities),
    )
    .route("/v1/messages/{message_id}/events", web::get().to(events));
}

fn items(items: Vec<Value>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "items": items,
        "page_info": {"__typename": "PageInfo", "after": null, "before": null, "page_size": 50},
    }))
}

/// Loads the message with full recipient objects for its first actor and its recipient.
async fn load(
    state: &AppState,
    caller: &Caller,
    id: String,
) -> Result<(MessageRow, RecipientMap), ApiError> {
    let (message, people) = state
        .store
        .message_with_people(id.clone())
        .await?
        .ok_or_else(|| message_missing(&id))?;
    let found: (MessageRow, RecipientMap) = (message, views::recipient_map(people));
    access::message(caller, recipient_user(&found.0), found.0.tenant.as_deref())?;
    Ok(found)
}

/// `trigger_data` narrows the activities to those whose data matches.
async fn activities(
    req: HttpRequest,
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = FeedFilters::from_query(&query_pairs(&req))?;
    let (m, map) = load(&state, &caller, path.into_inner()).await?;
    // A batch message lists each rendered activity, filtered on its own data.
    let list = views::activities(&m, &map)
        .into_iter()
        .filter(|a| query.filters.admits_data(&a["data"]))
        .collect();
    Ok(items(list))
}

async fn events(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (m, _) = load(&state, &caller, path.into_inner()).await?;
    Ok(items(views::events(&m)))
}
