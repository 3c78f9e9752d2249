//! `/v1/objects/{collection}`: set, get, delete, list, bulk set/delete.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_error, assert_rejects_bad_credentials, spawn_app, spawn_app_with,
};

/// Sets object `collection/id` with `props` and asserts 200.
async fn set(app: &TestApp, collection: &str, id: &str, props: Value) -> Value {
    app.put_ok(&format!("/v1/objects/{collection}/{id}"), props)
        .await
}

/// The stored object (or the 404 body), for before/after comparisons.
async fn stored(app: &TestApp, collection: &str, id: &str) -> Value {
    app.stored(&format!("/v1/objects/{collection}/{id}")).await
}

#[tokio::test]
async fn set_creates_an_object_with_properties_nested() {
    let app = spawn_app().await;
    let object = set(
        &app,
        "projects",
        "p1",
        json!({"name": "Apollo", "budget": {"usd": 5}}),
    )
    .await;
    assert!(object["updated_at"].is_string());
    let expected = json!({
        "__typename": "Object", "id": "p1", "collection": "projects",
        "properties": {"name": "Apollo", "budget": {"usd": 5}},
        "created_at": null, "updated_at": object["updated_at"].clone(),
    });
    assert_eq!(object, expected);
    assert_eq!(stored(&app, "projects", "p1").await, expected);
}

#[tokio::test]
async fn set_deep_merges_and_keeps_collections_apart() {
    let app = spawn_app().await;
    set(
        &app,
        "projects",
        "p1",
        json!({"name": "Apollo", "budget": {"usd": 5, "eur": 4}}),
    )
    .await;
    set(&app, "teams", "p1", json!({"name": "Team"})).await;
    let object = set(
        &app,
        "projects",
        "p1",
        json!({"budget": {"usd": 6}, "name": null, "created_at": "2026-02-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        object["properties"],
        json!({"name": null, "budget": {"usd": 6, "eur": 4}})
    );
    assert_eq!(object["created_at"], "2026-02-01T00:00:00.000000Z");
    assert_eq!(
        stored(&app, "teams", "p1").await["properties"],
        json!({"name": "Team"})
    );
}

#[tokio::test]
async fn get_and_delete_of_unknown_objects_are_404_and_delete_answers_204() {
    let app = spawn_app().await;
    assert_error(
        app.get("/v1/objects/projects/nope")
            .send()
            .await
            .expect("get"),
        404,
        "resource_missing",
    )
    .await;
    assert_error(
        app.delete("/v1/objects/projects/nope")
            .send()
            .await
            .expect("delete"),
        404,
        "resource_missing",
    )
    .await;
    set(&app, "projects", "p1", json!({})).await;
    let res = app
        .delete("/v1/objects/projects/p1")
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 204);
    assert_error(
        app.get("/v1/objects/projects/p1")
            .send()
            .await
            .expect("get"),
        404,
        "resource_missing",
    )
    .await;
}

#[tokio::test]
async fn list_returns_one_collection_in_pages() {
    let app = spawn_app().await;
    for i in 0..3 {
        set(&app, "projects", &format!("p{i}"), json!({"i": i})).await;
    }
    set(&app, "teams", "t1", json!({})).await;
    let (status, page) = app.get_json("/v1/objects/projects?page_size=2").await;
    assert_eq!(status, 200);
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["entries"][0]["__typename"], "Object");
    assert_eq!(page["entries"][0]["properties"], json!({"i": 0}));
    let after = page["page_info"]["after"]
        .as_str()
        .expect("after")
        .to_owned();
    let (_, next) = app
        .get_json(&format!("/v1/objects/projects?page_size=2&after={after}"))
        .await;
    assert_eq!(next["entries"][0]["id"], "p2");
    assert_eq!(next["page_info"]["after"], Value::Null);
    let (_, empty) = app.get_json("/v1/objects/nothing").await;
    assert_eq!(
        empty,
        json!({"entries": [], "page_info": {"__typename": "PageInfo", "after": null, "before": null, "page_size": 50}})
    );
    assert_error(
        app.get("/v1/objects/projects?page_size=100")
            .send()
            .await
            .expect("list"),
        422,
        "invalid_params",
    )
    .await;
}

