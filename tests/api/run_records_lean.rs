//! Run records of plain deliveries (issue 18): a recipient whose run is a straight walk to
//! an in-app message stores no `workflow_recipient_runs` row, yet
//! `GET /v1/workflow_recipient_runs[/{id}]` answer for it exactly as for a stored run,
//! beside the runs that keep their rows (skipped, paused, unidentified), filters and
//! cursors included.

use serde_json::{Value, json};

use crate::db;
use crate::helpers::{TestApp, is_iso_micros, spawn_app, spawn_app_with};

fn comment(recipients: Value) -> Value {
    json!({"recipients": recipients, "actor": {"id": "grace", "name": "Grace"}, "tenant": "acme",
           "data": {"page_title": "Doc", "page_url": "https://example.com/doc"}})
}

async fn list(app: &TestApp, query: &str) -> Value {
    let (status, body) = app
        .get_json(&format!("/v1/workflow_recipient_runs?{query}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn who(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["recipient"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn detail(app: &TestApp, id: &str) -> Value {
    let (status, body) = app
        .get_json(&format!("/v1/workflow_recipient_runs/{id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn stored_rows(app: &TestApp, run: &str) -> i64 {
    db::count(
        &app.db_path,
        &format!("SELECT count(*) FROM workflow_recipient_runs WHERE workflow_run_id = '{run}'"),
    )
}

#[tokio::test]
async fn a_plain_fan_out_stores_no_recipient_run_yet_its_records_answer_as_stored_ones_do() {
    let app = spawn_app().await;
    let users: Vec<String> = (0..5).map(|i| format!("p{i}")).collect();
    for u in &users {
        app.identify(u, json!({"name": format!("User {u}")})).await;
    }
    // Unidentified: its run records `recipient_not_identified`, so it keeps a stored row.
    let mut recipients = users.clone();
    recipients.push("stranger".into());
    let run = app.trigger("new-comment", comment(json!(recipients))).await;
    assert_eq!(db::wait_for_run(&app.db_path, &run).await, "completed");
    assert_eq!(
        db::count(
            &app.db_path,
            &format!("SELECT count(*) FROM messages WHERE workflow_run_id = '{run}'")
        ),
        6
    );
    assert_eq!(
        stored_rows(&app, &run),
        1,
        "only the stranger's run is stored"
    );

    let all = list(&app, "").await;
    assert_eq!(who(&all), ["stranger", "p4", "p3", "p2", "p1", "p0"]);
    let items = all["items"].as_array().cloned().unwrap_or_default();
    let stranger = &items[0];
    for item in &items {
        assert_eq!(keys(item), keys(stranger), "the same shape: {item}");
        assert_eq!(item["__typename"], "WorkflowRecipientRun");
        assert_eq!(item["workflow_run_id"], run.as_str());
        assert_eq!(item["workflow"], "new-comment");
        assert_eq!(item["status"], "completed");
        assert_eq!(item["tenant"], "acme");
        assert_eq!(item["actor"], "grace");
        assert_eq!(item["error_count"], 0);
        assert_eq!(
            item["trigger_source"],
            json!({"type": "api", "cancellation_key": null})
        );
        assert!(is_iso_micros(&item["inserted_at"]), "{item}");
        assert_eq!(item["updated_at"], item["inserted_at"]);
    }

    // The derived record's id is the one its message carries: the deterministic v7 id.
    let p0 = &items[5];
    let id = p0["id"].as_str().expect("id").to_owned();
    let (message_id, carried): (String, String) = crate::db::open(&app.db_path)
        .query_row(
            "SELECT id, workflow_recipient_run_id FROM messages WHERE recipient_id = 'p0'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("p0's message");
    assert_eq!(carried, id);
    assert_eq!(
        uuid::Uuid::parse_str(&id).map(|u| u.get_version_num()),
        Ok(7)
    );
    let got = detail(&app, &id).await;
    let stored = detail(&app, stranger["id"].as_str().unwrap_or("")).await;
    assert_eq!(keys(&got), keys(&stored));
    for k in keys(p0) {
        assert_eq!(got[&k], p0[&k], "{k}: the list and the detail agree");
    }
    assert_eq!(
        got["events"],
        json!([{"__typename": "WorkflowRecipientRunEvent", "id": format!("{id}.0"),
                "event": "message_created", "status": "ok", "step_ref": "in_app_feed_1",
                "step_type": "channel", "attempt": 1, "data": {"message_id": message_id},
                "inserted_at": p0["inserted_at"]}])
    );
    let stored_created = stored["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["event"] == "message_created"))
        .cloned()
        .expect("the stranger got a message too");
    assert_eq!(keys(&stored_created), keys(&got["events"][0]));

    // Filters over both sources.
    assert_eq!(who(&list(&app, "recipient=p2").await), ["p2"]);
    assert_eq!(who(&list(&app, "recipient=stranger").await), ["stranger"]);
    for query in [
        "workflow=new-comment",
        "tenant=acme",
        "status=completed",
        "has_errors=false",
        "starting_at=2000-01-01T00:00:00Z",
    ] {
        assert_eq!(who(&list(&app, query).await).len(), 6, "{query}");
    }
    for query in [
        "workflow=project-invite",
        "tenant=other",
        "status=paused",
        "has_errors=true",
        "ending_at=2000-01-01T00:00:00Z",
        "recipient[id]=p2&recipient[collection]=projects",
    ] {
        assert_eq!(who(&list(&app, query).await).len(), 0, "{query}");
    }

    // Cursors, forward and back, across the stored row and the derived records.
    let first = list(&app, "page_size=4").await;
    assert_eq!(who(&first), ["stranger", "p4", "p3", "p2"]);
    assert_eq!(first["page_info"]["before"], Value::Null);
    let after = first["page_info"]["after"].as_str().expect("after");
    let second = list(&app, &format!("page_size=4&after={after}")).await;
    assert_eq!(who(&second), ["p1", "p0"]);
    assert_eq!(second["page_info"]["after"], Value::Null);
    let before = second["page_info"]["before"].as_str().expect("before");
    let back = list(&app, &format!("page_size=4&before={before}")).await;
    assert_eq!(who(&back), ["stranger", "p4", "p3", "p2"]);
    assert_eq!(back["page_info"]["before"], Value::Null);
    assert!(back["page_info"]["after"].is_string(), "{back}");
}

#[tokio::test]
async fn skipped_plain_and_delayed_recipients_list_together_with_their_statuses() {
    let start = tidings::clock::parse("2030-01-01T09:00:00Z").expect("time");
    let clock = tidings::clock::Clock::manual(start);
    let c = clock.clone();
    let app = spawn_app_with(move |s| s.clock = c).await;
    for u in ["alice", "bob", "carol"] {
        app.identify(u, json!({"name": u})).await;
    }
    let (status, _) = app
        .put_json(
            "/v1/users/alice/preferences/default",
            json!({"channel_types": {"in_app_feed": false}}),
        )
        .await;
    assert_eq!(status, 200);
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
    let comments = app
        .trigger("new-comment", comment(json!(["alice", "bob"])))
        .await;
    assert_eq!(db::wait_for_run(&app.db_path, &comments).await, "completed");
    let reminder = app
        .trigger("reminder", json!({"recipients": ["carol"]}))
        .await;
    let paused = app
        .poll_json("/v1/workflow_recipient_runs?status=paused", |b| {
            b["items"].as_array().map_or(0, Vec::len) == 1
        })
        .await;
    assert_eq!(who(&paused), ["carol"]);
    assert_eq!(
        stored_rows(&app, &comments),
        1,
        "alice's skip is stored, bob's delivery not"
    );
    assert_eq!(stored_rows(&app, &reminder), 1, "carol's pause is stored");

    let all = list(&app, "").await;
    assert_eq!(who(&all), ["carol", "bob", "alice"]);
    let statuses: Vec<&str> = all["items"]
        .as_array()
        .map(|i| i.iter().filter_map(|i| i["status"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(statuses, ["paused", "completed", "completed"]);
    let events = |body: &Value| -> Vec<String> {
        body["events"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|e| e["event"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let id_of = |i: usize| all["items"][i]["id"].as_str().unwrap_or("").to_owned();
    assert_eq!(events(&detail(&app, &id_of(0)).await), ["delayed"]);
    assert_eq!(events(&detail(&app, &id_of(1)).await), ["message_created"]);
    assert_eq!(events(&detail(&app, &id_of(2)).await), ["step_skipped"]);
    assert_eq!(who(&list(&app, "status=completed").await), ["bob", "alice"]);
    assert_eq!(
        who(&list(&app, "workflow=new-comment").await),
        ["bob", "alice"]
    );
    assert_eq!(who(&list(&app, "recipient=bob").await), ["bob"]);

    // Carol's delay ends: her stored run completes with her message; nothing else moves.
    clock.advance(chrono::Duration::hours(2));
    let done = app
        .poll_json(&format!("/v1/workflow_recipient_runs/{}", id_of(0)), |b| {
            b["status"] == "completed"
        })
        .await;
    assert_eq!(events(&done), ["delayed", "resumed", "message_created"]);
    assert_eq!(stored_rows(&app, &reminder), 1);
    assert_eq!(
        who(&list(&app, "status=completed").await),
        ["carol", "bob", "alice"]
    );
}
