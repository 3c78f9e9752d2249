//! Reading messages: `GET /v1/messages/{id}`, the `{items}` lists (all, per user, per
//! object) with their filters, and a message's activities and events.

use reqwest::Method;
use serde_json::{Value, json};

use crate::feed_support::{as_browser, comment, ids, message, put};
use crate::helpers::{assert_error, assert_refuses_the_public_key, spawn_app};

#[tokio::test]
async fn a_message_has_knocks_message_shape() {
    let app = spawn_app().await;
    let run = comment(&app, json!(["ada"]), json!({"page_id": "p1"}), Some("acme")).await;
    let id = ids(&app.wait_for_feed("ada", "", 1).await)[0].clone();
    let m = message(&app, &id).await;
    assert_eq!(m["__typename"], "Message");
    assert_eq!(m["id"], json!(id));
    assert_eq!(m["recipient"], "ada");
    assert_eq!(m["actors"], json!(["grace"]));
    assert_eq!(m["workflow"], "new-comment");
    assert_eq!(m["tenant"], "acme");
    assert_eq!(m["status"], "delivered");
    assert_eq!(m["engagement_statuses"], json!([]));
    assert!(uuid::Uuid::parse_str(m["channel_id"].as_str().expect("channel")).is_ok());
    let source = &m["source"];
    assert_eq!(source["__typename"], "NotificationSource");
    assert_eq!(source["key"], "new-comment");
    assert_eq!(source["type"], "workflow");
    assert_eq!(source["step_ref"], "in_app_feed_1");
    assert_eq!(source["workflow_run_id"], json!(run));
    assert!(source["workflow_recipient_run_id"].is_string());
    assert_eq!(m["data"]["page_id"], "p1");
    assert_eq!(m["metadata"], json!({}));
    for field in [
        "read_at",
        "seen_at",
        "archived_at",
        "interacted_at",
        "link_clicked_at",
        "clicked_at",
        "scheduled_at",
    ] {
        assert!(m[field].is_null(), "{field}");
    }
    let missing = app
        .get("/v1/messages/2FVHPWxRqNuXQ9krvNP5A6Z4qXe")
        .send()
        .await
        .expect("get");
    assert_error(missing, 404, "resource_missing").await;
}

