//! Items that expire (issue 21 item 1) and the lifecycle keys of workflow steps, driven
//! by the injectable manual clock: expiries happen when the test advances time, never by
//! sleeping. Snooze and pin are in `lifecycle_snooze.rs`, which shares these helpers.

use chrono::Duration;
use serde_json::{Value, json};

use crate::engine_delay::{app_with_manual_clock, in_app, upsert};
use crate::helpers::{TestApp, assert_error};
use crate::ws::WsClient;

/// An in-app step with the lifecycle keys of `extra` merged in.
pub(crate) fn step(extra: Value) -> Value {
    let mut s = in_app("in_app", "Hello {{ data.n }}");
    if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
        s.extend(extra.clone());
    }
    s
}

pub(crate) fn feed_path(user: &str, query: &str) -> String {
    format!("/v1/users/{user}/feeds/in-app-feed?{query}")
}

pub(crate) async fn feed(app: &TestApp, user: &str, query: &str) -> Value {
    let (status, body) = app.get_json(&feed_path(user, query)).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub(crate) fn ids(body: &Value) -> Vec<String> {
    body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

pub(crate) fn badge(body: &Value) -> (i64, i64, i64) {
    let m = &body["meta"];
    (
        m["total_count"].as_i64().expect("total"),
        m["unread_count"].as_i64().expect("unread"),
        m["unseen_count"].as_i64().expect("unseen"),
    )
}

/// Triggers `key` for `user` with `data` and waits for the item; returns its id.
pub(crate) async fn deliver(app: &TestApp, key: &str, user: &str, data: Value) -> String {
    let before = feed(app, user, "").await;
    let n = before["entries"].as_array().map_or(0, Vec::len);
    app.trigger(key, json!({"recipients": [user], "data": data}))
        .await;
    let body = app.wait_for_feed(user, "", n + 1).await;
    body["entries"][0]["id"].as_str().expect("id").to_owned()
}

/// Polls the feed until `done` (the due-sources run on their own task).
pub(crate) async fn wait_feed(
    app: &TestApp,
    user: &str,
    query: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    app.poll_json(&feed_path(user, query), done).await
}

/// The socket of `user`, joined to its feed with one ref; returns it after the join push.
pub(crate) async fn joined(app: &TestApp, user: &str) -> WsClient {
    let channel = app.channel_id().await;
    let mut ws = app.ws_connect(user).await;
    ws.join_ok(
        &format!("feeds:{channel}:{user}"),
        json!({"client_feed": {"archived": "exclude", "mode": "compact"}}),
    )
    .await;
    ws
}

/// The next `new-message` push's counts for `client_feed`, checking the ref is in `attn`.
pub(crate) async fn pushed_counts(ws: &mut WsClient) -> (i64, i64) {
    let frame = ws.next_event("new-message").await;
    let payload = &frame[4];
    assert_eq!(payload["attn"], json!(["client_feed"]), "{payload}");
    let m = &payload["data"]["client_feed"]["metadata"];
    (
        m["total_count"].as_i64().expect("total"),
        m["unread_count"].as_i64().expect("unread"),
    )
}

#[tokio::test]
async fn an_expiring_item_leaves_feeds_counts_and_sockets_at_its_expiry() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "flash",
        json!([step(
            json!({"expires_after": {"unit": "hours", "value": 2}})
        )]),
    )
    .await;
    upsert(&app, "plain", json!([in_app("in_app", "Plain")])).await;
    let keep = deliver(&app, "plain", "u1", json!({})).await;
    let flash = deliver(&app, "flash", "u1", json!({"n": 1})).await;
    let body = feed(&app, "u1", "").await;
    assert_eq!(
        body["entries"][0]["expires_at"],
        "2026-03-01T11:00:00.000000Z"
    );
    assert_eq!(body["entries"][1]["expires_at"], Value::Null);
    assert_eq!(badge(&body), (2, 2, 2));
    let mut ws = joined(&app, "u1").await;

    clock.advance(Duration::hours(2));
    // The read filters by the clock: gone at once, whatever the due-source did yet.
    let body = feed(&app, "u1", "").await;
    assert_eq!(ids(&body), [keep.as_str()]);
    assert_eq!(badge(&body), (1, 1, 1));
    // The joined socket gets the lowered counts without asking.
    assert_eq!(pushed_counts(&mut ws).await, (1, 1));
    for query in [
        "archived=include",
        "status=unread",
        "source=flash",
        "tenant=t1",
    ] {
        assert!(
            !ids(&feed(&app, "u1", query).await).contains(&flash),
            "{query}"
        );
    }
    // The message itself still reads (until the purge), with its expiry.
    let (status, message) = app.get_json(&format!("/v1/messages/{flash}")).await;
    assert_eq!(status, 200);
    assert_eq!(message["expires_at"], "2026-03-01T11:00:00.000000Z");
    // Marking the expired item read moves no count.
    let res = app
        .put(&format!("/v1/messages/{flash}/read"), json!({}))
        .send()
        .await
        .expect("read");
    assert_eq!(res.status(), 200);
    assert_eq!(badge(&feed(&app, "u1", "").await), (1, 1, 1));

    // Retention: deleted once the grace period (7 days) has passed.
    clock.advance(Duration::days(7) + Duration::seconds(1));
    let path = format!("/v1/messages/{flash}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.get_json(&path).await.0 != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "expired item never purged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(badge(&feed(&app, "u1", "").await), (1, 1, 1));
}

#[tokio::test]
async fn expires_at_field_path_takes_the_time_from_data_and_skips_unusable_values() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "offer",
        json!([step(json!({"expires_at_field_path": "data.valid_until"}))]),
    )
    .await;
    let id = deliver(
        &app,
        "offer",
        "u1",
        json!({"valid_until": "2026-03-01T18:00:00+02:00"}),
    )
    .await;
    let body = feed(&app, "u1", "").await;
    assert_eq!(body["entries"][0]["id"], json!(id));
    assert_eq!(
        body["entries"][0]["expires_at"],
        "2026-03-01T16:00:00.000000Z"
    );
    // A missing or past time skips the step (recorded), as a delay's field path does.
    for data in [
        json!({}),
        json!({"valid_until": "soon"}),
        json!({"valid_until": "2026-03-01T08:00:00Z"}),
    ] {
        let run = app
            .trigger("offer", json!({"recipients": ["u2"], "data": data}))
            .await;
        crate::engine_delay::wait_recipient_statuses(&app, &run, 1, &["completed"]).await;
    }
    assert!(ids(&feed(&app, "u2", "").await).is_empty());
    clock.advance(Duration::hours(7));
    let body = wait_feed(&app, "u1", "", |b| {
        b["entries"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    assert_eq!(badge(&body), (0, 0, 0));
}

#[tokio::test]
async fn object_feeds_lose_expired_items_too() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "flash",
        json!([step(
            json!({"expires_after": {"unit": "minutes", "value": 5}})
        )]),
    )
    .await;
    app.put_ok("/v1/objects/projects/p1", json!({})).await;
    app.trigger(
        "flash",
        json!({"recipients": [{"collection": "projects", "id": "p1"}], "data": {}}),
    )
    .await;
    let path = "/v1/objects/projects/p1/feeds/in-app-feed";
    let body = app
        .poll_json(path, |b| {
            b["entries"].as_array().is_some_and(|e| e.len() == 1)
        })
        .await;
    assert_eq!(badge(&body), (1, 1, 1));
    clock.advance(Duration::minutes(5));
    let (_, body) = app.get_json(path).await;
    assert_eq!(badge(&body), (0, 0, 0));
    assert!(ids(&body).is_empty());
}

