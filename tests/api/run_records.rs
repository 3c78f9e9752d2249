//! Run records: `GET /v1/workflow_recipient_runs[/{id}]` answer "why didn't Alice get
//! this?" with each recipient run's status and ordered events, filtered and cursor-paged.

use serde_json::{Value, json};

use crate::db;
use crate::helpers::{TestApp, assert_error, assert_rejects_bad_credentials, spawn_app};

fn comment(recipients: Value, tenant: Option<&str>) -> Value {
    let mut body = json!({"recipients": recipients, "actor": {"id": "grace", "name": "Grace"},
                          "data": {"page_title": "Doc", "page_url": "https://example.com/doc"}});
    if let Some(t) = tenant {
        body["tenant"] = json!(t);
    }
    body
}

async fn run(app: &TestApp, workflow: &str, body: Value) -> String {
    let id = app.trigger(workflow, body).await;
    assert_eq!(db::wait_for_run(&app.db_path, &id).await, "completed");
    id
}

async fn items(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = app
        .get_json(&format!("/v1/workflow_recipient_runs?{query}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

fn who(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| match &i["recipient"] {
            Value::String(s) => s.clone(),
            other => format!("{}:{}", other["collection"], other["id"]).replace('"', ""),
        })
        .collect()
}

#[tokio::test]
async fn a_preference_skip_is_explained_in_the_recipient_runs_events() {
    let app = spawn_app().await;
    let (status, _) = app
        .put_json(
            "/v1/users/alice/preferences/default",
            json!({"channel_types": {"in_app_feed": false}}),
        )
        .await;
    assert_eq!(status, 200);
    let run_id = run(
        &app,
        "new-comment",
        comment(json!(["alice", "bob"]), Some("acme")),
    )
    .await;

    let list = items(&app, "recipient=alice").await;
    assert_eq!(list.len(), 1, "{list:?}");
    let summary = &list[0];
    assert_eq!(summary["__typename"], "WorkflowRecipientRun");
    assert_eq!(summary["workflow_run_id"], run_id.as_str());
    assert_eq!(summary["workflow"], "new-comment");
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["recipient"], "alice");
    assert_eq!(summary["actor"], "grace");
    assert_eq!(summary["tenant"], "acme");
    assert_eq!(summary["error_count"], 0);
    assert_eq!(summary["trigger_source"]["type"], "api");
    assert!(summary.get("events").is_none(), "the list has no events");

    let id = summary["id"].as_str().expect("id");
    let (status, detail) = app
        .get_json(&format!("/v1/workflow_recipient_runs/{id}"))
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["id"], id);
    let events = detail["events"].as_array().expect("events");
    let skipped = events
        .iter()
        .find(|e| e["event"] == "step_skipped")
        .expect("the skip is an event");
    assert_eq!(skipped["__typename"], "WorkflowRecipientRunEvent");
    assert_eq!(skipped["status"], "ok");
    assert_eq!(skipped["step_ref"], "in_app_feed_1");
    assert_eq!(skipped["data"]["reason"], "preferences");
    assert!(
        skipped["data"]["setting"]
            .as_str()
            .is_some_and(|s| s.contains("in_app_feed"))
    );
    assert!(skipped["id"].is_string() && skipped["inserted_at"].is_string());

    let bob = &items(&app, "recipient=bob").await[0];
    let (_, detail) = app
        .get_json(&format!(
            "/v1/workflow_recipient_runs/{}",
            bob["id"].as_str().unwrap_or("")
        ))
        .await;
    let names: Vec<&str> = detail["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["event"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        ["recipient_not_identified", "message_created"],
        "{detail}"
    );
}

#[tokio::test]
async fn filters_narrow_the_list_and_combine() {
    let app = spawn_app().await;
    run(
        &app,
        "new-comment",
        comment(json!(["u1", "u2"]), Some("acme")),
    )
    .await;
    let invite = json!({"recipients": ["u1", {"id": "p1", "collection": "projects"}],
                        "data": {"project_name": "Apollo", "invite_url": "https://example.com/i"}});
    run(&app, "project-invite", invite).await;

    assert_eq!(who(&items(&app, "").await).len(), 4);
    let mut by_workflow = who(&items(&app, "workflow=new-comment").await);
    by_workflow.sort();
    assert_eq!(by_workflow, ["u1", "u2"]);
    assert_eq!(who(&items(&app, "tenant=acme&recipient=u1").await), ["u1"]);
    assert_eq!(who(&items(&app, "tenant=other").await).len(), 0);
    assert_eq!(
        who(&items(&app, "recipient[id]=p1&recipient[collection]=projects").await),
        ["projects:p1"]
    );
    assert_eq!(
        who(&items(&app, "workflow=project-invite&recipient=u1").await),
        ["u1"]
    );
    assert_eq!(
        items(&app, "status[]=completed&status[]=paused")
            .await
            .len(),
        4
    );
    assert_eq!(items(&app, "status=cancelled").await.len(), 0);
    assert_eq!(items(&app, "has_errors=true").await.len(), 0);
    assert_eq!(
        items(&app, "starting_at=2000-01-01T00:00:00Z").await.len(),
        4
    );
    assert_eq!(items(&app, "ending_at=2000-01-01T00:00:00Z").await.len(), 0);
    assert_eq!(items(&app, "starting_at=2999-01-01").await.len(), 0);
}

