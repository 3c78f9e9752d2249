//! `POST /v1/channels/{channel}/messages/bulk/{action}`: the browser's mark-all calls, the
//! server's scoped updates and deletes, the stored `BulkOperation`, and bad input.

use reqwest::Method;
use serde_json::{Value, json};

use crate::feed_support::{
    as_browser, assert_counts_exact, channel_id, comment, entries, feed, ids, seed,
};
use crate::helpers::{assert_error, assert_needs_a_valid_key, spawn_app};

fn assert_bulk_operation(op: &Value, processed: i64) {
    assert_eq!(op["__typename"], "BulkOperation");
    assert_eq!(op["status"], "completed");
    assert!(uuid::Uuid::parse_str(op["id"].as_str().expect("id")).is_ok());
    assert_eq!(op["processed_rows"], processed, "{op}");
    assert_eq!(op["success_count"], processed);
    assert_eq!(op["estimated_total_rows"], processed);
    assert_eq!(op["error_count"], 0);
    assert_eq!(op["error_items"], json!([]));
    assert!(op["failed_at"].is_null());
    for field in [
        "name",
        "progress_path",
        "inserted_at",
        "updated_at",
        "started_at",
        "completed_at",
    ] {
        assert!(op[field].is_string(), "{field}: {op}");
    }
}

#[tokio::test]
async fn browser_mark_all_as_read_updates_only_its_feed_and_returns_a_bulk_operation() {
    let app = spawn_app().await;
    comment(&app, json!(["ada", "bob"]), json!({}), None).await;
    comment(&app, json!(["ada", "bob"]), json!({}), Some("acme")).await;
    app.wait_for_feed("ada", "", 2).await;
    app.wait_for_feed("bob", "", 2).await;
    let first = ids(&feed(&app, "ada", "").await)[0].clone();
    let channel = channel_id(&app, &first).await;
    let body = json!({"user_ids": ["ada"], "engagement_status": "unread", "archived": "exclude",
                      "tenants": [null], "has_tenant": null});
    let res = as_browser(
        &app,
        Method::POST,
        &format!("/v1/channels/{channel}/messages/bulk/read"),
        "ada",
        json!(null),
    )
    .json(&body)
    .send()
    .await
    .expect("bulk");
    assert_eq!(res.status(), 200);
    let op: Value = res.json().await.expect("JSON");
    assert_bulk_operation(&op, 2);
    let stored: Value = app
        .get(&format!(
            "/v1/bulk_operations/{}",
            op["id"].as_str().expect("id")
        ))
        .send()
        .await
        .expect("get op")
        .json()
        .await
        .expect("JSON");
    assert_eq!(stored, op);
    assert_eq!(feed(&app, "ada", "").await["meta"]["unread_count"], 0);
    assert_eq!(
        feed(&app, "bob", "").await["meta"]["unread_count"],
        2,
        "bob is untouched"
    );
    assert_counts_exact(&app, "ada").await;
    let res = as_browser(
        &app,
        Method::POST,
        "/v1/channels/in-app-feed/messages/bulk/seen",
        "ada",
        json!(null),
    )
    .json(&json!({"user_ids": ["bob"]}))
    .send()
    .await
    .expect("bulk");
    assert_error(res, 403, "authorization").await;
    assert_eq!(feed(&app, "bob", "").await["meta"]["unseen_count"], 2);
    // `archive` (the client's spelling) without user_ids means the caller's own feed.
    let res = as_browser(
        &app,
        Method::POST,
        "/v1/channels/in-app-feed/messages/bulk/archive",
        "ada",
        json!(null),
    )
    .json(&json!({"archived": "exclude", "tenants": ["acme"], "has_tenant": true}))
    .send()
    .await
    .expect("bulk");
    assert_eq!(res.status(), 200);
    assert_bulk_operation(&res.json().await.expect("JSON"), 1);
    assert_eq!(feed(&app, "ada", "").await["meta"]["total_count"], 1);
    assert_eq!(feed(&app, "bob", "").await["meta"]["total_count"], 2);
    assert_counts_exact(&app, "ada").await;
}

