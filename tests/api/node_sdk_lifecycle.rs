//! The official `@knocklabs/node` SDK, unchanged, reading `expires_at`, `snoozed_until`
//! and `pinned_at` and snoozing and pinning through its generic request methods
//! (`tests/js/lifecycle_sdk.mjs`).
//!
//! Needs Node.js and `npm ci --prefix tests/js`. Missing either is a failure, not a skip.

use std::path::PathBuf;

use serde_json::json;

use crate::engine_delay::upsert;
use crate::helpers::{installed_node_sdk, spawn_app};

#[tokio::test]
async fn the_official_node_sdk_reads_expiry_snooze_and_pin_fields() {
    let js = installed_node_sdk();
    let app = spawn_app().await;
    let step = |extra: serde_json::Value| {
        let mut s = json!({"ref": "in_app", "type": "channel", "channel_key": "in-app-feed",
                           "template": {"markdown_body": "Lifecycle"}});
        if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(extra.clone());
        }
        s
    };
    upsert(
        &app,
        "lifecycle-expiring",
        json!([step(
            json!({"expires_after": {"unit": "hours", "value": 2}})
        )]),
    )
    .await;
    upsert(
        &app,
        "lifecycle-pinned",
        json!([step(json!({"pinned": true}))]),
    )
    .await;
    app.run_sdk_script(
        PathBuf::from("node"),
        js.join("lifecycle_sdk.mjs"),
        "lifecycle sdk: ok",
    )
    .await;
}
