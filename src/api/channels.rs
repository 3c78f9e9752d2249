//! `GET /v1/channels` (secret key): the in-app feed channels, in the management API's
//! `Channel` shape. The `id` is the UUID the client SDKs put in feed paths.

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::auth::ServerKey;
use crate::error::ApiError;
use crate::model::channel::Channel;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/channels", web::get().to(list));
}

/// One channel on the wire. Every Tidings channel is an in-app feed served by Tidings
/// itself, hence the fixed provider.
pub fn channel_wire(c: &Channel) -> Value {
    json!({
        "__typename": "Channel",
        "id": c.id,
        "key": c.key,
        "name": c.key,
        "type": c.kind,
        "provider": "knock-in-app",
        "custom_icon_url": null,
        "visible_in": ["workflow"],
        "archived_at": null,
        "created_at": c.inserted_at,
        "updated_at": c.inserted_at,
    })
}

async fn list(_: ServerKey, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let channels = state.store.channels().await?;
    let entries: Vec<Value> = channels.iter().map(channel_wire).collect();
    Ok(HttpResponse::Ok().json(json!({
        "entries": entries,
        "page_info": {"__typename": "PageInfo", "after": null, "before": null, "page_size": channels.len().max(1)},
    })))
}
