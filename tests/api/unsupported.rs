use serde_json::json;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn knock_features_tidings_does_not_plan_answer_501_in_knocks_shape_without_retry() {
    let app = spawn_app().await;
    for (method, path) in [
        (reqwest::Method::POST, "/v1/notify/cancel"),
        (reqwest::Method::POST, "/v1/audiences/beta/members"),
        (reqwest::Method::GET, "/v1/users/u1/guides/some-channel"),
        (reqwest::Method::GET, "/v1/providers/slack/chan/auth_check"),
        (reqwest::Method::GET, "/v1/messages/abc/delivery_logs"),
    ] {
        let res = app
            .server(method, path)
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        assert_eq!(
            res.headers()
                .get("x-should-retry")
                .and_then(|v| v.to_str().ok()),
            Some("false"),
            "{path}"
        );
        let body = assert_error(res, 501, "not_supported").await;
        assert_eq!(body["type"], "api_error", "{path}: {body}");
    }
}

#[tokio::test]
async fn object_preference_sub_resources_work_like_the_users_ones() {
    let app = spawn_app().await;
    let res = app
        .put(
            "/v1/objects/projects/p1/preferences/default/workflows/digest",
            json!({"subscribed": false}),
        )
        .send()
        .await
        .expect("put");
    let status = res.status();
    let set: serde_json::Value = res.json().await.expect("json");
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["workflows"], json!({"digest": false}));
}
