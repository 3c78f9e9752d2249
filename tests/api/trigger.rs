//! `POST /v1/workflows/{key}/trigger`: acceptance, validation, idempotency, and what the
//! run produces (feed items with rendered, sanitized blocks).

use reqwest::Method;
use serde_json::{Value, json};

use crate::db;
use crate::helpers::{TestApp, assert_error, spawn_app};

fn comment_body(recipients: Value) -> Value {
    json!({
        "recipients": recipients,
        "actor": {"id": "grace", "name": "Grace Hopper"},
        "data": {"page_title": "Launch plan", "page_url": "https://example.com/p/1",
                 "comment_preview": "Looks great"},
    })
}

async fn post_trigger(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post(&format!("/v1/workflows/{key}/trigger"), body)
        .send()
        .await
        .expect("request")
}

/// POSTs a `new-comment` trigger with `body` under Idempotency-Key `key`.
async fn keyed_comment(app: &TestApp, body: Value, key: &str) -> reqwest::Response {
    app.post("/v1/workflows/new-comment/trigger", body)
        .header("idempotency-key", key)
        .send()
        .await
        .expect("request")
}

/// Runs are asynchronous: waits for the run, then returns its messages.
async fn run_messages(app: &TestApp, run_id: &str) -> Vec<db::Message> {
    assert_eq!(db::wait_for_run(&app.db_path, run_id).await, "completed");
    db::messages_of_run(&app.db_path, run_id)
}

#[tokio::test]
async fn trigger_answers_a_uuid_v4_run_id_and_creates_one_item_per_recipient() {
    let app = spawn_app().await;
    let run_id = app
        .trigger(
            "new-comment",
            comment_body(json!([{"id": "ada", "name": "Ada"}, {"id": "linus", "name": "Linus"}])),
        )
        .await;
    let uuid = uuid::Uuid::parse_str(&run_id).expect("uuid");
    assert_eq!(uuid.get_version_num(), 4);
    let messages = run_messages(&app, &run_id).await;
    assert_eq!(messages.len(), 2);
    let ada = messages
        .iter()
        .find(|m| m.recipient_id == "ada")
        .expect("ada's item");
    assert_eq!(ada.recipient_kind, "user");
    assert_eq!(ada.workflow_key, "new-comment");
    assert_eq!(ada.step_ref, "in_app_feed_1");
    assert_eq!(ada.categories, json!(["collaboration"]));
    assert_eq!(ada.actors, json!(["grace"]));
    assert_eq!(ada.data["page_title"], "Launch plan");
    let blocks = ada.blocks.as_array().expect("blocks");
    assert_eq!(blocks[0]["name"], "body");
    assert_eq!(blocks[0]["type"], "markdown");
    let html = blocks[0]["rendered"].as_str().expect("rendered");
    assert!(
        html.contains("<strong>Grace Hopper</strong> commented on <strong>Launch plan</strong>"),
        "{html}"
    );
    assert!(html.contains("<blockquote>"), "{html}");
    assert_eq!(blocks[1]["name"], "action_url");
    assert_eq!(blocks[1]["rendered"], "https://example.com/p/1");
    assert_eq!(blocks[2]["name"], "actions");
    assert_eq!(
        blocks[2]["buttons"][0]["action"],
        "https://example.com/p/1#reply"
    );
    let runs = db::recipient_runs(&app.db_path, &run_id);
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|(_, status, _)| status == "completed"));
    assert_ne!(
        messages[0].workflow_recipient_run_id,
        messages[1].workflow_recipient_run_id
    );
}

