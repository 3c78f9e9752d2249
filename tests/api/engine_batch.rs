//! Batch steps (issue 6 item 3), driven by the injectable manual clock: windows of
//! minutes close instantly when the test advances the clock, never by sleeping.

use chrono::Duration;
use serde_json::{Value, json};

use crate::db;
use crate::engine_delay::{
    app_with_manual_clock, in_app, messages_of, upsert, wait_messages, wait_recipient_statuses,
};
use crate::helpers::{TestApp, assert_error};

fn batch(settings: Value) -> Value {
    json!({"ref": "batch_1", "type": "batch", "settings": settings})
}

fn minutes(n: i64) -> Value {
    json!({"unit": "minutes", "value": n})
}

/// A digest body that shows every batch variable.
const DIGEST: &str = "{{ total_activities }} by {{ actors[0].name }} of {{ total_actors }}; \
    last n={{ data.n }};{% for a in activities %} {{ a.n }}/{{ a.actor.id }}{% endfor %}";

async fn trigger(app: &TestApp, key: &str, user: &str, actor: &str, data: Value) -> String {
    app.trigger(
        key,
        json!({"recipients": [user], "actor": {"id": actor}, "data": data}),
    )
    .await
}

async fn trigger_ck(app: &TestApp, key: &str, user: &str, n: i64, ck: &str) -> String {
    app.trigger(
        key,
        json!({"recipients": [user], "actor": {"id": "al"}, "data": {"n": n}, "cancellation_key": ck}),
    )
    .await
}

/// The rich feed of `user` once it holds `count` items.
async fn rich_feed(app: &TestApp, user: &str, count: usize) -> Vec<Value> {
    let feed = app.wait_for_feed(user, "mode=rich", count).await;
    feed["entries"].as_array().cloned().unwrap_or_default()
}

fn body_of(item: &Value) -> String {
    item["blocks"][0]["rendered"]
        .as_str()
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// Lets the engine settle (the scheduler and runner act on committed rows), then asserts
/// `user` still has exactly `count` messages: how "nothing more arrives" is checked
/// without a wall-clock wait standing in for the engine.
async fn assert_stays(app: &TestApp, user: &str, count: usize) {
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(messages_of(app, user).len(), count, "{user}");
    }
}

async fn identify_actors(app: &TestApp) {
    app.identify("al", json!({"name": "Al"})).await;
    app.identify("bo", json!({"name": "Bo"})).await;
}

fn open_batches(app: &TestApp) -> i64 {
    db::count(
        &app.db_path,
        "SELECT COUNT(*) FROM batches WHERE status = 'open'",
    )
}

