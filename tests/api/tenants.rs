//! `/v1/tenants`: set, get, delete, list with filters, bulk set/delete.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_error, assert_rejects_bad_credentials, body, spawn_app, spawn_app_with,
};

/// Sets tenant `id` with `props` and asserts 200.
async fn set(app: &TestApp, id: &str, props: Value) -> Value {
    app.put_ok(&format!("/v1/tenants/{id}"), props).await
}

/// The stored tenant (or the 404 body), for before/after comparisons.
async fn stored(app: &TestApp, id: &str) -> Value {
    app.stored(&format!("/v1/tenants/{id}")).await
}

fn ids(page: &Value) -> Vec<String> {
    page["entries"].as_array().map_or(vec![], |e| {
        e.iter()
            .filter_map(|t| t["id"].as_str().map(str::to_owned))
            .collect()
    })
}

#[tokio::test]
async fn set_creates_a_tenant_with_settings_and_custom_properties() {
    let app = spawn_app().await;
    let tenant = set(&app, "acme", json!({
        "name": "Acme", "region": "eu",
        "settings": {"branding": {"primary_color": "#DF1A22"}, "preference_set": {"channel_types": {"email": false}}}
    }))
    .await;
    let expected = json!({
        "__typename": "Tenant", "id": "acme", "name": "Acme", "region": "eu", "created_at": null,
        "settings": {"branding": {"primary_color": "#DF1A22"}, "preference_set": {"id": "default", "channel_types": {"email": false}}},
        "updated_at": tenant["updated_at"].clone(),
    });
    assert_eq!(tenant, expected);
    assert_eq!(stored(&app, "acme").await, expected);
    let bare = set(&app, "bare", json!({})).await;
    assert_eq!(
        bare["settings"],
        json!({"branding": null, "preference_set": null})
    );
    assert_eq!(bare["name"], Value::Null);
}

#[tokio::test]
async fn set_merges_settings_and_replace_strategy_replaces_the_preference_set() {
    let app = spawn_app().await;
    set(&app, "acme", json!({"name": "Acme", "settings": {"branding": {"logo_url": "https://l"}, "preference_set": {"channel_types": {"email": false}}}})).await;
    let merged = set(&app, "acme", json!({"settings": {"branding": {"icon_url": "https://i"}, "preference_set": {"workflows": {"w": true}}}})).await;
    assert_eq!(
        merged["settings"]["branding"],
        json!({"logo_url": "https://l", "icon_url": "https://i"})
    );
    assert_eq!(
        merged["settings"]["preference_set"],
        json!({"id": "default", "channel_types": {"email": false}, "workflows": {"w": true}})
    );
    let replaced = set(&app, "acme", json!({"settings": {"preference_set": {"__persistence_strategy__": "replace", "channel_types": {"sms": false}}}})).await;
    assert_eq!(
        replaced["settings"]["preference_set"],
        json!({"id": "default", "channel_types": {"sms": false}})
    );
    assert_eq!(replaced["name"], "Acme");
}

#[tokio::test]
async fn unknown_tenants_are_404_and_delete_answers_204() {
    let app = spawn_app().await;
    assert_error(
        app.get("/v1/tenants/nope").send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
    assert_error(
        app.delete("/v1/tenants/nope").send().await.expect("delete"),
        404,
        "resource_missing",
    )
    .await;
    set(&app, "acme", json!({})).await;
    assert_eq!(
        app.delete("/v1/tenants/acme")
            .send()
            .await
            .expect("delete")
            .status(),
        204
    );
    assert_error(
        app.get("/v1/tenants/acme").send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
}

#[tokio::test]
async fn list_filters_by_tenant_id_and_name_and_pages() {
    let app = spawn_app().await;
    set(&app, "a", json!({"name": "Acme"})).await;
    set(&app, "b", json!({"name": "Beta"})).await;
    set(&app, "c", json!({"name": "Acme"})).await;
    let (status, all) = app.get_json("/v1/tenants").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&all), ["a", "b", "c"]);
    assert_eq!(
        all["page_info"],
        json!({"__typename": "PageInfo", "after": null, "before": null, "page_size": 50})
    );
    let (_, by_name) = app.get_json("/v1/tenants?name=Acme").await;
    assert_eq!(ids(&by_name), ["a", "c"]);
    let (_, by_id) = app.get_json("/v1/tenants?tenant_id=b").await;
    assert_eq!(ids(&by_id), ["b"]);
    let (_, paged) = app.get_json("/v1/tenants?name=Acme&page_size=1").await;
    assert_eq!(ids(&paged), ["a"]);
    let after = paged["page_info"]["after"]
        .as_str()
        .expect("after")
        .to_owned();
    let (_, next) = app
        .get_json(&format!("/v1/tenants?name=Acme&page_size=1&after={after}"))
        .await;
    assert_eq!(ids(&next), ["c"]);
    assert_eq!(next["page_info"]["after"], Value::Null);
    assert_error(
        app.get("/v1/tenants?page_size=-1")
            .send()
            .await
            .expect("list"),
        422,
        "invalid_params",
    )
    .await;
}

