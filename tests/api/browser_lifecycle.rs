//! The official `@knocklabs/client` in headless Chromium (`tests/browser/lifecycle.mjs`)
//! against a server on a manual clock: its badge drops when an item expires and when
//! one is snoozed, and rises when the snoozed item wakes, all pushed over the socket.

use std::process::Stdio;
use std::time::Duration;

use chrono::Duration as Span;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::browser::browser_tooling;
use crate::engine_delay::{app_with_manual_clock, in_app, upsert};
use crate::helpers::{PUBLIC_KEY, SECRET_KEY, user_token};

#[tokio::test]
async fn the_browser_client_badge_follows_expiry_snooze_and_wake() {
    let (dir, chromium) = browser_tooling(&["@knocklabs/client", "playwright-core", "esbuild"]);
    let (app, clock) = app_with_manual_clock().await;
    let mut flash = in_app("in_app", "Flash sale");
    flash["expires_after"] = json!({"unit": "hours", "value": 1});
    upsert(&app, "flash", json!([flash])).await;
    upsert(&app, "plain", json!([in_app("in_app", "Plain")])).await;
    let user = "life-user";
    app.trigger("plain", json!({"recipients": [user]})).await;
    app.trigger("flash", json!({"recipients": [user]})).await;
    let body = app.wait_for_feed(user, "", 2).await;
    // By workflow, not position: the two runs may commit in either order.
    let plain_id = body["entries"]
        .as_array()
        .and_then(|entries| entries.iter().find(|e| e["source"]["key"] == "plain"))
        .and_then(|e| e["id"].as_str())
        .expect("the plain item")
        .to_owned();

    let mut child = tokio::process::Command::new("node")
        .arg("lifecycle.mjs")
        .current_dir(&dir)
        .env("TIDINGS_URL", &app.address)
        .env("TIDINGS_PUBLIC_KEY", PUBLIC_KEY)
        .env("TIDINGS_SECRET_KEY", SECRET_KEY)
        .env("TIDINGS_USER_ID", user)
        .env("TIDINGS_USER_TOKEN", user_token(user, json!(null)))
        .env("TIDINGS_CHANNEL_ID", app.channel_id().await)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (is Node.js installed?)");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let drive = async {
        while let Some(line) = out.next_line().await.expect("read stdout") {
            seen.push(line.clone());
            let Some(step) = line.strip_prefix("step: ") else {
                continue;
            };
            match step {
                "expire" => clock.advance(Span::hours(1)),
                "snooze" => {
                    let (status, body) = app
                        .put_json(
                            &format!("/v1/messages/{plain_id}/snoozed"),
                            json!({"snoozed_until": "2026-03-01T10:30:00Z"}),
                        )
                        .await;
                    assert_eq!(status, 200, "{body}");
                }
                "wake" => clock.advance(Span::minutes(31)),
                other => panic!("unknown step {other}"),
            }
            stdin.write_all(b"go\n").await.expect("answer the step");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), drive)
        .await
        .expect("the browser run finishes within 2 minutes");
    let status = child.wait().await.expect("exit");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut stderr).await;
    }
    let stdout = seen.join("\n");
    assert!(
        status.success() && stdout.contains("browser lifecycle passed"),
        "lifecycle.mjs failed ({status}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}
