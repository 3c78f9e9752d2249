//! Issue 21 item 4: translations as Knock does them. The management endpoints (secret
//! key, bad input 422 in Knock's shape with nothing stored), the directory in
//! knock-cli's layout, and the `t` filter and tag through the official node SDK's
//! trigger in English, French and a tenant override (`tests/js/translations_sdk.mjs`).

use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};

use crate::db;
use crate::helpers::{
    TestApp, assert_error, assert_rejects_bad_credentials, installed_node_sdk, spawn_app,
    spawn_app_with,
};

async fn put_translation(app: &TestApp, path: &str, content: Value) -> Value {
    let (status, body) = app
        .put_json(
            path,
            json!({"translation": {"content": content.to_string(), "format": "json"}}),
        )
        .await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn setup(app: &TestApp) {
    put_translation(
        app,
        "/v1/translations/en?environment=development",
        json!({"greeting": "Hello, {{ name }}!",
               "messages": {"one": "You have {{ count }} message.", "other": "You have {{ count }} messages."}}),
    )
    .await;
    put_translation(
        app,
        "/v1/translations/fr?environment=development",
        json!({"greeting": "Bonjour, {{ name }} !",
               "messages": {"one": "Vous avez {{ count }} message.", "other": "Vous avez {{ count }} messages."}}),
    )
    .await;
    put_translation(
        app,
        "/v1/translations/fr?namespace=inbox&environment=development",
        json!({"title": "Boîte"}),
    )
    .await;
    put_translation(
        app,
        "/v1/translations/fr?tenant=acme&environment=development",
        json!({"greeting": "Salut {{ name }}, de la part d'Acme !"}),
    )
    .await;
    let body = "{{ \"greeting\" | t: name: recipient.name }} \
                {% t \"messages\" count: data.n %} {{ \"missing:key\" | t }}";
    let (status, res) = app
        .put_json(
            "/v1/workflows/translated",
            json!({"workflow": {"name": "Translated", "steps": [{
                "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed",
                "channel_type": "in_app_feed", "template": {"markdown_body": body}}]}}),
        )
        .await;
    assert_eq!(status, 200, "{res}");
}

#[tokio::test]
async fn translations_are_stored_listed_and_read_in_knocks_shape() {
    let app = spawn_app().await;
    setup(&app).await;
    let (status, one) = app
        .get_json("/v1/translations/fr?namespace=inbox&environment=development")
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["translation"]["locale_code"], "fr");
    assert_eq!(one["translation"]["namespace"], "inbox");
    assert_eq!(one["translation"]["format"], "json");
    assert_eq!(
        one["translation"]["content"],
        json!({"title": "Boîte"}).to_string()
    );
    assert!(one["translation"]["inserted_at"].is_string());
    let (_, tenant) = app.get_json("/v1/translations/fr?tenant=acme").await;
    assert_eq!(tenant["translation"]["tenant"], "acme");
    let (status, list) = app
        .get_json("/v1/translations?environment=development")
        .await;
    assert_eq!(status, 200, "{list}");
    let entries = list["entries"].as_array().expect("entries");
    let keys: Vec<(String, String, Value)> = entries
        .iter()
        .map(|e| {
            (
                e["locale_code"].as_str().unwrap_or_default().to_owned(),
                e["namespace"].as_str().unwrap_or_default().to_owned(),
                e["tenant"].clone(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("en".into(), "".into(), Value::Null),
            ("fr".into(), "".into(), Value::Null),
            ("fr".into(), "".into(), json!("acme")),
            ("fr".into(), "inbox".into(), Value::Null),
        ]
    );
    assert_eq!(list["page_info"]["page_size"], 50);
    let (_, filtered) = app
        .get_json("/v1/translations?locale_code=fr&tenant=acme")
        .await;
    assert_eq!(filtered["entries"].as_array().map(Vec::len), Some(1));
    let res = app.get("/v1/translations/de").send().await.expect("get");
    assert_error(res, 404, "resource_missing").await;
}

#[tokio::test]
async fn bad_translation_input_is_422_and_stores_nothing() {
    let app = spawn_app().await;
    setup(&app).await;
    let before = app.stored("/v1/translations?limit=1000").await;
    let good = |content: Value| json!({"translation": {"content": content.to_string()}});
    for (path, body, field) in [
        (
            "/v1/translations/english",
            good(json!({"a": "b"})),
            "locale_code",
        ),
        (
            "/v1/translations/en?namespace=a:b",
            good(json!({"a": "b"})),
            "namespace",
        ),
        (
            "/v1/translations/en?tenant=a/b",
            good(json!({"a": "b"})),
            "tenant",
        ),
        (
            "/v1/translations/en?format=po",
            good(json!({"a": "b"})),
            "format",
        ),
        (
            "/v1/translations/en",
            json!({"translation": {"content": "{not json"}}),
            "translation.content",
        ),
        (
            "/v1/translations/en",
            json!({"translation": {"content": "[1]"}}),
            "translation.content",
        ),
        (
            "/v1/translations/en",
            good(json!({"a": 1})),
            "translation.content",
        ),
        (
            "/v1/translations/en",
            json!({"translation": {"content": 5}}),
            "translation.content",
        ),
        (
            "/v1/translations/en",
            json!({"translation": {"content": "{}", "format": "po"}}),
            "translation.format",
        ),
        (
            "/v1/translations/en",
            json!({"content": "{}"}),
            "translation",
        ),
        (
            "/v1/translations/en",
            good(json!({"a": "x".repeat(300_000)})),
            "translation.content",
        ),
    ] {
        let res = app.put(path, body).send().await.expect("put");
        let error = assert_error(res, 422, "invalid_params").await;
        assert!(error.to_string().contains(field), "{path}: {error}");
    }
    let res = app
        .server(Method::PUT, "/v1/translations/en")
        .header("content-type", "application/json")
        .body("{\"translation\": ")
        .send()
        .await
        .expect("malformed");
    assert_eq!(res.status(), 400);
    for (status, query) in [
        (422, "limit=0"),
        (422, "limit=x"),
        (422, "locale_code=!!"),
        (422, "format=po"),
    ] {
        let (s, body) = app.get_json(&format!("/v1/translations?{query}")).await;
        assert_eq!(s, status, "{query}: {body}");
    }
    assert_rejects_bad_credentials(
        &app,
        Method::PUT,
        "/v1/translations/en",
        Some(&good(json!({"a": "b"}))),
    )
    .await;
    assert_rejects_bad_credentials(&app, Method::GET, "/v1/translations", None).await;
    assert_rejects_bad_credentials(&app, Method::GET, "/v1/translations/en", None).await;
    assert_eq!(app.stored("/v1/translations?limit=1000").await, before);
}

#[tokio::test]
async fn the_official_node_sdk_triggers_translated_messages() {
    let js = installed_node_sdk();
    let app = spawn_app().await;
    setup(&app).await;
    app.run_sdk_script(
        PathBuf::from("node"),
        js.join("translations_sdk.mjs"),
        "translations sdk: ok",
    )
    .await;
    // The missing key is in each recipient's run record.
    let missing = db::count(
        &app.db_path,
        "SELECT COUNT(*) FROM workflow_recipient_runs WHERE events LIKE '%\"translation_missing\"%' \
         AND events LIKE '%missing:key%'",
    );
    assert_eq!(missing, 4);
}

#[tokio::test]
async fn translations_load_from_knock_clis_directory_beside_workflows() {
    let app = spawn_app_with(|settings| {
        // A knock-cli project in the app's temp dir: `workflows/` and `translations/`.
        let root = settings.db.parent().expect("a parent").join("project");
        std::fs::create_dir_all(root.join("workflows")).expect("mkdir");
        settings.workflows = root.join("workflows");
        let fr = root.join("translations/fr");
        std::fs::create_dir_all(&fr).expect("mkdir");
        std::fs::write(fr.join("fr.json"), r#"{"hello": "Bonjour"}"#).expect("write");
        std::fs::write(fr.join("admin.fr.json"), r#"{"hello": "Bonjour, admin"}"#).expect("write");
        std::fs::write(fr.join("notes.txt"), "not a translation").expect("write");
    })
    .await;
    let (status, list) = app.get_json("/v1/translations").await;
    assert_eq!(status, 200, "{list}");
    let got: Vec<(&str, &str, &str)> = list["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["locale_code"].as_str().unwrap_or_default(),
                e["namespace"].as_str().unwrap_or_default(),
                e["content"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("fr", "", r#"{"hello": "Bonjour"}"#),
            ("fr", "admin", r#"{"hello": "Bonjour, admin"}"#)
        ]
    );
}

#[tokio::test]
async fn the_default_locale_is_a_setting_and_a_run_reads_translations_as_they_were() {
    let app = spawn_app_with(|settings| settings.default_locale = "fr".into()).await;
    setup(&app).await;
    app.identify("nadia", json!({"name": "Nadia"})).await;
    app.identify("ada", json!({"name": "Ada", "locale": "en-GB"}))
        .await;
    app.trigger(
        "translated",
        json!({"recipients": ["nadia", "ada"], "data": {"n": 0}}),
    )
    .await;
    let body = |feed: Value| {
        feed["entries"][0]["blocks"][0]["rendered"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // No locale: the default (French, where 0 takes `one`); `en-GB` falls back to `en`.
    assert_eq!(
        body(app.wait_for_feed("nadia", "", 1).await),
        "<p>Bonjour, Nadia ! Vous avez 0 message. missing:key</p>\n"
    );
    assert_eq!(
        body(app.wait_for_feed("ada", "", 1).await),
        "<p>Hello, Ada! You have 0 messages. missing:key</p>\n"
    );
    // A new translation is used by the next run: the `missing` namespace now has `key`.
    put_translation(
        &app,
        "/v1/translations/en?namespace=missing",
        json!({"key": "found"}),
    )
    .await;
    app.trigger(
        "translated",
        json!({"recipients": ["ada"], "data": {"n": 2}}),
    )
    .await;
    let feed = app.wait_for_feed("ada", "", 2).await;
    assert_eq!(
        body(feed),
        "<p>Hello, Ada! You have 2 messages. found</p>\n"
    );
}