#[tokio::test]
async fn inline_recipients_actor_and_tenant_are_upserted_before_the_run() {
    let app = spawn_app().await;
    let run_id = app
        .trigger(
            "new-comment",
            json!({
                "recipients": [{"id": "ada", "name": "Ada", "email": "ada@example.com", "plan": "pro"},
                               {"id": "p1", "collection": "projects", "name": "Apollo"}],
                "actor": {"id": "grace", "name": "Grace"},
                "tenant": {"id": "acme", "name": "Acme Inc"},
                "data": {"page_title": "T"}
            }),
        )
        .await;
    let messages = run_messages(&app, &run_id).await;
    assert!(messages.iter().all(|m| m.tenant.as_deref() == Some("acme")));
    let users = db::count(
        &app.db_path,
        "SELECT COUNT(*) FROM users WHERE id IN ('ada', 'grace')",
    );
    assert_eq!(users, 2);
    let ada_props: String = db::open(&app.db_path)
        .query_row("SELECT properties FROM users WHERE id = 'ada'", [], |r| {
            r.get(0)
        })
        .expect("ada stored");
    let ada_props: Value = serde_json::from_str(&ada_props).expect("json");
    assert_eq!(ada_props["email"], "ada@example.com");
    assert_eq!(ada_props["plan"], "pro");
    assert_eq!(
        db::count(
            &app.db_path,
            "SELECT COUNT(*) FROM objects WHERE collection = 'projects' AND id = 'p1'"
        ),
        1
    );
    assert_eq!(
        db::count(
            &app.db_path,
            "SELECT COUNT(*) FROM tenants WHERE id = 'acme'"
        ),
        1
    );
}

#[tokio::test]
async fn a_tenant_string_auto_creates_the_tenant_and_tags_every_item() {
    let app = spawn_app().await;
    let mut body = comment_body(json!(["ada"]));
    body["tenant"] = json!("brand-new-tenant");
    let run_id = app.trigger("new-comment", body).await;
    let messages = run_messages(&app, &run_id).await;
    assert_eq!(messages[0].tenant.as_deref(), Some("brand-new-tenant"));
    assert_eq!(
        db::count(
            &app.db_path,
            "SELECT COUNT(*) FROM tenants WHERE id = 'brand-new-tenant'"
        ),
        1
    );
}

#[tokio::test]
async fn an_object_recipient_gets_an_item_in_its_own_feed() {
    let app = spawn_app().await;
    let run_id = app
        .trigger(
            "new-comment",
            comment_body(json!([{"id": "apollo", "collection": "projects", "name": "Apollo"}])),
        )
        .await;
    let messages = run_messages(&app, &run_id).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].recipient_kind, "object");
    assert_eq!(messages[0].recipient_collection, "projects");
    assert_eq!(messages[0].recipient_id, "apollo");
}

#[tokio::test]
async fn recipient_trigger_data_overrides_data_for_that_recipient_only() {
    let app = spawn_app().await;
    let run_id = app
        .trigger(
            "new-comment",
            comment_body(json!([
                {"id": "ada", "$trigger_data": {"page_title": "Ada's view"}},
                {"id": "linus"}
            ])),
        )
        .await;
    let messages = run_messages(&app, &run_id).await;
    let by = |id: &str| {
        messages
            .iter()
            .find(|m| m.recipient_id == id)
            .expect("item")
    };
    assert_eq!(by("ada").data["page_title"], "Ada's view");
    assert!(
        by("ada").blocks[0]["rendered"]
            .as_str()
            .is_some_and(|h| h.contains("Ada's view")
                || h.contains("Ada&#39;s view")
                || h.contains("Ada’s view")),
        "{}",
        by("ada").blocks[0]["rendered"]
    );
    assert_eq!(by("linus").data["page_title"], "Launch plan");
}

#[tokio::test]
async fn values_from_data_cannot_inject_script_into_rendered_blocks() {
    let app = spawn_app().await;
    let run_id = app
        .trigger(
            "new-comment",
            json!({
                "recipients": ["ada"],
                "actor": {"id": "mallory", "name": "<img src=x onerror=alert(1)>"},
                "data": {"page_title": "<script>alert('t')</script>", "page_url": "javascript:alert(1)",
                         "comment_preview": "[click](javascript:alert(2)) <a href=\"javascript:alert(3)\">x</a>"}
            }),
        )
        .await;
    let messages = run_messages(&app, &run_id).await;
    let blocks = &messages[0].blocks;
    let html = blocks[0]["rendered"].as_str().expect("rendered");
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("onerror"), "{html}");
    assert!(
        !html.to_ascii_lowercase().contains("href=\"javascript"),
        "{html}"
    );
    assert_eq!(blocks[1]["rendered"], "", "action_url neutralized");
    assert_eq!(
        blocks[2]["buttons"][0]["action"], "",
        "button action neutralized"
    );
}

