//! One clock (issue 17 item 11): with the server on a manual clock far from the system's,
//! every time it writes or compares reads that clock — entity, run, recipient-run and
//! message timestamps, message status times, `*_now` preference conditions and the
//! idempotency window.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tidings::clock::{self, Clock};

use crate::db;
use crate::engine_delay::{in_app, upsert};
use crate::helpers::{TestApp, spawn_app_with};

/// Years after the system clock: any timestamp read from it shows.
fn t0() -> DateTime<Utc> {
    clock::parse("2031-05-01T08:00:00Z").expect("t0")
}

async fn keyed_trigger(app: &TestApp, body: Value, key: &str) -> (u16, Value) {
    let res = app
        .post("/v1/workflows/clocked/trigger", body)
        .header("Idempotency-Key", key)
        .send()
        .await
        .expect("trigger");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_stored_and_compared_time_comes_from_the_servers_clock() {
    let clock = Clock::manual(t0());
    let c = clock.clone();
    let app = spawn_app_with(move |s| s.clock = c).await;
    let at_t0 = clock::format(t0());

    upsert(
        &app,
        "clocked",
        json!([in_app("msg", "due {{ data.due }}")]),
    )
    .await;
    let user = app.identify("clock-u", json!({"name": "Clock"})).await;
    assert_eq!(user["updated_at"], at_t0.as_str(), "{user}");
    // A `*_now` preference condition: `due` is before the server's now (2031), though
    // after the system's.
    let res = app
        .put(
            "/v1/users/clock-u/preferences/default",
            json!({"workflows": {"clocked": {"conditions": [
                {"variable": "data.due", "operator": "is_timestamp_before_now"}]}}}),
        )
        .send()
        .await
        .expect("prefs");
    assert_eq!(res.status(), 200);

    let body = json!({"recipients": ["clock-u"], "data": {"due": "2030-01-01T00:00:00Z"}});
    let (status, accepted) = keyed_trigger(&app, body, "clock-key").await;
    assert_eq!(status, 200, "{accepted}");
    let run = accepted["workflow_run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    assert_eq!(db::wait_for_run(&app.db_path, &run).await, "completed");

    let inserted: String = db::open(&app.db_path)
        .query_row(
            "SELECT inserted_at FROM workflow_runs WHERE id = ?1",
            [&run],
            |r| r.get(0),
        )
        .expect("run row");
    assert_eq!(inserted, at_t0);
    let (_, records) = app
        .get_json("/v1/workflow_recipient_runs?workflow=clocked")
        .await;
    assert_eq!(
        records["items"][0]["inserted_at"],
        at_t0.as_str(),
        "{records}"
    );
    assert_eq!(records["items"][0]["status"], "completed");

    let feed = app.wait_for_feed("clock-u", "", 1).await;
    let message = &feed["entries"][0];
    assert_eq!(message["inserted_at"], at_t0.as_str(), "{feed}");

    // Status times move with the clock, not with the system.
    clock.advance(Duration::hours(1));
    let id = message["id"].as_str().expect("message id");
    let res = app
        .put(&format!("/v1/messages/{id}/read"), json!({}))
        .send()
        .await
        .expect("read");
    assert_eq!(res.status(), 200);
    let read: Value = res.json().await.expect("json");
    assert_eq!(
        read["read_at"],
        clock::format(t0() + Duration::hours(1)).as_str(),
        "{read}"
    );

    // The idempotency window is 24 h on the same clock: 25 h later the key is free.
    clock.advance(Duration::hours(24));
    let other = json!({"recipients": ["clock-u"], "data": {"due": "2030-02-01T00:00:00Z"}});
    let (status, again) = keyed_trigger(&app, other, "clock-key").await;
    assert_eq!(status, 200, "{again}");
    assert_ne!(again["workflow_run_id"], accepted["workflow_run_id"]);
}