#[tokio::test]
async fn a_fixed_window_collects_triggers_into_one_item_with_activities_actors_and_merged_data() {
    let (app, clock) = app_with_manual_clock().await;
    identify_actors(&app).await;
    upsert(
        &app,
        "digest",
        json!([
            batch(json!({"batch_window": minutes(5)})),
            in_app("feed", DIGEST)
        ]),
    )
    .await;
    let mut runs = Vec::new();
    for (actor, n) in [("al", 1), ("bo", 2), ("al", 3)] {
        let run = trigger(
            &app,
            "digest",
            "r1",
            actor,
            json!({"n": n, "only_first": n == 1, "deep": {"x": n}}),
        )
        .await;
        wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
        runs.push(run);
    }
    assert_eq!(open_batches(&app), 1, "one batch for the recipient");
    clock.advance(Duration::minutes(4));
    assert_stays(&app, "r1", 0).await;

    clock.advance(Duration::minutes(2));
    let items = rich_feed(&app, "r1", 1).await;
    assert_eq!(items.len(), 1, "ONE item for the batch");
    let item = &items[0];
    // Stamped with the clock at the close: it did not close at 09:04.
    assert_eq!(item["inserted_at"], "2026-03-01T09:06:00.000000Z");
    assert_eq!(
        body_of(item),
        "<p>3 by Al of 2; last n=3; 1/al 2/bo 3/al</p>"
    );
    assert_eq!(item["total_activities"], 3);
    assert_eq!(item["total_actors"], 2);
    assert_eq!(item["actors"].as_array().map(Vec::len), Some(2));
    assert_eq!(item["actors"][1]["name"], "Bo");
    let activities = item["activities"].as_array().expect("activities");
    assert_eq!(activities.len(), 3);
    assert_eq!(activities[0]["__typename"], "Activity");
    assert_eq!(activities[0]["actor"]["id"], "al");
    assert_eq!(activities[0]["recipient"]["id"], "r1");
    assert_eq!(activities[1]["data"]["n"], 2);
    assert_eq!(activities[2]["inserted_at"], "2026-03-01T09:00:00.000000Z");
    // Merged, flat data: later activities win, nested values dropped.
    assert_eq!(item["data"]["n"], 3);
    assert_eq!(item["data"]["only_first"], false);
    assert!(item["data"].get("deep").is_none(), "{}", item["data"]);
    // Compact mode: at most one actor, no activities.
    let compact = app.wait_for_feed("r1", "mode=compact", 1).await;
    let c = &compact["entries"][0];
    assert_eq!(c["actors"].as_array().map(Vec::len), Some(1));
    assert_eq!(c["total_actors"], 2);
    assert!(c.get("activities").is_none());

    // The opener continued; the others ended when the batch closed.
    let opener = db::recipient_runs(&app.db_path, &runs[0]);
    assert_eq!(opener[0].1, "completed");
    let names: Vec<&str> = opener[0]
        .2
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["event"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "recipient_not_identified",
            "batched",
            "resumed",
            "message_created"
        ]
    );
    for run in &runs[1..] {
        let rr = db::recipient_runs(&app.db_path, run);
        assert_eq!(rr[0].1, "completed");
        assert!(
            rr[0]
                .2
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["event"] == "batch_closed"))
        );
    }
    assert_eq!(open_batches(&app), 0);
    // The messages API lists the batch's activities, and filters them on their own data.
    let id = item["id"].as_str().unwrap_or_default();
    let (status, listed) = app.get_json(&format!("/v1/messages/{id}/activities")).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    assert_eq!(listed["items"][1]["actor"]["id"], "bo");
    let (_, filtered) = app
        .get_json(&format!(
            "/v1/messages/{id}/activities?trigger_data=%7B%22n%22%3A2%7D"
        ))
        .await;
    assert_eq!(
        filtered["items"].as_array().map(Vec::len),
        Some(1),
        "{filtered}"
    );
    // Nothing closes twice, however far the clock goes.
    clock.advance(Duration::days(30));
    assert_stays(&app, "r1", 1).await;
}

#[tokio::test]
async fn batches_are_per_recipient_tenant_and_batch_key_and_the_key_may_be_a_bare_property() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "by-page",
        json!([
            batch(json!({"batch_window": minutes(5), "batch_key": "page_id"})),
            in_app("feed", "{{ total_activities }} on {{ data.page_id }}")
        ]),
    )
    .await;
    for (user, page, tenant) in [
        ("k1", "p1", None),
        ("k1", "p1", None),
        ("k1", "p2", None),
        ("k2", "p1", None),
        ("k1", "p1", Some("acme")),
    ] {
        let mut body = json!({"recipients": [user], "data": {"page_id": page}});
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        let run = app.trigger("by-page", body).await;
        wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
    }
    assert_eq!(open_batches(&app), 4);
    clock.advance(Duration::minutes(5));
    wait_messages(&app, "k1", 3).await;
    wait_messages(&app, "k2", 1).await;
    let conn = db::open(&app.db_path);
    let mut stmt = conn
        .prepare("SELECT recipient_id, COALESCE(tenant, ''), json_extract(blocks, '$[0].rendered') FROM messages ORDER BY recipient_id, COALESCE(tenant, ''), 3")
        .expect("prepare");
    let rows: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        rows,
        [
            ("k1".into(), "".into(), "<p>1 on p2</p>\n".into()),
            ("k1".into(), "".into(), "<p>2 on p1</p>\n".into()),
            ("k1".into(), "acme".into(), "<p>1 on p1</p>\n".into()),
            ("k2".into(), "".into(), "<p>1 on p1</p>\n".into()),
        ]
    );
}