#[tokio::test]
async fn trigger_with_1001_recipients_is_rejected_with_422() {
    let app = spawn_app().await;
    let recipients: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    let res = post_trigger(&app, "new-comment", json!({"recipients": recipients})).await;
    let body = assert_error(res, 422, "invalid_params").await;
    assert_eq!(body["errors"][0]["field"], "recipients");
    assert_eq!(
        db::count(&app.db_path, "SELECT COUNT(*) FROM workflow_runs"),
        0
    );
    let recipients: Vec<String> = (0..1000).map(|i| format!("u{i}")).collect();
    let run_id = app
        .trigger("new-comment", json!({"recipients": recipients}))
        .await;
    assert_eq!(run_messages(&app, &run_id).await.len(), 1000);
}

#[tokio::test]
async fn an_unknown_workflow_is_404_workflow_missing() {
    let app = spawn_app().await;
    let res = post_trigger(&app, "does-not-exist", json!({"recipients": ["u1"]})).await;
    assert_error(res, 404, "workflow_missing").await;
}

#[tokio::test]
async fn invalid_trigger_bodies_are_rejected_and_change_nothing() {
    let app = spawn_app().await;
    let res = app
        .server(Method::POST, "/v1/workflows/new-comment/trigger")
        .header("content-type", "application/json")
        .body("{\"recipients\": [")
        .send()
        .await
        .expect("request");
    assert_error(res, 400, "invalid_json").await;
    for (body, field) in [
        (json!({}), "recipients"),
        (json!({"recipients": "u1"}), "recipients"),
        (json!({"recipients": [5]}), "recipients[0]"),
        (json!({"recipients": ["a/b"]}), "recipients[0]"),
        (
            json!({"recipients": [{"name": "no id"}]}),
            "recipients[0].id",
        ),
        (
            json!({"recipients": [{"id": "u1", "email": 5}]}),
            "recipients[0].email",
        ),
        (json!({"recipients": ["u1"], "data": "x"}), "data"),
        (json!({"recipients": ["u1"], "tenant": 7}), "tenant"),
        (
            json!({"recipients": ["u1"], "cancellation_key": 7}),
            "cancellation_key",
        ),
        (json!({"recipients": ["u1"], "actor": 7}), "actor"),
        (json!([1, 2]), "body"),
    ] {
        let res = post_trigger(&app, "new-comment", body.clone()).await;
        let err = assert_error(res, 422, "invalid_params").await;
        let fields: Vec<&str> = err["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|f| f["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(fields.contains(&field), "{body} -> {err}");
    }
    let res = post_trigger(
        &app,
        "new-comment",
        json!({"recipients": [{"id": "u1", "name": "Kept out"}], "data": "x"}),
    )
    .await;
    assert_error(res, 422, "invalid_params").await;
    assert_eq!(
        db::count(&app.db_path, "SELECT COUNT(*) FROM workflow_runs"),
        0
    );
    assert_eq!(db::count(&app.db_path, "SELECT COUNT(*) FROM users"), 0);
}

#[tokio::test]
async fn an_oversized_trigger_is_413() {
    let app = spawn_app().await;
    let big = "x".repeat(11 * 1024 * 1024);
    let res = post_trigger(
        &app,
        "new-comment",
        json!({"recipients": ["u1"], "data": {"big": big}}),
    )
    .await;
    assert_error(res, 413, "payload_too_large").await;
    assert_eq!(
        db::count(&app.db_path, "SELECT COUNT(*) FROM workflow_runs"),
        0
    );
}

#[tokio::test]
async fn a_string_actor_never_identified_is_422_actor_missing() {
    let app = spawn_app().await;
    let res = post_trigger(
        &app,
        "new-comment",
        json!({"recipients": [{"id": "ada", "name": "Ada"}], "actor": "ghost"}),
    )
    .await;
    assert_error(res, 422, "actor_missing").await;
    assert_eq!(db::count(&app.db_path, "SELECT COUNT(*) FROM users"), 0);
    // Identified inline in the same trigger is fine, and so is an identified actor later.
    app.trigger(
        "new-comment",
        json!({"recipients": [{"id": "ghost", "name": "G"}], "actor": "ghost"}),
    )
    .await;
    app.trigger(
        "new-comment",
        json!({"recipients": ["ada"], "actor": "ghost"}),
    )
    .await;
}

#[tokio::test]
async fn trigger_data_failing_the_workflow_schema_is_422_listing_the_fields() {
    let app = spawn_app().await;
    let res = post_trigger(
        &app,
        "project-invite",
        json!({"recipients": ["ada"], "data": {"role": "owner", "invite_url": 5}}),
    )
    .await;
    let body = assert_error(res, 422, "invalid_params").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|f| f["field"].as_str()).collect())
        .unwrap_or_default();
    for expected in ["data.project_name", "data.role", "data.invite_url"] {
        assert!(fields.contains(&expected), "{expected} not in {fields:?}");
    }
    assert_eq!(
        db::count(&app.db_path, "SELECT COUNT(*) FROM workflow_runs"),
        0
    );
    let run_id = app
        .trigger(
            "project-invite",
            json!({"recipients": ["ada"], "data": {"project_name": "Apollo", "invite_url": "https://x.test/i", "role": "editor"}}),
        )
        .await;
    let messages = run_messages(&app, &run_id).await;
    assert!(
        messages[0].blocks[0]["rendered"]
            .as_str()
            .is_some_and(|h| h.contains("<strong>Apollo</strong> as editor")),
        "{}",
        messages[0].blocks[0]
    );
}

