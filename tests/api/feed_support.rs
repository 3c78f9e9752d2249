//! Helpers for the feed and message suites: creating feed items through the real trigger
//! endpoint, reading feeds, and recounting badges from the entries themselves.
#![allow(dead_code)]

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, user_token};

/// Triggers `new-comment` for `recipients` (with an inline actor) and returns the run id.
pub async fn comment(
    app: &TestApp,
    recipients: Value,
    data: Value,
    tenant: Option<&str>,
) -> String {
    let mut payload = json!({
        "page_title": "Launch plan",
        "page_url": "https://example.com/p/1",
        "comment_preview": "Looks great",
    });
    if let (Some(base), Some(extra)) = (payload.as_object_mut(), data.as_object()) {
        base.extend(extra.clone());
    }
    let mut body = json!({
        "recipients": recipients,
        "actor": {"id": "grace", "name": "Grace Hopper", "email": "grace@example.com"},
        "data": payload,
    });
    if let Some(t) = tenant {
        body["tenant"] = json!(t);
    }
    app.trigger("new-comment", body).await
}

/// Triggers `project-invite` (categories collaboration + invites) for one user.
pub async fn invite(app: &TestApp, user: &str, tenant: Option<&str>) -> String {
    let mut body = json!({
        "recipients": [user],
        "data": {"project_name": "Apollo", "invite_url": "https://example.com/i/1"},
    });
    if let Some(t) = tenant {
        body["tenant"] = json!(t);
    }
    app.trigger("project-invite", body).await
}

/// `GET` a user's in-app feed with the secret key; asserts 200.
pub async fn feed(app: &TestApp, user: &str, query: &str) -> Value {
    let res = app
        .get(&format!("/v1/users/{user}/feeds/in-app-feed?{query}"))
        .send()
        .await
        .expect("feed request");
    let status = res.status();
    let body: Value = res.json().await.expect("feed JSON");
    assert_eq!(status, 200, "feed failed: {body}");
    body
}

/// Creates `n` comments for `user` one after another and waits until all are in the feed.
pub async fn seed(app: &TestApp, user: &str, n: usize) -> Value {
    for i in 0..n {
        comment(app, json!([user]), json!({"n": i}), None).await;
    }
    let body = app.wait_for_feed(user, "archived=include", n).await;
    assert_eq!(entries(&body).len(), n, "seeded feed: {body}");
    body
}

pub fn entries(body: &Value) -> Vec<Value> {
    body["entries"].as_array().cloned().unwrap_or_default()
}

pub fn ids(body: &Value) -> Vec<String> {
    entries(body)
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Counts recomputed from every entry of the feed (archived included): for each view
/// query, `meta` must equal what the entries say.
pub async fn assert_counts_exact(app: &TestApp, user: &str) {
    let all = feed(app, user, "archived=include&page_size=50").await;
    let items = entries(&all);
    assert!(items.len() < 50, "recount needs one page");
    let count = |pred: &dyn Fn(&Value) -> bool| items.iter().filter(|e| pred(e)).count() as i64;
    let active = |e: &Value| e["archived_at"].is_null();
    for (query, total, unread, unseen) in [
        (
            "",
            count(&active),
            count(&|e| active(e) && e["read_at"].is_null()),
            count(&|e| active(e) && e["seen_at"].is_null()),
        ),
        (
            "archived=include",
            count(&|_| true),
            count(&|e| e["read_at"].is_null()),
            count(&|e| e["seen_at"].is_null()),
        ),
        (
            "archived=only",
            count(&|e| !active(e)),
            count(&|e| !active(e) && e["read_at"].is_null()),
            count(&|e| !active(e) && e["seen_at"].is_null()),
        ),
        (
            "status=unread",
            count(&|e| active(e) && e["read_at"].is_null()),
            count(&|e| active(e) && e["read_at"].is_null()),
            count(&|e| active(e) && e["seen_at"].is_null()),
        ),
    ] {
        let body = feed(app, user, query).await;
        let meta = &body["meta"];
        assert_eq!(
            (
                meta["total_count"].as_i64(),
                meta["unread_count"].as_i64(),
                meta["unseen_count"].as_i64()
            ),
            (Some(total), Some(unread), Some(unseen)),
            "counts drifted for `{query}`: {meta}"
        );
        assert_eq!(body["page_info"]["total_count"], meta["total_count"]);
        assert_eq!(
            entries(&body).len() as i64,
            total,
            "entries vs total for `{query}`"
        );
    }
}

/// A browser request: public key plus `user`'s token with `grants`.
pub fn as_browser(
    app: &TestApp,
    method: Method,
    path: &str,
    user: &str,
    grants: Value,
) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(crate::helpers::PUBLIC_KEY)
        .header("x-knock-user-token", user_token(user, grants))
}

/// The channel UUID of the default in-app feed, read from a message.
pub async fn channel_id(app: &TestApp, message_id: &str) -> String {
    let msg: Value = app.get_json(&format!("/v1/messages/{message_id}")).await.1;
    msg["channel_id"].as_str().expect("channel_id").to_owned()
}

/// `GET /v1/messages/{id}` with the secret key; asserts 200.
pub async fn message(app: &TestApp, id: &str) -> Value {
    let res = app
        .get(&format!("/v1/messages/{id}"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    res.json().await.expect("JSON")
}

/// `PUT` with the secret key.
pub async fn put(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.put(path, body).send().await.expect("put")
}
