//! Schedules hold `data` once per create (issue 17 item 8): the schedules of one create
//! share one stored payload, every response carries at most 10 MiB of data in all (a
//! create, update or delete past it is refused naming the limit, with nothing changed; a
//! list page stops short of it and its cursor continues), and a payload goes with its
//! last schedule.

use serde_json::{Value, json};

use crate::db;
use crate::helpers::{TestApp, assert_error, spawn_app};

const LIMIT: usize = 10 * 1024 * 1024;

fn schedule(recipients: Vec<String>, blob_bytes: usize) -> Value {
    json!({
        "workflow": "new-comment",
        "recipients": recipients,
        "repeats": [{"__typename": "ScheduleRepeat", "frequency": "daily", "hours": 9, "minutes": 0}],
        "data": {"page_title": "Digest", "page_url": "https://example.com/d",
                 "blob": "x".repeat(blob_bytes)},
    })
}

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{i}")).collect()
}

fn count(app: &TestApp, table: &str) -> i64 {
    db::count(&app.db_path, &format!("SELECT COUNT(*) FROM {table}"))
}

/// Bytes of the `schedules` table and its payloads as stored (JSON text).
fn stored_data_bytes(app: &TestApp) -> i64 {
    db::count(
        &app.db_path,
        "SELECT COALESCE((SELECT SUM(length(data)) FROM schedule_payloads), 0) \
         + COALESCE((SELECT SUM(length(data)) FROM schedules), 0)",
    )
}

async fn assert_names_the_limit(res: reqwest::Response) {
    let body = assert_error(res, 422, "invalid_params").await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(&LIMIT.to_string()), "{body}");
}

#[tokio::test]
async fn one_create_stores_its_data_once_and_a_response_past_10_mib_is_refused() {
    let app = spawn_app().await;
    // The reproduction, scaled: 100 recipients × 200 kB would answer 20 MB.
    let res = app
        .post("/v1/schedules", schedule(users(100), 200 * 1024))
        .send()
        .await
        .expect("create");
    assert_names_the_limit(res).await;
    assert_eq!(count(&app, "schedules"), 0, "nothing stored");
    assert_eq!(count(&app, "schedule_payloads"), 0);

    // 100 recipients × 50 kB: allowed, and stored once.
    let res = app
        .post("/v1/schedules", schedule(users(100), 50 * 1024))
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 200);
    let created: Vec<Value> = res.json().await.expect("json");
    assert_eq!(created.len(), 100);
    assert!(
        created
            .iter()
            .all(|s| s["data"]["blob"].as_str().map(str::len) == Some(50 * 1024))
    );
    assert_eq!(
        count(&app, "schedule_payloads"),
        1,
        "one payload for the create"
    );
    let stored = stored_data_bytes(&app);
    assert!(
        stored < 60 * 1024,
        "{stored} bytes stored for 100 schedules"
    );
    let (status, listed) = app.get_json("/v1/schedules?workflow=new-comment").await;
    assert_eq!(status, 200);
    assert_eq!(listed["entries"].as_array().map(Vec::len), Some(50));
    assert_eq!(listed["entries"][49]["data"]["page_title"], "Digest");

    // An update setting new data for 100 schedules × 150 kB is past the limit: refused,
    // the old data stays.
    let ids: Vec<Value> = created.iter().map(|s| s["id"].clone()).collect();
    let mut data = json!({"page_title": "New", "page_url": "https://example.com/n",
                          "blob": "y".repeat(150 * 1024)});
    let res = app
        .put("/v1/schedules", json!({"schedule_ids": ids, "data": data}))
        .send()
        .await
        .expect("update");
    assert_names_the_limit(res).await;
    let (_, one) = app
        .get_json("/v1/schedules?workflow=new-comment&page_size=1")
        .await;
    assert_eq!(one["entries"][0]["data"]["page_title"], "Digest");
    // A smaller one applies, again stored once; the old payload goes with its last use.
    data["blob"] = json!("y".repeat(1024));
    let (status, updated) = app
        .put_json("/v1/schedules", json!({"schedule_ids": ids, "data": data}))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated[99]["data"]["page_title"], "New");
    assert_eq!(count(&app, "schedule_payloads"), 1);
    let (status, _) = json_delete(&app, json!({"schedule_ids": ids})).await;
    assert_eq!(status, 200);
    assert_eq!(count(&app, "schedules"), 0);
    assert_eq!(
        count(&app, "schedule_payloads"),
        0,
        "the payload went with them"
    );
}

async fn json_delete(app: &TestApp, body: Value) -> (u16, Value) {
    let res = app
        .delete("/v1/schedules")
        .json(&body)
        .send()
        .await
        .expect("delete");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_list_page_stops_short_of_10_mib_of_data_and_its_cursor_continues() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, created) = app
            .post_json(
                "/v1/schedules",
                schedule(vec![format!("big{i}")], 4 * 1024 * 1024),
            )
            .await;
        assert_eq!(status, 200);
        ids.push(created[0]["id"].clone());
    }
    let (status, page) = app.get_json("/v1/schedules?workflow=new-comment").await;
    assert_eq!(status, 200);
    assert_eq!(
        page["entries"].as_array().map(Vec::len),
        Some(2),
        "8 MiB fit, 12 would not"
    );
    let after = page["page_info"]["after"].as_str().expect("a next page");
    let (_, rest) = app
        .get_json(&format!("/v1/schedules?workflow=new-comment&after={after}"))
        .await;
    assert_eq!(rest["entries"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["entries"][0]["id"], ids[2]);
    // Deleting all three at once would answer 12 MiB: refused, nothing deleted.
    let res = app
        .delete("/v1/schedules")
        .json(&json!({"schedule_ids": ids}))
        .send()
        .await
        .expect("delete");
    assert_names_the_limit(res).await;
    assert_eq!(count(&app, "schedules"), 3);
    assert_eq!(count(&app, "schedule_payloads"), 3);
}