#[tokio::test]
async fn a_sliding_window_extends_with_each_activity_up_to_its_extension_limit() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "sliding",
        json!([
            batch(
                json!({"batch_window": minutes(5), "batch_window_type": "sliding",
                            "batch_window_extension_limit": minutes(12)})
            ),
            in_app("feed", "{{ total_activities }}")
        ]),
    )
    .await;
    // 09:00 opens (closes 09:05); 09:04 slides it to 09:09; 09:08 would slide to 09:13
    // but the limit (12 minutes from the open) stops it at 09:12.
    for step in 0..3 {
        if step > 0 {
            clock.advance(Duration::minutes(4));
        }
        let run = trigger(&app, "sliding", "s1", "al", json!({"n": step})).await;
        wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
    }
    let closes: String = db::open(&app.db_path)
        .query_row("SELECT closes_at FROM batches", [], |r| r.get(0))
        .expect("batch");
    assert_eq!(closes, "2026-03-01T09:12:00.000000Z");
    clock.advance(Duration::minutes(3)); // 09:11
    assert_stays(&app, "s1", 0).await;
    clock.advance(Duration::minutes(1)); // 09:12
    let items = rich_feed(&app, "s1", 1).await;
    assert_eq!(body_of(&items[0]), "<p>3</p>");
    assert_eq!(
        items[0]["inserted_at"], "2026-03-01T09:12:00.000000Z",
        "closed at the extension limit, not at 09:11"
    );
}

#[tokio::test]
async fn batch_items_max_limit_closes_the_batch_early_and_the_next_trigger_opens_a_new_one() {
    let (app, _clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "capped",
        json!([
            batch(
                json!({"batch_window": {"unit": "days", "value": 1}, "batch_items_max_limit": 2})
            ),
            in_app("feed", "{{ total_activities }}")
        ]),
    )
    .await;
    trigger(&app, "capped", "m1", "al", json!({"n": 1})).await;
    trigger(&app, "capped", "m1", "al", json!({"n": 2})).await;
    // Full at two: closes without the clock moving.
    let items = rich_feed(&app, "m1", 1).await;
    assert_eq!(body_of(&items[0]), "<p>2</p>");
    let run = trigger(&app, "capped", "m1", "al", json!({"n": 3})).await;
    wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
    assert_eq!(
        open_batches(&app),
        1,
        "the third trigger opened a new batch"
    );
    assert_stays(&app, "m1", 1).await;
}

#[tokio::test]
async fn render_limit_and_desc_order_render_the_newest_activities_but_count_them_all() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "newest",
        json!([
            batch(
                json!({"batch_window": minutes(5), "batch_items_render_limit": 2,
                            "batch_order": "desc"})
            ),
            in_app(
                "feed",
                "{{ total_activities }}:{% for a in activities %} {{ a.n }}{% endfor %}"
            )
        ]),
    )
    .await;
    for n in 1..=4 {
        let run = trigger(&app, "newest", "o1", "al", json!({"n": n})).await;
        wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
    }
    clock.advance(Duration::minutes(5));
    let items = rich_feed(&app, "o1", 1).await;
    assert_eq!(body_of(&items[0]), "<p>4: 4 3</p>");
    assert_eq!(items[0]["total_activities"], 4);
    assert_eq!(items[0]["activities"].as_array().map(Vec::len), Some(2));
    assert_eq!(items[0]["data"]["n"], 4);
}

