//! Issue 8, request limits: every list in a body has a cap checked before other work
//! (items 2 and 6), unsafe URLs do not survive entity-encoding (item 8).

use reqwest::Method;
use serde_json::{Value, json};

use crate::feed_support::{as_browser, comment};
use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn a_bulk_update_naming_120000_users_is_refused_before_any_other_work() {
    let app = spawn_app().await;
    let ids: Vec<String> = (0..120_000).map(|i| format!("user-{i}")).collect();
    // A user token for someone else, and a channel that does not exist: the cap answers
    // first, so neither the authorization nor the channel lookup (nor a dedup of 120,000
    // ids) ran.
    for channel in ["in-app-feed", "no-such-channel"] {
        let res = as_browser(
            &app,
            Method::POST,
            &format!("/v1/channels/{channel}/messages/bulk/seen"),
            "u1",
            Value::Null,
        )
        .json(&json!({ "user_ids": ids }))
        .send()
        .await
        .expect("bulk request");
        let body = assert_error(res, 422, "invalid_params").await;
        assert_eq!(body["errors"][0]["field"], "user_ids", "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("at most 1000"),
            "{body}"
        );
    }
    // At the cap, the request goes on to authorization (a token may only name itself).
    let at_cap: Vec<String> = ids[..1000].to_vec();
    let res = as_browser(
        &app,
        Method::POST,
        "/v1/channels/in-app-feed/messages/bulk/seen",
        "u1",
        Value::Null,
    )
    .json(&json!({ "user_ids": at_cap }))
    .send()
    .await
    .expect("bulk request");
    assert_error(res, 403, "authorization").await;
}

#[tokio::test]
async fn oversized_filter_lists_are_422_not_sqlite_500s() {
    let app = spawn_app().await;
    comment(&app, json!(["u1"]), json!({}), None).await;
    app.wait_for_feed("u1", "", 1).await;
    let many = |n: usize| -> Vec<String> { (0..n).map(|i| format!("v{i}")).collect() };
    let keys: serde_json::Map<String, Value> =
        (0..20_000).map(|i| (format!("k{i}"), json!(i))).collect();
    for (field, body) in [
        (
            "tenants",
            json!({"user_ids": ["u1"], "tenants": many(40_000)}),
        ),
        (
            "workflows",
            json!({"user_ids": ["u1"], "workflows": many(40_000)}),
        ),
        (
            "trigger_data",
            json!({"user_ids": ["u1"], "trigger_data": keys}),
        ),
        ("tenants", json!({"user_ids": ["u1"], "tenants": many(101)})),
        (
            "engagement_status",
            json!({"user_ids": ["u1"], "engagement_status": many(101)}),
        ),
    ] {
        let res = as_browser(
            &app,
            Method::POST,
            "/v1/channels/in-app-feed/messages/bulk/seen",
            "u1",
            Value::Null,
        )
        .json(&body)
        .send()
        .await
        .expect("bulk request");
        let err = assert_error(res, 422, "invalid_params").await;
        assert_eq!(err["errors"][0]["field"], field, "{err}");
    }
    // The same caps hold on the secret-key path and on message listing queries.
    let res = app
        .post(
            "/v1/channels/in-app-feed/messages/bulk/read",
            json!({"tenants": many(40_000)}),
        )
        .send()
        .await
        .expect("bulk request");
    assert_error(res, 422, "invalid_params").await;
    let res = app
        .post(
            "/v1/messages/batch/seen",
            json!({"message_ids": many(1001)}),
        )
        .send()
        .await
        .expect("batch request");
    assert_error(res, 422, "invalid_params").await;
    // Within the caps, nothing changes: 100 tenants and 50 trigger_data keys are fine.
    let keys: serde_json::Map<String, Value> =
        (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
    let (status, body) = app
        .post_json(
            "/v1/channels/in-app-feed/messages/bulk/seen",
            json!({"user_ids": ["u1"], "tenants": many(100), "trigger_data": keys}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A workflow whose URL fields and button label come straight from `data`.
async fn put_link_workflow(app: &crate::helpers::TestApp) {
    let (status, body) = app
        .put_json(
            "/v1/workflows/link-check",
            json!({"workflow": {"name": "Links", "steps": [{
                "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed",
                "channel_type": "in_app_feed", "template": {
                    "markdown_body": "link",
                    "action_url": "{{ data.url }}",
                    "action_buttons": [{"label": "{{ data.label }}", "action": "{{ data.url }}"}]
                }
            }]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn entity_encoded_and_control_character_javascript_urls_are_emptied() {
    let app = spawn_app().await;
    put_link_workflow(&app).await;
    let cases = [
        ("javascript&colon;alert(1)", ""),
        ("jav&#x09;ascript:alert(1)", ""),
        ("&#106;avascript:alert(1)", ""),
        ("java\u{0}script:alert(1)", ""),
        ("\u{1}javascript:alert(1)", ""),
        ("data:text/html,x", ""),
        ("tel:+15555550100", ""),
        (
            "https://example.com/a?b=1&amp;c=2",
            "https://example.com/a?b=1&c=2",
        ),
        ("mailto:a@example.com", "mailto:a@example.com"),
        ("/relative/path", "/relative/path"),
    ];
    for (i, (url, _)) in cases.iter().enumerate() {
        let user = format!("u{i}");
        app.trigger(
            "link-check",
            json!({"recipients": [user], "data": {"url": url, "label": "<b onclick=x>Go</b>"}}),
        )
        .await;
    }
    for (i, (url, expected)) in cases.iter().enumerate() {
        let feed = app.wait_for_feed(&format!("u{i}"), "", 1).await;
        let blocks = &feed["entries"][0]["blocks"];
        assert_eq!(blocks[1]["rendered"], *expected, "action_url for {url:?}");
        assert_eq!(
            blocks[2]["buttons"][0]["action"], *expected,
            "button for {url:?}"
        );
        assert_eq!(
            blocks[2]["buttons"][0]["label"], "&lt;b onclick=x&gt;Go&lt;/b&gt;",
            "label for {url:?}"
        );
    }
}
