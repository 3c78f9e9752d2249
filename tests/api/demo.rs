//! Demo mode (`tidings serve --demo`): refused with production keys, seeded once, and its
//! endpoints mint tokens only for the demo identities and send notifications only to
//! demo recipients. Off, the endpoints do not exist.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with, test_settings};

/// A demo server: generated keys (demo mode refuses configured ones).
async fn demo_app() -> TestApp {
    spawn_app_with(|s| {
        s.demo = true;
        s.secret_key = None;
        s.public_key = None;
        s.signing_public_key = None;
    })
    .await
}

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("test request")
}

async fn mint(app: &TestApp, id: &str) -> String {
    let res = post(app, "/demo/v1/token", json!({"id": id})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("test request");
    assert_eq!(body["user_id"], id);
    body["token"].as_str().expect("test request").to_owned()
}

/// GET `path` with the public key and `token`.
async fn as_token(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(&app.state.keys.public_key)
        .header("x-knock-user-token", token)
        .send()
        .await
        .expect("test request");
    (
        res.status().as_u16(),
        res.json().await.expect("test request"),
    )
}

/// Polls `path` as `token` until `done` holds (the runner delivers asynchronously).
async fn poll(app: &TestApp, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let (status, body) = as_token(app, path, token).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{path} never satisfied the condition");
}

#[tokio::test]
async fn demo_mode_refuses_to_start_with_configured_production_keys() {
    for key in ["secret", "public", "signing"] {
        let dir = tempfile::tempdir().expect("test request");
        let mut settings = test_settings(dir.path());
        settings.demo = true;
        if key != "secret" {
            settings.secret_key = None;
        }
        if key != "public" {
            settings.public_key = None;
        }
        if key != "signing" {
            settings.signing_public_key = None;
        }
        let refused = tidings::Application::build(settings).await.err();
        let message = refused.expect("demo mode is refused").to_string();
        assert!(message.contains("demo mode"), "{message}");
        assert!(
            message.contains("TIDINGS_"),
            "names the variable: {message}"
        );
    }
}

#[tokio::test]
async fn without_demo_mode_the_demo_endpoints_do_not_exist() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/demo/v1/identities"))
        .send()
        .await
        .expect("test request");
    assert_error(res, 404, "route_missing").await;
    for path in ["/demo/v1/token", "/demo/v1/notify"] {
        assert_error(
            post(&app, path, json!({"id": "ada"})).await,
            404,
            "route_missing",
        )
        .await;
    }
    let html = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .expect("test request")
        .text()
        .await
        .expect("test request");
    assert!(html.contains(r#""demo":false"#), "{html}");
}

#[tokio::test]
async fn a_demo_users_minted_token_reads_their_seeded_inbox_and_no_one_elses() {
    let app = demo_app().await;
    let html = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .expect("test request")
        .text()
        .await
        .expect("test request");
    assert!(html.contains(r#""demo":true"#));
    let (_, listing) = {
        let res = app
            .client
            .get(app.url("/demo/v1/identities"))
            .send()
            .await
            .expect("test request");
        (
            res.status(),
            res.json::<Value>().await.expect("test request"),
        )
    };
    let ada = listing["identities"]
        .as_array()
        .expect("test request")
        .iter()
        .find(|i| i["id"] == "ada")
        .expect("ada is a demo user");
    assert_eq!(ada["tenants"], json!(["acme", "globex"]));
    assert!(
        ada.get("grants").is_none(),
        "grant specs stay on the server"
    );

    let token = mint(&app, "ada").await;
    // Seeded: three items in each of her tenants, three without a tenant, and the three of
    // projects/apollo (Acme), which she follows.
    let feed = poll(&app, "/v1/users/ada/feeds/in-app-feed", &token, |b| {
        b["meta"]["total_count"] == 12
    })
    .await;
    let tenants: Vec<_> = feed["entries"]
        .as_array()
        .expect("test request")
        .iter()
        .map(|e| e["tenant"].clone())
        .collect();
    assert_eq!(tenants.iter().filter(|t| **t == "acme").count(), 6);
    assert_eq!(tenants.iter().filter(|t| **t == "globex").count(), 3);
    let (status, _) = as_token(&app, "/v1/users/grace/feeds/in-app-feed", &token).await;
    assert_eq!(status, 403, "ada's token is not grace's");
}

#[tokio::test]
async fn demo_admins_see_the_objects_their_grants_name_and_are_refused_others() {
    let app = demo_app().await;
    let margaret = mint(&app, "margaret").await;
    let feed = poll(
        &app,
        "/v1/objects/projects/apollo/feeds/in-app-feed",
        &margaret,
        |b| b["meta"]["total_count"] == 3,
    )
    .await;
    assert!(
        feed["entries"]
            .as_array()
            .expect("test request")
            .iter()
            .all(|e| e["tenant"] == "acme")
    );
    let katherine = mint(&app, "katherine").await;
    let (status, _) = as_token(
        &app,
        "/v1/objects/projects/apollo/feeds/in-app-feed",
        &katherine,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = as_token(
        &app,
        "/v1/objects/projects/gemini/feeds/in-app-feed",
        &katherine,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "authorization");
}

#[tokio::test]
async fn the_notify_button_reaches_a_demo_user_in_one_of_their_tenants_or_a_demo_object() {
    let app = demo_app().await;
    let token = mint(&app, "alan").await;
    // Six of his own, and the three of projects/voyager (Globex), which he follows.
    poll(&app, "/v1/users/alan/feeds/in-app-feed", &token, |b| {
        b["meta"]["total_count"] == 9
    })
    .await;
    let res = post(
        &app,
        "/demo/v1/notify",
        json!({"user_id": "alan", "tenant": "globex"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("test request");
    assert!(body["workflow_run_id"].is_string());
    poll(
        &app,
        "/v1/users/alan/feeds/in-app-feed?tenant=globex&has_tenant=true",
        &token,
        |b| b["meta"]["total_count"] == 7,
    )
    .await;
    // A notification to an object reaches its followers too.
    let res = post(
        &app,
        "/demo/v1/notify",
        json!({"collection": "projects", "object_id": "voyager"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    poll(&app, "/v1/users/alan/feeds/in-app-feed", &token, |b| {
        b["meta"]["total_count"] == 11
    })
    .await;
}

#[tokio::test]
async fn demo_endpoints_refuse_bad_input_in_knocks_shape_and_send_nothing() {
    let app = demo_app().await;
    for (path, body, status, code) in [
        (
            "/demo/v1/token",
            json!({"id": "root"}),
            422,
            "invalid_params",
        ),
        ("/demo/v1/token", json!({"id": 5}), 422, "invalid_params"),
        ("/demo/v1/token", json!({}), 422, "invalid_params"),
        (
            "/demo/v1/token",
            json!({"id": "ada", "grants": ["tenant:globex"]}),
            422,
            "invalid_params",
        ),
        ("/demo/v1/notify", json!({}), 422, "invalid_params"),
        (
            "/demo/v1/notify",
            json!({"user_id": "nobody"}),
            422,
            "invalid_params",
        ),
        (
            "/demo/v1/notify",
            json!({"user_id": "margaret"}),
            422,
            "invalid_params",
        ),
        (
            "/demo/v1/notify",
            json!({"user_id": "alan", "tenant": "acme"}),
            422,
            "invalid_params",
        ),
        (
            "/demo/v1/notify",
            json!({"user_id": "alan", "collection": "projects", "object_id": "apollo"}),
            422,
            "invalid_params",
        ),
        (
            "/demo/v1/notify",
            json!({"collection": "projects", "object_id": "nope"}),
            422,
            "invalid_params",
        ),
        (
            "/demo/v1/notify",
            json!({"collection": "projects"}),
            422,
            "invalid_params",
        ),
    ] {
        let res = post(&app, path, body.clone()).await;
        let actual = res.status().as_u16();
        let got: Value = res.json().await.expect("test request");
        assert_eq!(
            (actual, got["code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {got}"
        );
    }
    let res = app
        .client
        .post(app.url("/demo/v1/token"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("test request");
    assert_error(res, 400, "invalid_json").await;
    // Nothing was sent: the refusals come before the engine is asked, so after one good
    // notify alan has exactly his nine seeded items plus that one.
    let token = mint(&app, "alan").await;
    let res = post(&app, "/demo/v1/notify", json!({"user_id": "alan"})).await;
    assert_eq!(res.status(), 200);
    poll(&app, "/v1/users/alan/feeds/in-app-feed", &token, |b| {
        b["meta"]["total_count"] == 10
    })
    .await;
    let (_, again) = as_token(&app, "/v1/users/alan/feeds/in-app-feed", &token).await;
    assert_eq!(again["meta"]["total_count"], 10);
}
