//! Messages API: get, lists, status PUT/DELETE, batch and bulk channel updates — wire
//! shape, access, bad input with unchanged data, and badge counts that never drift.

use reqwest::Method;
use serde_json::{Value, json};

use crate::feed_support::{
    as_browser, assert_counts_exact, channel_id, comment, entries, feed, ids, seed,
};
use crate::helpers::{PUBLIC_KEY, TestApp, assert_error, spawn_app};

async fn message(app: &TestApp, id: &str) -> Value {
    let res = app
        .get(&format!("/v1/messages/{id}"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    res.json().await.expect("JSON")
}

async fn put(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.put(path, body).send().await.expect("put")
}

#[tokio::test]
async fn a_message_has_knocks_message_shape() {
    let app = spawn_app().await;
    let run = comment(&app, json!(["ada"]), json!({"page_id": "p1"}), Some("acme")).await;
    let id = ids(&app.wait_for_feed("ada", "", 1).await)[0].clone();
    let m = message(&app, &id).await;
    assert_eq!(m["__typename"], "Message");
    assert_eq!(m["id"], json!(id));
    assert_eq!(m["recipient"], "ada");
    assert_eq!(m["actors"], json!(["grace"]));
    assert_eq!(m["workflow"], "new-comment");
    assert_eq!(m["tenant"], "acme");
    assert_eq!(m["status"], "delivered");
    assert_eq!(m["engagement_statuses"], json!([]));
    assert!(uuid::Uuid::parse_str(m["channel_id"].as_str().expect("channel")).is_ok());
    let source = &m["source"];
    assert_eq!(source["__typename"], "NotificationSource");
    assert_eq!(source["key"], "new-comment");
    assert_eq!(source["type"], "workflow");
    assert_eq!(source["step_ref"], "in_app_feed_1");
    assert_eq!(source["workflow_run_id"], json!(run));
    assert!(source["workflow_recipient_run_id"].is_string());
    assert_eq!(m["data"]["page_id"], "p1");
    assert_eq!(m["metadata"], json!({}));
    for field in [
        "read_at",
        "seen_at",
        "archived_at",
        "interacted_at",
        "link_clicked_at",
        "clicked_at",
        "scheduled_at",
    ] {
        assert!(m[field].is_null(), "{field}");
    }
    let missing = app
        .get("/v1/messages/2FVHPWxRqNuXQ9krvNP5A6Z4qXe")
        .send()
        .await
        .expect("get");
    assert_error(missing, 404, "resource_missing").await;
}

#[tokio::test]
async fn each_status_can_be_set_and_cleared_with_the_delete_aliases() {
    let app = spawn_app().await;
    let id = ids(&seed(&app, "ada", 1).await)[0].clone();
    for (status, field, alias) in [
        ("seen", "seen_at", "unseen"),
        ("read", "read_at", "unread"),
        ("archived", "archived_at", "unarchived"),
    ] {
        let res = put(&app, &format!("/v1/messages/{id}/{status}"), json!({})).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.expect("JSON");
        assert!(body[field].is_string(), "{status}: {body}");
        assert!(
            body["engagement_statuses"]
                .as_array()
                .is_some_and(|s| s.contains(&json!(status)))
        );
        assert_counts_exact(&app, "ada").await;
        for path in [status, alias] {
            let res = app
                .delete(&format!("/v1/messages/{id}/{path}"))
                .send()
                .await
                .expect("delete");
            assert_eq!(res.status(), 200, "DELETE {path}");
            let body: Value = res.json().await.expect("JSON");
            assert!(body[field].is_null(), "DELETE {path}: {body}");
            put(&app, &format!("/v1/messages/{id}/{status}"), json!({})).await;
        }
        app.delete(&format!("/v1/messages/{id}/{status}"))
            .send()
            .await
            .expect("delete");
        assert_counts_exact(&app, "ada").await;
    }
    let res = app
        .delete(&format!("/v1/messages/{id}/interacted"))
        .send()
        .await
        .expect("delete");
    assert_error(res, 422, "invalid_params").await;
    let res = put(&app, &format!("/v1/messages/{id}/bogus"), json!({})).await;
    assert_error(res, 422, "invalid_params").await;
    for path in ["seen", "unread"] {
        let res = app
            .delete(&format!("/v1/messages/nope/{path}"))
            .send()
            .await
            .expect("delete");
        assert_error(res, 404, "resource_missing").await;
    }
    let res = put(&app, "/v1/messages/nope/read", json!({})).await;
    assert_error(res, 404, "resource_missing").await;
}

#[tokio::test]
async fn interacted_marks_read_and_seen_and_keeps_flat_metadata() {
    let app = spawn_app().await;
    let id = ids(&seed(&app, "ada", 1).await)[0].clone();
    let path = format!("/v1/messages/{id}/interacted");
    for bad in [
        json!({"metadata": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}}),
        json!({"metadata": {"nested": {"x": 1}}}),
        json!({"metadata": "text"}),
        json!([1, 2]),
    ] {
        let res = put(&app, &path, bad.clone()).await;
        assert_error(res, 422, "invalid_params").await;
    }
    let malformed = app
        .server(Method::PUT, &path)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("put");
    assert_error(malformed, 400, "invalid_json").await;
    let unchanged = message(&app, &id).await;
    assert!(
        unchanged["interacted_at"].is_null() && unchanged["read_at"].is_null(),
        "rejected calls change nothing"
    );
    let res = put(
        &app,
        &path,
        json!({"metadata": {"type": "cell_click", "action": "/p/1"}}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("JSON");
    assert!(
        body["interacted_at"].is_string()
            && body["read_at"].is_string()
            && body["seen_at"].is_string()
    );
    assert_eq!(
        body["metadata"],
        json!({"type": "cell_click", "action": "/p/1"})
    );
    assert_eq!(
        body["engagement_statuses"],
        json!(["seen", "read", "interacted"])
    );
    let meta = feed(&app, "ada", "").await["meta"].clone();
    assert_eq!(
        (meta["unread_count"].as_i64(), meta["unseen_count"].as_i64()),
        (Some(0), Some(0))
    );
    assert_counts_exact(&app, "ada").await;
}

#[tokio::test]
async fn batch_updates_the_named_messages_and_skips_unknown_ids() {
    let app = spawn_app().await;
    let all = ids(&seed(&app, "ada", 3).await);
    let res = app
        .post(
            "/v1/messages/batch/read",
            json!({"message_ids": [all[0], "missing", all[1]]}),
        )
        .send()
        .await
        .expect("batch");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("JSON");
    let updated: Vec<&str> = body
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(updated, vec![all[0].as_str(), all[1].as_str()]);
    assert!(body[0]["read_at"].is_string() && body[0]["__typename"] == "Message");
    assert_eq!(feed(&app, "ada", "").await["meta"]["unread_count"], 1);
    let res = app
        .post(
            "/v1/messages/batch/interacted",
            json!({"message_ids": [all[2]], "metadata": {"type": "button_click"}}),
        )
        .send()
        .await
        .expect("batch");
    assert_eq!(res.status(), 200);
    for status in ["archived", "unarchived", "seen", "unseen", "unread"] {
        let res = app
            .post(
                &format!("/v1/messages/batch/{status}"),
                json!({"message_ids": all}),
            )
            .send()
            .await
            .expect("batch");
        assert_eq!(res.status(), 200, "{status}");
        assert_counts_exact(&app, "ada").await;
    }
}

#[tokio::test]
async fn bad_batch_requests_are_rejected_and_change_nothing() {
    let app = spawn_app().await;
    let all = ids(&seed(&app, "ada", 2).await);
    let before = feed(&app, "ada", "").await["meta"].clone();
    let too_many: Vec<String> = (0..1001).map(|i| format!("m{i}")).collect();
    for (body, code, status) in [
        (json!({}), "invalid_params", 422),
        (json!({"message_ids": "x"}), "invalid_params", 422),
        (json!({"message_ids": [1, 2]}), "invalid_params", 422),
        (json!({"message_ids": too_many}), "invalid_params", 422),
        (
            json!({"message_ids": all, "metadata": {"a": {"b": 1}}}),
            "invalid_params",
            422,
        ),
    ] {
        let path = if body.get("metadata").is_some() {
            "/v1/messages/batch/interacted"
        } else {
            "/v1/messages/batch/read"
        };
        let res = app.post(path, body.clone()).send().await.expect("batch");
        assert_error(res, status, code).await;
    }
    let res = app
        .post("/v1/messages/batch/bogus", json!({"message_ids": all}))
        .send()
        .await
        .expect("batch");
    assert_error(res, 422, "invalid_params").await;
    let malformed = app
        .server(Method::POST, "/v1/messages/batch/read")
        .header("content-type", "application/json")
        .body("{\"message_ids\": [")
        .send()
        .await
        .expect("batch");
    assert_error(malformed, 400, "invalid_json").await;
    let huge = format!(
        "{{\"message_ids\": [\"{}\"]}}",
        "x".repeat(11 * 1024 * 1024)
    );
    let oversize = app
        .server(Method::POST, "/v1/messages/batch/read")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("batch");
    assert_error(oversize, 413, "payload_too_large").await;
    assert_eq!(
        feed(&app, "ada", "").await["meta"],
        before,
        "rejected calls change nothing"
    );
}

#[tokio::test]
async fn a_user_token_may_only_change_its_own_messages() {
    let app = spawn_app().await;
    comment(&app, json!(["ada", "bob"]), json!({}), None).await;
    let bob_id = ids(&app.wait_for_feed("bob", "", 1).await)[0].clone();
    let ada_id = ids(&app.wait_for_feed("ada", "", 1).await)[0].clone();
    let res = as_browser(
        &app,
        Method::PUT,
        &format!("/v1/messages/{bob_id}/read"),
        "ada",
        json!(null),
    )
    .send()
    .await
    .expect("put");
    assert_error(res, 403, "authorization").await;
    let res = as_browser(
        &app,
        Method::POST,
        "/v1/messages/batch/read",
        "ada",
        json!(null),
    )
    .json(&json!({"message_ids": [ada_id, bob_id]}))
    .send()
    .await
    .expect("batch");
    assert_error(res, 403, "authorization").await;
    let res = as_browser(
        &app,
        Method::GET,
        &format!("/v1/messages/{bob_id}"),
        "ada",
        json!(null),
    )
    .send()
    .await
    .expect("get");
    assert_error(res, 403, "authorization").await;
    assert!(message(&app, &bob_id).await["read_at"].is_null());
    assert!(
        message(&app, &ada_id).await["read_at"].is_null(),
        "a rejected batch changes nothing"
    );
    let res = as_browser(
        &app,
        Method::POST,
        "/v1/messages/batch/read",
        "ada",
        json!(null),
    )
    .json(&json!({"message_ids": [ada_id]}))
    .send()
    .await
    .expect("batch");
    assert_eq!(res.status(), 200);
    let res = as_browser(
        &app,
        Method::GET,
        &format!("/v1/messages/{ada_id}"),
        "ada",
        json!(null),
    )
    .send()
    .await
    .expect("get");
    assert_eq!(res.status(), 200);
}

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
    let no_key = app
        .client
        .post(app.url(url))
        .json(&json!({}))
        .send()
        .await
        .expect("bulk");
    assert_error(no_key, 401, "authentication_required").await;
    let bad_key = app
        .client
        .post(app.url(url))
        .bearer_auth("sk_nope")
        .json(&json!({}))
        .send()
        .await
        .expect("bulk");
    assert_error(bad_key, 401, "api_key_missing").await;
    assert_eq!(
        feed(&app, "ada", "archived=include").await,
        before,
        "rejected calls change nothing"
    );
}

#[tokio::test]
async fn message_lists_use_the_items_envelope_and_need_the_secret_key() {
    let app = spawn_app().await;
    let run = comment(
        &app,
        json!(["ada", "bob"]),
        json!({"page_id": "p1"}),
        Some("acme"),
    )
    .await;
    comment(&app, json!(["ada"]), json!({"page_id": "p2"}), None).await;
    app.wait_for_feed("ada", "", 2).await;
    app.wait_for_feed("bob", "", 1).await;
    let list = |path: String| {
        let app = &app;
        async move {
            let res = app.get(&path).send().await.expect("list");
            let status = res.status();
            let body: Value = res.json().await.expect("JSON");
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };
    let all = list("/v1/messages".into()).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(all["items"][0]["__typename"], "Message");
    assert_eq!(all["page_info"]["__typename"], "PageInfo");
    assert_eq!(all["page_info"]["page_size"], 50);
    let ada = list("/v1/users/ada/messages".into()).await;
    assert_eq!(ada["items"].as_array().map(Vec::len), Some(2));
    let first_id = ada["items"][0]["id"].as_str().expect("id").to_owned();
    put(&app, &format!("/v1/messages/{first_id}/read"), json!({})).await;
    for (query, expected) in [
        (
            "/v1/users/ada/messages?engagement_status[]=read".to_owned(),
            1,
        ),
        (
            "/v1/users/ada/messages?engagement_status[]=unread".to_owned(),
            1,
        ),
        (format!("/v1/messages?workflow_run_id={run}"), 2),
        ("/v1/messages?tenant=acme".to_owned(), 2),
        (
            "/v1/messages?channel_id=in-app-feed&source=new-comment".to_owned(),
            3,
        ),
        ("/v1/messages?channel_id=unknown".to_owned(), 0),
        (format!("/v1/messages?message_ids[]={first_id}"), 1),
        ("/v1/messages?status[]=delivered".to_owned(), 3),
        ("/v1/messages?status[]=bounced".to_owned(), 0),
        (
            "/v1/messages?trigger_data=%7B%22page_id%22%3A%22p2%22%7D".to_owned(),
            1,
        ),
    ] {
        let body = list(query.clone()).await;
        assert_eq!(
            body["items"].as_array().map(Vec::len),
            Some(expected),
            "{query}"
        );
    }
    let page1 = list("/v1/messages?page_size=2".into()).await;
    let after = page1["page_info"]["after"]
        .as_str()
        .expect("more pages")
        .to_owned();
    let page2 = list(format!("/v1/messages?page_size=2&after={after}")).await;
    assert_eq!(page2["items"].as_array().map(Vec::len), Some(1));
    assert!(page2["page_info"]["after"].is_null());
    let res = app
        .get("/v1/messages?page_size=500")
        .send()
        .await
        .expect("list");
    assert_error(res, 422, "invalid_params").await;
    let res = app
        .get("/v1/messages?engagement_status[]=nope")
        .send()
        .await
        .expect("list");
    assert_error(res, 422, "invalid_params").await;
    let public = app
        .client
        .get(app.url("/v1/messages"))
        .bearer_auth(PUBLIC_KEY)
        .send()
        .await
        .expect("list");
    assert_error(public, 403, "incorrect_token_type").await;
    let browser = as_browser(
        &app,
        Method::GET,
        "/v1/users/ada/messages",
        "ada",
        json!(null),
    )
    .send()
    .await
    .expect("list");
    assert_error(browser, 403, "incorrect_token_type").await;
}

#[tokio::test]
async fn an_objects_messages_are_listed_for_the_secret_key_only() {
    let app = spawn_app().await;
    let project = json!({"id": "p1", "collection": "projects"});
    comment(&app, json!([project]), json!({}), None).await;
    let path = "/v1/objects/projects/p1/messages";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let body = loop {
        let body: Value = app
            .get(path)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("JSON");
        if body["items"].as_array().is_some_and(|i| !i.is_empty())
            || std::time::Instant::now() > deadline
        {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(
        body["items"][0]["recipient"],
        json!({"id": "p1", "collection": "projects"})
    );
    let other: Value = app
        .get("/v1/objects/projects/p2/messages")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    assert_eq!(other["items"], json!([]));
    let res = app
        .get("/v1/objects/bad%20name/p1/messages")
        .send()
        .await
        .expect("list");
    assert_error(res, 422, "invalid_params").await;
    let public = app
        .client
        .get(app.url(path))
        .bearer_auth(PUBLIC_KEY)
        .send()
        .await
        .expect("list");
    assert_error(public, 403, "incorrect_token_type").await;
}

#[tokio::test]
async fn a_messages_activities_and_events_reflect_its_trigger_and_statuses() {
    let app = spawn_app().await;
    comment(&app, json!(["ada"]), json!({"page_id": "p1"}), None).await;
    let id = ids(&app.wait_for_feed("ada", "", 1).await)[0].clone();
    put(&app, &format!("/v1/messages/{id}/read"), json!({})).await;
    let activities: Value = app
        .get(&format!("/v1/messages/{id}/activities"))
        .send()
        .await
        .expect("activities")
        .json()
        .await
        .expect("JSON");
    assert_eq!(activities["items"][0]["__typename"], "Activity");
    assert_eq!(activities["items"][0]["actor"]["name"], "Grace Hopper");
    assert_eq!(activities["items"][0]["recipient"]["id"], "ada");
    assert_eq!(activities["items"][0]["data"]["page_id"], "p1");
    assert_eq!(activities["page_info"]["__typename"], "PageInfo");
    let filtered: Value = app
        .get(&format!(
            "/v1/messages/{id}/activities?trigger_data=%7B%22page_id%22%3A%22p9%22%7D"
        ))
        .send()
        .await
        .expect("activities")
        .json()
        .await
        .expect("JSON");
    assert_eq!(filtered["items"], json!([]));
    let events: Value = app
        .get(&format!("/v1/messages/{id}/events"))
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("JSON");
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(kinds, vec!["message.read", "message.sent"]);
    assert_eq!(events["items"][0]["__typename"], "MessageEvent");
    assert_eq!(events["items"][0]["recipient"], "ada");
    let missing = app
        .get("/v1/messages/nope/events")
        .send()
        .await
        .expect("events");
    assert_error(missing, 404, "resource_missing").await;
    let other = as_browser(
        &app,
        Method::GET,
        &format!("/v1/messages/{id}/events"),
        "bob",
        json!(null),
    )
    .send()
    .await
    .expect("events");
    assert_error(other, 403, "authorization").await;
}
