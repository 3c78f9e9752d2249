//! Per-recipient storage caps (issue 17 item 6): channel data only for channels that
//! exist, one channel's data and one preference set at most 256 kB, and at most 100
//! preference sets and 50 channels' data per recipient, for users (secret key and their
//! own user token) and objects. Each refusal is a Knock error naming the limit, and
//! changes nothing already stored.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app};

/// A JSON object taking a little more than `bytes` bytes.
fn big(bytes: usize) -> Value {
    json!({"blob": "x".repeat(bytes)})
}

/// Asserts a 422 `invalid_params` whose message contains `limit`.
async fn assert_names_limit(res: reqwest::Response, limit: &str) {
    let body = assert_error(res, 422, "invalid_params").await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(limit), "{limit} not named: {body}");
}

/// Creates `n` extra channels (as workflow upserts naming new channel keys would).
async fn add_channels(app: &TestApp, n: usize) -> Vec<String> {
    app.state
        .store
        .ensure_channels((0..n).map(|i| format!("extra-{i}")).collect())
        .await
        .expect("channels")
}

#[tokio::test]
async fn channel_data_for_a_channel_that_does_not_exist_is_refused() {
    let app = spawn_app().await;
    let made_up = "8209a4a4-5c2a-4e0a-9f0b-1c2d3e4f5a6b";
    let path = format!("/v1/users/u1/channel_data/{made_up}");
    let data = json!({"data": {"tokens": ["t"]}});
    let res = app.put(&path, data.clone()).send().await.expect("put");
    assert_error(res, 404, "channel_invalid").await;
    let res = app
        .as_user(Method::PUT, &path, "u1")
        .json(&data)
        .send()
        .await
        .expect("put");
    assert_error(res, 404, "channel_invalid").await;
    let object = format!("/v1/objects/projects/p1/channel_data/{made_up}");
    let res = app.put(&object, data).send().await.expect("put");
    assert_error(res, 404, "channel_invalid").await;
    assert_error(
        app.get(&path).send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
    // Inline channel data in an identify: the same rule, and the identify stores nothing.
    let res = app
        .put(
            "/v1/users/u2",
            json!({"name": "Bo", "channel_data": {made_up: {"tokens": ["t"]}}}),
        )
        .send()
        .await
        .expect("identify");
    assert_names_limit(res, "no channel").await;
    assert_eq!(
        app.get("/v1/users/u2").send().await.expect("get").status(),
        404
    );
    // The channel's key names it too; the data is kept under its UUID.
    let channel = app.channel_id().await;
    let (status, put) = app
        .put_json(
            "/v1/users/u1/channel_data/in-app-feed",
            json!({"data": {"tokens": ["k"]}}),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["channel_id"], channel.as_str());
    let (status, got) = app
        .get_json(&format!("/v1/users/u1/channel_data/{channel}"))
        .await;
    assert_eq!((status, &got["data"]), (200, &json!({"tokens": ["k"]})));
}

#[tokio::test]
async fn oversize_channel_data_and_preference_sets_are_refused() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let data_path = format!("/v1/users/u1/channel_data/{channel}");
    app.put_ok(&data_path, json!({"data": {"tokens": ["kept"]}}))
        .await;
    let res = app
        .as_user(Method::PUT, &data_path, "u1")
        .json(&json!({"data": big(256 * 1024)}))
        .send()
        .await
        .expect("put");
    assert_names_limit(res, "262144 bytes").await;
    let object_path = format!("/v1/objects/projects/p1/channel_data/{channel}");
    let res = app
        .put(&object_path, json!({"data": big(256 * 1024)}))
        .send()
        .await
        .expect("put");
    assert_names_limit(res, "262144 bytes").await;
    let res = app
        .put(
            "/v1/users/u1",
            json!({"channel_data": {channel.clone(): big(256 * 1024)}}),
        )
        .send()
        .await
        .expect("identify");
    assert_names_limit(res, "262144 bytes").await;
    let (_, got) = app.get_json(&data_path).await;
    assert_eq!(got["data"], json!({"tokens": ["kept"]}));

    let set_path = "/v1/users/u1/preferences/default";
    let huge: serde_json::Map<String, Value> = (0..20_000)
        .map(|i| (format!("workflow-with-a-long-key-{i:06}"), json!(false)))
        .collect();
    let res = app
        .as_user(Method::PUT, set_path, "u1")
        .json(&json!({"workflows": huge}))
        .send()
        .await
        .expect("put");
    assert_names_limit(res, "262144 bytes").await;
    let res = app
        .put(
            "/v1/users/u1",
            json!({"preferences": {"default": {"workflows": huge}}}),
        )
        .send()
        .await
        .expect("identify");
    assert_names_limit(res, "262144 bytes").await;
    let (_, sets) = app.get_json("/v1/users/u1/preferences").await;
    assert_eq!(sets, json!([]), "nothing stored");
}

