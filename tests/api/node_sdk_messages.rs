//! The official `@knocklabs/node` SDK, unchanged, against the feed and message endpoints
//! (`tests/js/messages_sdk.mjs`).
//!
//! Needs Node.js and `npm ci --prefix tests/js`. Missing either is a failure, not a skip.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{SECRET_KEY, spawn_app};

#[tokio::test]
async fn the_official_node_sdk_reads_feeds_and_updates_messages() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/@knocklabs/node/package.json")
            .is_file(),
        "the Knock node SDK is not installed: run `npm ci --prefix tests/js`"
    );
    let app = spawn_app().await;
    // Real apps pass the channel UUID; read it from a message of a throwaway trigger.
    app.trigger(
        "new-comment",
        json!({"recipients": ["probe"], "data": {"page_title": "t", "page_url": "u", "comment_preview": "c"}}),
    )
    .await;
    let body = app.wait_for_feed("probe", "", 1).await;
    let message_id = body["entries"][0]["id"]
        .as_str()
        .expect("probe item")
        .to_owned();
    let message: Value = app
        .get(&format!("/v1/messages/{message_id}"))
        .send()
        .await
        .expect("message")
        .json()
        .await
        .expect("JSON");
    let channel_id = message["channel_id"]
        .as_str()
        .expect("channel_id")
        .to_owned();
    let base_url = app.address.clone();
    // The server runs on this test's runtime: run node off it.
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(js.join("messages_sdk.mjs"))
            .current_dir(&js)
            .env("KNOCK_API_KEY", SECRET_KEY)
            .env("KNOCK_BASE_URL", base_url)
            .env("TIDINGS_CHANNEL_ID", channel_id)
            .output()
    })
    .await
    .expect("join")
    .expect("`node` must be installed to run the SDK compatibility test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "messages_sdk.mjs failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("messages sdk: ok"), "{stdout}");
}
