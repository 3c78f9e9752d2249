//! The bounded publish path (issue 17 item 12): under a burst of commits the hub folds
//! what it cannot keep, and every socket still ends up with a push whose counts cover
//! every item committed for its feed.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::ws::WsClient;

/// A socket for `user` joined to its default feed with one ref.
async fn joined(app: &TestApp, user: &str) -> WsClient {
    let channel = app.channel_id().await;
    let mut ws = app.ws_connect(user).await;
    ws.join_ok(
        &format!("feeds:{channel}:{user}"),
        json!({"client_feed": {"archived": "exclude"}}),
    )
    .await;
    ws
}

/// Reads pushes until one counts `total` items; returns it (fails at the frame deadline).
async fn push_counting(ws: &mut WsClient, total: i64) -> Value {
    loop {
        let frame = ws.next_event("new-message").await;
        if frame[4]["data"]["client_feed"]["metadata"]["total_count"] == total {
            return frame[4].clone();
        }
    }
}

/// Commits `n` items for each of `users` in one write and publishes them all at once,
/// as one fan-out page commit does.
async fn commit_page(app: &TestApp, users: &[&str], n: usize) {
    use tidings::store::messages::NewMessage;
    let channel = app.channel_id().await;
    let messages: Vec<NewMessage> = users
        .iter()
        .flat_map(|user| (0..n).map(move |_| *user))
        .map(|user| {
            let run = tidings::ids::uuid();
            NewMessage {
                id: tidings::ids::message_id(),
                channel_id: channel.clone(),
                recipient: tidings::model::RecipientRef::User(user.into()),
                tenant: None,
                workflow_key: "new-comment".into(),
                workflow_version_id: tidings::ids::uuid(),
                workflow_categories: vec![],
                workflow_run_id: run.clone(),
                workflow_recipient_run_id: run,
                step_ref: "in_app_feed_1".into(),
                actors: vec![],
                data: json!({}).into(),
                blocks: json!([]).into(),
                inserted_at: tidings::clock::format(chrono::Utc::now()),
                batch: None,
                expires_at: None,
                pinned_at: None,
            }
        })
        .collect();
    let rows = app
        .state
        .store
        .insert_messages(messages)
        .await
        .expect("page stored");
    app.state.hub.publish(&rows);
}

#[tokio::test]
async fn a_burst_past_the_outbox_bounds_still_reaches_every_socket_with_every_item() {
    let app = spawn_app().await;
    let mut big = joined(&app, "big").await;
    let mut small = joined(&app, "small").await;
    // 12,000 items for one feed: past the per-feed bound and the whole outbox's bound.
    for _ in 0..4 {
        commit_page(&app, &["big", "small"], 3000).await;
    }
    commit_page(&app, &["small"], 1).await;
    let pushed = push_counting(&mut big, 12_000).await;
    assert_eq!(pushed["attn"], json!(["client_feed"]));
    assert_eq!(
        pushed["data"]["client_feed"]["metadata"]["unread_count"],
        12_000
    );
    let pushed = push_counting(&mut small, 12_001).await;
    assert_eq!(
        pushed["data"]["client_feed"]["metadata"]["unseen_count"],
        12_001
    );
    assert_eq!(
        app.state.hub.stats().publish_queue,
        0,
        "the publisher emptied the outbox"
    );
}

#[tokio::test]
async fn concurrent_triggers_reach_every_socket_with_the_final_counts() {
    let app = spawn_app().await;
    let users = ["u1", "u2", "u3"];
    let mut sockets = Vec::new();
    for user in users {
        sockets.push(joined(&app, user).await);
    }
    let triggers = (0..60).map(|i| {
        let app = &app;
        async move {
            app.trigger(
                "new-comment",
                json!({"recipients": users, "actor": {"id": "a1", "name": "Ann"},
                       "data": {"page_url": format!("https://example.com/p/{i}")}}),
            )
            .await
        }
    });
    futures_util::future::join_all(triggers).await;
    for ws in &mut sockets {
        push_counting(ws, 60).await;
    }
}
