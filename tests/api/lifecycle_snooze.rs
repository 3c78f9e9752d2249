//! Snooze and pin (issue 21 items 2-3), driven by the injectable manual clock: wake-ups
//! happen when the test advances time, never by sleeping.

use chrono::Duration;
use serde_json::{Value, json};

use crate::engine_delay::{app_with_manual_clock, in_app, upsert};
use crate::helpers::assert_error;
use crate::lifecycle::{badge, deliver, feed, feed_path, ids, joined, pushed_counts, step};

#[tokio::test]
async fn a_snoozed_item_hides_then_wakes_unread_at_the_head_and_is_pushed_once() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(
        &app,
        "plain",
        json!([in_app("in_app", "Plain {{ data.n }}")]),
    )
    .await;
    let first = deliver(&app, "plain", "u1", json!({"n": 1})).await;
    let second = deliver(&app, "plain", "u1", json!({"n": 2})).await;
    let res = app
        .put(&format!("/v1/messages/{first}/read"), json!({}))
        .send()
        .await
        .expect("read");
    assert_eq!(res.status(), 200);
    let cursor_before = feed(&app, "u1", "").await["entries"][1]["__cursor"].clone();
    let mut ws = joined(&app, "u1").await;

    let until = "2026-03-01T10:00:00Z";
    let res = app
        .as_user(
            reqwest::Method::PUT,
            &format!("/v1/messages/{first}/snoozed"),
            "u1",
        )
        .json(&json!({"snoozed_until": until}))
        .send()
        .await
        .expect("snooze");
    let (status, message) = crate::helpers::json_of(res).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["snoozed_until"], "2026-03-01T10:00:00.000000Z");
    assert_eq!(
        pushed_counts(&mut ws).await,
        (1, 1),
        "the socket sees it leave"
    );
    let body = feed(&app, "u1", "").await;
    assert_eq!(ids(&body), [second.as_str()]);
    assert_eq!(badge(&body), (1, 1, 1));
    let snoozed = feed(&app, "u1", "status=snoozed").await;
    assert_eq!(ids(&snoozed), [first.as_str()]);
    assert_eq!(
        snoozed["entries"][0]["snoozed_until"],
        "2026-03-01T10:00:00.000000Z"
    );
    assert_eq!(
        badge(&snoozed),
        (1, 1, 1),
        "total = snoozed; badges = the feed's"
    );

    clock.advance(Duration::hours(1));
    assert_eq!(
        pushed_counts(&mut ws).await,
        (2, 2),
        "the wake is pushed like a new item"
    );
    let body = feed(&app, "u1", "").await;
    assert_eq!(ids(&body), [first.as_str(), second.as_str()], "at the head");
    let woken = &body["entries"][0];
    assert_eq!(woken["read_at"], Value::Null);
    assert_eq!(woken["seen_at"], Value::Null);
    assert_eq!(woken["snoozed_until"], Value::Null);
    assert_ne!(woken["__cursor"], cursor_before, "a new cursor");
    assert_eq!(woken["inserted_at"], "2026-03-01T10:00:00.000000Z");
    assert_eq!(badge(&body), (2, 2, 2));
    assert!(ids(&feed(&app, "u1", "status=snoozed").await).is_empty());
    // Once: no second push follows.
    ws.assert_silent(std::time::Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn deleting_a_snooze_wakes_now_and_the_batch_snoozes_many() {
    let (app, _clock) = app_with_manual_clock().await;
    upsert(&app, "plain", json!([in_app("in_app", "Plain")])).await;
    let a = deliver(&app, "plain", "u1", json!({})).await;
    let b = deliver(&app, "plain", "u1", json!({})).await;
    let (status, body) = app
        .post_json(
            "/v1/messages/batch/snoozed",
            json!({"message_ids": [a, b, "unknown", a], "snoozed_until": "2026-03-02T09:00:00Z"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().map(Vec::len), Some(2));
    assert_eq!(badge(&feed(&app, "u1", "").await), (0, 0, 0));
    let res = app
        .delete(&format!("/v1/messages/{b}/snoozed"))
        .send()
        .await
        .expect("wake");
    let (status, body) = crate::helpers::json_of(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["snoozed_until"], Value::Null);
    let body = feed(&app, "u1", "").await;
    assert_eq!(ids(&body), [b.as_str()]);
    assert_eq!(badge(&body), (1, 1, 1));
    // Waking a message that is not snoozed answers it unchanged.
    let res = app
        .delete(&format!("/v1/messages/{b}/snoozed"))
        .send()
        .await
        .expect("wake");
    assert_eq!(res.status(), 200);
    assert_eq!(badge(&feed(&app, "u1", "").await), (1, 1, 1));
}

#[tokio::test]
async fn snooze_refuses_bad_times_foreign_users_and_unknown_ids_changing_nothing() {
    let (app, _clock) = app_with_manual_clock().await;
    upsert(&app, "plain", json!([in_app("in_app", "Plain")])).await;
    let id = deliver(&app, "plain", "u1", json!({})).await;
    let path = format!("/v1/messages/{id}/snoozed");
    for body in [
        json!({}),
        json!({"snoozed_until": 5}),
        json!({"snoozed_until": "tomorrow"}),
        json!({"snoozed_until": "2026-03-01T09:00:30Z"}),
        json!({"snoozed_until": "2026-05-30T09:00:01Z"}),
        json!({"snoozed_until": "2026-02-01T09:00:00Z"}),
    ] {
        let res = app.put(&path, body.clone()).send().await.expect("sent");
        let err = assert_error(res, 422, "invalid_params").await;
        assert!(err.to_string().contains("snoozed_until"), "{body}: {err}");
    }
    let res = app
        .server(reqwest::Method::PUT, &path)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 400);
    let ok = json!({"snoozed_until": "2026-03-01T09:01:00Z"});
    let res = app
        .as_user(reqwest::Method::PUT, &path, "u2")
        .json(&ok)
        .send()
        .await
        .expect("sent");
    assert_error(res, 403, "authorization").await;
    let res = app
        .client
        .put(app.url(&path))
        .json(&ok)
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 401);
    let res = app
        .put("/v1/messages/nope/snoozed", ok.clone())
        .send()
        .await
        .expect("sent");
    assert_error(res, 404, "resource_missing").await;
    let res = app
        .post(
            "/v1/messages/batch/snoozed",
            json!({"message_ids": "x", "snoozed_until": "2026-03-01T10:00:00Z"}),
        )
        .send()
        .await
        .expect("sent");
    assert_error(res, 422, "invalid_params").await;
    let many: Vec<String> = (0..1001).map(|i| format!("m{i}")).collect();
    let res = app
        .post(
            "/v1/messages/batch/snoozed",
            json!({"message_ids": many, "snoozed_until": "2026-03-01T10:00:00Z"}),
        )
        .send()
        .await
        .expect("sent");
    assert_error(res, 422, "invalid_params").await;
    // A batch naming someone else's message, as u2, changes nothing.
    let res = app
        .as_user(reqwest::Method::POST, "/v1/messages/batch/snoozed", "u2")
        .json(&json!({"message_ids": [id], "snoozed_until": "2026-03-01T10:00:00Z"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 403);
    let body = feed(&app, "u1", "").await;
    assert_eq!(badge(&body), (1, 1, 1));
    assert_eq!(body["entries"][0]["snoozed_until"], Value::Null);
}

#[tokio::test]
async fn pinned_steps_and_pin_calls_set_pinned_at_and_filter_without_moving_counts() {
    let (app, _clock) = app_with_manual_clock().await;
    upsert(&app, "sticky", json!([step(json!({"pinned": true}))])).await;
    upsert(&app, "plain", json!([in_app("in_app", "Plain")])).await;
    let sticky = deliver(&app, "sticky", "u1", json!({})).await;
    let plain = deliver(&app, "plain", "u1", json!({})).await;
    let body = feed(&app, "u1", "").await;
    assert_eq!(
        body["entries"][1]["pinned_at"],
        "2026-03-01T09:00:00.000000Z"
    );
    assert_eq!(body["entries"][0]["pinned_at"], Value::Null);
    assert_eq!(
        ids(&feed(&app, "u1", "pinned=true").await),
        [sticky.as_str()]
    );
    assert_eq!(
        ids(&feed(&app, "u1", "pinned=false").await),
        [plain.as_str()]
    );
    let pinned_only = feed(&app, "u1", "pinned=true").await;
    assert_eq!(badge(&pinned_only).0, 1);

    let res = app
        .as_user(
            reqwest::Method::PUT,
            &format!("/v1/messages/{plain}/pinned"),
            "u1",
        )
        .send()
        .await
        .expect("pin");
    let (status, body) = crate::helpers::json_of(res).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["pinned_at"].is_string());
    assert_eq!(ids(&feed(&app, "u1", "pinned=true").await).len(), 2);
    assert_eq!(
        badge(&feed(&app, "u1", "").await),
        (2, 2, 2),
        "pinning moves no count"
    );
    let res = app
        .delete(&format!("/v1/messages/{sticky}/pinned"))
        .send()
        .await
        .expect("unpin");
    let (status, body) = crate::helpers::json_of(res).await;
    assert_eq!(status, 200);
    assert_eq!(body["pinned_at"], Value::Null);
    assert_eq!(
        ids(&feed(&app, "u1", "pinned=true").await),
        [plain.as_str()]
    );

    let res = app
        .as_user(
            reqwest::Method::PUT,
            &format!("/v1/messages/{sticky}/pinned"),
            "u2",
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 403);
    let res = app
        .put("/v1/messages/nope/pinned", json!({}))
        .send()
        .await
        .expect("sent");
    assert_error(res, 404, "resource_missing").await;
    let (status, body) = app.get_json(&feed_path("u1", "pinned=maybe")).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("pinned"));
    assert_eq!(ids(&feed(&app, "u1", "pinned=true").await), [plain]);
}
