//! Issue 21 item 5: `GET /v1/messages/{id}/content` and `GET /v1/messages/batch/content`
//! as in Knock's API (they answered 501 before), with a message read's access rules;
//! the official node SDK's `messages.getContent` against them (`tests/js/content_sdk.mjs`).

use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PUBLIC_KEY, TestApp, assert_error, installed_node_sdk, spawn_app};

async fn comment(app: &TestApp, user: &str, tenant: Option<&str>) -> Value {
    let mut body = json!({"recipients": [user],
        "data": {"page_title": "Docs", "page_url": "https://example.com/d", "comment_preview": "hi"}});
    if let Some(t) = tenant {
        body["tenant"] = json!(t);
    }
    app.trigger("new-comment", body).await;
    let feed = app.wait_for_feed(user, "", 1).await;
    feed["entries"][0].clone()
}

#[tokio::test]
async fn content_is_the_messages_blocks_in_knocks_shape() {
    let app = spawn_app().await;
    let item = comment(&app, "ann", None).await;
    let id = item["id"].as_str().expect("id");
    let (status, content) = app.get_json(&format!("/v1/messages/{id}/content")).await;
    assert_eq!(status, 200, "{content}");
    let (_, message) = app.get_json(&format!("/v1/messages/{id}")).await;
    assert_eq!(
        content,
        json!({
            "__typename": "MessageContent",
            "message_id": id,
            "inserted_at": message["inserted_at"],
            "data": {"__typename": "MessageInAppFeedContent", "blocks": item["blocks"]},
        })
    );
    assert!(
        content["data"]["blocks"][0]["rendered"]
            .as_str()
            .is_some_and(|r| r.contains("Docs")),
        "{content}"
    );
}

#[tokio::test]
async fn content_follows_a_message_reads_access_rules() {
    let app = spawn_app().await;
    let ann = comment(&app, "ann", None).await;
    let id = ann["id"].as_str().expect("id");
    let path = format!("/v1/messages/{id}/content");
    // The recipient's own token reads it; another user's token answers as a message read.
    let res = app
        .as_user(Method::GET, &path, "ann")
        .send()
        .await
        .expect("own");
    assert_eq!(res.status(), 200);
    let other = app
        .as_user(Method::GET, &path, "bob")
        .send()
        .await
        .expect("other");
    let read = app
        .as_user(Method::GET, &format!("/v1/messages/{id}"), "bob")
        .send()
        .await
        .expect("read");
    let (status, read_code) = (read.status(), read.json::<Value>().await.expect("json"));
    assert_ne!(status, 200);
    assert_error(
        other,
        status.as_u16(),
        read_code["code"].as_str().unwrap_or(""),
    )
    .await;
    // No key, an unknown key, and the public key without a token.
    let res = app.client.get(app.url(&path)).send().await.expect("no key");
    assert_error(res, 401, "authentication_required").await;
    let res = app
        .client
        .get(app.url(&path))
        .bearer_auth("sk_nope")
        .send()
        .await
        .expect("unknown key");
    assert_error(res, 401, "api_key_missing").await;
    let res = app
        .client
        .get(app.url(&path))
        .bearer_auth(PUBLIC_KEY)
        .send()
        .await
        .expect("public key");
    assert!(res.status().is_client_error(), "{}", res.status());
    // An unknown message is a 404 in Knock's shape.
    let res = app
        .get("/v1/messages/00000000-0000-4000-8000-000000000000/content")
        .send()
        .await
        .expect("unknown");
    assert_error(res, 404, "resource_missing").await;
}

#[tokio::test]
async fn batch_content_answers_readable_messages_in_the_order_named() {
    let app = spawn_app().await;
    let ann = comment(&app, "ann", None).await;
    let bob = comment(&app, "bob", None).await;
    let (a, b) = (
        ann["id"].as_str().expect("a").to_owned(),
        bob["id"].as_str().expect("b").to_owned(),
    );
    let path = format!(
        "/v1/messages/batch/content?message_ids[]={b}&message_ids[]=nope&message_ids[]={a}&message_ids[]={b}"
    );
    let (status, body) = app.get_json(&path).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|c| c["message_id"].as_str())
        .collect();
    assert_eq!(ids, [b.as_str(), a.as_str()]);
    assert_eq!(body[0]["data"]["blocks"], bob["blocks"]);
    // A user token gets only its own messages; others' are left out like unknown ids.
    let res = app
        .as_user(
            Method::GET,
            &format!("/v1/messages/batch/content?message_ids[]={a}&message_ids[]={b}"),
            "ann",
        )
        .send()
        .await
        .expect("as ann");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body[0]["message_id"], a.as_str());
}

#[tokio::test]
async fn bad_batch_content_queries_are_422_in_knocks_shape() {
    let app = spawn_app().await;
    let too_many: String = (0..51).map(|i| format!("message_ids[]=m{i}&")).collect();
    for query in [
        String::new(),
        "message_ids=".to_owned(),
        "message_ids[a]=x".to_owned(),
        too_many,
    ] {
        let res = app
            .get(&format!("/v1/messages/batch/content?{query}"))
            .send()
            .await
            .expect("request");
        let body = assert_error(res, 422, "invalid_params").await;
        assert!(body.to_string().contains("message_ids"), "{query}: {body}");
    }
    let res = app
        .client
        .get(app.url("/v1/messages/batch/content?message_ids[]=x"))
        .send()
        .await
        .expect("no key");
    assert_error(res, 401, "authentication_required").await;
}

#[tokio::test]
async fn the_official_node_sdk_reads_message_content() {
    let js = installed_node_sdk();
    let app = spawn_app().await;
    app.run_sdk_script(
        PathBuf::from("node"),
        js.join("content_sdk.mjs"),
        "content sdk: ok",
    )
    .await;
}