#[tokio::test]
async fn an_idempotency_key_replays_the_same_run() {
    let app = spawn_app().await;
    let body = comment_body(json!(["ada"]));
    let key = "stainless-node-retry-1";
    let first = keyed_comment(&app, body.clone(), key).await;
    assert_eq!(first.status(), 200);
    let first_request_id = first
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("x-request-id");
    let first_body: Value = first.json().await.expect("json");
    let second = keyed_comment(&app, body, key).await;
    assert_eq!(second.status(), 200);
    assert_eq!(
        second
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(
        second
            .headers()
            .get("original-x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some(first_request_id.as_str())
    );
    let second_body: Value = second.json().await.expect("json");
    assert_eq!(
        first_body["workflow_run_id"],
        second_body["workflow_run_id"]
    );
    let run_id = first_body["workflow_run_id"].as_str().expect("id");
    assert_eq!(run_messages(&app, run_id).await.len(), 1);
    assert_eq!(
        db::count(&app.db_path, "SELECT COUNT(*) FROM workflow_runs"),
        1
    );
}

#[tokio::test]
async fn reusing_an_idempotency_key_with_a_different_body_is_a_clear_400() {
    let app = spawn_app().await;
    let res = keyed_comment(&app, comment_body(json!(["ada"])), "key-1").await;
    assert_eq!(res.status(), 200);
    let res = keyed_comment(&app, comment_body(json!(["linus"])), "key-1").await;
    let body = assert_error(res, 400, "idempotency_key_reused").await;
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("Idempotency-Key"))
    );
    assert_eq!(
        db::count(&app.db_path, "SELECT COUNT(*) FROM workflow_runs"),
        1
    );
    let res = keyed_comment(&app, comment_body(json!(["ada"])), &"k".repeat(256)).await;
    assert_error(res, 422, "invalid_params").await;
}

