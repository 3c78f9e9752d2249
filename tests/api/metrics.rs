//! `GET /metrics` (issue 10 item 5): Prometheus text, served without credentials, whose
//! series move with what the server does.

use std::num::NonZeroU32;

use serde_json::json;

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

/// Scrapes `/metrics` with no credentials, asserting 200 and the text format.
async fn scrape(app: &TestApp) -> String {
    let res = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(res.status(), 200);
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(
        content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    res.text().await.expect("text")
}

/// The value of one series (`name{labels}` exactly as exposed), or `None` if absent.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no series `{series}` in:\n{text}"))
}

const TRIGGER_ROUTE: &str = "method=\"POST\",route=\"/v1/workflows/{key}/trigger\"";

#[tokio::test]
async fn metrics_move_after_a_trigger_is_committed_and_pushed() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let mut ws = app.ws_connect("m1").await;
    ws.join_ok(&format!("feeds:{channel}:m1"), json!({})).await;

    let before = scrape(&app).await;
    assert_eq!(must(&before, "tidings_triggers_accepted_total"), 0.0);
    assert_eq!(must(&before, "tidings_items_committed_total"), 0.0);
    assert_eq!(must(&before, "tidings_sockets"), 1.0);
    assert_eq!(must(&before, "tidings_joined_topics"), 1.0);
    assert_eq!(
        must(&before, "tidings_workflow_runs{state=\"queued\"}"),
        0.0
    );
    assert_eq!(
        must(&before, "tidings_workflow_runs{state=\"running\"}"),
        0.0
    );
    assert_eq!(must(&before, "tidings_runner_lag_seconds"), 0.0);
    assert_eq!(
        must(
            &before,
            "tidings_triggers_refused_total{reason=\"backlog\"}"
        ),
        0.0
    );
    let sent_before = must(&before, "tidings_pushes_total{outcome=\"sent\"}");
    assert_eq!(
        must(&before, "tidings_pushes_total{outcome=\"evicted\"}"),
        0.0
    );
    let batches_before = must(&before, "tidings_writer_batch_size_count");

    app.trigger("new-comment", json!({"recipients": ["m1", "m2"]}))
        .await;
    ws.next_event("new-message").await;
    app.wait_for_feed("m2", "", 1).await;

    let after = scrape(&app).await;
    assert_eq!(must(&after, "tidings_triggers_accepted_total"), 1.0);
    assert_eq!(must(&after, "tidings_items_committed_total"), 2.0);
    assert!(must(&after, "tidings_pushes_total{outcome=\"sent\"}") > sent_before);
    assert!(must(&after, "tidings_writer_batch_size_count") > batches_before);
    assert!(must(&after, "tidings_writer_commit_seconds_count") > 0.0);
    assert_eq!(
        must(
            &after,
            &format!("tidings_http_requests_total{{{TRIGGER_ROUTE},status=\"200\"}}")
        ),
        1.0
    );
    assert_eq!(
        must(
            &after,
            &format!("tidings_http_request_duration_seconds_count{{{TRIGGER_ROUTE}}}")
        ),
        1.0
    );
    // Route patterns, never raw paths (no user id in a label).
    assert!(!after.contains("/v1/users/m2/"), "{after}");
    assert!(
        after.contains("route=\"/v1/users/{user_id}/feeds/{channel}\""),
        "{after}"
    );
}

#[tokio::test]
async fn a_refused_trigger_is_counted_by_its_reason() {
    let app = spawn_app_with(|s| {
        s.trigger_rate_per_tenant = NonZeroU32::new(1).expect("non-zero");
    })
    .await;
    for expected in [200, 200, 429] {
        let res = app
            .post(
                "/v1/workflows/new-comment/trigger",
                json!({"recipients": ["r1"], "tenant": "acme"}),
            )
            .send()
            .await
            .expect("trigger");
        assert_eq!(res.status(), expected);
    }
    let text = scrape(&app).await;
    assert_eq!(must(&text, "tidings_triggers_accepted_total"), 2.0);
    assert_eq!(
        must(
            &text,
            "tidings_triggers_refused_total{reason=\"tenant_trigger_rate\"}"
        ),
        1.0
    );
    assert_eq!(
        must(
            &text,
            "tidings_triggers_refused_total{reason=\"key_trigger_rate\"}"
        ),
        0.0
    );
    assert_eq!(
        must(
            &text,
            &format!("tidings_http_requests_total{{{TRIGGER_ROUTE},status=\"429\"}}")
        ),
        1.0
    );
}

#[tokio::test]
async fn metrics_can_be_turned_off_and_then_answer_404_in_knocks_shape() {
    let app = spawn_app_with(|s| s.metrics = false).await;
    let res = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_error(res, 404, "route_missing").await;
}

/// `tidings_feed_fold_lag_items`: the items past the badge counters' watermark, which
/// stay there while the fold is an hour away and go once a fold runs.
#[tokio::test]
async fn the_fold_lag_counts_the_items_the_fold_has_not_reached() {
    let stalled = spawn_app_with(|s| s.fold_interval_ms = 3_600_000).await;
    assert_eq!(
        must(&scrape(&stalled).await, "tidings_feed_fold_lag_items"),
        0.0
    );
    stalled
        .trigger("new-comment", json!({"recipients": ["f1", "f2", "f3"]}))
        .await;
    stalled.wait_for_feed("f3", "", 1).await;
    assert_eq!(
        must(&scrape(&stalled).await, "tidings_feed_fold_lag_items"),
        3.0
    );

    let folding = spawn_app().await;
    folding
        .trigger("new-comment", json!({"recipients": ["f1", "f2"]}))
        .await;
    folding.wait_for_feed("f2", "", 1).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while must(&scrape(&folding).await, "tidings_feed_fold_lag_items") > 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the fold never caught up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
