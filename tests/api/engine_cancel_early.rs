//! A cancel that arrives before its run pauses (issue item "cancel before the pause"):
//! accepted after the trigger's 200, it still stops the paused steps for the named
//! recipients. Time is the manual clock; where a test cannot know whether the runner
//! walked the run before the cancel, its assertions hold either way.

use chrono::Duration;
use serde_json::{Value, json};

use crate::db;
use tidings::clock::Clock;

use crate::engine_delay::{
    app_with_manual_clock, in_app, messages_of, t0, upsert, wait_messages, wait_recipient_statuses,
};
use crate::helpers::{TestApp, spawn_app_with};

fn delay_minutes(n: i64) -> Value {
    json!({"ref": "wait", "type": "delay", "settings": {"delay_for": {"unit": "minutes", "value": n}}})
}

async fn cancel(app: &TestApp, workflow: &str, body: Value) {
    let res = app
        .post(&format!("/v1/workflows/{workflow}/cancel"), body)
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status(), 204);
}

fn step_refs(app: &TestApp, run: &str, user: &str) -> Vec<String> {
    db::messages_of_run(&app.db_path, run)
        .into_iter()
        .filter(|m| m.recipient_id == user)
        .map(|m| m.step_ref)
        .collect()
}

fn cancellations(app: &TestApp) -> i64 {
    db::count(&app.db_path, "SELECT COUNT(*) FROM workflow_cancellations")
}

/// Lets the engine settle, then asserts `user` still has exactly `count` messages.
async fn assert_stays(app: &TestApp, user: &str, count: usize) {
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(messages_of(app, user).len(), count, "{user}");
    }
}

/// Stores a copy of run `template` as run `id` with `cancellation_key`, `queued`: an
/// accepted run this server's runner was never handed (as a stop right after a trigger's
/// commit leaves one), so it is walked only at the next start, after what the test does
/// in between. This is how a test orders "cancel, then the runner walks" without racing.
fn queue_copy(app: &TestApp, template: &str, id: &str, cancellation_key: &str) {
    crate::db::execute(
        &app.db_path,
        "INSERT INTO workflow_runs(id, workflow_key, request, cancellation_key, tenant, status, \
         inserted_at, updated_at, recipient_count) SELECT ?1, workflow_key, request, ?2, tenant, \
         'queued', inserted_at, updated_at, recipient_count FROM workflow_runs WHERE id = ?3",
        [id, cancellation_key, template],
    );
}

/// Stops `app` and starts a server on its database with a manual clock at `t0`.
async fn restart(app: &TestApp) -> (TestApp, Clock) {
    app.handle.stop(true).await;
    let clock = Clock::manual(t0());
    let c = clock.clone();
    let db = app.db_path.clone();
    let again = spawn_app_with(move |s| {
        s.clock = c;
        crate::engine::point_at(s, db);
    })
    .await;
    (again, clock)
}

/// Waits (~5 s) until run `run` has `count` recipient runs.
async fn wait_recipient_runs(app: &TestApp, run: &str, count: usize) {
    for _ in 0..500 {
        if db::recipient_runs(&app.db_path, run).len() == count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("run {run} never had {count} recipient runs");
}

fn cancelled_event(app: &TestApp, run: &str, user: &str) -> Value {
    let rrs = db::recipient_runs(&app.db_path, run);
    let (_, status, events) = rrs.iter().find(|r| r.0 == user).expect("recipient run");
    assert_eq!(status, "cancelled", "{rrs:?}");
    events
        .as_array()
        .and_then(|e| e.iter().find(|e| e["event"] == "cancelled").cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_cancel_right_after_the_trigger_cancels_the_delayed_run_whether_or_not_it_paused_yet() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "reminder",
        json!([
            in_app("now", "now"),
            delay_minutes(5),
            in_app("later", "later")
        ]),
    )
    .await;
    let run = app
        .trigger(
            "reminder",
            json!({"recipients": ["e1", "e2"], "cancellation_key": "task-1"}),
        )
        .await;
    // No wait for the pause: the runner may not have walked the run yet.
    cancel(&app, "reminder", json!({"cancellation_key": "task-1"})).await;

    wait_recipient_statuses(&app, &run, 2, &["cancelled"]).await;
    assert_eq!(db::wait_for_run(&app.db_path, &run).await, "completed");
    assert_eq!(
        cancelled_event(&app, &run, "e1")["data"]["cancellation_key"],
        "task-1"
    );
    clock.advance(Duration::minutes(10));
    // The step before the delay is delivered (as Knock does); the one after never is.
    wait_messages(&app, "e1", 1).await;
    assert_stays(&app, "e1", 1).await;
    assert_eq!(step_refs(&app, &run, "e2"), ["now"]);
    assert_eq!(db::count(&app.db_path, "SELECT COUNT(*) FROM timers"), 0);
    assert_eq!(cancellations(&app), 0, "released once the run finished");
}

#[tokio::test]
async fn a_cancel_recorded_before_the_runner_walks_a_run_cancels_only_its_recipients_at_the_pause()
{
    let (app, _clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "early",
        json!([
            in_app("now", "now"),
            delay_minutes(5),
            in_app("later", "later")
        ]),
    )
    .await;
    let template = app
        .trigger("early", json!({"recipients": ["q1", "q2"]}))
        .await;
    wait_recipient_statuses(&app, &template, 2, &["paused"]).await;
    // Two accepted runs the runner has not walked (as a stop right after the trigger's
    // commit leaves them), walked at the next start.
    queue_copy(&app, &template, "run-task", "task-2");
    queue_copy(&app, &template, "run-other", "other");
    cancel(
        &app,
        "early",
        json!({"cancellation_key": "task-2", "recipients": ["q1"]}),
    )
    .await;
    // Another key, and a key no run has, record nothing for these runs.
    cancel(&app, "early", json!({"cancellation_key": "unknown"})).await;
    cancel(&app, "new-comment", json!({"cancellation_key": "other"})).await;
    assert_eq!(cancellations(&app), 1, "recorded for the queued run");

    let (again, clock) = restart(&app).await;
    wait_recipient_statuses(&again, "run-other", 2, &["paused"]).await;
    wait_recipient_runs(&again, "run-task", 2).await;
    let task = db::recipient_runs(&again.db_path, "run-task");
    assert_eq!(task[0].0, "q1");
    assert_eq!(task[0].1, "cancelled", "{task:?}");
    assert_eq!(task[1].1, "paused", "{task:?}");
    assert_eq!(
        db::wait_for_run(&again.db_path, "run-task").await,
        "completed"
    );
    assert_eq!(cancellations(&again), 0, "released once the run finished");

    clock.advance(Duration::minutes(10));
    wait_recipient_statuses(&again, "run-other", 2, &["completed"]).await;
    wait_recipient_statuses(&again, &template, 2, &["completed"]).await;
    // q2 of the cancelled run still completes (polled: resumes are asynchronous).
    for _ in 0..500 {
        if step_refs(&again, "run-task", "q2").len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(step_refs(&again, "run-task", "q1"), ["now"]);
    assert_eq!(step_refs(&again, "run-task", "q2"), ["now", "later"]);
    assert_eq!(step_refs(&again, "run-other", "q1"), ["now", "later"]);
}

#[tokio::test]
async fn a_cancel_before_its_trigger_does_not_cancel_the_later_run() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "later",
        json!([delay_minutes(5), in_app("msg", "hi")]),
    )
    .await;
    cancel(&app, "later", json!({"cancellation_key": "k"})).await;
    assert_eq!(cancellations(&app), 0, "no queued run: nothing to remember");
    let run = app
        .trigger(
            "later",
            json!({"recipients": ["f1"], "cancellation_key": "k"}),
        )
        .await;
    wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
    clock.advance(Duration::minutes(5));
    wait_messages(&app, "f1", 1).await;
}