#[tokio::test]
async fn bulk_set_applies_valid_objects_and_reports_the_rest() {
    let app = spawn_app().await;
    let (status, op) = app.post_json("/v1/objects/projects/bulk/set", json!({"objects": [
            {"id": "p1", "name": "One"}, {"id": "p2", "collection": "projects"}, {"id": 5}, {"id": "p3", "name": 3}
        ]})).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["__typename"], "BulkOperation");
    assert_eq!(op["status"], "completed");
    assert_eq!(
        (op["success_count"].clone(), op["error_count"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(op["error_items"][1]["id"], "p3");
    assert_eq!(op["error_items"][1]["collection"], "projects");
    assert_eq!(
        stored(&app, "projects", "p1").await["properties"],
        json!({"name": "One"})
    );
    assert_eq!(
        stored(&app, "projects", "p2").await["properties"],
        json!({})
    );
    let id = op["id"].as_str().expect("id");
    let (_, fetched) = app.get_json(&format!("/v1/bulk_operations/{id}")).await;
    assert_eq!(fetched, op);
}

#[tokio::test]
async fn bulk_set_with_a_bad_shape_or_over_1000_objects_is_422_and_stores_nothing() {
    let app = spawn_app().await;
    let too_many: Vec<Value> = (0..1001).map(|i| json!({"id": format!("p{i}")})).collect();
    for bad in [
        json!({"objects": too_many}),
        json!({"objects": {}}),
        json!({"objects": [1]}),
        json!({"items": []}),
    ] {
        let res = app
            .post("/v1/objects/projects/bulk/set", bad)
            .send()
            .await
            .expect("bulk");
        assert_error(res, 422, "invalid_params").await;
    }
    let (_, list) = app.get_json("/v1/objects/projects").await;
    assert_eq!(list["entries"], json!([]));
}

#[tokio::test]
async fn bulk_delete_removes_the_named_objects() {
    let app = spawn_app().await;
    set(&app, "projects", "p1", json!({})).await;
    set(&app, "projects", "p2", json!({})).await;
    let (status, op) = app
        .post_json(
            "/v1/objects/projects/bulk/delete",
            json!({"object_ids": ["p1"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(op["success_count"], 1);
    assert_error(
        app.get("/v1/objects/projects/p1")
            .send()
            .await
            .expect("get"),
        404,
        "resource_missing",
    )
    .await;
    assert_eq!(stored(&app, "projects", "p2").await["id"], "p2");
}

#[tokio::test]
async fn bad_input_is_rejected_and_the_object_is_unchanged() {
    let app = spawn_app().await;
    set(&app, "projects", "p1", json!({"name": "Apollo"})).await;
    let before = stored(&app, "projects", "p1").await;
    let res = app
        .server(Method::PUT, "/v1/objects/projects/p1")
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .expect("put");
    assert_error(res, 400, "invalid_json").await;
    for bad in [
        json!({"name": 1}),
        json!("string"),
        json!({"created_at": 12}),
        json!({"big": "x".repeat(300 * 1024)}),
    ] {
        let res = app
            .put("/v1/objects/projects/p1", bad)
            .send()
            .await
            .expect("put");
        assert_error(res, 422, "invalid_params").await;
    }
    let res = app
        .put("/v1/objects/bad%20name/p1", json!({}))
        .send()
        .await
        .expect("put");
    assert_error(res, 422, "invalid_params").await;
    assert_eq!(stored(&app, "projects", "p1").await, before);
}

#[tokio::test]
async fn oversize_bodies_are_413_and_the_object_is_unchanged() {
    let app = spawn_app_with(|s| s.max_body_bytes = 1024).await;
    set(&app, "projects", "p1", json!({"name": "Apollo"})).await;
    let before = stored(&app, "projects", "p1").await;
    let res = app
        .put("/v1/objects/projects/p1", json!({"blob": "x".repeat(4096)}))
        .send()
        .await
        .expect("put");
    assert_error(res, 413, "payload_too_large").await;
    assert_eq!(stored(&app, "projects", "p1").await, before);
}

#[tokio::test]
async fn objects_need_the_secret_key() {
    let app = spawn_app().await;
    set(&app, "projects", "p1", json!({"name": "Apollo"})).await;
    let before = stored(&app, "projects", "p1").await;
    let rename = json!({"name": "X"});
    for (method, path) in [
        (Method::PUT, "/v1/objects/projects/p1"),
        (Method::GET, "/v1/objects/projects/p1"),
        (Method::DELETE, "/v1/objects/projects/p1"),
        (Method::GET, "/v1/objects/projects"),
    ] {
        assert_rejects_bad_credentials(&app, method, path, Some(&rename)).await;
    }
    assert_eq!(stored(&app, "projects", "p1").await, before);
}
