//! `/v1/users/{id}/channel_data/{channel_id}` and the object equivalent.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    assert_error, assert_needs_a_valid_key, assert_rejects_bad_credentials, body, spawn_app,
};

#[tokio::test]
async fn user_channel_data_round_trips_and_stays_out_of_the_user() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let path = format!("/v1/users/u1/channel_data/{channel}");
    assert_error(
        app.get(&path).send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
    let (status, put) = body(
        app.put(&path, json!({"data": {"tokens": ["a"]}}))
            .send()
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(
        put,
        json!({"__typename": "ChannelData", "channel_id": channel, "data": {"tokens": ["a"]}})
    );
    let (status, got) = app.get_json(&path).await;
    assert_eq!(status, 200);
    assert_eq!(got, put);
    let (status, user) = app.get_json("/v1/users/u1").await;
    assert_eq!(status, 200, "PUT channel data creates the user: {user}");
    assert!(user.get("channel_data").is_none());
    assert_eq!(
        app.delete(&path).send().await.expect("delete").status(),
        204
    );
    assert_error(
        app.get(&path).send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
}

#[tokio::test]
async fn a_browser_user_manages_only_its_own_channel_data() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let mine = format!("/v1/users/u1/channel_data/{channel}");
    let res = app
        .as_user(Method::PUT, &mine, "u1")
        .json(&json!({"data": {"tokens": ["t"]}}))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 200);
    let theirs = format!("/v1/users/u2/channel_data/{channel}");
    app.put(&theirs, json!({"data": {"tokens": ["theirs"]}}))
        .send()
        .await
        .expect("put");
    let res = app
        .as_user(Method::PUT, &theirs, "u1")
        .json(&json!({"data": {"tokens": ["x"]}}))
        .send()
        .await
        .expect("put");
    assert_error(res, 403, "authorization").await;
    let (_, still) = app.get_json(&theirs).await;
    assert_eq!(still["data"], json!({"tokens": ["theirs"]}));
}

#[tokio::test]
async fn bad_channel_data_bodies_are_rejected_and_change_nothing() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let path = format!("/v1/users/u1/channel_data/{channel}");
    app.put(&path, json!({"data": {"tokens": ["a"]}}))
        .send()
        .await
        .expect("put");
    for bad in [json!({"tokens": ["b"]}), json!({"data": "b"}), json!([])] {
        assert_error(
            app.put(&path, bad).send().await.expect("put"),
            422,
            "invalid_params",
        )
        .await;
    }
    let res = app
        .server(Method::PUT, &path)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("put");
    assert_error(res, 400, "invalid_json").await;
    assert_needs_a_valid_key(&app, Method::PUT, &path, Some(&json!({"data": {}}))).await;
    let (_, got) = app.get_json(&path).await;
    assert_eq!(got["data"], json!({"tokens": ["a"]}));
}

#[tokio::test]
async fn object_channel_data_needs_the_secret_key() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let path = format!("/v1/objects/projects/p1/channel_data/{channel}");
    let (status, put) = body(
        app.put(&path, json!({"data": {"connections": []}}))
            .send()
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(status, 200, "{put}");
    let (status, object) = app.get_json("/v1/objects/projects/p1").await;
    assert_eq!(status, 200);
    assert_eq!(object["properties"], json!({}));
    let overwrite = json!({"data": {"connections": ["x"]}});
    assert_rejects_bad_credentials(&app, Method::PUT, &path, Some(&overwrite)).await;
    let (_, got) = app.get_json(&path).await;
    assert_eq!(got["data"], json!({"connections": []}));
}