#[tokio::test]
async fn pages_follow_the_cursors_newest_first_without_gaps_or_repeats() {
    let app = spawn_app().await;
    let users: Vec<String> = (0..7).map(|i| format!("u{i}")).collect();
    run(&app, "new-comment", comment(json!(users), None)).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &after {
            Some(a) => format!("page_size=3&after={a}"),
            None => "page_size=3".to_owned(),
        };
        let (_, body) = app
            .get_json(&format!("/v1/workflow_recipient_runs?{query}"))
            .await;
        assert_eq!(body["page_info"]["__typename"], "PageInfo");
        assert_eq!(body["page_info"]["page_size"], 3);
        if pages == 0 {
            assert_eq!(body["page_info"]["before"], Value::Null);
        } else {
            assert!(body["page_info"]["before"].is_string(), "{body}");
        }
        seen.extend(who(body["items"].as_array().expect("items")));
        pages += 1;
        match body["page_info"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected = users.clone();
    expected.reverse();
    assert_eq!(
        seen, expected,
        "newest first: recipient runs are stored in order"
    );
}

#[tokio::test]
async fn bad_filters_and_unknown_ids_answer_knock_errors_naming_the_field() {
    let app = spawn_app().await;
    for (query, field) in [
        ("status=done", "status"),
        ("starting_at=soon", "starting_at"),
        ("page_size=500", "page_size"),
        ("after=garbage", "after"),
        ("recipient[collection]=projects", "recipient"),
        ("has_errors=perhaps", "has_errors"),
    ] {
        let res = app
            .get(&format!("/v1/workflow_recipient_runs?{query}"))
            .send()
            .await
            .expect("list");
        let body = assert_error(res, 422, "invalid_params").await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    let res = app
        .get("/v1/workflow_recipient_runs/00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .expect("get");
    assert_error(res, 404, "resource_missing").await;
}

#[tokio::test]
async fn run_records_need_the_secret_key() {
    let app = spawn_app().await;
    for path in [
        "/v1/workflow_recipient_runs",
        "/v1/workflow_recipient_runs/00000000-0000-4000-8000-000000000000",
    ] {
        assert_rejects_bad_credentials(&app, reqwest::Method::GET, path, None).await;
    }
}

#[tokio::test]
async fn a_delayed_then_cancelled_run_shows_paused_then_cancelled_with_when() {
    let start = tidings::clock::parse("2030-01-01T09:00:00Z").expect("time");
    let clock = tidings::clock::Clock::manual(start);
    let c = clock.clone();
    let app = crate::helpers::spawn_app_with(move |s| s.clock = c).await;
    let (status, body) = app
        .put_json(
            "/v1/workflows/reminder",
            json!({"workflow": {"name": "reminder", "steps": [
                {"ref": "wait", "type": "delay", "settings": {"delay_for": {"unit": "hours", "value": 1}}},
                {"ref": "msg", "type": "channel", "channel_key": "in-app-feed", "channel_type": "in_app_feed",
                 "template": {"markdown_body": "due"}}]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.trigger(
        "reminder",
        json!({"recipients": ["alice"], "cancellation_key": "task-1"}),
    )
    .await;
    let paused = app
        .poll_json("/v1/workflow_recipient_runs?status=paused", |b| {
            b["items"].as_array().map_or(0, Vec::len) == 1
        })
        .await;
    assert_eq!(paused["items"][0]["recipient"], "alice", "{paused}");
    assert_eq!(paused["items"][0]["workflow"], "reminder");
    let id = paused["items"][0]["id"].as_str().expect("id").to_owned();

    clock.advance(chrono::Duration::minutes(10));
    let res = app
        .post(
            "/v1/workflows/reminder/cancel",
            json!({"cancellation_key": "task-1"}),
        )
        .send()
        .await
        .expect("cancel");
    assert!(res.status().is_success(), "{}", res.status());
    let detail = app
        .poll_json(&format!("/v1/workflow_recipient_runs/{id}"), |b| {
            b["status"] == "cancelled"
        })
        .await;
    assert_eq!(detail["status"], "cancelled", "{detail}");
    let events = detail["events"].as_array().cloned().unwrap_or_default();
    let delayed = events
        .iter()
        .find(|e| e["event"] == "delayed")
        .expect("delayed");
    assert_eq!(delayed["step_type"], "delay");
    assert_eq!(delayed["data"]["until"], "2030-01-01T10:00:00.000000Z");
    let cancelled = events
        .iter()
        .find(|e| e["event"] == "cancelled")
        .expect("cancelled");
    assert_eq!(cancelled["inserted_at"], "2030-01-01T09:10:00.000000Z");
    assert_eq!(items(&app, "status=paused").await.len(), 0);
    assert_eq!(items(&app, "status=cancelled").await.len(), 1);
}

#[tokio::test]
async fn the_official_node_sdk_lists_and_reads_run_records() {
    let js = crate::helpers::installed_node_sdk();
    let app = spawn_app().await;
    app.run_sdk_script(
        std::path::PathBuf::from("node"),
        js.join("run_records_sdk.mjs"),
        "run records sdk: ok",
    )
    .await;
}
