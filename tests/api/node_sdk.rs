//! The official `@knocklabs/node` SDK, unchanged, against the test server: identify,
//! trigger, list the feed, mark the item read (`tests/js/node_sdk.mjs`).
//!
//! Needs Node.js and `npm ci --prefix tests/js` (`.ci/run` does that). Missing either is
//! a failure, not a skip: a skipped compatibility test proves nothing.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::helpers::{SECRET_KEY, spawn_app};

#[tokio::test]
async fn the_official_node_sdk_identifies_triggers_lists_the_feed_and_marks_read() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/@knocklabs/node/package.json")
            .is_file(),
        "the Knock node SDK is not installed: run `npm ci --prefix tests/js`"
    );
    let app = spawn_app().await;
    let channels: Value = app
        .get("/v1/channels")
        .send()
        .await
        .expect("channels request")
        .json()
        .await
        .expect("channels JSON");
    let channel_id = channels["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|c| c["key"] == "in-app-feed"))
        .and_then(|c| c["id"].as_str())
        .expect("in-app-feed channel id")
        .to_owned();
    let base_url = app.address.clone();
    // The server and the engine run on this test's runtime: run node off it.
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(js.join("node_sdk.mjs"))
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
        "node_sdk.mjs failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("node sdk: ok"), "{stdout}");
}
