//! `phx_join` on a feed topic: parse, authorize, subscribe, reply, then push the current
//! counts.
//!
//! Invariant (DESIGN.md "Realtime"): the subscription is registered *before* the counts
//! are read, and the counts go out as a `new-message` naming every ref in `attn`. Anything
//! committed before the read is in the counts (and the client refetches from its head);
//! anything committed after is pushed by the hub. A reconnecting client misses nothing.

use std::sync::Arc;

use serde_json::{Value, json};

use super::frames::{Frame, push_text};
use super::join::JoinParams;
use super::session::{Out, SessionContext, Stop};
use super::topic::FeedTopic;
use crate::auth::Caller;
use crate::auth::access::{self, Access};
use crate::model::RecipientRef;

/// A join that passed every check.
struct Accepted {
    key: (String, RecipientRef),
    params: Arc<JoinParams>,
    restriction: Option<Vec<String>>,
}

/// Handles one `phx_join`. Errors are replied on the topic; only a dead socket stops.
pub(super) async fn join(
    ctx: &SessionContext,
    out: &mut Out<'_>,
    join_ref: Option<String>,
    msg_ref: Option<String>,
    topic: String,
    payload: Value,
) -> Result<(), Stop> {
    // Phoenix sets join_ref = ref on joins; a hand-written client may send only `ref`.
    let join_ref = join_ref.or_else(|| msg_ref.clone());
    let max_topics = ctx.state.settings.ws_max_topics;
    if !out.registration().is_joined(&topic) && out.registration().topic_count() >= max_topics {
        let reason = format!("too many topics: at most {max_topics} per socket");
        return out
            .frame(Frame::reply_error(join_ref, msg_ref, &topic, &reason))
            .await;
    }
    let accepted = match authorize(ctx, &topic, &payload).await {
        Ok(accepted) => accepted,
        Err(reason) => {
            return out
                .frame(Frame::reply_error(join_ref, msg_ref, &topic, &reason))
                .await;
        }
    };
    out.registration().join(
        &topic,
        accepted.key.clone(),
        join_ref.as_deref(),
        accepted.params.clone(),
        accepted.restriction.clone(),
    );
    let counts = {
        let (key, params, restriction) = (
            accepted.key.clone(),
            accepted.params.clone(),
            accepted.restriction.clone(),
        );
        let now = ctx.state.settings.clock.now();
        let restriction: Option<std::sync::Arc<[String]>> = restriction.map(Into::into);
        let jobs = params
            .filters()
            .into_iter()
            .map(|f| (key.clone(), f.clone(), restriction.clone()))
            .collect();
        let store = ctx.state.hub.store();
        ctx.state.hub.join_read(store.feed_counts(jobs, now)).await
    };
    let counts = match counts {
        Ok(counts) => counts,
        Err(e) => {
            tracing::error!(error = %e, "realtime: counting a joined feed failed");
            out.registration().leave(&topic);
            return out
                .frame(Frame::reply_error(
                    join_ref,
                    msg_ref,
                    &topic,
                    "internal error",
                ))
                .await;
        }
    };
    out.frame(Frame::reply_ok(
        join_ref.clone(),
        msg_ref,
        &topic,
        json!({}),
    ))
    .await?;
    let attn = vec![true; counts.len()];
    let payload = accepted.params.new_message_payload(&counts, &attn);
    out.text_raw(push_text(
        join_ref.as_deref(),
        &topic,
        "new-message",
        &payload.to_string(),
    ))
    .await
}

/// Parses and authorizes a join; the error is the reply's `reason`.
async fn authorize(ctx: &SessionContext, topic: &str, payload: &Value) -> Result<Accepted, String> {
    let feed = FeedTopic::parse(topic).map_err(|e| format!("unmatched topic: {e}"))?;
    if let Caller::User(claims) = &ctx.caller
        && claims.expires_at < crate::clock::unix_now()
    {
        return Err("unauthorized: the user token has expired".into());
    }
    let params = ctx
        .state
        .hub
        .join_params(payload)
        .map_err(|e| format!("invalid params: {e}"))?;
    let restriction = match &feed.recipient {
        RecipientRef::User(user_id) => {
            let mut restriction = None;
            for filters in params.filters() {
                restriction = access::user_feed(
                    &ctx.caller,
                    user_id,
                    filters.tenant.as_deref(),
                    Access::Read,
                )
                .map_err(|e| format!("unauthorized: {e}"))?;
            }
            restriction
        }
        RecipientRef::Object { id, collection } => {
            access::object_feed(&ctx.caller, collection, id, Access::Read)
                .map_err(|e| format!("unauthorized: {e}"))?
        }
    };
    let channel = ctx
        .state
        .hub
        .join_read(ctx.state.hub.store().channel(feed.channel.clone()))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "realtime: channel lookup failed");
            "internal error".to_owned()
        })?
        .ok_or_else(|| format!("channel `{}` does not exist", feed.channel))?;
    Ok(Accepted {
        key: (channel.id, feed.recipient),
        params,
        restriction,
    })
}
