//! `/v1/users`: rejected requests (bad input, bad credentials, other users' tokens), each
//! followed by a check that the stored user did not change.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    PUBLIC_KEY, assert_error, assert_needs_a_valid_key, assert_refuses_the_public_key, body,
    spawn_app, spawn_app_with,
};

#[tokio::test]
async fn malformed_json_is_400_and_the_user_is_unchanged() {
    let app = spawn_app().await;
    app.identify("u1", json!({"name": "Ann"})).await;
    let before = app.stored_user("u1").await;
    let res = app
        .server(Method::PUT, "/v1/users/u1")
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("put");
    assert_error(res, 400, "invalid_json").await;
    assert_eq!(app.stored_user("u1").await, before);
}

#[tokio::test]
async fn wrong_types_are_422_with_field_errors_and_the_user_is_unchanged() {
    let app = spawn_app().await;
    app.identify("u1", json!({"name": "Ann"})).await;
    let before = app.stored_user("u1").await;
    for bad in [
        json!({"email": 5, "name": "Changed"}),
        json!({"created_at": "last tuesday"}),
        json!({"preferences": ["default"]}),
        json!({"preferences": {"default": {"channel_types": 5}}}),
        json!({"channel_data": {"c": "token"}}),
        json!(["not", "an", "object"]),
    ] {
        let res = app
            .put("/v1/users/u1", bad.clone())
            .send()
            .await
            .expect("put");
        let err = assert_error(res, 422, "invalid_params").await;
        assert!(
            err["errors"].as_array().is_some_and(|e| !e.is_empty()),
            "{bad}: {err}"
        );
        assert_eq!(app.stored_user("u1").await, before, "after {bad}");
    }
    let err = assert_error(
        app.put("/v1/users/u1", json!({"email": 5}))
            .send()
            .await
            .expect("put"),
        422,
        "invalid_params",
    )
    .await;
    assert_eq!(err["errors"][0]["field"], "email");
}

#[tokio::test]
async fn invalid_user_ids_are_422() {
    let app = spawn_app().await;
    let long = "x".repeat(257);
    let res = app
        .put(&format!("/v1/users/{long}"), json!({}))
        .send()
        .await
        .expect("put");
    assert_error(res, 422, "invalid_params").await;
    let res = app
        .put("/v1/users/a%23b", json!({}))
        .send()
        .await
        .expect("put");
    assert_error(res, 422, "invalid_params").await;
    let (_, list) = app.get_json("/v1/users").await;
    assert_eq!(list["entries"], json!([]));
}

#[tokio::test]
async fn custom_properties_over_256_kb_are_422_and_the_user_is_unchanged() {
    let app = spawn_app().await;
    app.identify("u1", json!({"name": "Ann"})).await;
    let before = app.stored_user("u1").await;
    let res = app
        .put("/v1/users/u1", json!({"blob": "x".repeat(300 * 1024)}))
        .send()
        .await
        .expect("put");
    assert_error(res, 422, "invalid_params").await;
    assert_eq!(app.stored_user("u1").await, before);
    // Two halves that each fit but together do not.
    app.identify("u1", json!({"a": "x".repeat(150 * 1024)}))
        .await;
    let before = app.stored_user("u1").await;
    let res = app
        .put("/v1/users/u1", json!({"b": "x".repeat(150 * 1024)}))
        .send()
        .await
        .expect("put");
    assert_error(res, 422, "invalid_params").await;
    assert_eq!(app.stored_user("u1").await, before);
}

#[tokio::test]
async fn oversize_bodies_are_413_and_the_user_is_unchanged() {
    let app = spawn_app_with(|s| s.max_body_bytes = 1024).await;
    app.identify("u1", json!({"name": "Ann"})).await;
    let before = app.stored_user("u1").await;
    let res = app
        .put("/v1/users/u1", json!({"blob": "x".repeat(4096)}))
        .send()
        .await
        .expect("put");
    assert_error(res, 413, "payload_too_large").await;
    assert_eq!(app.stored_user("u1").await, before);
}

