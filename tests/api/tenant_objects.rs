//! `GET /v1/tenants/{tenant}/objects` (Tidings' addition): the objects with feed items in a
//! tenant, for the secret key and tenant admins' tokens only.

use reqwest::Method;
use serde_json::{Value, json};

use crate::feed_support::{as_browser, comment, entries};
use crate::helpers::{TestApp, assert_error, spawn_app};

fn acme_admin() -> Value {
    json!({"https://api.knock.app/v1/tenants/acme": {"user/feed_read": {}}})
}

fn ids(body: &Value) -> Vec<String> {
    entries(body)
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["collection"].as_str().expect("collection"),
                o["id"].as_str().expect("id")
            )
        })
        .collect()
}

/// p1 and t1 get acme items, p2 a globex item, p3 an item without a tenant.
async fn seed(app: &TestApp) {
    for (collection, id) in [
        ("projects", "p1"),
        ("projects", "p2"),
        ("projects", "p3"),
        ("teams", "t1"),
    ] {
        app.put_ok(
            &format!("/v1/objects/{collection}/{id}"),
            json!({"name": id}),
        )
        .await;
    }
    comment(
        app,
        json!([{"id": "p1", "collection": "projects"}, {"id": "t1", "collection": "teams"}]),
        json!({}),
        Some("acme"),
    )
    .await;
    comment(
        app,
        json!([{"id": "p2", "collection": "projects"}]),
        json!({}),
        Some("globex"),
    )
    .await;
    comment(
        app,
        json!([{"id": "p3", "collection": "projects"}]),
        json!({}),
        None,
    )
    .await;
    app.poll_json("/v1/tenants/globex/objects", |b| !entries(b).is_empty())
        .await;
    app.poll_json("/v1/tenants/acme/objects", |b| entries(b).len() == 2)
        .await;
}

#[tokio::test]
async fn a_tenants_objects_are_those_with_items_in_it_filtered_by_collection() {
    let app = spawn_app().await;
    seed(&app).await;
    let (status, all) = app.get_json("/v1/tenants/acme/objects").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(ids(&all), vec!["projects/p1", "teams/t1"]);
    assert_eq!(all["entries"][0]["__typename"], "Object");
    assert_eq!(all["entries"][0]["properties"]["name"], "p1");
    let (_, projects) = app
        .get_json("/v1/tenants/acme/objects?collection=projects")
        .await;
    assert_eq!(ids(&projects), vec!["projects/p1"]);
    let (_, paged) = app.get_json("/v1/tenants/acme/objects?page_size=1").await;
    assert_eq!(ids(&paged), vec!["projects/p1"]);
    let after = paged["page_info"]["after"].as_str().expect("a next page");
    let (_, next) = app
        .get_json(&format!(
            "/v1/tenants/acme/objects?page_size=1&after={after}"
        ))
        .await;
    assert_eq!(ids(&next), vec!["teams/t1"]);
    assert_eq!(next["page_info"]["after"], Value::Null);
    let (_, none) = app.get_json("/v1/tenants/initech/objects").await;
    assert_eq!(none["entries"], json!([]));
}

#[tokio::test]
async fn a_tenant_admin_token_lists_its_tenant_and_reads_those_object_feeds_only() {
    let app = spawn_app().await;
    seed(&app).await;
    let res = as_browser(
        &app,
        Method::GET,
        "/v1/tenants/acme/objects",
        "boss",
        acme_admin(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let listed: Value = res.json().await.unwrap();
    assert_eq!(ids(&listed), vec!["projects/p1", "teams/t1"]);

    let res = as_browser(
        &app,
        Method::GET,
        "/v1/tenants/globex/objects",
        "boss",
        acme_admin(),
    )
    .send()
    .await
    .unwrap();
    assert_error(res, 403, "authorization").await;
    for grants in [
        json!(null),
        json!({"https://api.knock.app/v1/users/boss": {}}),
    ] {
        let res = as_browser(
            &app,
            Method::GET,
            "/v1/tenants/acme/objects",
            "boss",
            grants,
        )
        .send()
        .await
        .unwrap();
        assert_error(res, 403, "authorization").await;
    }

    let feed = |id: &str| format!("/v1/objects/projects/{id}/feeds/in-app-feed");
    let res = as_browser(&app, Method::GET, &feed("p1"), "boss", acme_admin())
        .send()
        .await
        .unwrap();
    let mine: Value = res.json().await.unwrap();
    assert_eq!(entries(&mine).len(), 1, "{mine}");
    assert_eq!(mine["meta"]["unread_count"], 1);
    for other in ["p2", "p3"] {
        let res = as_browser(&app, Method::GET, &feed(other), "boss", acme_admin())
            .send()
            .await
            .unwrap();
        let theirs: Value = res.json().await.unwrap();
        assert_eq!(theirs["entries"], json!([]), "{other}: {theirs}");
        assert_eq!(theirs["meta"]["total_count"], 0);
    }
}

#[tokio::test]
async fn bad_tenant_object_queries_are_4xx() {
    let app = spawn_app().await;
    for path in [
        "/v1/tenants/acme/objects?collection=bad%20name",
        "/v1/tenants/acme/objects?page_size=51",
        "/v1/tenants/acme/objects?after=nope",
        "/v1/tenants/acme/objects?include[]=secrets",
    ] {
        let res = app.get(path).send().await.unwrap();
        assert_error(res, 422, "invalid_params").await;
    }
    let res = app
        .post("/v1/tenants/acme/objects", json!({}))
        .send()
        .await
        .unwrap();
    assert_error(res, 405, "method_not_allowed").await;
    let res = app
        .client
        .get(app.url("/v1/tenants/acme/objects"))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "authentication_required").await;
    let res = app
        .client
        .get(app.url("/v1/tenants/acme/objects"))
        .bearer_auth(crate::helpers::PUBLIC_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16() / 100, 4);
}
