//! Delay steps and cancellation (issue 6), driven by the injectable manual clock: time
//! advances instantly, so windows of minutes or days are tested without sleeping.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tidings::clock::Clock;

use crate::db;
use crate::helpers::{TestApp, assert_error, spawn_app_with};

pub fn t0() -> DateTime<Utc> {
    tidings::clock::parse("2026-03-01T09:00:00Z").expect("t0")
}

/// A server whose engine runs on a manual clock standing at [`t0`].
pub async fn app_with_manual_clock() -> (TestApp, Clock) {
    let clock = Clock::manual(t0());
    let c = clock.clone();
    let app = spawn_app_with(move |s| s.clock = c).await;
    (app, clock)
}

/// `PUT /v1/workflows/{key}` with `steps`, asserting 200.
pub async fn upsert(app: &TestApp, key: &str, steps: Value) {
    let (status, body) = app
        .put_json(
            &format!("/v1/workflows/{key}"),
            json!({"workflow": {"name": key, "steps": steps}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

pub fn in_app(step_ref: &str, body: &str) -> Value {
    json!({"ref": step_ref, "type": "channel", "channel_key": "in-app-feed",
           "channel_type": "in_app_feed", "template": {"markdown_body": body}})
}

fn delay_for(unit: &str, value: i64) -> Value {
    json!({"ref": "delay_1", "type": "delay", "settings": {"delay_for": {"unit": unit, "value": value}}})
}

/// Polls until the run's recipient runs all have one of `statuses` (~10 s).
pub async fn wait_recipient_statuses(app: &TestApp, run_id: &str, count: usize, statuses: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rrs = db::recipient_runs(&app.db_path, run_id);
        if rrs.len() == count && rrs.iter().all(|(_, s, _)| statuses.contains(&s.as_str())) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "recipient runs of {run_id} never reached {statuses:?}: {rrs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Messages stored for `user` (any run), with their `inserted_at`.
pub fn messages_of(app: &TestApp, user: &str) -> Vec<(String, String)> {
    let conn = db::open(&app.db_path);
    let mut stmt = conn
        .prepare("SELECT step_ref, inserted_at FROM messages WHERE recipient_id = ?1 ORDER BY seq")
        .expect("prepare");
    stmt.query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

pub async fn wait_messages(app: &TestApp, user: &str, count: usize) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let m = messages_of(app, user);
        if m.len() >= count {
            return m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{user} has {m:?}, wanted {count}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn events_named(events: &Value, name: &str) -> Vec<Value> {
    events
        .as_array()
        .map(|e| e.iter().filter(|e| e["event"] == name).cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_delay_pauses_until_the_clock_reaches_it_then_delivers_once() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "reminder",
        json!([
            in_app("first", "now"),
            delay_for("minutes", 5),
            in_app("later", "later")
        ]),
    )
    .await;
    let run = app
        .trigger("reminder", json!({"recipients": ["d1", "d2"]}))
        .await;
    wait_recipient_statuses(&app, &run, 2, &["paused"]).await;
    assert_eq!(
        wait_messages(&app, "d1", 1).await.len(),
        1,
        "the step before the delay ran"
    );
    let rrs = db::recipient_runs(&app.db_path, &run);
    let delayed = events_named(&rrs[0].2, "delayed");
    assert_eq!(
        delayed[0]["data"]["until"], "2026-03-01T09:05:00.000000Z",
        "{rrs:?}"
    );
    assert_eq!(db::count(&app.db_path, "SELECT COUNT(*) FROM timers"), 2);

    // Four minutes: not due. Then past due: fires, stamped with the clock at firing.
    clock.advance(Duration::minutes(4));
    clock.advance(Duration::minutes(2));
    let d1 = wait_messages(&app, "d1", 2).await;
    assert_eq!(d1[1].0, "later");
    assert_eq!(
        d1[1].1, "2026-03-01T09:06:00.000000Z",
        "fired after the 5 minutes, not before"
    );
    wait_recipient_statuses(&app, &run, 2, &["completed"]).await;
    assert_eq!(wait_messages(&app, "d2", 2).await.len(), 2);
    assert_eq!(db::count(&app.db_path, "SELECT COUNT(*) FROM timers"), 0);
    let rrs = db::recipient_runs(&app.db_path, &run);
    assert_eq!(events_named(&rrs[0].2, "resumed").len(), 1, "{rrs:?}");
    // Nothing fires twice, however far the clock goes.
    clock.advance(Duration::days(30));
    let res = app
        .post(
            "/v1/workflows/reminder/cancel",
            json!({"cancellation_key": "x"}),
        )
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status(), 204);
    assert_eq!(messages_of(&app, "d1").len(), 2);
}

#[tokio::test]
async fn delay_until_field_path_with_offset_skip_delay_and_invalid_values() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "until",
        json!([
        {"ref": "wait", "type": "delay", "settings": {"delay_until_field_path": "data.remind_at",
                                                       "delay_for": {"unit": "hours", "value": 1}}},
        in_app("after", "after")]),
    )
    .await;
    // An hour after remind_at (a day from now, given with an offset).
    let run = app
        .trigger(
            "until",
            json!({"recipients": ["u-until"], "data": {"remind_at": "2026-03-02T11:00:00+02:00"}}),
        )
        .await;
    wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
    let rrs = db::recipient_runs(&app.db_path, &run);
    assert_eq!(
        events_named(&rrs[0].2, "delayed")[0]["data"]["until"],
        "2026-03-02T10:00:00.000000Z"
    );

    // skip_delay: delivered at once.
    app.trigger(
        "until",
        json!({"recipients": ["u-skip"], "settings": {"skip_delay": true},
                                "data": {"remind_at": "2026-03-09T00:00:00Z"}}),
    )
    .await;
    assert_eq!(
        wait_messages(&app, "u-skip", 1).await[0].1,
        "2026-03-01T09:00:00.000000Z"
    );

    // Missing or invalid dynamic values skip the step (Knock), recording why.
    for (user, data) in [
        ("u-missing", json!({})),
        ("u-bad", json!({"remind_at": "next tuesday"})),
        ("u-num", json!({"remind_at": 12})),
    ] {
        let run = app
            .trigger("until", json!({"recipients": [user], "data": data}))
            .await;
        wait_messages(&app, user, 1).await;
        let rrs = db::recipient_runs(&app.db_path, &run);
        let skipped = events_named(&rrs[0].2, "step_skipped");
        assert_eq!(skipped[0]["data"]["reason"], "invalid_delay", "{rrs:?}");
        assert_eq!(skipped[0]["data"]["field_path"], "data.remind_at");
    }
    // A timestamp already past (even with the offset) does not wait.
    app.trigger(
        "until",
        json!({"recipients": ["u-past"], "data": {"remind_at": "2026-01-01T00:00:00Z"}}),
    )
    .await;
    wait_messages(&app, "u-past", 1).await;

    clock.advance(Duration::hours(25));
    let m = wait_messages(&app, "u-until", 1).await;
    assert_eq!(m[0].1, "2026-03-02T10:00:00.000000Z");
}

#[tokio::test]
async fn cancel_before_the_delay_elapses_stops_only_the_listed_recipients() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "cancellable",
        json!([delay_for("days", 1), in_app("msg", "hi")]),
    )
    .await;
    let run = app
        .trigger(
            "cancellable",
            json!({"recipients": ["c1", "c2", {"id": "p1", "collection": "projects"}],
                                       "cancellation_key": "task-7"}),
        )
        .await;
    let other = app
        .trigger(
            "cancellable",
            json!({"recipients": ["c1"], "cancellation_key": "task-8"}),
        )
        .await;
    wait_recipient_statuses(&app, &run, 3, &["paused"]).await;
    wait_recipient_statuses(&app, &other, 1, &["paused"]).await;

    let res = app
        .post("/v1/workflows/cancellable/cancel",
              json!({"cancellation_key": "task-7", "recipients": ["c1", {"id": "p1", "collection": "projects"}]}))
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status(), 204);
    let rrs = db::recipient_runs(&app.db_path, &run);
    let status = |id: &str| {
        rrs.iter()
            .find(|r| r.0 == id)
            .map(|r| r.1.clone())
            .unwrap_or_default()
    };
    assert_eq!(status("c1"), "cancelled");
    assert_eq!(status("p1"), "cancelled");
    assert_eq!(status("c2"), "paused");
    let c1 = rrs.iter().find(|r| r.0 == "c1").expect("c1");
    assert_eq!(
        events_named(&c1.2, "cancelled")[0]["data"]["cancellation_key"],
        "task-7"
    );
    // A different key or workflow cancels nothing.
    for (wf, key) in [("cancellable", "task-9"), ("new-comment", "task-8")] {
        let res = app
            .post(
                &format!("/v1/workflows/{wf}/cancel"),
                json!({"cancellation_key": key}),
            )
            .send()
            .await
            .expect("cancel");
        assert_eq!(res.status(), 204);
    }
    wait_recipient_statuses(&app, &other, 1, &["paused"]).await;

    clock.advance(Duration::days(2));
    wait_messages(&app, "c2", 1).await;
    wait_recipient_statuses(&app, &other, 1, &["completed"]).await;
    assert_eq!(
        messages_of(&app, "c1").len(),
        1,
        "only the other run's item"
    );
    let conn = db::open(&app.db_path);
    let p1: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE recipient_id = 'p1'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(p1, 0);
}

#[tokio::test]
async fn cancel_without_recipients_cancels_all_and_after_the_delay_changes_nothing() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "cancel-all",
        json!([delay_for("seconds", 30), in_app("msg", "hi")]),
    )
    .await;
    let run = app
        .trigger(
            "cancel-all",
            json!({"recipients": ["a1", "a2"], "cancellation_key": "k"}),
        )
        .await;
    wait_recipient_statuses(&app, &run, 2, &["paused"]).await;
    let res = app
        .post(
            "/v1/workflows/cancel-all/cancel",
            json!({"cancellation_key": "k"}),
        )
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status(), 204);
    wait_recipient_statuses(&app, &run, 2, &["cancelled"]).await;
    assert_eq!(db::count(&app.db_path, "SELECT COUNT(*) FROM timers"), 0);

    // After the delay elapsed the run completed: a cancel is a no-op.
    let done = app
        .trigger(
            "cancel-all",
            json!({"recipients": ["a3"], "cancellation_key": "k"}),
        )
        .await;
    wait_recipient_statuses(&app, &done, 1, &["paused"]).await;
    clock.advance(Duration::seconds(31));
    wait_messages(&app, "a3", 1).await;
    wait_recipient_statuses(&app, &done, 1, &["completed"]).await;
    let res = app
        .post(
            "/v1/workflows/cancel-all/cancel",
            json!({"cancellation_key": "k"}),
        )
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status(), 204);
    wait_recipient_statuses(&app, &done, 1, &["completed"]).await;
    assert_eq!(messages_of(&app, "a3").len(), 1);
    assert!(messages_of(&app, "a1").is_empty());
}