#[tokio::test]
async fn bad_lifecycle_step_values_are_422_naming_the_field() {
    let (app, _clock) = app_with_manual_clock().await;
    for (extra, field) in [
        (
            json!({"expires_after": {"unit": "hours", "value": 0}}),
            "expires_after",
        ),
        (
            json!({"expires_after": {"unit": "eons", "value": 1}}),
            "expires_after",
        ),
        (json!({"expires_after": "2h"}), "expires_after"),
        (json!({"expires_at_field_path": 3}), "expires_at_field_path"),
        (
            json!({"expires_at_field_path": "elsewhere.x"}),
            "expires_at_field_path",
        ),
        (json!({"pinned": "yes"}), "pinned"),
    ] {
        let res = app
            .put(
                "/v1/workflows/bad",
                json!({"workflow": {"name": "bad", "steps": [step(extra.clone())]}}),
            )
            .send()
            .await
            .expect("sent");
        let body = assert_error(res, 422, "invalid_params").await;
        assert!(body.to_string().contains(field), "{extra}: {body}");
    }
    let (status, _) = app.get_json("/v1/workflows/bad").await;
    assert_eq!(status, 404, "nothing stored");
}

#[tokio::test]
async fn knock_cli_workflow_json_with_expiry_and_pin_loads_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let wf = dir.path().join("announcement");
    std::fs::create_dir_all(&wf).expect("mkdir");
    std::fs::write(
        wf.join("workflow.json"),
        r#"{"name": "Announcement", "steps": [{"ref": "in_app", "type": "channel",
            "channel_key": "in-app-feed", "channel_type": "in_app_feed",
            "expires_after": {"unit": "days", "value": 1}, "pinned": true,
            "template": {"markdown_body": "Maintenance tonight"}}]}"#,
    )
    .expect("write");
    let workflows = dir.path().to_path_buf();
    let app = crate::helpers::spawn_app_with(move |s| s.workflows = workflows).await;
    app.trigger("announcement", json!({"recipients": ["u1"]}))
        .await;
    let body = app.wait_for_feed("u1", "", 1).await;
    let item = &body["entries"][0];
    assert!(item["pinned_at"].is_string(), "{item}");
    let (inserted, expires) = (
        tidings::clock::parse(item["inserted_at"].as_str().expect("inserted_at")).expect("time"),
        tidings::clock::parse(item["expires_at"].as_str().expect("expires_at")).expect("time"),
    );
    assert_eq!(expires - inserted, Duration::days(1));
    // A bad value in a file is refused at start, naming the file and the field.
    std::fs::write(
        wf.join("workflow.json"),
        r#"{"name": "Announcement", "steps": [{"ref": "in_app", "type": "channel",
            "channel_key": "in-app-feed", "expires_after": {"unit": "days", "value": -1},
            "template": {"markdown_body": "x"}}]}"#,
    )
    .expect("write");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .env("TIDINGS_LOG", "warn")
        .args(["workflows", "validate", dir.path().to_str().expect("utf-8")])
        .output()
        .await
        .expect("the tidings binary runs");
    let stdout =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("expires_after"), "{stdout}");
}
