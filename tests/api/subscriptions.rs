//! Subscriptions (spec §4.3): add/list/delete on an object, what a user or object follows,
//! bulk add/delete, and every refusal leaving the store as it was.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_rejects_bad_credentials, body, spawn_app};

const SUBS: &str = "/v1/objects/projects/p1/subscriptions";

async fn project(app: &TestApp, id: &str) {
    app.put_ok(&format!("/v1/objects/projects/{id}"), json!({"name": id}))
        .await;
}

async fn subscribe(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    crate::helpers::body(app.post(path, body).send().await.expect("post")).await
}

async fn unsubscribe(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    crate::helpers::body(app.delete(path).json(&body).send().await.expect("delete")).await
}

/// The recipient ids (users) or `collection/id` (objects) of a subscription list.
fn recipients(list: &Value) -> Vec<String> {
    let entries = list.get("entries").unwrap_or(list);
    entries
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            let r = &s["recipient"];
            match r["collection"].as_str() {
                Some(c) => format!("{c}/{}", r["id"].as_str().unwrap_or_default()),
                None => r["id"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

#[tokio::test]
async fn add_upserts_with_properties_identifies_inline_and_answers_subscriptions() {
    let app = spawn_app().await;
    project(&app, "p1").await;
    app.identify("ann", json!({"name": "Ann"})).await;
    let (status, added) = subscribe(
        &app,
        SUBS,
        json!({
            "recipients": ["ann", {"id": "bob", "name": "Bob"}, {"id": "t1", "collection": "teams", "name": "Ops"}],
            "properties": {"role": "viewer"}
        }),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(recipients(&added), vec!["ann", "bob", "teams/t1"]);
    let first = &added[0];
    assert_eq!(first["__typename"], "Subscription");
    assert_eq!(first["properties"], json!({"role": "viewer"}));
    assert_eq!(first["object"]["id"], "p1");
    assert_eq!(first["object"]["__typename"], "Object");
    assert_eq!(first["recipient"]["__typename"], "User");
    assert_eq!(first["recipient"]["name"], "Ann");
    assert!(crate::helpers::is_iso_micros(&first["inserted_at"]));
    assert_eq!(
        app.stored_user("bob").await["name"],
        "Bob",
        "inline identify"
    );
    assert_eq!(
        app.stored("/v1/objects/teams/t1").await["properties"]["name"],
        "Ops"
    );

    // A second add of the same recipient updates its properties: still three.
    let (status, again) = subscribe(
        &app,
        SUBS,
        json!({"recipients": ["bob"], "properties": {"role": "owner"}}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again[0]["properties"], json!({"role": "owner"}));
    let (_, list) = app.get_json(SUBS).await;
    assert_eq!(recipients(&list), vec!["ann", "bob", "teams/t1"]);
    assert_eq!(list["entries"][1]["properties"], json!({"role": "owner"}));
    assert_eq!(list["page_info"]["__typename"], "PageInfo");
}

#[tokio::test]
async fn lists_page_by_cursor_and_filter_by_recipient_or_object() {
    let app = spawn_app().await;
    project(&app, "p1").await;
    project(&app, "p2").await;
    let users: Vec<Value> = (0..5).map(|i| json!({"id": format!("u{i}")})).collect();
    assert_eq!(
        subscribe(&app, SUBS, json!({"recipients": users})).await.0,
        200
    );
    let (status, _) = subscribe(
        &app,
        "/v1/objects/projects/p2/subscriptions",
        json!({"recipients": ["u1", {"id": "p1", "collection": "projects"}]}),
    )
    .await;
    assert_eq!(status, 200);

    let mut seen = Vec::new();
    let mut path = format!("{SUBS}?page_size=2");
    loop {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(recipients(&page));
        match page["page_info"]["after"].as_str() {
            Some(after) => path = format!("{SUBS}?page_size=2&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, vec!["u0", "u1", "u2", "u3", "u4"]);

    let (_, only) = app
        .get_json(&format!("{SUBS}?recipients[]=u3&recipients[]=u0"))
        .await;
    assert_eq!(recipients(&only), vec!["u0", "u3"]);

    // What u1 follows, and the same filtered by object (node SDK's indexed encoding).
    let (_, follows) = app.get_json("/v1/users/u1/subscriptions").await;
    let objects: Vec<&str> = follows["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["object"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(objects, vec!["p1", "p2"]);
    let (_, filtered) = app
        .get_json("/v1/users/u1/subscriptions?objects[0][id]=p2&objects[0][collection]=projects")
        .await;
    assert_eq!(filtered["entries"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["entries"][0]["object"]["id"], "p2");

    // mode=recipient: the objects p1 itself follows.
    let (_, p1_follows) = app.get_json(&format!("{SUBS}?mode=recipient")).await;
    assert_eq!(p1_follows["entries"].as_array().unwrap().len(), 1);
    assert_eq!(p1_follows["entries"][0]["object"]["id"], "p2");
    assert_eq!(
        p1_follows["entries"][0]["recipient"]["collection"],
        "projects"
    );

    let (_, with_prefs) = app
        .get_json(&format!("{SUBS}?include[]=preferences&page_size=1"))
        .await;
    assert!(with_prefs["entries"][0]["recipient"]["preferences"].is_object());
}

#[tokio::test]
async fn delete_answers_the_removed_subscriptions_and_skips_strangers() {
    let app = spawn_app().await;
    project(&app, "p1").await;
    subscribe(
        &app,
        SUBS,
        json!({"recipients": [{"id": "a"}, {"id": "b"}]}),
    )
    .await;
    app.identify("c", json!({})).await;
    let (status, removed) = unsubscribe(&app, SUBS, json!({"recipients": ["a", "c"]})).await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(recipients(&removed), vec!["a"]);
    assert_eq!(recipients(&app.get_json(SUBS).await.1), vec!["b"]);
}

#[tokio::test]
async fn deleting_a_user_or_object_removes_its_subscriptions_on_both_sides() {
    let app = spawn_app().await;
    project(&app, "p1").await;
    project(&app, "p2").await;
    subscribe(
        &app,
        SUBS,
        json!({"recipients": [{"id": "a"}, {"id": "b"}, {"id": "p2", "collection": "projects"}]}),
    )
    .await;
    subscribe(
        &app,
        "/v1/objects/projects/p2/subscriptions",
        json!({"recipients": ["a"]}),
    )
    .await;
    assert_eq!(
        app.delete("/v1/users/a").send().await.unwrap().status(),
        204
    );
    assert_eq!(
        recipients(&app.get_json(SUBS).await.1),
        vec!["b", "projects/p2"]
    );
    let (_, a_follows) = app.get_json("/v1/users/a/subscriptions").await;
    assert_eq!(a_follows["entries"], json!([]));

    assert_eq!(
        app.delete("/v1/objects/projects/p2")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(recipients(&app.get_json(SUBS).await.1), vec!["b"]);
    // Re-creating p2 does not bring its old subscribers back.
    project(&app, "p2").await;
    let (_, p2) = app.get_json("/v1/objects/projects/p2/subscriptions").await;
    assert_eq!(p2["entries"], json!([]));

    assert_eq!(
        app.delete("/v1/objects/projects/p1")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let (_, b_follows) = app.get_json("/v1/users/b/subscriptions").await;
    assert_eq!(b_follows["entries"], json!([]));
}

#[tokio::test]
async fn merging_users_moves_the_secondarys_subscriptions() {
    let app = spawn_app().await;
    project(&app, "p1").await;
    project(&app, "p2").await;
    subscribe(
        &app,
        SUBS,
        json!({"recipients": [{"id": "old"}, {"id": "new"}]}),
    )
    .await;
    subscribe(
        &app,
        "/v1/objects/projects/p2/subscriptions",
        json!({"recipients": ["old"]}),
    )
    .await;
    let (status, _) = app
        .post_json("/v1/users/new/merge", json!({"from_user_id": "old"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(recipients(&app.get_json(SUBS).await.1), vec!["new"]);
    let (_, follows) = app.get_json("/v1/users/new/subscriptions").await;
    assert_eq!(follows["entries"].as_array().unwrap().len(), 2);
}

/// Everything the store shows about p1's and p2's subscriptions and the users involved.
async fn snapshot(app: &TestApp) -> Value {
    json!([
        app.stored(SUBS).await,
        app.stored("/v1/objects/projects/p2/subscriptions").await,
        app.stored("/v1/objects/projects/p1/subscriptions?mode=recipient")
            .await,
        app.stored("/v1/users/fresh").await,
        app.stored("/v1/users").await,
    ])
}

#[tokio::test]
async fn bad_adds_are_4xx_naming_the_field_and_store_nothing() {
    let app = spawn_app().await;
    project(&app, "p1").await;
    project(&app, "p2").await;
    app.identify("ann", json!({})).await;
    let (status, _) = subscribe(
        &app,
        "/v1/objects/projects/p2/subscriptions",
        json!({"recipients": [{"id": "p1", "collection": "projects"}]}),
    )
    .await;
    assert_eq!(status, 200);
    let before = snapshot(&app).await;

    let many: Vec<Value> = (0..101).map(|i| json!({"id": format!("x{i}")})).collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"recipients": many}), "recipients"),
        (json!({"recipients": []}), "recipients"),
        (json!({}), "recipients"),
        (json!({"recipients": "ann"}), "recipients"),
        (
            json!({"recipients": ["ann"], "properties": "x"}),
            "properties",
        ),
        (
            json!({"recipients": [{"id": "fresh"}, "a/b"]}),
            "recipients[1]",
        ),
        (
            json!({"recipients": [{"id": "fresh"}, {"id": 7}]}),
            "recipients[1].id",
        ),
        (
            json!({"recipients": [{"id": "fresh", "email": 3}]}),
            "recipients[0].email",
        ),
        // Needs the database: unknown subscriber, the object itself, a cycle.
        (
            json!({"recipients": [{"id": "fresh"}, "ghost"]}),
            "recipients[1]",
        ),
        (
            json!({"recipients": [{"id": "fresh"}, {"id": "nope", "collection": "projects"}]}),
            "recipients[1]",
        ),
        (
            json!({"recipients": [{"id": "fresh"}, {"id": "p1", "collection": "projects"}]}),
            "recipients[1]",
        ),
        (
            json!({"recipients": [{"id": "fresh"}, {"id": "p2", "collection": "projects"}]}),
            "recipients[1]",
        ),
    ];
    for (payload, field) in cases {
        let res = app.post(SUBS, payload.clone()).send().await.expect("post");
        let err = assert_error(res, 422, "invalid_params").await;
        let fields: Vec<&str> = err["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{payload} -> {err}");
        assert_eq!(snapshot(&app).await, before, "{payload} changed the store");
    }

    // Unknown or deleted objects in the path: 404 naming the object.
    for path in [
        "/v1/objects/nothings/p1/subscriptions",
        "/v1/objects/projects/zzz/subscriptions",
    ] {
        let res = app
            .post(path, json!({"recipients": ["ann"]}))
            .send()
            .await
            .unwrap();
        let err = assert_error(res, 404, "resource_missing").await;
        assert!(
            err["message"].as_str().unwrap().contains("collection"),
            "{err}"
        );
        let res = app.get(path).send().await.unwrap();
        assert_error(res, 404, "resource_missing").await;
    }
    app.delete("/v1/objects/projects/p2").send().await.unwrap();
    let res = app
        .post(
            "/v1/objects/projects/p2/subscriptions",
            json!({"recipients": ["ann"]}),
        )
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "resource_missing").await;

    // Malformed bodies and paths, bad queries, wrong credentials.
    let res = app
        .server(Method::POST, SUBS)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .post(
            "/v1/objects/bad%20name/p1/subscriptions",
            json!({"recipients": ["ann"]}),
        )
        .send()
        .await
        .unwrap();
    assert_error(res, 422, "invalid_params").await;
    for query in [
        "mode=sideways",
        "page_size=0",
        "after=zzz",
        "objects[]=u1&mode=recipient",
    ] {
        let res = app.get(&format!("{SUBS}?{query}")).send().await.unwrap();
        assert_error(res, 422, "invalid_params").await;
    }
    let res = app.server(Method::PUT, SUBS).send().await.unwrap();
    assert_error(res, 405, "method_not_allowed").await;
    let payload = json!({"recipients": ["ann"]});
    assert_rejects_bad_credentials(&app, Method::POST, SUBS, Some(&payload)).await;
    assert_rejects_bad_credentials(&app, Method::DELETE, SUBS, Some(&payload)).await;
    assert_rejects_bad_credentials(&app, Method::GET, SUBS, None).await;
    assert_rejects_bad_credentials(&app, Method::GET, "/v1/users/ann/subscriptions", None).await;
}

#[tokio::test]
async fn bad_deletes_are_4xx_and_remove_nothing() {
    let app = spawn_app().await;
    project(&app, "p1").await;
    subscribe(&app, SUBS, json!({"recipients": [{"id": "a"}]})).await;
    let before = app.stored(SUBS).await;
    let many: Vec<Value> = (0..101).map(|i| json!(format!("x{i}"))).collect();
    for payload in [
        json!({"recipients": many}),
        json!({"recipients": ["a", "b/c"]}),
        json!({"recipients": ["a", 5]}),
        json!({"nope": 1}),
    ] {
        let res = app.delete(SUBS).json(&payload).send().await.unwrap();
        assert_error(res, 422, "invalid_params").await;
        assert_eq!(app.stored(SUBS).await, before, "{payload}");
    }
    let (status, err) = unsubscribe(
        &app,
        "/v1/objects/projects/zzz/subscriptions",
        json!({"recipients": ["a"]}),
    )
    .await;
    assert_eq!(status, 404, "{err}");
}

#[tokio::test]
async fn bulk_add_and_delete_many_objects_at_once() {
    let app = spawn_app().await;
    project(&app, "p1").await;
    project(&app, "p2").await;
    let users: Vec<Value> = (0..100).map(|i| json!({"id": format!("u{i}")})).collect();
    let (status, op) = app
        .post_json(
            "/v1/objects/projects/bulk/subscriptions/add",
            json!({"subscriptions": [
                {"id": "p1", "recipients": users, "properties": {"via": "bulk"}},
                {"id": "p2", "recipients": ["u1", {"id": "p1", "collection": "projects"}]},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["__typename"], "BulkOperation");
    assert_eq!(op["status"], "completed");
    assert_eq!(op["success_count"], 102);
    let (_, p1) = app.get_json(&format!("{SUBS}?recipients[]=u7")).await;
    assert_eq!(p1["entries"][0]["properties"], json!({"via": "bulk"}));

    let (status, op) = app
        .post_json(
            "/v1/objects/projects/bulk/subscriptions/delete",
            json!({"subscriptions": [
                {"id": "p1", "recipients": ["u0", "u1", "nobody"]},
                {"id": "gone", "recipients": ["u1"]},
                {"id": "p2", "recipients": [{"id": "p1", "collection": "projects"}]},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["success_count"], 3);
    let (_, p2) = app.get_json("/v1/objects/projects/p2/subscriptions").await;
    assert_eq!(recipients(&p2), vec!["u1"]);
}

#[tokio::test]
async fn a_bad_bulk_add_names_the_group_and_stores_nothing() {
    let app = spawn_app().await;
    project(&app, "p1").await;
    project(&app, "p2").await;
    let before = snapshot(&app).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"subscriptions": [{"id": "p1", "recipients": [{"id": "fresh"}]},
                                     {"id": "zzz", "recipients": ["fresh"]}]}),
            "subscriptions[1].id",
        ),
        (
            json!({"subscriptions": [{"id": "p1", "recipients": [{"id": "fresh"}]},
                                     {"id": "p2", "recipients": [{"id": "p2", "collection": "projects"}]}]}),
            "subscriptions[1].recipients[0]",
        ),
        // A cycle made inside one call: p1 follows p2, then p2 follows p1.
        (
            json!({"subscriptions": [{"id": "p2", "recipients": [{"id": "p1", "collection": "projects"}, {"id": "fresh"}]},
                                     {"id": "p1", "recipients": [{"id": "p2", "collection": "projects"}]}]}),
            "subscriptions[1].recipients[0]",
        ),
        (json!({"subscriptions": "p1"}), "subscriptions"),
        (
            json!({"subscriptions": [{"recipients": ["a"]}]}),
            "subscriptions[0].id",
        ),
    ];
    for (payload, field) in cases {
        let res = app
            .post(
                "/v1/objects/projects/bulk/subscriptions/add",
                payload.clone(),
            )
            .send()
            .await
            .unwrap();
        let err = assert_error(res, 422, "invalid_params").await;
        let fields: Vec<&str> = err["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{payload} -> {err}");
        assert_eq!(snapshot(&app).await, before, "{payload} changed the store");
    }
    let groups: Vec<Value> = (0..101)
        .map(|g| {
            let rs: Vec<Value> = (0..100).map(|i| json!(format!("u{i}"))).collect();
            json!({"id": format!("p{g}"), "recipients": rs})
        })
        .collect();
    let res = app
        .post(
            "/v1/objects/projects/bulk/subscriptions/add",
            json!({"subscriptions": groups}),
        )
        .send()
        .await
        .unwrap();
    assert_error(res, 422, "invalid_params").await;
    let bulk = json!({"subscriptions": []});
    assert_rejects_bad_credentials(
        &app,
        Method::POST,
        "/v1/objects/projects/bulk/subscriptions/add",
        Some(&bulk),
    )
    .await;
    let (status, _) = body(
        app.get("/v1/objects/projects/bulk/subscriptions/add")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 405);
}
