//! The official `@knocklabs/node` SDK, unchanged, against the feed and message endpoints
//! (`tests/js/messages_sdk.mjs`).
//!
//! Needs Node.js and `npm ci --prefix tests/js`. Missing either is a failure, not a skip.

use std::path::PathBuf;

use serde_json::json;

use crate::feed_support::channel_id;
use crate::helpers::{installed_node_sdk, spawn_app};

#[tokio::test]
async fn the_official_node_sdk_reads_feeds_and_updates_messages() {
    let js = installed_node_sdk();
    let app = spawn_app().await;
    // Real apps pass the channel UUID that messages carry: check a throwaway trigger's
    // message carries the one the script is given.
    app.trigger(
        "new-comment",
        json!({"recipients": ["probe"], "data": {"page_title": "t", "page_url": "u", "comment_preview": "c"}}),
    )
    .await;
    let body = app.wait_for_feed("probe", "", 1).await;
    let message_id = body["entries"][0]["id"].as_str().expect("probe item");
    let channel_id = channel_id(&app, message_id).await;
    assert_eq!(channel_id, app.channel_id().await);
    app.run_sdk_script(
        PathBuf::from("node"),
        js.join("messages_sdk.mjs"),
        "messages sdk: ok",
    )
    .await;
}
