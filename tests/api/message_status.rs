//! Message status changes: `PUT`/`DELETE /v1/messages/{id}/{status}` with the delete
//! aliases, interacted metadata, `POST /v1/messages/batch/{status}`, browser access, bad
//! input with unchanged data, and counts that never drift.

use reqwest::Method;
use serde_json::{Value, json};

use crate::feed_support::{
    as_browser, assert_counts_exact, comment, feed, ids, message, put, seed,
};
use crate::helpers::{assert_error, spawn_app};

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
