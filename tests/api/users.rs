//! `/v1/users`: identify, get, delete, list, bulk identify/delete, and the browser path.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PUBLIC_KEY, TestApp, assert_error, spawn_app, spawn_app_with, user_token};

async fn body(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Identifies `id` with `props` and asserts 200.
async fn identify(app: &TestApp, id: &str, props: Value) -> Value {
    let (status, user) = body(
        app.put(&format!("/v1/users/{id}"), props)
            .send()
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(status, 200, "identify failed: {user}");
    user
}

/// The stored user as the API shows it (or the 404 body), for before/after comparisons.
async fn stored(app: &TestApp, id: &str) -> Value {
    body(
        app.get(&format!("/v1/users/{id}"))
            .send()
            .await
            .expect("get"),
    )
    .await
    .1
}

fn is_iso_micros(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 27 && s.ends_with('Z') && s.as_bytes()[19] == b'.')
}

#[tokio::test]
async fn identify_creates_a_user_in_knocks_wire_shape() {
    let app = spawn_app().await;
    let user = identify(
        &app,
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
    let fetched = stored(&app, "u1").await;
    expected["updated_at"] = fetched["updated_at"].clone();
    assert_eq!(fetched, expected);
}

#[tokio::test]
async fn identify_deep_merges_and_null_sets_null_without_removing() {
    let app = spawn_app().await;
    identify(
        &app,
        "u1",
        json!({"name": "Ann", "settings": {"theme": "dark", "lang": "en"}}),
    )
    .await;
    let user = identify(
        &app,
        "u1",
        json!({"name": null, "settings": {"lang": "fr"}, "n": 1}),
    )
    .await;
    assert_eq!(user["name"], Value::Null);
    assert!(user.as_object().is_some_and(|u| u.contains_key("name")));
    assert_eq!(user["settings"], json!({"theme": "dark", "lang": "fr"}));
    assert_eq!(user["n"], 1);
    assert_eq!(
        stored(&app, "u1").await["settings"],
        json!({"theme": "dark", "lang": "fr"})
    );
}

#[tokio::test]
async fn created_at_is_shown_only_when_the_client_set_it() {
    let app = spawn_app().await;
    let user = identify(&app, "u1", json!({})).await;
    assert_eq!(user["created_at"], Value::Null);
    let user = identify(
        &app,
        "u1",
        json!({"created_at": "2026-01-01T02:00:00+02:00"}),
    )
    .await;
    assert_eq!(user["created_at"], "2026-01-01T00:00:00.000000Z");
}

#[tokio::test]
async fn preferences_and_channel_data_are_not_custom_properties() {
    let app = spawn_app().await;
    let user = identify(
        &app,
        "u1",
        json!({"name": "Ann", "preferences": {"default": {"channel_types": {"email": false}}},
               "channel_data": {"8209a4a4-5c2a-4e0a-9f0b-1c2d3e4f5a6b": {"tokens": ["t"]}}}),
    )
    .await;
    assert!(user.get("preferences").is_none(), "{user}");
    assert!(user.get("channel_data").is_none(), "{user}");
    identify(
        &app,
        "u1",
        json!({"preferences": {"default": {"workflows": {"w": false}}}}),
    )
    .await;
    let (status, list) = body(
        app.get("/v1/users?include[]=preferences")
            .send()
            .await
            .expect("list"),
    )
    .await;
    assert_eq!(status, 200);
    let prefs = &list["entries"][0]["preferences"]["default"];
    assert_eq!(prefs["__typename"], "PreferenceSet");
    assert_eq!(prefs["id"], "default");
    assert_eq!(prefs["channel_types"], json!({"email": false}));
    assert_eq!(prefs["workflows"], json!({"w": false}));
    let (_, plain) = body(app.get("/v1/users").send().await.expect("list")).await;
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
    identify(&app, "u1", json!({"name": "Ann"})).await;
    identify(&app, "u2", json!({"name": "Bob"})).await;
    let res = app.delete("/v1/users/u1").send().await.expect("delete");
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.expect("body").is_empty());
    assert_error(
        app.get("/v1/users/u1").send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
    assert_eq!(stored(&app, "u2").await["name"], "Bob");
}

#[tokio::test]
async fn list_pages_forward_and_back_with_opaque_cursors() {
    let app = spawn_app().await;
    for i in 0..5 {
        identify(&app, &format!("u{i}"), json!({})).await;
    }
    let ids = |page: &Value| -> Vec<String> {
        page["entries"].as_array().map_or(vec![], |e| {
            e.iter()
                .map(|u| u["id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
    };
    let (status, first) = body(app.get("/v1/users?page_size=2").send().await.expect("list")).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&first), ["u0", "u1"]);
    assert_eq!(first["page_info"]["__typename"], "PageInfo");
    assert_eq!(first["page_info"]["page_size"], 2);
    assert_eq!(first["page_info"]["before"], Value::Null);
    let after = first["page_info"]["after"]
        .as_str()
        .expect("after cursor")
        .to_owned();
    let (_, second) = body(
        app.get(&format!("/v1/users?page_size=2&after={after}"))
            .send()
            .await
            .expect("list"),
    )
    .await;
    assert_eq!(ids(&second), ["u2", "u3"]);
    let after = second["page_info"]["after"]
        .as_str()
        .expect("after cursor")
        .to_owned();
    let (_, third) = body(
        app.get(&format!("/v1/users?page_size=2&after={after}"))
            .send()
            .await
            .expect("list"),
    )
    .await;
    assert_eq!(ids(&third), ["u4"]);
    assert_eq!(third["page_info"]["after"], Value::Null);
    let before = second["page_info"]["before"]
        .as_str()
        .expect("before cursor")
        .to_owned();
    let (_, back) = body(
        app.get(&format!("/v1/users?page_size=2&before={before}"))
            .send()
            .await
            .expect("list"),
    )
    .await;
    assert_eq!(ids(&back), ["u0", "u1"]);
    let (_, all) = body(app.get("/v1/users").send().await.expect("list")).await;
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
async fn bulk_identify_applies_valid_users_reports_invalid_ones_and_is_retrievable() {
    let app = spawn_app().await;
    identify(&app, "u1", json!({"name": "Ann", "keep": true})).await;
    let (status, op) = body(
        app.post(
            "/v1/users/bulk/identify",
            json!({"users": [
                {"id": "u1", "email": "ann@example.com"},
                {"id": "u2", "name": "Bob", "preferences": {"default": {"channel_types": {"sms": false}}}},
                {"id": "bad/id"},
                {"name": "no id"},
                {"id": "u3", "email": 7}
            ]}),
        )
        .send()
        .await
        .expect("bulk"),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["__typename"], "BulkOperation");
    assert_eq!(op["status"], "completed");
    assert_eq!(op["name"], "users.bulk_identify");
    assert_eq!(op["success_count"], 2);
    assert_eq!(op["error_count"], 3);
    assert_eq!(op["processed_rows"], 5);
    assert_eq!(op["estimated_total_rows"], 5);
    assert_eq!(op["failed_at"], Value::Null);
    assert!(is_iso_micros(&op["completed_at"]));
    let error_ids: Vec<&str> = op["error_items"]
        .as_array()
        .expect("error_items")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(error_ids, ["bad/id", "", "u3"]);
    let id = op["id"].as_str().expect("id");
    assert_eq!(op["progress_path"], format!("/v1/bulk_operations/{id}"));
    let u1 = stored(&app, "u1").await;
    assert_eq!(
        (u1["name"].clone(), u1["email"].clone(), u1["keep"].clone()),
        (json!("Ann"), json!("ann@example.com"), json!(true))
    );
    assert_eq!(stored(&app, "u2").await["name"], "Bob");
    assert_error(
        app.get("/v1/users/u3").send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
    let (status, fetched) = body(
        app.get(&format!("/v1/bulk_operations/{id}"))
            .send()
            .await
            .expect("op"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(fetched, op);
}

#[tokio::test]
async fn bulk_identify_with_a_wrong_body_shape_or_over_1000_users_is_422_and_stores_nothing() {
    let app = spawn_app().await;
    let too_many: Vec<Value> = (0..1001).map(|i| json!({"id": format!("n{i}")})).collect();
    for bad in [
        json!({"users": too_many}),
        json!({"users": "u1"}),
        json!({"users": ["u1"]}),
        json!({}),
    ] {
        let res = app
            .post("/v1/users/bulk/identify", bad)
            .send()
            .await
            .expect("bulk");
        assert_error(res, 422, "invalid_params").await;
    }
    let (_, list) = body(app.get("/v1/users").send().await.expect("list")).await;
    assert_eq!(list["entries"], json!([]));
}

#[tokio::test]
async fn bulk_delete_removes_the_named_users() {
    let app = spawn_app().await;
    identify(&app, "u1", json!({})).await;
    identify(&app, "u2", json!({})).await;
    let (status, op) = body(
        app.post(
            "/v1/users/bulk/delete",
            json!({"user_ids": ["u1", "ghost"]}),
        )
        .send()
        .await
        .expect("bulk"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (op["success_count"].clone(), op["error_count"].clone()),
        (json!(1), json!(1))
    );
    assert_error(
        app.get("/v1/users/u1").send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
    assert_eq!(stored(&app, "u2").await["id"], "u2");
}

#[tokio::test]
async fn unknown_bulk_operations_are_404() {
    let app = spawn_app().await;
    let res = app
        .get("/v1/bulk_operations/00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .expect("get");
    assert_error(res, 404, "resource_missing").await;
}

#[tokio::test]
async fn malformed_json_is_400_and_the_user_is_unchanged() {
    let app = spawn_app().await;
    identify(&app, "u1", json!({"name": "Ann"})).await;
    let before = stored(&app, "u1").await;
    let res = app
        .server(Method::PUT, "/v1/users/u1")
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("put");
    assert_error(res, 400, "invalid_json").await;
    assert_eq!(stored(&app, "u1").await, before);
}

#[tokio::test]
async fn wrong_types_are_422_with_field_errors_and_the_user_is_unchanged() {
    let app = spawn_app().await;
    identify(&app, "u1", json!({"name": "Ann"})).await;
    let before = stored(&app, "u1").await;
    for bad in [
        json!({"email": 5, "name": "Changed"}),
        json!({"created_at": "last tuesday"}),
        json!({"preferences": ["default"]}),
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
        assert_eq!(stored(&app, "u1").await, before, "after {bad}");
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
    let (_, list) = body(app.get("/v1/users").send().await.expect("list")).await;
    assert_eq!(list["entries"], json!([]));
}

#[tokio::test]
async fn custom_properties_over_256_kb_are_422_and_the_user_is_unchanged() {
    let app = spawn_app().await;
    identify(&app, "u1", json!({"name": "Ann"})).await;
    let before = stored(&app, "u1").await;
    let res = app
        .put("/v1/users/u1", json!({"blob": "x".repeat(300 * 1024)}))
        .send()
        .await
        .expect("put");
    assert_error(res, 422, "invalid_params").await;
    assert_eq!(stored(&app, "u1").await, before);
    // Two halves that each fit but together do not.
    identify(&app, "u1", json!({"a": "x".repeat(150 * 1024)})).await;
    let before = stored(&app, "u1").await;
    let res = app
        .put("/v1/users/u1", json!({"b": "x".repeat(150 * 1024)}))
        .send()
        .await
        .expect("put");
    assert_error(res, 422, "invalid_params").await;
    assert_eq!(stored(&app, "u1").await, before);
}

#[tokio::test]
async fn oversize_bodies_are_413_and_the_user_is_unchanged() {
    let app = spawn_app_with(|s| s.max_body_bytes = 1024).await;
    identify(&app, "u1", json!({"name": "Ann"})).await;
    let before = stored(&app, "u1").await;
    let res = app
        .put("/v1/users/u1", json!({"blob": "x".repeat(4096)}))
        .send()
        .await
        .expect("put");
    assert_error(res, 413, "payload_too_large").await;
    assert_eq!(stored(&app, "u1").await, before);
}

#[tokio::test]
async fn requests_without_a_valid_key_are_401_and_change_nothing() {
    let app = spawn_app().await;
    identify(&app, "u1", json!({"name": "Ann"})).await;
    let before = stored(&app, "u1").await;
    let res = app
        .client
        .put(app.url("/v1/users/u1"))
        .json(&json!({"name": "X"}))
        .send()
        .await
        .expect("put");
    assert_error(res, 401, "authentication_required").await;
    let res = app
        .client
        .put(app.url("/v1/users/u1"))
        .bearer_auth("sk_wrong")
        .json(&json!({"name": "X"}))
        .send()
        .await
        .expect("put");
    assert_error(res, 401, "api_key_missing").await;
    let res = app
        .client
        .delete(app.url("/v1/users/u1"))
        .bearer_auth("sk_wrong")
        .send()
        .await
        .expect("delete");
    assert_error(res, 401, "api_key_missing").await;
    let res = app
        .client
        .get(app.url("/v1/users"))
        .send()
        .await
        .expect("list");
    assert_error(res, 401, "authentication_required").await;
    assert_eq!(stored(&app, "u1").await, before);
}

#[tokio::test]
async fn the_public_key_cannot_delete_list_or_bulk_identify() {
    let app = spawn_app().await;
    identify(&app, "u1", json!({"name": "Ann"})).await;
    let before = stored(&app, "u1").await;
    let token = user_token("u1", Value::Null);
    let public = |method: Method, path: &str| {
        app.client
            .request(method, app.url(path))
            .bearer_auth(PUBLIC_KEY)
            .header("x-knock-user-token", token.clone())
    };
    assert_error(
        public(Method::DELETE, "/v1/users/u1")
            .send()
            .await
            .expect("delete"),
        403,
        "incorrect_token_type",
    )
    .await;
    assert_error(
        public(Method::GET, "/v1/users").send().await.expect("list"),
        403,
        "incorrect_token_type",
    )
    .await;
    let res = public(Method::POST, "/v1/users/bulk/identify")
        .json(&json!({"users": [{"id": "u1", "name": "X"}]}))
        .send()
        .await
        .expect("bulk");
    assert_error(res, 403, "incorrect_token_type").await;
    assert_eq!(stored(&app, "u1").await, before);
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
    identify(&app, "victim", json!({"name": "V"})).await;
    let before = stored(&app, "victim").await;
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
    assert_eq!(stored(&app, "victim").await, before);
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
