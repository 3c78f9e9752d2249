//! End-to-end in headless Chromium: a tenant admin's user token lists its tenant's objects,
//! reads their feeds and follows them live over the socket, and sees nothing of another
//! tenant's object (`tests/browser/object_feed.mjs`).

use std::time::Duration;

use serde_json::json;

use crate::browser::browser_tooling;
use crate::helpers::{PUBLIC_KEY, SECRET_KEY, spawn_app, user_token};

#[tokio::test]
async fn a_tenant_admin_follows_its_object_feeds_live_in_headless_chromium() {
    let (dir, chromium) = browser_tooling(&["playwright-core"]);
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let token = user_token(
        "acme-admin",
        json!({"https://api.knock.app/v1/tenants/acme": {"user/feed_read": {}}}),
    );
    let run = tokio::process::Command::new("node")
        .arg("object_feed.mjs")
        .current_dir(&dir)
        .env("TIDINGS_URL", &app.address)
        .env("TIDINGS_PUBLIC_KEY", PUBLIC_KEY)
        .env("TIDINGS_SECRET_KEY", SECRET_KEY)
        .env("TIDINGS_USER_TOKEN", token)
        .env("TIDINGS_CHANNEL_ID", &channel)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser run finishes within 2 minutes")
        .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "object_feed.mjs failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(stdout.contains("object feed e2e passed"), "{stdout}");
}
