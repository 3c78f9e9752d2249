//! Workflow definitions: the directory loaded at start, `PUT`/`GET /v1/workflows`,
//! `GET /v1/channels` and `POST /v1/workflows/{key}/cancel`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_error, assert_rejects_bad_credentials, spawn_app, test_settings};

fn in_app_step(body: &str) -> Value {
    json!({"ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed",
           "channel_type": "in_app_feed", "template": {"markdown_body": body}})
}

fn definition(body: &str) -> Value {
    json!({"workflow": {"name": "Greeting", "categories": ["greetings"], "steps": [in_app_step(body)]}})
}

#[tokio::test]
async fn workflows_from_the_directory_are_listed_with_file_references_resolved() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/v1/workflows").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["page_info"]["__typename"], "PageInfo");
    let entries = body["entries"].as_array().expect("entries");
    let keys: Vec<&str> = entries.iter().filter_map(|w| w["key"].as_str()).collect();
    assert!(keys.contains(&"new-comment"), "{keys:?}");
    assert!(keys.contains(&"project-invite"), "{keys:?}");
    let new_comment = entries
        .iter()
        .find(|w| w["key"] == "new-comment")
        .expect("new-comment");
    let template = &new_comment["steps"][0]["template"];
    assert!(
        template["markdown_body"]
            .as_str()
            .is_some_and(|b| b.contains("commented on")),
        "{template}"
    );
    assert!(template.get("markdown_body@").is_none(), "{template}");
    assert_eq!(new_comment["categories"], json!(["collaboration"]));
}

#[tokio::test]
async fn get_one_workflow_answers_the_management_api_shape() {
    let app = spawn_app().await;
    let (status, w) = app.get_json("/v1/workflows/new-comment").await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["key"], "new-comment");
    assert_eq!(w["name"], "New comment");
    assert_eq!(w["active"], true);
    assert_eq!(w["valid"], true);
    assert_eq!(w["trigger_frequency"], "every_trigger");
    assert!(w["created_at"].is_string() && w["updated_at"].is_string());
    assert!(w["sha"].as_str().is_some_and(|s| s.len() == 64));
    assert_eq!(w["steps"][0]["channel_key"], "in-app-feed");
    assert_eq!(
        w["steps"][0]["template"]["action_buttons"][0]["label"],
        "Reply"
    );
}

#[tokio::test]
async fn get_unknown_workflow_is_404_workflow_missing() {
    let app = spawn_app().await;
    let res = app
        .get("/v1/workflows/nope-nope")
        .send()
        .await
        .expect("request");
    assert_error(res, 404, "workflow_missing").await;
}