#[tokio::test]
async fn flush_leading_sends_the_first_trigger_at_once_and_batches_the_rest() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "leading",
        json!([batch(json!({"batch_window": minutes(5), "batch_execution_mode": "flush_leading"})),
               in_app("feed", "{% if total_activities %}{{ total_activities }} more{% else %}first {{ data.n }}{% endif %}")]),
    )
    .await;
    let first = trigger(&app, "leading", "f1", "al", json!({"n": 1})).await;
    wait_recipient_statuses(&app, &first, 1, &["completed"]).await;
    let items = rich_feed(&app, "f1", 1).await;
    assert_eq!(body_of(&items[0]), "<p>first 1</p>");
    let rr = db::recipient_runs(&app.db_path, &first);
    let batched = rr[0]
        .2
        .as_array()
        .and_then(|e| e.iter().find(|e| e["event"] == "batched").cloned())
        .expect("batched");
    assert_eq!(batched["data"]["flushed"], true, "{batched}");
    for n in 2..=3 {
        let run = trigger(&app, "leading", "f1", "bo", json!({"n": n})).await;
        wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
    }
    assert_stays(&app, "f1", 1).await;
    clock.advance(Duration::minutes(5));
    let items = rich_feed(&app, "f1", 2).await;
    assert_eq!(body_of(&items[0]), "<p>2 more</p>");
    assert_eq!(items[0]["total_activities"], 2);
    // A window that closes with nothing accumulated sends nothing more.
    let lone = trigger(&app, "leading", "f2", "al", json!({"n": 1})).await;
    wait_recipient_statuses(&app, &lone, 1, &["completed"]).await;
    clock.advance(Duration::minutes(10));
    assert_stays(&app, "f2", 1).await;
    assert_eq!(open_batches(&app), 0);
}

#[tokio::test]
async fn a_dynamic_window_closes_at_the_resolved_time_or_falls_back_to_the_static_one() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "dynamic",
        json!([
            batch(json!({"batch_until_field_path": "data.digest_at", "batch_window": minutes(30)})),
            in_app("feed", "{{ total_activities }}")
        ]),
    )
    .await;
    let at = trigger(
        &app,
        "dynamic",
        "y1",
        "al",
        json!({"digest_at": "2026-03-01T09:10:00Z"}),
    )
    .await;
    let fallback = trigger(&app, "dynamic", "y2", "al", json!({"digest_at": "soon"})).await;
    wait_recipient_statuses(&app, &at, 1, &["paused"]).await;
    wait_recipient_statuses(&app, &fallback, 1, &["paused"]).await;
    clock.advance(Duration::minutes(10));
    wait_messages(&app, "y1", 1).await;
    assert_stays(&app, "y2", 0).await;
    clock.advance(Duration::minutes(20));
    wait_messages(&app, "y2", 1).await;
}

async fn cancel(app: &TestApp, key: &str, ck: &str) {
    let res = app
        .post(
            &format!("/v1/workflows/{key}/cancel"),
            json!({"cancellation_key": ck}),
        )
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn cancelling_removes_an_activity_keeps_the_window_open_and_an_all_cancelled_batch_sends_nothing()
 {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "cancel-batch",
        json!([
            batch(json!({"batch_window": minutes(5)})),
            in_app(
                "feed",
                "{{ total_activities }}:{% for a in activities %} {{ a.n }}{% endfor %}"
            )
        ]),
    )
    .await;
    let mut runs = Vec::new();
    for n in 1..=3 {
        let run = trigger_ck(&app, "cancel-batch", "c1", n, &format!("k{n}")).await;
        wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
        runs.push(run);
    }
    // The opener's activity goes too: the next live activity's run continues at close.
    cancel(&app, "cancel-batch", "k1").await;
    cancel(&app, "cancel-batch", "k2").await;
    wait_recipient_statuses(&app, &runs[0], 1, &["cancelled"]).await;
    assert_eq!(open_batches(&app), 1, "the window stays open");
    let late = trigger_ck(&app, "cancel-batch", "c1", 4, "k4").await;
    wait_recipient_statuses(&app, &late, 1, &["paused"]).await;
    clock.advance(Duration::minutes(5));
    let items = rich_feed(&app, "c1", 1).await;
    assert_eq!(body_of(&items[0]), "<p>2: 3 4</p>");
    wait_recipient_statuses(&app, &runs[2], 1, &["completed"]).await;

    // Every activity cancelled: the batch closes with no message.
    let a = trigger_ck(&app, "cancel-batch", "c2", 1, "all").await;
    let b = trigger_ck(&app, "cancel-batch", "c2", 2, "all").await;
    wait_recipient_statuses(&app, &b, 1, &["paused"]).await;
    cancel(&app, "cancel-batch", "all").await;
    wait_recipient_statuses(&app, &a, 1, &["cancelled"]).await;
    clock.advance(Duration::minutes(5));
    for _ in 0..100 {
        if open_batches(&app) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(open_batches(&app), 0, "the batch closed");
    assert_stays(&app, "c2", 0).await;
}

#[tokio::test]
async fn after_close_only_the_openers_cancellation_key_cancels_the_continuing_run() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "then-wait",
        json!([batch(json!({"batch_window": minutes(5)})),
               {"ref": "wait", "type": "delay", "settings": {"delay_for": minutes(10)}},
               in_app("feed", "{{ total_activities }}")]),
    )
    .await;
    let opener = trigger_ck(&app, "then-wait", "w1", 1, "opener").await;
    // Runs proceed concurrently: the opener must have opened before the joiner comes.
    wait_recipient_statuses(&app, &opener, 1, &["paused"]).await;
    let joiner = trigger_ck(&app, "then-wait", "w1", 2, "joiner").await;
    wait_recipient_statuses(&app, &joiner, 1, &["paused"]).await;
    clock.advance(Duration::minutes(5));
    // Closed: the joiner's run ended, the opener's waits in the delay.
    wait_recipient_statuses(&app, &joiner, 1, &["completed"]).await;
    let rr = db::recipient_runs(&app.db_path, &opener);
    assert!(
        rr[0]
            .2
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["event"] == "delayed")),
        "{rr:?}"
    );
    cancel(&app, "then-wait", "joiner").await;
    wait_recipient_statuses(&app, &opener, 1, &["paused"]).await;
    cancel(&app, "then-wait", "opener").await;
    wait_recipient_statuses(&app, &opener, 1, &["cancelled"]).await;
    clock.advance(Duration::minutes(15));
    assert_stays(&app, "w1", 0).await;
}

