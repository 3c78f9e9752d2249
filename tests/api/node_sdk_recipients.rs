//! The official `@knocklabs/node` SDK, unchanged, against the recipient endpoints: users,
//! objects, tenants, bulk operations (`tests/js/recipients_sdk.mjs`).
//!
//! Needs Node.js and `npm ci --prefix tests/js`. Missing either is a failure, not a skip.

use std::path::PathBuf;

use crate::helpers::{installed_node_sdk, spawn_app};

#[tokio::test]
async fn the_official_node_sdk_manages_users_objects_and_tenants() {
    let js = installed_node_sdk();
    let app = spawn_app().await;
    app.run_sdk_script(
        PathBuf::from("node"),
        js.join("recipients_sdk.mjs"),
        "recipients sdk: ok",
    )
    .await;
}

#[tokio::test]
async fn the_official_node_sdk_manages_subscriptions() {
    let js = installed_node_sdk();
    let app = spawn_app().await;
    app.run_sdk_script(
        PathBuf::from("node"),
        js.join("subscriptions_sdk.mjs"),
        "subscriptions sdk: ok",
    )
    .await;
}
