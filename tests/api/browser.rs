//! End-to-end in a real browser: headless Chromium (Debian's `chromium`) loads a page that
//! bundles the official `@knocklabs/client`, and `tests/browser/run.mjs` drives it:
//! authenticate with a user token, `fetch()`, `listenForUpdates()`, a backend trigger
//! arriving through `items.received.realtime`, `markAsRead`, and the counts changing.
//! Then Tidings' own pages (`/`, `/admin`) in demo mode, driven by `tests/browser/inbox.mjs`.
//! Missing tooling fails the test with instructions; it never passes silently.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{PUBLIC_KEY, SECRET_KEY, TestApp, spawn_app, user_token};

/// `tests/browser` and the Chromium binary, asserting both it and the npm `packages` are
/// installed.
pub fn browser_tooling(packages: &[&str]) -> (PathBuf, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "chromium is missing at {chromium}: `apt-get install -y chromium` (scripts/test does it)"
    );
    for package in packages {
        assert!(
            dir.join("node_modules").join(package).exists(),
            "npm package {package} is missing: run `npm ci --prefix tests/browser` (scripts/test does it)"
        );
    }
    (dir, chromium)
}

/// Runs `node <script>` in `tests/browser` against `app` as `user`, within two minutes;
/// asserts it succeeds and prints `expect_line`.
async fn run_in_browser(
    app: &TestApp,
    (dir, chromium): (PathBuf, String),
    script: &str,
    user: &str,
    expect_line: &str,
) {
    let channel = app.channel_id().await;
    let run = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(&dir)
        .env("TIDINGS_URL", &app.address)
        .env("TIDINGS_PUBLIC_KEY", PUBLIC_KEY)
        .env("TIDINGS_SECRET_KEY", SECRET_KEY)
        .env("TIDINGS_USER_ID", user)
        .env("TIDINGS_USER_TOKEN", user_token(user, json!(null)))
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
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(stdout.contains(expect_line), "{stdout}");
}

#[tokio::test]
async fn the_official_browser_client_receives_live_items_in_headless_chromium() {
    let tooling = browser_tooling(&["@knocklabs/client", "playwright-core", "esbuild"]);
    let app = spawn_app().await;
    run_in_browser(&app, tooling, "run.mjs", "e2e-user", "browser e2e passed").await;
}

/// Tidings' own pages: `tests/browser/inbox.mjs` starts the real binary in demo mode (and
/// restarts it, to test recovery), then drives `/` and `/admin` in one Chromium.
#[tokio::test]
async fn the_inbox_and_admin_pages_work_live_in_headless_chromium() {
    let (dir, chromium) = browser_tooling(&["playwright-core", "axe-core"]);
    let run = tokio::process::Command::new("node")
        .arg("inbox.mjs")
        .current_dir(&dir)
        .env("TIDINGS_BIN", env!("CARGO_BIN_EXE_tidings"))
        .env(
            "TIDINGS_WORKFLOWS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows"),
        )
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser run finishes within 4 minutes")
        .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("inbox e2e passed"),
        "inbox.mjs failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
}