#[tokio::test]
async fn the_run_record_shows_the_batched_event_and_paused_status_while_waiting() {
    let (app, _clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "recorded",
        json!([
            batch(json!({"batch_window": minutes(5), "batch_key": "data.page"})),
            in_app("feed", "x")
        ]),
    )
    .await;
    let first = trigger(&app, "recorded", "rec", "al", json!({"page": "p9"})).await;
    wait_recipient_statuses(&app, &first, 1, &["paused"]).await;
    let run = trigger(&app, "recorded", "rec", "al", json!({"page": "p9"})).await;
    wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
    let (_, list) = app
        .get_json("/v1/workflow_recipient_runs?workflow=recorded&recipient=rec")
        .await;
    let entry = list["items"]
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|e| e["workflow_run_id"] == run.as_str())
                .cloned()
        })
        .expect("the run is listed");
    assert_eq!(entry["status"], "paused");
    let (status, detail) = app
        .get_json(&format!(
            "/v1/workflow_recipient_runs/{}",
            entry["id"].as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(status, 200, "{detail}");
    let batched = detail["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["event"] == "batched").cloned())
        .expect("a batched event");
    let batch_id: String = db::open(&app.db_path)
        .query_row("SELECT id FROM batches", [], |r| r.get(0))
        .expect("batch");
    assert_eq!(batched["data"]["batch_id"], batch_id.as_str());
    assert_eq!(batched["data"]["batch_key"], "p9");
    assert_eq!(batched["data"]["opened"], false);
    assert_eq!(batched["step_ref"], "batch_1");
}

#[tokio::test]
async fn the_closed_batch_item_is_pushed_over_the_socket() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "pushed",
        json!([
            batch(json!({"batch_window": minutes(5)})),
            in_app("feed", "{{ total_activities }}")
        ]),
    )
    .await;
    let channel = app.channel_id().await;
    let mut ws = app.ws_connect("p1").await;
    let topic = format!("feeds:{channel}:p1");
    ws.join_ok(&topic, json!({"client": {"archived": "exclude"}}))
        .await;
    for n in 1..=2 {
        let run = trigger(&app, "pushed", "p1", "al", json!({"n": n})).await;
        wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
    }
    clock.advance(Duration::minutes(5));
    let push = ws.next_event("new-message").await;
    assert_eq!(push[4]["metadata"]["unread_count"], 1, "{push}");
}

