//! `POST /v1/channels/{channel}/messages/bulk/{action}` (spec §6.4, §6.5): one status
//! change (or delete) over every message of a channel that the scope selects, applied in
//! ONE write transaction and answered with a completed `BulkOperation`, which is stored so
//! `GET /v1/bulk_operations/{id}` can return it.
//!
//! Access: the secret key may touch any recipient. A browser caller (user token) may only
//! update its own feed: `user_ids`/`recipient_ids` must be absent or exactly its user, and
//! its tenant grants restrict the scope. A public key without a token (enhanced security
//! off) must name the users.

use actix_web::{HttpResponse, web};
use serde_json::Value;

use super::raw_input::optional_json;
use crate::auth::Caller;
use crate::auth::access::{self, Access};
use crate::error::ApiError;
use crate::model::RecipientRef;
use crate::model::engagement::EngagementChange;
use crate::model::message_params::BulkAction;
use crate::model::message_params::BulkScope;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/channels/{channel}/messages/bulk/{action}")
            .route(web::post().to(bulk_update))
            .default_service(web::to(super::message_status::method_not_allowed)),
    );
}

fn parse_action(raw: &str) -> Result<BulkAction, ApiError> {
    if raw == "delete" {
        return Ok(BulkAction::Delete);
    }
    EngagementChange::from_action(raw)
        .map(BulkAction::Change)
        .ok_or_else(|| {
            ApiError::invalid(
                "action",
                "must be one of seen, unseen, read, unread, archived, unarchived, interacted, archive, unarchive, delete",
            )
        })
}

/// Narrows the scope to what the caller may touch; returns its tenant restriction.
fn authorize(caller: &Caller, scope: &mut BulkScope) -> Result<Option<Vec<String>>, ApiError> {
    let user = match caller {
        Caller::Server => return Ok(None),
        Caller::User(claims) => {
            let own = RecipientRef::User(claims.user_id.clone());
            match &scope.recipients {
                None => {}
                Some(list) if list.len() == 1 && list[0] == own => {}
                Some(_) => {
                    return Err(ApiError::Forbidden(
                        "A user token may only bulk-update its own user's messages.".into(),
                    ));
                }
            }
            scope.recipients = Some(vec![own]);
            claims.user_id.clone()
        }
        Caller::Public => {
            let users: Vec<String> = match &scope.recipients {
                Some(list) if !list.is_empty() => list
                    .iter()
                    .map(|r| match r {
                        RecipientRef::User(id) => Ok(id.clone()),
                        RecipientRef::Object { .. } => Err(ApiError::Forbidden(
                            "A public key may only update user feeds.".into(),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(ApiError::Forbidden(
                        "A public key must name the users to update in `user_ids`.".into(),
                    ));
                }
            };
            for user in &users {
                access::user_feed(caller, user, None, Access::Write)?;
            }
            return Ok(None);
        }
    };
    if scope.tenants.is_empty() {
        return access::user_feed(caller, &user, None, Access::Write);
    }
    let mut restriction = None;
    for tenant in &scope.tenants {
        restriction = access::user_feed(caller, &user, Some(tenant), Access::Write)?;
    }
    Ok(restriction)
}

async fn bulk_update(
    path: web::Path<(String, String)>,
    caller: Caller,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (channel, action_name) = path.into_inner();
    let body = optional_json(&state, payload).await?;
    let action = parse_action(&action_name)?;
    let mut scope =
        BulkScope::from_body(&body.unwrap_or_else(|| Value::Object(Default::default())))?;
    let restriction = authorize(&caller, &mut scope)?;
    let name = format!("channel_messages.{action_name}");
    let operation = state
        .store
        .bulk_message_status(channel.clone(), scope, restriction, action, name)
        .await?
        .ok_or(ApiError::ChannelInvalid(channel))?;
    Ok(HttpResponse::Ok().json(operation.to_wire()))
}
