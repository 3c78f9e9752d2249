//! The official `@knocklabs/node` SDK, unchanged, against the test server: identify,
//! trigger, list the feed, mark the item read (`tests/js/node_sdk.mjs`).
//!
//! Needs Node.js and `npm ci --prefix tests/js` (`.ci/run` does that). Missing either is
//! a failure, not a skip: a skipped compatibility test proves nothing.

use std::path::PathBuf;

use crate::helpers::{installed_node_sdk, spawn_app};

#[tokio::test]
async fn the_official_node_sdk_identifies_triggers_lists_the_feed_and_marks_read() {
    let js = installed_node_sdk();
    let app = spawn_app().await;
    app.run_sdk_script(
        PathBuf::from("node"),
        js.join("node_sdk.mjs"),
        "node sdk: ok",
    )
    .await;
}
