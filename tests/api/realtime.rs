//! The Phoenix socket (spec §7): joins, pushes, filters, protocol robustness.
//! Authentication and eviction live in `realtime_auth.rs` and `realtime_limits.rs`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::ws::{Item, WsClient};

fn counts(total: i64, unread: i64, unseen: i64) -> Value {
    json!({"total_count": total, "unread_count": unread, "unseen_count": unseen})
}

/// A browser socket for `user` and the topic of its feed on the default channel.
async fn connect(app: &TestApp, user: &str) -> (WsClient, String) {
    let channel = app.channel_id().await;
    (
        app.ws_connect(user).await,
        format!("feeds:{channel}:{user}"),
    )
}

/// The refs a push `payload` flags for attention, sorted (their order is not specified).
fn sorted_attn(payload: &Value) -> Vec<String> {
    let mut refs: Vec<String> =
        serde_json::from_value(payload["attn"].clone()).expect("attn is a list of refs");
    refs.sort();
    refs
}

#[tokio::test]
async fn joining_a_feed_replies_ok_then_pushes_current_counts_to_every_ref() {
    let app = spawn_app().await;
    app.deliver(Item::for_user("u1")).await;
    let (mut ws, topic) = connect(&app, "u1").await;
    let (join_ref, payload) = ws
        .join_ok(
            &topic,
            json!({"client_a": {"archived": "exclude", "mode": "compact"}, "client_b": {"tenant": "t1"}}),
        )
        .await;
    assert_eq!(payload["event"], "new-message");
    assert_eq!(payload["metadata"], counts(1, 1, 1));
    assert_eq!(payload["data"]["client_a"]["metadata"], counts(1, 1, 1));
    assert_eq!(payload["data"]["client_b"]["metadata"], counts(1, 1, 1));
    let attn = sorted_attn(&payload);
    assert_eq!(attn, ["client_a", "client_b"]);
    assert!(!join_ref.is_empty());
}