#[tokio::test]
async fn a_cancel_right_after_a_batched_trigger_removes_its_activity_whether_or_not_it_joined() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "digest",
        json!([
            {"ref": "batch_1", "type": "batch",
             "settings": {"batch_window": {"unit": "minutes", "value": 5}}},
            in_app("feed", "{{ total_activities }}:{% for a in activities %} {{ a.n }}{% endfor %}")
        ]),
    )
    .await;
    let trigger = |n: i64| {
        let app = &app;
        async move {
            app.trigger(
                "digest",
                json!({"recipients": ["g1"], "data": {"n": n}, "cancellation_key": format!("k{n}")}),
            )
            .await
        }
    };
    let opener = trigger(1).await;
    wait_recipient_statuses(&app, &opener, 1, &["paused"]).await;
    let cancelled = trigger(2).await;
    cancel(&app, "digest", json!({"cancellation_key": "k2"})).await;
    let last = trigger(3).await;
    wait_recipient_statuses(&app, &cancelled, 1, &["cancelled"]).await;
    wait_recipient_statuses(&app, &last, 1, &["paused"]).await;

    clock.advance(Duration::minutes(5));
    let feed = app.wait_for_feed("g1", "", 1).await;
    assert_eq!(
        feed["entries"][0]["blocks"][0]["rendered"]
            .as_str()
            .map(str::trim_end),
        Some("<p>2: 1 3</p>"),
        "{feed}"
    );
    assert_stays(&app, "g1", 1).await;
}

#[tokio::test]
async fn a_cancel_recorded_before_the_runner_walks_a_batched_run_keeps_it_out_of_the_batch() {
    let (app, _clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "digest-early",
        json!([
            {"ref": "batch_1", "type": "batch",
             "settings": {"batch_window": {"unit": "minutes", "value": 5}}},
            in_app("feed", "{{ total_activities }}:{% for a in activities %} {{ a.n }}{% endfor %}")
        ]),
    )
    .await;
    let opener = app
        .trigger(
            "digest-early",
            json!({"recipients": ["h1"], "data": {"n": 1}, "cancellation_key": "k1"}),
        )
        .await;
    wait_recipient_statuses(&app, &opener, 1, &["paused"]).await;
    queue_copy(&app, &opener, "run-joiner", "k2");
    cancel(&app, "digest-early", json!({"cancellation_key": "k2"})).await;
    assert_eq!(cancellations(&app), 1, "recorded for the queued run");

    let (again, clock) = restart(&app).await;
    wait_recipient_runs(&again, "run-joiner", 1).await;
    let joiner = db::recipient_runs(&again.db_path, "run-joiner");
    assert_eq!(joiner[0].1, "cancelled", "{joiner:?}");
    let batched = joiner[0].2.as_array().and_then(|e| {
        e.iter()
            .find(|e| e["event"] == "batched")
            .map(|e| e["data"]["opened"].clone())
    });
    assert_eq!(
        batched,
        Some(json!(false)),
        "it joined the open batch: {joiner:?}"
    );

    clock.advance(Duration::minutes(5));
    let feed = again.wait_for_feed("h1", "", 1).await;
    assert_eq!(
        feed["entries"][0]["blocks"][0]["rendered"]
            .as_str()
            .map(str::trim_end),
        Some("<p>1: 1</p>"),
        "only the opener's activity: {feed}"
    );
    assert_stays(&again, "h1", 1).await;
}