#[tokio::test]
async fn requests_without_a_valid_key_are_401_and_change_nothing() {
    let app = spawn_app().await;
    app.identify("u1", json!({"name": "Ann"})).await;
    let before = app.stored_user("u1").await;
    let rename = json!({"name": "X"});
    assert_needs_a_valid_key(&app, Method::PUT, "/v1/users/u1", Some(&rename)).await;
    assert_needs_a_valid_key(&app, Method::DELETE, "/v1/users/u1", None).await;
    assert_needs_a_valid_key(&app, Method::GET, "/v1/users", None).await;
    assert_eq!(app.stored_user("u1").await, before);
}

#[tokio::test]
async fn the_public_key_cannot_delete_list_or_bulk_identify() {
    let app = spawn_app().await;
    app.identify("u1", json!({"name": "Ann"})).await;
    let before = app.stored_user("u1").await;
    assert_refuses_the_public_key(&app, Method::DELETE, "/v1/users/u1", None).await;
    assert_refuses_the_public_key(&app, Method::GET, "/v1/users", None).await;
    let bulk = json!({"users": [{"id": "u1", "name": "X"}]});
    assert_refuses_the_public_key(&app, Method::POST, "/v1/users/bulk/identify", Some(&bulk)).await;
    assert_eq!(app.stored_user("u1").await, before);
}

#[tokio::test]
async fn a_browser_user_identifies_itself_with_an_empty_body_and_reads_itself() {
    let app = spawn_app().await;
    let res = app
        .as_user(Method::PUT, "/v1/users/u1", "u1")
        .json(&json!({}))
        .send()
        .await
        .expect("put");
    let (status, user) = body(res).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["__typename"], "User");
    assert_eq!(user["id"], "u1");
    let res = app
        .as_user(Method::PUT, "/v1/users/u1", "u1")
        .json(&json!({"name": "Ann"}))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 200);
    let (status, me) = body(
        app.as_user(Method::GET, "/v1/users/u1", "u1")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me["name"], "Ann");
}

#[tokio::test]
async fn a_user_token_cannot_read_or_write_another_user() {
    let app = spawn_app().await;
    app.identify("victim", json!({"name": "V"})).await;
    let before = app.stored_user("victim").await;
    let res = app
        .as_user(Method::PUT, "/v1/users/victim", "mallory")
        .json(&json!({"name": "pwned"}))
        .send()
        .await
        .expect("put");
    assert_error(res, 403, "authorization").await;
    let res = app
        .as_user(Method::GET, "/v1/users/victim", "mallory")
        .send()
        .await
        .expect("get");
    assert_error(res, 403, "authorization").await;
    assert_eq!(app.stored_user("victim").await, before);
}

#[tokio::test]
async fn the_public_key_without_a_token_is_refused_under_enhanced_security() {
    let app = spawn_app().await;
    let res = app
        .client
        .put(app.url("/v1/users/u1"))
        .bearer_auth(PUBLIC_KEY)
        .json(&json!({}))
        .send()
        .await
        .expect("put");
    assert_error(res, 401, "missing_user_token").await;
    let res = app
        .client
        .put(app.url("/v1/users/u1"))
        .bearer_auth(PUBLIC_KEY)
        .header("x-knock-user-token", "not.a.jwt")
        .json(&json!({}))
        .send()
        .await
        .expect("put");
    assert_error(res, 401, "invalid_user_token").await;
    assert_error(
        app.get("/v1/users/u1").send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_method_on_a_user_path_is_405_in_knocks_error_shape() {
    let app = spawn_app().await;
    let res = app
        .post("/v1/users/u1", json!({}))
        .send()
        .await
        .expect("post");
    assert_error(res, 405, "method_not_allowed").await;
}
