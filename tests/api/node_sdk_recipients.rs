//! The official `@knocklabs/node` SDK, unchanged, against the recipient endpoints: users,
//! objects, tenants, bulk operations (`tests/js/recipients_sdk.mjs`).
//!
//! Needs Node.js and `npm ci --prefix tests/js`. Missing either is a failure, not a skip.

use std::path::Path;
use std::process::Command;

use crate::helpers::{SECRET_KEY, spawn_app};

#[tokio::test]
async fn the_official_node_sdk_manages_users_objects_and_tenants() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/@knocklabs/node/package.json")
            .is_file(),
        "the Knock node SDK is not installed: run `npm ci --prefix tests/js`"
    );
    let app = spawn_app().await;
    let base_url = app.address.clone();
    // The server runs on this test's runtime: run node off it.
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(js.join("recipients_sdk.mjs"))
            .current_dir(&js)
            .env("KNOCK_API_KEY", SECRET_KEY)
            .env("KNOCK_BASE_URL", base_url)
            .output()
    })
    .await
    .expect("join")
    .expect("`node` must be installed to run the SDK compatibility test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "recipients_sdk.mjs failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("recipients sdk: ok"), "{stdout}");
}