#[tokio::test]
async fn message_lists_use_the_items_envelope_and_need_the_secret_key() {
    let app = spawn_app().await;
    let run = comment(
        &app,
        json!(["ada", "bob"]),
        json!({"page_id": "p1"}),
        Some("acme"),
    )
    .await;
    comment(&app, json!(["ada"]), json!({"page_id": "p2"}), None).await;
    app.wait_for_feed("ada", "", 2).await;
    app.wait_for_feed("bob", "", 1).await;
    let list = |path: String| {
        let app = &app;
        async move {
            let res = app.get(&path).send().await.expect("list");
            let status = res.status();
            let body: Value = res.json().await.expect("JSON");
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };
    let all = list("/v1/messages".into()).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(all["items"][0]["__typename"], "Message");
    assert_eq!(all["page_info"]["__typename"], "PageInfo");
    assert_eq!(all["page_info"]["page_size"], 50);
    let ada = list("/v1/users/ada/messages".into()).await;
    assert_eq!(ada["items"].as_array().map(Vec::len), Some(2));
    let first_id = ada["items"][0]["id"].as_str().expect("id").to_owned();
    put(&app, &format!("/v1/messages/{first_id}/read"), json!({})).await;
    for (query, expected) in [
        (
            "/v1/users/ada/messages?engagement_status[]=read".to_owned(),
            1,
        ),
        (
            "/v1/users/ada/messages?engagement_status[]=unread".to_owned(),
            1,
        ),
        (format!("/v1/messages?workflow_run_id={run}"), 2),
        ("/v1/messages?tenant=acme".to_owned(), 2),
        (
            "/v1/messages?channel_id=in-app-feed&source=new-comment".to_owned(),
            3,
        ),
        ("/v1/messages?channel_id=unknown".to_owned(), 0),
        (format!("/v1/messages?message_ids[]={first_id}"), 1),
        ("/v1/messages?status[]=delivered".to_owned(), 3),
        ("/v1/messages?status[]=bounced".to_owned(), 0),
        (
            "/v1/messages?trigger_data=%7B%22page_id%22%3A%22p2%22%7D".to_owned(),
            1,
        ),
    ] {
        let body = list(query.clone()).await;
        assert_eq!(
            body["items"].as_array().map(Vec::len),
            Some(expected),
            "{query}"
        );
    }
    let page1 = list("/v1/messages?page_size=2".into()).await;
    let after = page1["page_info"]["after"]
        .as_str()
        .expect("more pages")
        .to_owned();
    let page2 = list(format!("/v1/messages?page_size=2&after={after}")).await;
    assert_eq!(page2["items"].as_array().map(Vec::len), Some(1));
    assert!(page2["page_info"]["after"].is_null());
    let res = app
        .get("/v1/messages?page_size=500")
        .send()
        .await
        .expect("list");
    assert_error(res, 422, "invalid_params").await;
    let res = app
        .get("/v1/messages?engagement_status[]=nope")
        .send()
        .await
        .expect("list");
    assert_error(res, 422, "invalid_params").await;
    assert_refuses_the_public_key(&app, Method::GET, "/v1/messages", None).await;
    let browser = as_browser(
        &app,
        Method::GET,
        "/v1/users/ada/messages",
        "ada",
        json!(null),
    )
    .send()
    .await
    .expect("list");
    assert_error(browser, 403, "incorrect_token_type").await;
}

#[tokio::test]
async fn an_objects_messages_are_listed_for_the_secret_key_only() {
    let app = spawn_app().await;
    let project = json!({"id": "p1", "collection": "projects"});
    comment(&app, json!([project]), json!({}), None).await;
    let path = "/v1/objects/projects/p1/messages";
    let body = app
        .poll_json(path, |body| {
            body["items"].as_array().is_some_and(|i| !i.is_empty())
        })
        .await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(
        body["items"][0]["recipient"],
        json!({"id": "p1", "collection": "projects"})
    );
    let other: Value = app.get_json("/v1/objects/projects/p2/messages").await.1;
    assert_eq!(other["items"], json!([]));
    let res = app
        .get("/v1/objects/bad%20name/p1/messages")
        .send()
        .await
        .expect("list");
    assert_error(res, 422, "invalid_params").await;
    assert_refuses_the_public_key(&app, Method::GET, path, None).await;
}

#[tokio::test]
async fn a_messages_activities_and_events_reflect_its_trigger_and_statuses() {
    let app = spawn_app().await;
    comment(&app, json!(["ada"]), json!({"page_id": "p1"}), None).await;
    let id = ids(&app.wait_for_feed("ada", "", 1).await)[0].clone();
    put(&app, &format!("/v1/messages/{id}/read"), json!({})).await;
    let activities: Value = app
        .get_json(&format!("/v1/messages/{id}/activities"))
        .await
        .1;
    assert_eq!(activities["items"][0]["__typename"], "Activity");
    assert_eq!(activities["items"][0]["actor"]["name"], "Grace Hopper");
    assert_eq!(activities["items"][0]["recipient"]["id"], "ada");
    assert_eq!(activities["items"][0]["data"]["page_id"], "p1");
    assert_eq!(activities["page_info"]["__typename"], "PageInfo");
    let filtered: Value = app
        .get(&format!(
            "/v1/messages/{id}/activities?trigger_data=%7B%22page_id%22%3A%22p9%22%7D"
        ))
        .send()
        .await
        .expect("activities")
        .json()
        .await
        .expect("JSON");
    assert_eq!(filtered["items"], json!([]));
    let events: Value = app.get_json(&format!("/v1/messages/{id}/events")).await.1;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(kinds, vec!["message.read", "message.sent"]);
    assert_eq!(events["items"][0]["__typename"], "MessageEvent");
    assert_eq!(events["items"][0]["recipient"], "ada");
    let missing = app
        .get("/v1/messages/nope/events")
        .send()
        .await
        .expect("events");
    assert_error(missing, 404, "resource_missing").await;
    let other = as_browser(
        &app,
        Method::GET,
        &format!("/v1/messages/{id}/events"),
        "bob",
        json!(null),
    )
    .send()
    .await
    .expect("events");
    assert_error(other, 403, "authorization").await;
}