#[tokio::test]
async fn bulk_set_and_bulk_delete_apply_synchronously() {
    let app = spawn_app().await;
    let (status, op) = app
        .post_json(
            "/v1/tenants/bulk/set",
            json!({"tenants": ["t1", {"id": "t2", "name": "Two"}, {"name": "no id"}]}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(
        (
            op["success_count"].clone(),
            op["error_count"].clone(),
            op["status"].clone()
        ),
        (json!(2), json!(1), json!("completed"))
    );
    assert_eq!(stored(&app, "t2").await["name"], "Two");
    assert_eq!(stored(&app, "t1").await["id"], "t1");
    let res = app
        .server(
            Method::POST,
            "/v1/tenants/bulk/delete?tenant_ids[]=t1&tenant_ids[]=ghost",
        )
        .send()
        .await
        .expect("bulk delete");
    let (status, op) = body(res).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(
        (op["success_count"].clone(), op["error_count"].clone()),
        (json!(1), json!(1))
    );
    assert_error(
        app.get("/v1/tenants/t1").send().await.expect("get"),
        404,
        "resource_missing",
    )
    .await;
    let res = app
        .server(Method::POST, "/v1/tenants/bulk/delete")
        .send()
        .await
        .expect("bulk delete");
    assert_error(res, 422, "invalid_params").await;
    let too_many: Vec<Value> = (0..1001).map(|i| json!(format!("x{i}"))).collect();
    assert_error(
        app.post("/v1/tenants/bulk/set", json!({"tenants": too_many}))
            .send()
            .await
            .expect("bulk"),
        422,
        "invalid_params",
    )
    .await;
    assert_eq!(stored(&app, "t2").await["name"], "Two");
}

#[tokio::test]
async fn bad_input_is_rejected_and_the_tenant_is_unchanged() {
    let app = spawn_app().await;
    set(&app, "acme", json!({"name": "Acme"})).await;
    let before = stored(&app, "acme").await;
    let res = app
        .server(Method::PUT, "/v1/tenants/acme")
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .expect("put");
    assert_error(res, 400, "invalid_json").await;
    for bad in [
        json!({"name": 5}),
        json!({"settings": "dark"}),
        json!({"settings": {"branding": {"primary_color": 1}}}),
        json!([1]),
    ] {
        let res = app.put("/v1/tenants/acme", bad).send().await.expect("put");
        assert_error(res, 422, "invalid_params").await;
    }
    assert_eq!(stored(&app, "acme").await, before);
}

#[tokio::test]
async fn oversize_bodies_are_413_and_the_tenant_is_unchanged() {
    let app = spawn_app_with(|s| s.max_body_bytes = 1024).await;
    set(&app, "acme", json!({"name": "Acme"})).await;
    let before = stored(&app, "acme").await;
    let res = app
        .put("/v1/tenants/acme", json!({"blob": "x".repeat(4096)}))
        .send()
        .await
        .expect("put");
    assert_error(res, 413, "payload_too_large").await;
    assert_eq!(stored(&app, "acme").await, before);
}

#[tokio::test]
async fn tenants_need_the_secret_key() {
    let app = spawn_app().await;
    set(&app, "acme", json!({"name": "Acme"})).await;
    let before = stored(&app, "acme").await;
    let rename = json!({"name": "X"});
    for (method, path) in [
        (Method::PUT, "/v1/tenants/acme"),
        (Method::DELETE, "/v1/tenants/acme"),
        (Method::GET, "/v1/tenants"),
        (Method::GET, "/v1/bulk_operations/x"),
    ] {
        assert_rejects_bad_credentials(&app, method, path, Some(&rename)).await;
    }
    assert_eq!(stored(&app, "acme").await, before);
}