#[tokio::test]
async fn a_user_holds_at_most_100_preference_sets() {
    let app = spawn_app().await;
    let set = json!({"channel_types": {"in_app_feed": true}});
    for i in 0..100 {
        let res = app
            .as_user(
                Method::PUT,
                &format!("/v1/users/u1/preferences/set-{i}"),
                "u1",
            )
            .json(&set)
            .send()
            .await
            .expect("put");
        assert_eq!(res.status(), 200, "set {i}");
    }
    let res = app
        .as_user(Method::PUT, "/v1/users/u1/preferences/set-100", "u1")
        .json(&set)
        .send()
        .await
        .expect("put");
    assert_names_limit(res, "at most 100 preference sets").await;
    let res = app
        .put(
            "/v1/users/u1",
            json!({"preferences": {"another": {"channel_types": {"email": false}}}}),
        )
        .send()
        .await
        .expect("identify");
    assert_names_limit(res, "at most 100 preference sets").await;
    // A set the user already holds can still change.
    let res = app
        .as_user(Method::PUT, "/v1/users/u1/preferences/set-7", "u1")
        .json(&json!({"channel_types": {"in_app_feed": false}}))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 200);
    let (_, sets) = app.get_json("/v1/users/u1/preferences").await;
    assert_eq!(sets.as_array().map(Vec::len), Some(100));
    // Objects have the same cap (secret key).
    for i in 0..100 {
        app.put_ok(
            &format!("/v1/objects/projects/p1/preferences/s{i}"),
            set.clone(),
        )
        .await;
    }
    let res = app
        .put("/v1/objects/projects/p1/preferences/s100", set)
        .send()
        .await
        .expect("put");
    assert_names_limit(res, "at most 100 preference sets").await;
}

#[tokio::test]
async fn a_recipient_holds_channel_data_for_at_most_50_channels() {
    let app = spawn_app().await;
    let mut channels = vec![app.channel_id().await];
    channels.extend(add_channels(&app, 50).await);
    for (i, channel) in channels.iter().take(50).enumerate() {
        let res = app
            .as_user(
                Method::PUT,
                &format!("/v1/users/u1/channel_data/{channel}"),
                "u1",
            )
            .json(&json!({"data": {"tokens": [i]}}))
            .send()
            .await
            .expect("put");
        assert_eq!(res.status(), 200, "channel {i}");
    }
    let last = format!("/v1/users/u1/channel_data/{}", channels[50]);
    let res = app
        .as_user(Method::PUT, &last, "u1")
        .json(&json!({"data": {"tokens": ["one too many"]}}))
        .send()
        .await
        .expect("put");
    assert_names_limit(res, "at most 50 channels").await;
    assert_eq!(app.get(&last).send().await.expect("get").status(), 404);
    // Replacing data the user holds is not a new row.
    let first = format!("/v1/users/u1/channel_data/{}", channels[0]);
    let res = app
        .as_user(Method::PUT, &first, "u1")
        .json(&json!({"data": {"tokens": ["replaced"]}}))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 200);
    for (i, channel) in channels.iter().take(50).enumerate() {
        app.put_ok(
            &format!("/v1/objects/projects/p1/channel_data/{channel}"),
            json!({"data": {"n": i}}),
        )
        .await;
    }
    let res = app
        .put(
            &format!("/v1/objects/projects/p1/channel_data/{}", channels[50]),
            json!({"data": {"n": 50}}),
        )
        .send()
        .await
        .expect("put");
    assert_names_limit(res, "at most 50 channels").await;
}