/// Every impossible batch setting is refused at upsert with Knock's error shape and the
/// field named; nothing is stored.
#[tokio::test]
async fn bad_batch_settings_are_refused_with_422_naming_the_field_and_nothing_is_stored() {
    let (app, _clock) = app_with_manual_clock().await;
    let w = |v: Value| json!({"batch_window": v});
    for (settings, field) in [
        (w(minutes(0)), "batch_window"),
        (w(minutes(-5)), "batch_window"),
        (w(json!({"unit": "days", "value": 367})), "batch_window"),
        (w(json!({"unit": "fortnights", "value": 1})), "batch_window"),
        (w(json!("5m")), "batch_window"),
        (json!({}), "batch_window"),
        (
            json!({"batch_window": minutes(5), "batch_items_max_limit": 1}),
            "batch_items_max_limit",
        ),
        (
            json!({"batch_window": minutes(5), "batch_items_max_limit": 1001}),
            "batch_items_max_limit",
        ),
        (
            json!({"batch_window": minutes(5), "batch_items_max_limit": "ten"}),
            "batch_items_max_limit",
        ),
        (
            json!({"batch_window": minutes(5), "batch_items_render_limit": 0}),
            "batch_items_render_limit",
        ),
        (
            json!({"batch_window": minutes(5), "batch_items_render_limit": 101}),
            "batch_items_render_limit",
        ),
        (
            json!({"batch_window": minutes(5), "batch_order": "newest"}),
            "batch_order",
        ),
        (
            json!({"batch_window": minutes(5), "batch_execution_mode": "flush"}),
            "batch_execution_mode",
        ),
        (
            json!({"batch_window": minutes(5), "batch_window_type": "tumbling"}),
            "batch_window_type",
        ),
        (
            json!({"batch_window": minutes(10), "batch_window_type": "sliding",
                "batch_window_extension_limit": minutes(5)}),
            "batch_window_extension_limit",
        ),
        (
            json!({"batch_window": minutes(5), "batch_window_type": "sliding",
                "batch_window_extension_limit": {"unit": "weeks", "value": 60}}),
            "batch_window_extension_limit",
        ),
        (
            json!({"batch_window": minutes(5), "batch_key": 7}),
            "batch_key",
        ),
        (
            json!({"batch_window": minutes(5), "batch_until_field_path": "nowhere.x"}),
            "batch_until_field_path",
        ),
    ] {
        let res = app
            .put(
                "/v1/workflows/bad-batch",
                json!({"workflow": {"name": "B", "steps": [batch(settings.clone()), in_app("s", "x")]}}),
            )
            .send()
            .await
            .expect("put");
        let body = assert_error(res, 422, "invalid_params").await;
        let want = format!("workflow.steps[0].settings.{field}");
        assert!(
            body.to_string().contains(&want),
            "{settings}: wanted {want} in {body}"
        );
    }
    // A batch step without settings at all.
    let res = app
        .put(
            "/v1/workflows/bad-batch",
            json!({"workflow": {"name": "B", "steps": [{"ref": "b", "type": "batch"}]}}),
        )
        .send()
        .await
        .expect("put");
    let body = assert_error(res, 422, "invalid_params").await;
    assert!(
        body.to_string().contains("workflow.steps[0].settings"),
        "{body}"
    );
    let (status, _) = app.get_json("/v1/workflows/bad-batch").await;
    assert_eq!(status, 404, "nothing was stored");
}