#[tokio::test]
async fn impossible_delays_are_refused_naming_the_field_and_bad_cancels_are_422() {
    let (app, _clock) = app_with_manual_clock().await;
    for (settings, field) in [
        (
            json!({"delay_for": {"unit": "minutes", "value": 0}}),
            "workflow.steps[0].settings.delay_for",
        ),
        (
            json!({"delay_for": {"unit": "minutes", "value": -3}}),
            "workflow.steps[0].settings.delay_for",
        ),
        (
            json!({"delay_for": {"unit": "weeks", "value": 100}}),
            "workflow.steps[0].settings.delay_for",
        ),
        (
            json!({"delay_for": {"unit": "fortnights", "value": 1}}),
            "workflow.steps[0].settings.delay_for",
        ),
        (
            json!({"delay_until_field_path": "payload.at"}),
            "workflow.steps[0].settings.delay_until_field_path",
        ),
        (
            json!({"delay_until_field_path": 5}),
            "workflow.steps[0].settings.delay_until_field_path",
        ),
        (json!({}), "workflow.steps[0].settings"),
    ] {
        let res = app
            .put("/v1/workflows/bad-delay",
                 json!({"workflow": {"name": "x", "steps": [{"ref": "d", "type": "delay", "settings": settings}]}}))
            .send()
            .await
            .expect("put");
        let body = assert_error(res, 422, "invalid_params").await;
        assert!(
            body["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["field"] == field)),
            "{field}: {body}"
        );
    }
    let (status, _) = app.get_json("/v1/workflows/bad-delay").await;
    assert_eq!(status, 404, "nothing stored");

    let too_many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    for body in [
        json!({"cancellation_key": "k", "recipients": too_many}),
        json!({"cancellation_key": "k", "recipients": "u1"}),
        json!({"cancellation_key": 5}),
        json!({"cancellation_key": "k", "recipients": [{"id": 1}]}),
    ] {
        let res = app
            .post("/v1/workflows/new-comment/cancel", body)
            .send()
            .await
            .expect("cancel");
        assert_error(res, 422, "invalid_params").await;
    }
}

#[tokio::test]
async fn a_delay_round_trips_through_put_and_get_as_knock_cli_writes_it() {
    let (app, _clock) = app_with_manual_clock().await;
    let step = json!({"ref": "delay_1", "type": "delay", "name": "Wait a bit", "description": null,
                      "conditions": null,
                      "settings": {"delay_for": {"unit": "hours", "value": 2}, "delay_until_field_path": "recipient.trial_ends_at"}});
    upsert(
        &app,
        "round-trip",
        json!([step.clone(), in_app("msg", "x")]),
    )
    .await;
    let (status, w) = app.get_json("/v1/workflows/round-trip").await;
    assert_eq!(status, 200);
    assert_eq!(w["steps"][0], step);
}
