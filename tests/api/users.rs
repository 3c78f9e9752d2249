//! `/v1/users`: identify, get, delete, list, bulk identify/delete, and the browser path.

use serde_json::{Value, json};

use crate::helpers::{assert_error, body, is_iso_micros, spawn_app};

#[tokio::test]
async fn identify_creates_a_user_in_knocks_wire_shape() {
    let app = spawn_app().await;
    let user = app
        .identify(
            "u1",
            json!({"name": "Ann", "email": "ann@example.com", "plan": "pro"}),
        )
        .await;
    assert!(is_iso_micros(&user["updated_at"]), "updated_at: {user}");
    let mut expected = json!({
        "__typename": "User", "id": "u1", "name": "Ann", "email": "ann@example.com",
        "phone_number": null, "avatar": null, "timezone": null, "created_at": null,
        "plan": "pro", "updated_at": user["updated_at"].clone(),
    });
    assert_eq!(user, expected);
    let fetched = app.stored_user("u1").await;
    expected["updated_at"] = fetched["updated_at"].clone();
    assert_eq!(fetched, expected);
}

#[tokio::test]
async fn identify_deep_merges_and_null_sets_null_without_removing() {
    let app = spawn_app().await;
    app.identify(
        "u1",
        json!({"name": "Ann", "settings": {"theme": "dark", "lang": "en"}}),
    )
    .await;
    let user = app
        .identify(
            "u1",
            json!({"name": null, "settings": {"lang": "fr"}, "n": 1}),
        )
        .await;
    assert_eq!(user["name"], Value::Null);
    assert!(user.as_object().is_some_and(|u| u.contains_key("name")));
    assert_eq!(user["settings"], json!({"theme": "dark", "lang": "fr"}));
    assert_eq!(user["n"], 1);
    assert_eq!(
        app.stored_user("u1").await["settings"],
        json!({"theme": "dark", "lang": "fr"})
    );
}

#[tokio::test]
async fn created_at_is_shown_only_when_the_client_set_it() {
    let app = spawn_app().await;
    let user = app.identify("u1", json!({})).await;
    assert_eq!(user["created_at"], Value::Null);
    let user = app
        .identify("u1", json!({"created_at": "2026-01-01T02:00:00+02:00"}))
        .await;
    assert_eq!(user["created_at"], "2026-01-01T00:00:00.000000Z");
}

#[tokio::test]
async fn preferences_and_channel_data_are_not_custom_properties() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let user = app
        .identify(
            "u1",
            json!({"name": "Ann", "preferences": {"default": {"channel_types": {"email": false}}},
               "channel_data": {channel: {"tokens": ["t"]}}}),
        )
        .await;
    assert!(user.get("preferences").is_none(), "{user}");
    assert!(user.get("channel_data").is_none(), "{user}");
    app.identify(
        "u1",
        json!({"preferences": {"default": {"workflows": {"w": false}}}}),
    )
    .await;
    let (status, list) = app.get_json("/v1/users?include[]=preferences").await;
    assert_eq!(status, 200);
    let prefs = &list["entries"][0]["preferences"]["default"];
    assert_eq!(prefs["__typename"], "PreferenceSet");
    assert_eq!(prefs["id"], "default");
    assert_eq!(prefs["channel_types"], json!({"email": false}));
    assert_eq!(prefs["workflows"], json!({"w": false}));
    let (_, plain) = app.get_json("/v1/users").await;
    assert!(plain["entries"][0].get("preferences").is_none());
}