#[tokio::test]
async fn a_triggered_workflow_pushes_new_message_and_the_before_cursor_refetch_finds_it() {
    let app = spawn_app().await;
    let (mut ws, topic) = connect(&app, "u1").await;
    let (join_ref, _) = ws
        .join_ok(
            &topic,
            json!({
                "client_feed": {"archived": "exclude", "mode": "compact", "__experimentalCrossBrowserUpdates": true},
                "client_other": {"source": "some-other-workflow"}
            }),
        )
        .await;
    app.trigger(
        "new-comment",
        json!({"recipients": ["u1"], "actor": {"id": "a1", "name": "Ann"},
               "data": {"page_url": "https://example.com/p/1"}}),
    )
    .await;
    let frame = ws.next_event("new-message").await;
    assert_eq!(frame[0], json!(join_ref));
    assert_eq!(frame[2], json!(topic));
    let payload = &frame[4];
    assert_eq!(payload["event"], "new-message");
    assert_eq!(payload["attn"], json!(["client_feed"]));
    assert_eq!(payload["metadata"], counts(1, 1, 1));
    assert_eq!(payload["data"]["client_feed"]["metadata"], counts(1, 1, 1));
    assert_eq!(payload["data"]["client_other"]["metadata"], counts(0, 0, 0));
    // Pushed only after commit: the item is already readable, as the client refetches it.
    let feed: Value = app
        .get("/v1/users/u1/feeds/in-app-feed?archived=exclude")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(feed["entries"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_committed_item_is_pushed_with_the_join_ref_and_per_ref_counts() {
    let app = spawn_app().await;
    app.deliver(Item::for_user("u1").tenant("t2")).await;
    let (mut ws, topic) = connect(&app, "u1").await;
    let (join_ref, _) = ws
        .join_ok(
            &topic,
            json!({"client_all": {}, "client_t1": {"tenant": "t1", "has_tenant": true}}),
        )
        .await;
    app.deliver(Item::for_user("u1").tenant("t1")).await;
    let frame = ws.next_event("new-message").await;
    assert_eq!(
        frame[0],
        json!(join_ref),
        "push carries the current join_ref"
    );
    assert_eq!(frame[1], Value::Null, "pushes have no ref");
    assert_eq!(frame[2], json!(topic));
    let payload = &frame[4];
    assert_eq!(payload["event"], "new-message");
    assert_eq!(payload["data"]["client_all"]["metadata"], counts(2, 2, 2));
    assert_eq!(payload["data"]["client_t1"]["metadata"], counts(1, 1, 1));
    let attn = sorted_attn(payload);
    assert_eq!(attn, ["client_all", "client_t1"]);
    assert!(payload["metadata"]["total_count"].is_i64());
}

#[tokio::test]
async fn tenant_refs_get_attn_for_their_tenant_and_untenanted_items_unless_has_tenant() {
    let app = spawn_app().await;
    let (mut ws, topic) = connect(&app, "u1").await;
    ws.join_ok(
        &topic,
        json!({
            "client_a": {"tenant": "acme"},
            "client_strict": {"tenant": "acme", "has_tenant": true},
            "client_any": {}
        }),
    )
    .await;
    app.deliver(Item::for_user("u1").tenant("beta")).await;
    let frame = ws.next_event("new-message").await;
    assert_eq!(
        sorted_attn(&frame[4]),
        ["client_any"],
        "tenant B item: only the unfiltered ref"
    );
    assert_eq!(frame[4]["data"]["client_a"]["metadata"], counts(0, 0, 0));

    app.deliver(Item::for_user("u1")).await;
    let frame = ws.next_event("new-message").await;
    assert_eq!(
        sorted_attn(&frame[4]),
        ["client_a", "client_any"],
        "untenanted item: tenant ref unless has_tenant"
    );
    assert_eq!(frame[4]["data"]["client_a"]["metadata"], counts(1, 1, 1));
    assert_eq!(
        frame[4]["data"]["client_strict"]["metadata"],
        counts(0, 0, 0)
    );

    app.deliver(Item::for_user("u1").tenant("acme")).await;
    let frame = ws.next_event("new-message").await;
    assert_eq!(
        sorted_attn(&frame[4]),
        ["client_a", "client_any", "client_strict"]
    );
    assert_eq!(
        frame[4]["data"]["client_strict"]["metadata"],
        counts(1, 1, 1)
    );
    assert_eq!(frame[4]["data"]["client_any"]["metadata"], counts(3, 3, 3));
}

#[tokio::test]
async fn source_categories_trigger_data_status_and_archived_decide_attn() {
    let app = spawn_app().await;
    let (mut ws, topic) = connect(&app, "u1").await;
    ws.join_ok(
        &topic,
        json!({
            "client_any": {},
            "client_source": {"source": "other-workflow"},
            "client_cat": {"workflow_categories": ["collab", "x"]},
            "client_data": {"trigger_data": {"page": "p1"}},
            "client_read": {"status": "read"},
            "client_unread": {"status": "unread"},
            "client_archived": {"archived": "only"}
        }),
    )
    .await;
    let mut item = Item::for_user("u1");
    item.categories = vec!["collab".into()];
    item.data = json!({"page": "p1", "other": 1});
    app.deliver(item).await;
    let frame = ws.next_event("new-message").await;
    let attn = sorted_attn(&frame[4]);
    assert_eq!(
        attn,
        ["client_any", "client_cat", "client_data", "client_unread"]
    );
    assert_eq!(
        frame[4]["data"]["client_source"]["metadata"],
        counts(0, 0, 0)
    );
}

#[tokio::test]
async fn legacy_flat_join_params_get_top_level_metadata() {
    let app = spawn_app().await;
    let (mut ws, topic) = connect(&app, "u1").await;
    let (_, initial) = ws
        .join_ok(&topic, json!({"archived": "exclude", "tenant": "acme"}))
        .await;
    assert_eq!(initial["metadata"], counts(0, 0, 0));
    assert_eq!(initial["attn"], json!([]));
    app.deliver(Item::for_user("u1").tenant("acme")).await;
    let frame = ws.next_event("new-message").await;
    assert_eq!(frame[4]["event"], "new-message");
    assert_eq!(frame[4]["metadata"], counts(1, 1, 1));
}

#[tokio::test]
async fn a_new_join_on_the_same_topic_replaces_refs_and_join_ref() {
    let app = spawn_app().await;
    let (mut ws, topic) = connect(&app, "u1").await;
    let (first, _) = ws.join_ok(&topic, json!({"client_old": {}})).await;
    // Phoenix JS leaves the old join before joining with merged refs.
    let leave = ws.push(Some(&first), &topic, "phx_leave", json!({})).await;
    assert_eq!(ws.reply_to(&leave).await["status"], "ok");
    let (second, _) = ws
        .join_ok(&topic, json!({"client_old": {}, "client_new": {}}))
        .await;
    // And a join without a leave also replaces the state.
    let (third, _) = ws.join_ok(&topic, json!({"client_new": {}})).await;
    assert_ne!(first, second);
    app.deliver(Item::for_user("u1")).await;
    let frame = ws.next_event("new-message").await;
    assert_eq!(frame[0], json!(third));
    assert_eq!(frame[4]["attn"], json!(["client_new"]));
    assert!(frame[4]["data"].get("client_old").is_none());
}

#[tokio::test]
async fn leave_is_acknowledged_closes_the_channel_and_stops_pushes() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let topic = format!("feeds:{channel}:u1");
    let mut leaver = app.ws_connect("u1").await;
    let mut stayer = app.ws_connect("u1").await;
    let (join_ref, _) = leaver.join_ok(&topic, json!({"client_a": {}})).await;
    stayer.join_ok(&topic, json!({"client_b": {}})).await;
    let leave = leaver
        .push(Some(&join_ref), &topic, "phx_leave", json!({}))
        .await;
    let reply = leaver.next_frame().await;
    assert_eq!(
        reply,
        json!([join_ref, leave, topic, "phx_reply", {"status": "ok", "response": {}}])
    );
    let close = leaver.next_frame().await;
    assert_eq!(close, json!([join_ref, null, topic, "phx_close", {}]));
    app.deliver(Item::for_user("u1")).await;
    stayer.next_event("new-message").await;
    // The stayer's push proves the item was published; the leaver must not get it.
    leaver.assert_silent(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn heartbeats_get_an_ok_reply_on_the_phoenix_topic() {
    let app = spawn_app().await;
    let mut ws = app.ws_connect("u1").await;
    let r = ws.push(None, "phoenix", "heartbeat", json!({})).await;
    let reply = ws.next_frame().await;
    assert_eq!(
        reply,
        json!([null, r, "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );
}

#[tokio::test]
async fn malformed_and_unknown_frames_get_error_replies_and_the_socket_lives_on() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let mut ws = app.ws_connect("u1").await;
    // Wrong element type, salvageable refs: error reply on that topic.
    ws.send_text(r#"["1","1","feeds:x:u1",7,{}]"#).await;
    let reply = ws.next_frame().await;
    assert_eq!(reply[1], "1");
    assert_eq!(reply[3], "phx_reply");
    assert_eq!(reply[4]["status"], "error");
    assert!(
        reply[4]["response"]["reason"]
            .as_str()
            .unwrap()
            .contains("malformed")
    );
    // Unknown event on a topic never joined.
    let r = ws.push(Some("9"), "feeds:x:u1", "shout", json!({})).await;
    let reply = ws.reply_to(&r).await;
    assert_eq!(
        reply,
        json!({"status": "error", "response": {"reason": "unmatched topic"}})
    );
    // Unknown event on a joined topic.
    let topic = format!("feeds:{channel}:u1");
    let (join_ref, _) = ws.join_ok(&topic, json!({})).await;
    let r = ws.push(Some(&join_ref), &topic, "shout", json!({})).await;
    let reply = ws.reply_to(&r).await;
    assert_eq!(reply["status"], "error");
    // Unknown event on the phoenix topic.
    let r = ws.push(None, "phoenix", "bogus", json!({})).await;
    assert_eq!(ws.reply_to(&r).await["status"], "error");
    // Still alive.
    let r = ws.push(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(ws.reply_to(&r).await["status"], "ok");
}

#[tokio::test]
async fn a_frame_that_is_not_a_phoenix_array_closes_the_socket_with_1007() {
    let app = spawn_app().await;
    let mut ws = app.ws_connect("u1").await;
    ws.send_text("this is not json").await;
    let (close, _) = ws.closed().await;
    let close = close.expect("a close frame");
    assert_eq!(u16::from(close.code), 1007);
    assert!(close.reason.contains("malformed"));
}

#[tokio::test]
async fn joins_with_bad_topics_params_or_channels_are_refused_with_a_reason() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let mut ws = app.ws_connect("u1").await;
    for (topic, params, reason) in [
        ("guides:abc".to_owned(), json!({}), "unmatched topic"),
        (format!("feeds:{channel}"), json!({}), "unmatched topic"),
        (
            "feeds:no-such-channel:u1".to_owned(),
            json!({}),
            "does not exist",
        ),
        (
            format!("feeds:{channel}:u1"),
            json!({"client_a": {"status": "bogus"}}),
            "invalid params",
        ),
        (format!("feeds:{channel}:u1"), json!([1]), "invalid params"),
    ] {
        let (_, reply) = ws.join(&topic, params).await;
        assert_eq!(reply["status"], "error", "{topic}");
        let text = reply["response"]["reason"].as_str().unwrap();
        assert!(text.contains(reason), "{topic}: {text}");
    }
    // The channel key works as well as its UUID.
    ws.join_ok("feeds:in-app-feed:u1", json!({})).await;
}