#[tokio::test]
async fn server_bulk_updates_follow_the_scope_and_delete_keeps_counts_exact() {
    let app = spawn_app().await;
    comment(&app, json!(["ada", "bob"]), json!({"page_id": "p1"}), None).await;
    comment(
        &app,
        json!(["ada", "bob"]),
        json!({"page_id": "p2"}),
        Some("acme"),
    )
    .await;
    app.wait_for_feed("ada", "", 2).await;
    app.wait_for_feed("bob", "", 2).await;
    let url = |action: &str| format!("/v1/channels/in-app-feed/messages/bulk/{action}");
    let res = app
        .post(
            &url("seen"),
            json!({"recipient_ids": ["ada"], "trigger_data": "{\"page_id\":\"p1\"}"}),
        )
        .send()
        .await
        .expect("bulk");
    assert_bulk_operation(&res.json().await.expect("JSON"), 1);
    assert_eq!(feed(&app, "ada", "").await["meta"]["unseen_count"], 1);
    let res = app
        .post(
            &url("interacted"),
            json!({"recipient_ids": ["ada", "bob"], "has_tenant": true}),
        )
        .send()
        .await
        .expect("bulk");
    assert_bulk_operation(&res.json().await.expect("JSON"), 2);
    assert_eq!(feed(&app, "bob", "").await["meta"]["unread_count"], 1);
    assert_counts_exact(&app, "ada").await;
    assert_counts_exact(&app, "bob").await;
    let res = app
        .post(
            &url("delete"),
            json!({"recipient_ids": ["bob"], "engagement_status": "read"}),
        )
        .send()
        .await
        .expect("bulk");
    assert_bulk_operation(&res.json().await.expect("JSON"), 1);
    let bob = feed(&app, "bob", "archived=include").await;
    assert_eq!(entries(&bob).len(), 1);
    assert_eq!(bob["meta"]["total_count"], 1);
    assert_counts_exact(&app, "bob").await;
    let res = app
        .post(
            &url("unseen"),
            json!({"workflows": ["new-comment"], "newer_than": "2000-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .expect("bulk");
    assert_eq!(res.status(), 200);
    assert_eq!(feed(&app, "ada", "").await["meta"]["unseen_count"], 2);
    assert_counts_exact(&app, "ada").await;
    let res = app
        .post(&url("read"), json!({"older_than": "2000-01-01T00:00:00Z"}))
        .send()
        .await
        .expect("bulk");
    assert_bulk_operation(&res.json().await.expect("JSON"), 0);
}

#[tokio::test]
async fn bad_bulk_requests_are_rejected_and_change_nothing() {
    let app = spawn_app().await;
    seed(&app, "ada", 2).await;
    let before = feed(&app, "ada", "archived=include").await;
    let url = "/v1/channels/in-app-feed/messages/bulk/read";
    for body in [
        json!({"user_ids": "ada"}),
        json!({"archived": "sometimes"}),
        json!({"engagement_status": "dizzy"}),
        json!({"has_tenant": "maybe"}),
        json!({"newer_than": "last week"}),
        json!({"trigger_data": "{\"a\": {\"b\": 1}}"}),
        json!({"tenants": [1]}),
        json!([]),
    ] {
        let res = app.post(url, body.clone()).send().await.expect("bulk");
        assert_error(res, 422, "invalid_params").await;
    }
    let res = app
        .post("/v1/channels/in-app-feed/messages/bulk/explode", json!({}))
        .send()
        .await
        .expect("bulk");
    assert_error(res, 422, "invalid_params").await;
    let res = app
        .post("/v1/channels/nope/messages/bulk/read", json!({}))
        .send()
        .await
        .expect("bulk");
    assert_error(res, 404, "channel_invalid").await;
    let malformed = app
        .server(Method::POST, url)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("bulk");
    assert_error(malformed, 400, "invalid_json").await;
    assert_needs_a_valid_key(&app, Method::POST, url, Some(&json!({}))).await;
    assert_eq!(
        feed(&app, "ada", "archived=include").await,
        before,
        "rejected calls change nothing"
    );
}
