//! A closed batch in the official browser client: headless Chromium runs the unchanged
//! `@knocklabs/client` (rich mode) via `tests/browser/batch.mjs`. The server runs on the
//! manual clock; once the page says it listens, this test triggers three comments from
//! two actors and advances the clock past the window. The item must arrive live with
//! `total_activities`, `total_actors`, `actors` and `activities`, rendered by the page.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::browser::browser_tooling;
use crate::engine_delay::{app_with_manual_clock, in_app, upsert, wait_recipient_statuses};
use crate::helpers::{PUBLIC_KEY, SECRET_KEY, user_token};

#[tokio::test]
async fn a_batch_item_renders_total_activities_and_actors_in_the_official_browser_client() {
    let (dir, chromium) = browser_tooling(&["@knocklabs/client", "playwright-core", "esbuild"]);
    let (app, clock) = app_with_manual_clock().await;
    app.identify("ada", json!({"name": "Ada"})).await;
    app.identify("bob", json!({"name": "Bob"})).await;
    upsert(
        &app,
        "comments",
        json!([
            {"ref": "batch_1", "type": "batch",
             "settings": {"batch_window": {"unit": "minutes", "value": 5}}},
            in_app("in_app_feed_1",
                   "{{ total_activities }} comments by {{ actors[0].name }}{% if total_actors > 1 %} and {{ total_actors | minus: 1 }} other{% endif %}")
        ]),
    )
    .await;
    let user = "batch-viewer";
    let channel = app.channel_id().await;
    let mut child = tokio::process::Command::new("node")
        .arg("batch.mjs")
        .current_dir(&dir)
        .env("TIDINGS_URL", &app.address)
        .env("TIDINGS_PUBLIC_KEY", PUBLIC_KEY)
        .env("TIDINGS_SECRET_KEY", SECRET_KEY)
        .env("TIDINGS_USER_ID", user)
        .env("TIDINGS_USER_TOKEN", user_token(user, json!(null)))
        .env("TIDINGS_CHANNEL_ID", &channel)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (is Node.js installed?)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(90), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line == "ready";
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(ready, Ok(true)),
        "the page never got ready: {seen:#?}"
    );
    for (actor, n) in [("ada", 1), ("bob", 2), ("ada", 3)] {
        let run = app
            .trigger(
                "comments",
                json!({"recipients": [user], "actor": actor, "data": {"n": n}}),
            )
            .await;
        wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
    }
    clock.advance(chrono::Duration::minutes(5));
    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push(line);
        }
        child.wait_with_output().await
    })
    .await
    .expect("the browser run finishes within a minute")
    .expect("node exits");
    let stderr = String::from_utf8_lossy(&rest.stderr);
    assert!(
        rest.status.success() && seen.iter().any(|l| l == "batch e2e passed"),
        "batch.mjs failed ({}):\n--- stdout\n{}\n--- stderr\n{stderr}",
        rest.status,
        seen.join("\n")
    );
}