#[tokio::test]
async fn put_creates_a_workflow_and_a_changed_put_makes_a_new_version() {
    let app = spawn_app().await;
    let res = app
        .put(
            "/v1/workflows/greeting",
            definition("Hello {{ recipient.name }}"),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let created: Value = res.json().await.expect("json");
    assert_eq!(created["workflow"]["key"], "greeting");
    assert_eq!(created["workflow"]["categories"], json!(["greetings"]));
    let first_sha = created["workflow"]["sha"].clone();

    let (_, again) = app.get_json("/v1/workflows/greeting").await;
    assert_eq!(
        again["sha"], first_sha,
        "an unchanged definition keeps its version"
    );

    let res = app
        .put(
            "/v1/workflows/greeting",
            definition("Howdy {{ recipient.name }}"),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let (_, updated) = app.get_json("/v1/workflows/greeting").await;
    assert_eq!(
        updated["steps"][0]["template"]["markdown_body"],
        "Howdy {{ recipient.name }}"
    );
    assert_ne!(updated["sha"], first_sha);
    assert_eq!(updated["created_at"], created["workflow"]["created_at"]);
}

#[tokio::test]
async fn put_with_an_unimplemented_step_type_is_refused_and_stores_nothing() {
    let app = spawn_app().await;
    for (step, field, words) in [
        (
            json!({"ref": "delay_1", "type": "delay", "settings": {"delay_for": {"unit": "minutes", "value": 0}}}),
            "workflow.steps[0].settings.delay_for",
            "greater than zero",
        ),
        (
            json!({"ref": "batch_1", "type": "batch", "settings": {}}),
            "workflow.steps[0].settings.batch_window",
            "is required",
        ),
        (
            json!({"ref": "email_1", "type": "channel", "channel_type": "email", "channel_key": "postmark",
                   "template": {"subject": "x", "html_body": "y"}}),
            "workflow.steps[0].channel_type",
            "`email` is not supported",
        ),
        (
            json!({"ref": "s", "type": "channel", "channel_key": "in-app-feed", "template": {"markdown_body": "x"},
                   "conditions": {"all": [{"variable": "data.x", "operator": "is_audience_member", "argument": "a"}]}}),
            "workflow.steps[0].conditions.all[0]",
            "not supported",
        ),
    ] {
        let res = app
            .put(
                "/v1/workflows/refused",
                json!({"workflow": {"name": "Refused", "steps": [step]}}),
            )
            .send()
            .await
            .expect("request");
        let body = assert_error(res, 422, "invalid_params").await;
        let errors = body["errors"].as_array().expect("errors list");
        let hit = errors
            .iter()
            .find(|e| e["field"] == field)
            .unwrap_or_else(|| panic!("no error for {field}: {body}"));
        assert!(
            hit["message"].as_str().is_some_and(|m| m.contains(words)),
            "{hit}"
        );
        let res = app
            .get("/v1/workflows/refused")
            .send()
            .await
            .expect("request");
        assert_error(res, 404, "workflow_missing").await;
    }
}

#[tokio::test]
async fn an_invalid_update_leaves_the_previous_version_live() {
    let app = spawn_app().await;
    let res = app
        .put("/v1/workflows/greeting", definition("Hello"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let (_, before) = app.get_json("/v1/workflows/greeting").await;
    for bad in [
        definition("{% if %}broken liquid"),
        json!({"workflow": {"name": "G", "conditions": {"all": []}, "steps": [in_app_step("x")]}}),
        json!({"workflow": {"name": "G", "trigger_data_json_schema": {"type": 5}, "steps": [in_app_step("x")]}}),
        json!({"workflow": {"steps": []}}),
        json!({"workflow": {"name": "G", "steps": "nope"}}),
    ] {
        let res = app
            .put("/v1/workflows/greeting", bad.clone())
            .send()
            .await
            .expect("request");
        let body = assert_error(res, 422, "invalid_params").await;
        assert!(
            body["errors"].as_array().is_some_and(|e| !e.is_empty()),
            "{bad} -> {body}"
        );
    }
    let (_, after) = app.get_json("/v1/workflows/greeting").await;
    assert_eq!(before, after);
}

#[tokio::test]
async fn put_rejects_malformed_bodies_and_bad_keys() {
    let app = spawn_app().await;
    let res = app
        .server(Method::PUT, "/v1/workflows/greeting")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_error(res, 400, "invalid_json").await;
    for body in [json!({}), json!({"workflow": "x"}), json!([1])] {
        let res = app
            .put("/v1/workflows/greeting", body)
            .send()
            .await
            .expect("request");
        assert_error(res, 422, "invalid_params").await;
    }
    for key in ["ab", "Has-Caps", "sp%20ace"] {
        let res = app
            .put(&format!("/v1/workflows/{key}"), definition("x"))
            .send()
            .await
            .expect("request");
        let body = assert_error(res, 422, "invalid_params").await;
        assert_eq!(body["errors"][0]["field"], "key");
    }
    let huge = "x".repeat(11 * 1024 * 1024);
    let res = app
        .put("/v1/workflows/greeting", definition(&huge))
        .send()
        .await
        .expect("request");
    assert_error(res, 413, "payload_too_large").await;
    let res = app
        .get("/v1/workflows/greeting")
        .send()
        .await
        .expect("request");
    assert_error(res, 404, "workflow_missing").await;
}

#[tokio::test]
async fn workflow_and_channel_endpoints_need_the_secret_key() {
    let app = spawn_app().await;
    let cases = [
        (Method::GET, "/v1/workflows"),
        (Method::GET, "/v1/workflows/new-comment"),
        (Method::PUT, "/v1/workflows/new-comment"),
        (Method::POST, "/v1/workflows/new-comment/trigger"),
        (Method::POST, "/v1/workflows/new-comment/cancel"),
        (Method::GET, "/v1/channels"),
    ];
    for (method, path) in cases {
        assert_rejects_bad_credentials(&app, method, path, Some(&json!({}))).await;
    }
    let (_, w) = app.get_json("/v1/workflows/new-comment").await;
    assert_eq!(w["name"], "New comment", "definition unchanged");
}

#[tokio::test]
async fn channels_list_the_default_in_app_feed_with_its_uuid() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/v1/channels").await;
    assert_eq!(status, 200, "{body}");
    let feed = body["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|c| c["key"] == "in-app-feed"))
        .expect("in-app-feed channel");
    assert_eq!(feed["type"], "in_app_feed");
    let id = feed["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(body["page_info"]["__typename"], "PageInfo");
}

#[tokio::test]
async fn a_step_naming_a_new_channel_key_registers_that_channel() {
    let app = spawn_app().await;
    let mut def = definition("Hi");
    def["workflow"]["steps"][0]["channel_key"] = json!("team-feed");
    let res = app
        .put("/v1/workflows/team-greeting", def)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let (_, body) = app.get_json("/v1/channels").await;
    let keys: Vec<&str> = body["entries"]
        .as_array()
        .map(|e| e.iter().filter_map(|c| c["key"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        keys.contains(&"team-feed") && keys.contains(&"in-app-feed"),
        "{keys:?}"
    );
}

#[tokio::test]
async fn cancel_validates_its_body_and_answers_204() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/v1/workflows/new-comment/cancel",
            json!({"cancellation_key": "c-1", "recipients": ["u1", {"id": "p1", "collection": "projects"}]}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 204);
    let res = app
        .post("/v1/workflows/new-comment/cancel", json!({}))
        .send()
        .await
        .expect("request");
    assert_error(res, 422, "invalid_params").await;
    let res = app
        .post(
            "/v1/workflows/nope-nope/cancel",
            json!({"cancellation_key": "c"}),
        )
        .send()
        .await
        .expect("request");
    assert_error(res, 404, "workflow_missing").await;
}

#[tokio::test]
async fn a_bad_file_in_the_workflows_directory_stops_startup_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workflows = dir.path().join("workflows");
    std::fs::create_dir_all(workflows.join("good-one")).expect("mkdir");
    std::fs::write(
        workflows.join("good-one/workflow.json"),
        json!({"name": "Good", "steps": [in_app_step("ok")]}).to_string(),
    )
    .expect("write");
    std::fs::create_dir_all(workflows.join("uses-delay")).expect("mkdir");
    std::fs::write(
        workflows.join("uses-delay/workflow.json"),
        json!({"name": "Delay", "steps": [{"ref": "d", "type": "delay"}]}).to_string(),
    )
    .expect("write");
    let mut settings = test_settings(dir.path());
    settings.workflows = workflows;
    let err = match tidings::Application::build(settings).await {
        Ok(_) => panic!("startup must fail on a bad workflow file"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("uses-delay/workflow.json"), "{err}");
    assert!(err.contains("steps[0].settings"), "{err}");
}