#[tokio::test]
async fn a_failed_trigger_does_not_burn_its_idempotency_key() {
    let app = spawn_app().await;
    let res = keyed_comment(&app, json!({"recipients": "bad"}), "retry-me").await;
    assert_error(res, 422, "invalid_params").await;
    let res = keyed_comment(&app, comment_body(json!(["ada"])), "retry-me").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn a_template_that_fails_to_render_is_logged_on_the_recipient_run_and_the_run_completes() {
    let app = spawn_app().await;
    let res = app
        .put(
            "/v1/workflows/fragile",
            json!({"workflow": {"name": "Fragile", "steps": [
                {"ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed",
                 "template": {"markdown_body": "{{ data.n | divided_by: data.zero }}"}}]}}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let run_id = app
        .trigger(
            "fragile",
            json!({"recipients": ["ada"], "data": {"n": 1, "zero": 0}}),
        )
        .await;
    assert_eq!(db::wait_for_run(&app.db_path, &run_id).await, "completed");
    assert!(db::messages_of_run(&app.db_path, &run_id).is_empty());
    let runs = db::recipient_runs(&app.db_path, &run_id);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].1, "failed");
    let events = runs[0].2.as_array().expect("events");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "step_failed" && e["status"] == "error"),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_upserted_workflow_is_triggerable_at_once() {
    let app = spawn_app().await;
    let res = app
        .put(
            "/v1/workflows/welcome",
            json!({"workflow": {"name": "Welcome", "categories": ["onboarding"], "steps": [
                {"ref": "feed", "type": "channel", "channel_key": "in-app-feed",
                 "template": {"markdown_body": "Welcome, {{ recipient.name | default: recipient.id }}!"}}]}}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let run_id = app
        .trigger(
            "welcome",
            json!({"recipients": [{"id": "ada", "name": "Ada"}, "nobody"]}),
        )
        .await;
    let messages = run_messages(&app, &run_id).await;
    let html = |id: &str| {
        messages
            .iter()
            .find(|m| m.recipient_id == id)
            .and_then(|m| m.blocks[0]["rendered"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    assert_eq!(html("ada").trim(), "<p>Welcome, Ada!</p>");
    assert_eq!(html("nobody").trim(), "<p>Welcome, nobody!</p>");
    assert_eq!(messages[0].categories, json!(["onboarding"]));
}

#[tokio::test]
async fn the_triggered_item_appears_in_the_users_feed_with_source_actor_tenant_and_blocks() {
    let app = spawn_app().await;
    let mut body = comment_body(json!([{"id": "ada", "name": "Ada"}]));
    body["tenant"] = json!("acme");
    let run_id = app.trigger("new-comment", body).await;
    let feed = app.wait_for_feed("ada", "", 1).await;
    let entries = feed["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{feed}");
    let item = &entries[0];
    assert_eq!(item["__typename"], "FeedItem");
    assert_eq!(item["source"]["key"], "new-comment");
    assert_eq!(item["source"]["categories"], json!(["collaboration"]));
    assert!(item["source"]["version_id"].is_string(), "{item}");
    assert_eq!(item["tenant"], "acme");
    assert_eq!(item["actors"][0]["id"], "grace");
    assert_eq!(item["actors"][0]["name"], "Grace Hopper");
    assert_eq!(item["data"]["page_title"], "Launch plan");
    let names: Vec<&str> = item["blocks"]
        .as_array()
        .map(|b| b.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["body", "action_url", "actions"]);
    assert_eq!(feed["meta"]["unread_count"], 1);
    let messages = db::messages_of_run(&app.db_path, &run_id);
    assert_eq!(item["id"], messages[0].id.as_str());
}

#[tokio::test]
async fn an_object_recipients_item_is_listed_in_the_objects_own_feed() {
    let app = spawn_app().await;
    app.trigger(
        "new-comment",
        comment_body(json!([{"id": "apollo", "collection": "projects", "name": "Apollo"}])),
    )
    .await;
    let feed = app
        .poll_json("/v1/objects/projects/apollo/feeds/in-app-feed", |feed| {
            feed["entries"].as_array().is_some_and(|e| !e.is_empty())
        })
        .await;
    assert_eq!(feed["entries"].as_array().map(Vec::len), Some(1), "{feed}");
    assert_eq!(feed["entries"][0]["source"]["key"], "new-comment");
    let user_feed = app.wait_for_feed("apollo", "", 0).await;
    assert_eq!(
        user_feed["entries"].as_array().map(Vec::len),
        Some(0),
        "an object's item is not in a user feed of the same id"
    );
}