#[tokio::test]
async fn get_and_delete_of_an_unknown_user_are_404_resource_missing() {
    let app = spawn_app().await;
    assert_error(
        app.get("/v1/users/nobody").send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
    assert_error(
        app.delete("/v1/users/nobody").send().await.expect("delete"),
        404,
        "resource_missing",
    )
    .await;
}

#[tokio::test]
async fn delete_answers_204_and_the_user_is_gone() {
    let app = spawn_app().await;
    app.identify("u1", json!({"name": "Ann"})).await;
    app.identify("u2", json!({"name": "Bob"})).await;
    let res = app.delete("/v1/users/u1").send().await.expect("delete");
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.expect("body").is_empty());
    assert_error(
        app.get("/v1/users/u1").send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
    assert_eq!(app.stored_user("u2").await["name"], "Bob");
}

#[tokio::test]
async fn list_pages_forward_and_back_with_opaque_cursors() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.identify(&format!("u{i}"), json!({})).await;
    }
    let ids = |page: &Value| -> Vec<String> {
        page["entries"].as_array().map_or(vec![], |e| {
            e.iter()
                .map(|u| u["id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
    };
    let (status, first) = app.get_json("/v1/users?page_size=2").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&first), ["u0", "u1"]);
    assert_eq!(first["page_info"]["__typename"], "PageInfo");
    assert_eq!(first["page_info"]["page_size"], 2);
    assert_eq!(first["page_info"]["before"], Value::Null);
    let after = first["page_info"]["after"]
        .as_str()
        .expect("after cursor")
        .to_owned();
    let (_, second) = app
        .get_json(&format!("/v1/users?page_size=2&after={after}"))
        .await;
    assert_eq!(ids(&second), ["u2", "u3"]);
    let after = second["page_info"]["after"]
        .as_str()
        .expect("after cursor")
        .to_owned();
    let (_, third) = app
        .get_json(&format!("/v1/users?page_size=2&after={after}"))
        .await;
    assert_eq!(ids(&third), ["u4"]);
    assert_eq!(third["page_info"]["after"], Value::Null);
    let before = second["page_info"]["before"]
        .as_str()
        .expect("before cursor")
        .to_owned();
    let (_, back) = app
        .get_json(&format!("/v1/users?page_size=2&before={before}"))
        .await;
    assert_eq!(ids(&back), ["u0", "u1"]);
    let (_, all) = app.get_json("/v1/users").await;
    assert_eq!(all["page_info"]["page_size"], 50);
    assert_eq!(ids(&all).len(), 5);
}

#[tokio::test]
async fn list_rejects_bad_page_sizes_cursors_and_includes_with_422() {
    let app = spawn_app().await;
    for query in [
        "page_size=0",
        "page_size=51",
        "page_size=ten",
        "after=garbage",
        "include[]=secrets",
    ] {
        let res = app
            .get(&format!("/v1/users?{query}"))
            .send()
            .await
            .expect("list");
        let err = assert_error(res, 422, "invalid_params").await;
        assert!(err["errors"].is_array(), "{query}: {err}");
    }
}

#[tokio::test]
async fn identify_with_no_body_at_all_counts_as_an_empty_object() {
    let app = spawn_app().await;
    let res = app
        .server(reqwest::Method::PUT, "/v1/users/u1")
        .header("content-length", "0")
        .send()
        .await
        .expect("put");
    let (status, user) = body(res).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["id"], "u1");
    assert_eq!(app.stored_user("u1").await["id"], "u1");
}

#[tokio::test]
async fn without_enhanced_security_the_public_key_alone_may_identify_and_read_a_user() {
    let app = crate::helpers::spawn_app_with(|s| s.enhanced_security = false).await;
    let put = app
        .client
        .put(app.url("/v1/users/u1"))
        .bearer_auth(crate::helpers::PUBLIC_KEY)
        .json(&json!({"name": "Ann"}))
        .send()
        .await
        .expect("put");
    let (status, user) = body(put).await;
    assert_eq!(status, 200, "{user}");
    let get = app
        .client
        .get(app.url("/v1/users/u1"))
        .bearer_auth(crate::helpers::PUBLIC_KEY)
        .send()
        .await
        .expect("get");
    let (status, fetched) = body(get).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["name"], "Ann");
    let delete = app
        .client
        .delete(app.url("/v1/users/u1"))
        .bearer_auth(crate::helpers::PUBLIC_KEY)
        .send()
        .await
        .expect("delete");
    assert_error(delete, 403, "incorrect_token_type").await;
    assert_eq!(app.stored_user("u1").await["name"], "Ann");
}

#[tokio::test]
async fn concurrent_identifies_of_one_user_lose_no_update() {
    let app = spawn_app().await;
    let calls = (0..25).map(|i| {
        app.put("/v1/users/u1", json!({"counts": {format!("k{i}"): i}}))
            .send()
    });
    for res in futures_util::future::join_all(calls).await {
        assert_eq!(res.expect("put").status(), 200);
    }
    let user = app.stored_user("u1").await;
    let counts = user["counts"].as_object().expect("counts object");
    assert_eq!(counts.len(), 25, "{user}");
    for i in 0..25 {
        assert_eq!(counts[&format!("k{i}")], i);
    }
}

#[tokio::test]
async fn server_owned_fields_in_the_body_are_ignored() {
    let app = spawn_app().await;
    let user = app.identify("u1",
        json!({"id": "other", "__typename": "Robot", "updated_at": "1999-01-01T00:00:00Z", "name": "Ann"}),
    )
    .await;
    assert_eq!(user["id"], "u1");
    assert_eq!(user["__typename"], "User");
    assert_ne!(user["updated_at"], "1999-01-01T00:00:00Z");
    assert_error(
        app.get("/v1/users/other").send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
}