/// A knock-cli `workflow.json` batch step, as `knock workflow pull` writes it, loads and
/// comes back unchanged from `GET /v1/workflows/{key}`.
#[tokio::test]
async fn a_knock_cli_batch_step_round_trips_through_put_and_get() {
    let (app, _clock) = app_with_manual_clock().await;
    let step = json!({"ref": "batch_1", "type": "batch", "name": "Collect comments",
        "description": null,
        "settings": {"batch_key": "data.page_id", "batch_window": {"unit": "minutes", "value": 10},
                     "batch_window_type": "sliding",
                     "batch_window_extension_limit": {"unit": "hours", "value": 1},
                     "batch_items_max_limit": 100, "batch_items_render_limit": 10,
                     "batch_order": "asc", "batch_execution_mode": "accumulate",
                     "workflow_version_mode": "latest", "batch_until_field_path": null}});
    let (status, put) = app
        .put_json(
            "/v1/workflows/round-trip",
            json!({"workflow": {"name": "Round trip", "steps": [step.clone(), in_app("in_app_feed_1", "{{ total_activities }}")]}}),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    let (status, got) = app.get_json("/v1/workflows/round-trip").await;
    assert_eq!(status, 200);
    assert_eq!(got["steps"][0], step, "{got}");
}

#[tokio::test]
async fn a_batch_key_value_over_255_characters_fails_that_recipients_step() {
    let (app, _clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "long-key",
        json!([
            batch(json!({"batch_window": minutes(5), "batch_key": "data.k"})),
            in_app("feed", "x")
        ]),
    )
    .await;
    let run = trigger(&app, "long-key", "lk", "al", json!({"k": "x".repeat(256)})).await;
    wait_recipient_statuses(&app, &run, 1, &["failed"]).await;
    let ok = trigger(&app, "long-key", "lk", "al", json!({"k": "x".repeat(255)})).await;
    wait_recipient_statuses(&app, &ok, 1, &["paused"]).await;
    assert_eq!(open_batches(&app), 1);
}

#[tokio::test]
async fn the_batch_variables_survive_a_delay_after_the_batch() {
    let (app, clock) = app_with_manual_clock().await;
    identify_actors(&app).await;
    upsert(
        &app,
        "digest-later",
        json!([batch(json!({"batch_window": minutes(5)})),
               {"ref": "wait", "type": "delay", "settings": {"delay_for": minutes(10)}},
               in_app("feed", DIGEST)]),
    )
    .await;
    for (actor, n) in [("al", 1), ("bo", 2)] {
        let run = trigger(&app, "digest-later", "dl", actor, json!({"n": n})).await;
        wait_recipient_statuses(&app, &run, 1, &["paused"]).await;
    }
    clock.advance(Duration::minutes(5));
    // Closed and now waiting in the delay: the batch's variables are kept with the run.
    for _ in 0..200 {
        if open_batches(&app) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(db::count(&app.db_path, "SELECT COUNT(*) FROM timers"), 1);
    assert_stays(&app, "dl", 0).await;
    clock.advance(Duration::minutes(10));
    let items = rich_feed(&app, "dl", 1).await;
    assert_eq!(
        body_of(&items[0]),
        "<p>2 by Al of 2; last n=2; 1/al 2/bo</p>"
    );
    assert_eq!(items[0]["total_activities"], 2);
}

/// Through an object: the object and each subscriber get their own batch, and the
/// subscriber's `recipient.subscription` survives the wait.
#[tokio::test]
async fn an_object_and_each_subscriber_batch_separately() {
    let (app, clock) = app_with_manual_clock().await;
    app.put_ok("/v1/objects/projects/apollo", json!({"name": "Apollo"}))
        .await;
    let (status, out) = app
        .post_json(
            "/v1/objects/projects/apollo/subscriptions",
            json!({"recipients": [{"id": "sub-a"}, {"id": "sub-b"}], "properties": {"role": "viewer"}}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    upsert(
        &app,
        "project-digest",
        json!([
            batch(json!({"batch_window": minutes(5)})),
            in_app(
                "feed",
                "{{ total_activities }} as {{ recipient.subscription.role }}"
            )
        ]),
    )
    .await;
    for n in 1..=2 {
        let run = app
            .trigger(
                "project-digest",
                json!({"recipients": [{"id": "apollo", "collection": "projects"}], "data": {"n": n}}),
            )
            .await;
        wait_recipient_statuses(&app, &run, 3, &["paused"]).await;
    }
    assert_eq!(open_batches(&app), 3);
    clock.advance(Duration::minutes(5));
    for user in ["sub-a", "sub-b"] {
        let items = rich_feed(&app, user, 1).await;
        assert_eq!(items.len(), 1);
        assert_eq!(body_of(&items[0]), "<p>2 as viewer</p>");
    }
    wait_messages(&app, "apollo", 1).await;
    assert_stays(&app, "apollo", 1).await;
}
