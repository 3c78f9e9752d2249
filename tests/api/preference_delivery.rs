//! Preferences decide delivery (spec §5.3): an opted-out recipient gets no feed item, the
//! skip is recorded on its recipient run, and everyone else in the run still gets theirs.

use serde_json::{Value, json};

use crate::db;
use crate::helpers::{TestApp, spawn_app};

fn comment(recipients: Value) -> Value {
    json!({"recipients": recipients, "data": {"page_title": "Doc", "page_url": "https://example.com/doc", "comment_preview": "hi"}})
}

async fn feed_len(app: &TestApp, user: &str, query: &str) -> usize {
    let body: Value = app
        .get_json(&format!("/v1/users/{user}/feeds/in-app-feed?{query}"))
        .await
        .1;
    body["entries"].as_array().map_or(0, Vec::len)
}

/// Triggers and waits for the run to finish; returns the run id.
async fn trigger_and_wait(app: &TestApp, workflow: &str, body: Value) -> String {
    let run = app.trigger(workflow, body).await;
    assert_eq!(db::wait_for_run(&app.db_path, &run).await, "completed");
    run
}

fn skipped_setting(app: &TestApp, run: &str, user: &str) -> Option<String> {
    db::recipient_runs(&app.db_path, run)
        .into_iter()
        .find(|(id, _, _)| id == user)
        .and_then(|(_, _, events)| {
            events
                .as_array()?
                .iter()
                .find(|e| e["event"] == "step_skipped")
                .map(|e| {
                    assert_eq!(e["data"]["reason"], "preferences", "{e}");
                    e["data"]["setting"].as_str().unwrap_or_default().to_owned()
                })
        })
}

#[tokio::test]
async fn a_channel_type_opt_out_skips_the_item_and_records_why() {
    let app = spawn_app().await;
    app.put(
        "/v1/users/muted/preferences/default",
        json!({"channel_types": {"in_app_feed": false}}),
    )
    .send()
    .await
    .expect("prefs");
    let run = trigger_and_wait(&app, "new-comment", comment(json!(["muted", "listener"]))).await;
    assert_eq!(feed_len(&app, "muted", "").await, 0);
    assert_eq!(feed_len(&app, "listener", "").await, 1);
    let setting = skipped_setting(&app, &run, "muted").expect("the skip is recorded");
    assert!(setting.contains("in_app_feed"), "{setting}");
    assert_eq!(skipped_setting(&app, &run, "listener"), None);
}

#[tokio::test]
async fn a_category_opt_out_blocks_even_when_the_channel_type_is_on() {
    let app = spawn_app().await;
    let prefs =
        json!({"channel_types": {"in_app_feed": true}, "categories": {"collaboration": false}});
    app.put("/v1/users/u1/preferences/default", prefs)
        .send()
        .await
        .expect("prefs");
    let run = trigger_and_wait(&app, "new-comment", comment(json!(["u1"]))).await;
    assert_eq!(feed_len(&app, "u1", "").await, 0);
    assert_eq!(
        skipped_setting(&app, &run, "u1").as_deref(),
        Some("categories.collaboration")
    );
}

#[tokio::test]
async fn a_per_tenant_set_applies_only_to_that_tenants_runs() {
    let app = spawn_app().await;
    app.put(
        "/v1/users/u1/preferences/acme",
        json!({"channel_types": {"in_app_feed": false}}),
    )
    .send()
    .await
    .expect("prefs");
    let mut body = comment(json!(["u1"]));
    body["tenant"] = json!("acme");
    trigger_and_wait(&app, "new-comment", body).await;
    trigger_and_wait(&app, "new-comment", comment(json!(["u1"]))).await;
    assert_eq!(
        feed_len(&app, "u1", "has_tenant=false").await,
        1,
        "the no-tenant run delivered"
    );
    assert_eq!(
        feed_len(&app, "u1", "has_tenant=true").await,
        0,
        "the acme run was skipped"
    );
}

#[tokio::test]
async fn a_tenant_default_marked_replace_beats_the_users_own_setting() {
    let app = spawn_app().await;
    let tenant = json!({"settings": {"preference_set": {
        "categories": {"collaboration": {"__strategy__": "replace", "channel_types": {"in_app_feed": false}}}
    }}});
    assert_eq!(
        app.put("/v1/tenants/strict", tenant)
            .send()
            .await
            .expect("tenant")
            .status(),
        200
    );
    app.put(
        "/v1/users/u1/preferences/strict",
        json!({"categories": {"collaboration": true}}),
    )
    .send()
    .await
    .expect("prefs");
    let mut body = comment(json!(["u1"]));
    body["tenant"] = json!("strict");
    trigger_and_wait(&app, "new-comment", body).await;
    assert_eq!(feed_len(&app, "u1", "").await, 0);
}

#[tokio::test]
async fn a_workflow_that_overrides_preferences_delivers_to_opted_out_users() {
    let app = spawn_app().await;
    let workflow = json!({"workflow": {"name": "Security alert", "settings": {"override_preferences": true}, "steps": [{
        "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed", "channel_type": "in_app_feed",
        "template": {"markdown_body": "New sign-in"}}]}});
    let res = app
        .put("/v1/workflows/security-alert", workflow)
        .send()
        .await
        .expect("upsert");
    assert!(
        res.status().is_success(),
        "{}",
        res.text().await.unwrap_or_default()
    );
    app.put(
        "/v1/users/u1/preferences/default",
        json!({"channel_types": {"in_app_feed": false}}),
    )
    .send()
    .await
    .expect("prefs");
    trigger_and_wait(&app, "security-alert", json!({"recipients": ["u1"]})).await;
    assert_eq!(feed_len(&app, "u1", "").await, 1);
}

#[tokio::test]
async fn inline_trigger_preferences_are_merged_before_the_run() {
    let app = spawn_app().await;
    let recipient = json!({"id": "inline", "preferences": {"default": {"categories": {"collaboration": false}}}});
    trigger_and_wait(&app, "new-comment", comment(json!([recipient]))).await;
    assert_eq!(feed_len(&app, "inline", "").await, 0);
}
