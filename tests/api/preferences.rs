use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    PUBLIC_KEY, assert_error, assert_rejects_bad_credentials, spawn_app, user_token,
};

#[tokio::test]
async fn put_replaces_a_set_and_get_returns_it_in_knocks_shape() {
    let app = spawn_app().await;
    let body = json!({"channel_types": {"in_app_feed": false}, "categories": {"marketing": false}});
    let res = app
        .put("/v1/users/u1/preferences/default", body)
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 200);
    let set: Value = res.json().await.expect("json");
    assert_eq!(set["__typename"], "PreferenceSet");
    assert_eq!(set["id"], "default");
    assert_eq!(set["channel_types"], json!({"in_app_feed": false}));
    assert_eq!(set["workflows"], Value::Null);
    assert_eq!(set["commercial_subscribed"], Value::Null);

    let replaced = app.put(
        "/v1/users/u1/preferences/default",
        json!({"workflows": {"digest": false}}),
    );
    let set: Value = replaced
        .send()
        .await
        .expect("put")
        .json()
        .await
        .expect("json");
    assert_eq!(
        set["channel_types"],
        Value::Null,
        "a plain PUT replaces the whole set"
    );

    let list: Value = app.get_json("/v1/users/u1/preferences").await.1;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["workflows"], json!({"digest": false}));
}

#[tokio::test]
async fn put_with_merge_strategy_deep_merges() {
    let app = spawn_app().await;
    app.put(
        "/v1/users/u1/preferences/default",
        json!({"categories": {"a": false}}),
    )
    .send()
    .await
    .expect("put");
    let body = json!({"__persistence_strategy__": "merge", "categories": {"b": true}});
    let set: Value = app
        .put_json("/v1/users/u1/preferences/default", body)
        .await
        .1;
    assert_eq!(set["categories"], json!({"a": false, "b": true}));
    assert!(set.get("__persistence_strategy__").is_none());
}

#[tokio::test]
async fn unknown_set_reads_as_all_unset_and_delete_of_it_is_404() {
    let app = spawn_app().await;
    let set: Value = app.get_json("/v1/users/nobody/preferences/acme").await.1;
    assert_eq!(set["id"], "acme");
    assert_eq!(set["categories"], Value::Null);
    assert_error(
        app.delete("/v1/users/nobody/preferences/acme")
            .send()
            .await
            .expect("delete"),
        404,
        "resource_missing",
    )
    .await;
}

#[tokio::test]
async fn delete_removes_a_set() {
    let app = spawn_app().await;
    app.put(
        "/v1/users/u1/preferences/default",
        json!({"categories": {"a": false}}),
    )
    .send()
    .await
    .expect("put");
    let res = app
        .delete("/v1/users/u1/preferences/default")
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 204);
    let list: Value = app.get_json("/v1/users/u1/preferences").await.1;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn invalid_sets_are_rejected_and_the_stored_set_is_unchanged() {
    let app = spawn_app().await;
    let original = json!({"categories": {"a": false}});
    app.put("/v1/users/u1/preferences/default", original.clone())
        .send()
        .await
        .expect("put");

    let bad = json!({"channel_types": {"pigeon": true}, "categories": {"x": 3}});
    let body = assert_error(
        app.put("/v1/users/u1/preferences/default", bad)
            .send()
            .await
            .expect("put"),
        422,
        "invalid_params",
    )
    .await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(fields.contains(&"channel_types.pigeon"), "{body}");
    assert!(fields.contains(&"categories.x"), "{body}");

    let unsupported = json!({"channel_types": {"in_app_feed": {"conditions": [{"variable": "a", "operator": "is_audience_member", "argument": "x"}]}}});
    assert_error(
        app.put("/v1/users/u1/preferences/default", unsupported)
            .send()
            .await
            .expect("put"),
        422,
        "invalid_params",
    )
    .await;

    let malformed = app
        .server(Method::PUT, "/v1/users/u1/preferences/default")
        .header("content-type", "application/json")
        .body("{nope");
    assert_error(malformed.send().await.expect("put"), 400, "invalid_json").await;
    assert_error(
        app.put("/v1/users/u1/preferences/default", json!([1]))
            .send()
            .await
            .expect("put"),
        422,
        "invalid_params",
    )
    .await;
    assert_error(
        app.put("/v1/users/a%2Fb/preferences/default", json!({}))
            .send()
            .await
            .expect("put"),
        422,
        "invalid_params",
    )
    .await;

    let set: Value = app.get_json("/v1/users/u1/preferences/default").await.1;
    assert_eq!(
        set["categories"], original["categories"],
        "rejected writes changed nothing"
    );
}

#[tokio::test]
async fn deprecated_sub_resources_set_one_section_or_setting() {
    let app = spawn_app().await;
    let set: Value = app
        .put_json(
            "/v1/users/u1/preferences/default/channel_types/in_app_feed",
            json!({"subscribed": false}),
        )
        .await
        .1;
    assert_eq!(set["channel_types"], json!({"in_app_feed": false}));
    let set: Value = app
        .put_json(
            "/v1/users/u1/preferences/default/categories",
            json!({"marketing": false}),
        )
        .await
        .1;
    assert_eq!(set["categories"], json!({"marketing": false}));
    assert_eq!(
        set["channel_types"],
        json!({"in_app_feed": false}),
        "sections merge"
    );
    let res = app
        .put(
            "/v1/users/u1/preferences/default/channel_types/email",
            json!({"subscribed": "yes"}),
        )
        .send()
        .await
        .expect("put");
    assert_error(res, 422, "invalid_params").await;
}

#[tokio::test]
async fn a_browser_reaches_only_its_own_users_preferences() {
    let app = spawn_app().await;
    let mine = app
        .as_user(Method::PUT, "/v1/users/alice/preferences/default", "alice")
        .json(&json!({"categories": {"x": false}}));
    assert_eq!(mine.send().await.expect("put").status(), 200);
    let theirs = app.as_user(Method::GET, "/v1/users/bob/preferences", "alice");
    assert_error(theirs.send().await.expect("get"), 403, "authorization").await;
    let no_token = app
        .client
        .get(app.url("/v1/users/alice/preferences"))
        .bearer_auth(PUBLIC_KEY);
    assert_error(
        no_token.send().await.expect("get"),
        401,
        "missing_user_token",
    )
    .await;
    let forged = app
        .client
        .get(app.url("/v1/users/alice/preferences"))
        .bearer_auth(PUBLIC_KEY)
        .header(
            "x-knock-user-token",
            format!("{}x", user_token("alice", json!(null))),
        );
    assert_error(forged.send().await.expect("get"), 401, "invalid_user_token").await;
}

#[tokio::test]
async fn object_preferences_need_the_secret_key() {
    let app = spawn_app().await;
    let res = app
        .put(
            "/v1/objects/projects/p1/preferences/default",
            json!({"channel_types": {"in_app_feed": false}}),
        )
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 200);
    let path = "/v1/objects/projects/p1/preferences";
    assert_rejects_bad_credentials(&app, Method::GET, path, None).await;
    let as_browser = app.as_user(Method::GET, path, "alice");
    assert_error(
        as_browser.send().await.expect("get"),
        403,
        "incorrect_token_type",
    )
    .await;
}
