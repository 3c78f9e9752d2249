//! `/v1/users`: bulk identify/delete, `GET /v1/bulk_operations/{id}` and user merge.

use serde_json::{Value, json};

use crate::helpers::{assert_error, is_iso_micros, spawn_app};

#[tokio::test]
async fn bulk_identify_applies_valid_users_reports_invalid_ones_and_is_retrievable() {
    let app = spawn_app().await;
    app.identify("u1", json!({"name": "Ann", "keep": true}))
        .await;
    let (status, op) = app.post_json("/v1/users/bulk/identify", json!({"users": [
                {"id": "u1", "email": "ann@example.com"},
                {"id": "u2", "name": "Bob", "preferences": {"default": {"channel_types": {"sms": false}}}},
                {"id": "bad/id"},
                {"name": "no id"},
                {"id": "u3", "email": 7}
            ]})).await;
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
    let u1 = app.stored_user("u1").await;
    assert_eq!(
        (u1["name"].clone(), u1["email"].clone(), u1["keep"].clone()),
        (json!("Ann"), json!("ann@example.com"), json!(true))
    );
    assert_eq!(app.stored_user("u2").await["name"], "Bob");
    assert_error(
        app.get("/v1/users/u3").send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
    let (status, fetched) = app.get_json(&format!("/v1/bulk_operations/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, op);
}

/// An id given twice in one bulk identify merges both bodies in order, as two identify
/// calls would (the store writes each user once, with the merged result); an existing
/// user named in the batch keeps what the batch does not set.
#[tokio::test]
async fn bulk_identify_merges_an_id_given_twice_in_order() {
    let app = spawn_app().await;
    app.identify("kept", json!({"plan": "free", "keep": 1}))
        .await;
    let (status, op) = app
        .post_json(
            "/v1/users/bulk/identify",
            json!({"users": [
                {"id": "twice", "name": "First", "address": {"city": "Oslo"}},
                {"id": "kept", "plan": "pro"},
                {"id": "twice", "name": "Second", "address": {"zip": "0150"}}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["success_count"], 3, "{op}");
    assert_eq!(op["error_count"], 0, "{op}");
    let twice = app.stored_user("twice").await;
    assert_eq!(twice["name"], "Second");
    assert_eq!(twice["address"], json!({"city": "Oslo", "zip": "0150"}));
    let kept = app.stored_user("kept").await;
    assert_eq!(
        (kept["plan"].clone(), kept["keep"].clone()),
        (json!("pro"), json!(1))
    );
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
    let (_, list) = app.get_json("/v1/users").await;
    assert_eq!(list["entries"], json!([]));
}

#[tokio::test]
async fn bulk_delete_removes_the_named_users() {
    let app = spawn_app().await;
    app.identify("u1", json!({})).await;
    app.identify("u2", json!({})).await;
    let (status, op) = app
        .post_json(
            "/v1/users/bulk/delete",
            json!({"user_ids": ["u1", "ghost"]}),
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
    assert_eq!(app.stored_user("u2").await["id"], "u2");
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
async fn merge_folds_the_secondary_user_into_the_primary_and_deletes_it() {
    let app = spawn_app().await;
    app.identify("main", json!({"name": "Main", "plan": {"tier": "pro"}}))
        .await;
    app.identify(
        "old",
        json!({"name": "Old", "email": "old@x", "plan": {"tier": "free", "seats": 2}}),
    )
    .await;
    let (status, user) = app
        .post_json("/v1/users/main/merge", json!({"from_user_id": "old"}))
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["__typename"], "User");
    assert_eq!(user["name"], "Main");
    assert_eq!(user["email"], "old@x");
    assert_eq!(user["plan"], json!({"tier": "pro", "seats": 2}));
    assert_eq!(app.stored_user("main").await, user);
    assert_error(
        app.get("/v1/users/old").send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
}

#[tokio::test]
async fn merge_with_an_unknown_or_identical_user_is_rejected_and_changes_nothing() {
    let app = spawn_app().await;
    app.identify("main", json!({"name": "Main"})).await;
    let before = app.stored_user("main").await;
    let res = app
        .post("/v1/users/main/merge", json!({"from_user_id": "ghost"}))
        .send()
        .await
        .expect("merge");
    assert_error(res, 404, "resource_missing").await;
    let res = app
        .post("/v1/users/main/merge", json!({"from_user_id": "main"}))
        .send()
        .await
        .expect("merge");
    assert_error(res, 422, "invalid_params").await;
    let res = app
        .post("/v1/users/main/merge", json!({"from": "x"}))
        .send()
        .await
        .expect("merge");
    assert_error(res, 422, "invalid_params").await;
    assert_eq!(app.stored_user("main").await, before);
}

#[tokio::test]
async fn bulk_preferences_replace_one_set_for_every_named_user() {
    let app = spawn_app().await;
    app.identify("u1", json!({"preferences": {"default": {"channel_types": {"email": false}, "workflows": {"w": false}}}})).await;
    let (status, op) = app.post_json("/v1/users/bulk/preferences", json!({"user_ids": ["u1", "u2", "bad/id"], "preferences": {"channel_types": {"sms": false}}})).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(
        (op["success_count"].clone(), op["error_count"].clone()),
        (json!(2), json!(1))
    );
    let (_, set) = app.get_json("/v1/users/u1/preferences/default").await;
    assert_eq!(set["channel_types"], json!({"sms": false}));
    assert_eq!(
        set["workflows"],
        Value::Null,
        "bulk preferences replace the set: {set}"
    );
    let (_, set) = app.get_json("/v1/users/u2/preferences/default").await;
    assert_eq!(set["channel_types"], json!({"sms": false}));
    let (status, op) = app
        .post_json(
            "/v1/users/bulk/preferences",
            json!({"user_ids": ["u1"], "preferences": {"id": "acme", "workflows": {"w": true}}}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    let (_, set) = app.get_json("/v1/users/u1/preferences/acme").await;
    assert_eq!(set["workflows"], json!({"w": true}));
}

#[tokio::test]
async fn bulk_preferences_with_an_invalid_set_are_422_and_change_nothing() {
    let app = spawn_app().await;
    app.identify(
        "u1",
        json!({"preferences": {"default": {"channel_types": {"email": false}}}}),
    )
    .await;
    for bad in [
        json!({"user_ids": ["u1"], "preferences": {"channel_types": 5}}),
        json!({"user_ids": ["u1"]}),
        json!({"user_ids": "u1", "preferences": {}}),
        json!({"user_ids": ["u1"], "preferences": {"id": "a/b"}}),
    ] {
        let res = app
            .post("/v1/users/bulk/preferences", bad.clone())
            .send()
            .await
            .expect("bulk");
        assert_error(res, 422, "invalid_params").await;
    }
    let (_, set) = app.get_json("/v1/users/u1/preferences/default").await;
    assert_eq!(set["channel_types"], json!({"email": false}));
}
