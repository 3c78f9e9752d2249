//! Trigger backpressure (issue 10 item 3): Knock's 429 `rate_limited` with `Retry-After`
//! when the key or a tenant is over its trigger or item rate, or the durable backlog is
//! full. Limits are set tiny and time is the manual clock, so windows pass by advancing
//! it, never by sleeping.

use std::num::NonZeroU32;
use std::path::PathBuf;

use chrono::Duration;
use serde_json::{Value, json};
use tidings::Settings;
use tidings::clock::Clock;

use crate::db;
use crate::engine_delay::t0;
use crate::helpers::{TestApp, assert_error, installed_node_sdk, spawn_app_with};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

async fn limited_app(configure: impl FnOnce(&mut Settings)) -> (TestApp, Clock) {
    let clock = Clock::manual(t0());
    let c = clock.clone();
    let app = spawn_app_with(move |s| {
        s.clock = c;
        configure(s);
    })
    .await;
    (app, clock)
}

async fn send(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/v1/workflows/new-comment/trigger", body)
        .send()
        .await
        .expect("trigger sent")
}

/// Asserts Knock's 429 body and a `Retry-After` of `retry_after` seconds.
async fn assert_limited(res: reqwest::Response, retry_after: &str) -> Value {
    let header = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    assert_eq!(header.as_deref(), Some(retry_after), "Retry-After");
    let body = assert_error(res, 429, "rate_limited").await;
    assert_eq!(body["type"], "invalid_request_error", "{body}");
    body
}

/// [`assert_limited`], and the message names `what` (the flag or the limit that refused).
async fn assert_limited_by(res: reqwest::Response, retry_after: &str, what: &str) -> Value {
    let body = assert_limited(res, retry_after).await;
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains(what)),
        "{body}"
    );
    body
}

fn runs(app: &TestApp) -> i64 {
    db::count(&app.db_path, "SELECT COUNT(*) FROM workflow_runs")
}

#[tokio::test]
async fn the_key_trigger_rate_answers_429_with_retry_after_and_stores_nothing_until_it_refills() {
    let (app, clock) = limited_app(|s| s.trigger_rate_per_key = nz(1)).await;
    // A burst is two seconds' worth.
    for _ in 0..2 {
        assert_eq!(
            send(&app, json!({"recipients": ["u1"]})).await.status(),
            200
        );
    }
    let refused = send(
        &app,
        json!({"recipients": [{"id": "never-stored", "name": "N"}], "tenant": {"id": "never-made"}}),
    )
    .await;
    assert_limited_by(refused, "1", "--trigger-rate-per-key").await;
    assert_eq!(runs(&app), 2, "the refused trigger queued no run");
    let (status, _) = app.get_json("/v1/users/never-stored").await;
    assert_eq!(status, 404, "its inline recipient was not identified");
    let (status, _) = app.get_json("/v1/tenants/never-made").await;
    assert_eq!(status, 404, "its tenant was not created");

    // Credentials and body are checked before the limit: they answer as always.
    let res = app
        .client
        .post(app.url("/v1/workflows/new-comment/trigger"))
        .json(&json!({"recipients": ["u1"]}))
        .send()
        .await
        .expect("sent");
    assert_error(res, 401, "authentication_required").await;
    let res = app
        .server(reqwest::Method::POST, "/v1/workflows/new-comment/trigger")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 400);

    clock.advance(Duration::seconds(1));
    assert_eq!(
        send(&app, json!({"recipients": ["u1"]})).await.status(),
        200
    );
    assert_eq!(runs(&app), 3);
}

#[tokio::test]
async fn one_tenant_over_its_trigger_rate_leaves_other_tenants_and_untenanted_triggers_alone() {
    let (app, _clock) = limited_app(|s| s.trigger_rate_per_tenant = nz(1)).await;
    for _ in 0..2 {
        let res = send(&app, json!({"recipients": ["u1"], "tenant": "acme"})).await;
        assert_eq!(res.status(), 200);
    }
    // The object form of `tenant` names the same tenant.
    let res = send(
        &app,
        json!({"recipients": ["u1"], "tenant": {"id": "acme"}}),
    )
    .await;
    assert_limited_by(res, "1", "tenant").await;
    for body in [
        json!({"recipients": ["u1"], "tenant": "globex"}),
        json!({"recipients": ["u1"], "tenant": "globex"}),
        json!({"recipients": ["u1"]}),
    ] {
        assert_eq!(send(&app, body).await.status(), 200);
    }
    assert_eq!(
        db::count(
            &app.db_path,
            "SELECT COUNT(*) FROM workflow_runs WHERE tenant = 'acme'"
        ),
        2
    );
}

#[tokio::test]
async fn items_are_the_listed_recipients_and_a_trigger_larger_than_the_burst_is_not_retried() {
    let (app, clock) = limited_app(|s| s.item_rate_per_tenant = nz(2)).await;
    let three = json!({"recipients": ["a1", "a2", "a3"], "tenant": "acme"});
    assert_eq!(send(&app, three.clone()).await.status(), 200);
    let res = send(&app, three.clone()).await;
    assert_limited_by(res, "1", "recipients").await;
    let other = json!({"recipients": ["b1", "b2", "b3"], "tenant": "globex"});
    assert_eq!(send(&app, other).await.status(), 200);

    // Five recipients exceed the whole burst (2/s × 2 s): no wait helps, so no Retry-After
    // and the node SDK is told not to retry.
    let res = send(
        &app,
        json!({"recipients": ["c1", "c2", "c3", "c4", "c5"], "tenant": "initech"}),
    )
    .await;
    assert!(res.headers().get("retry-after").is_none());
    assert_eq!(
        res.headers().get("x-should-retry").map(|v| v.as_bytes()),
        Some(&b"false"[..])
    );
    assert_error(res, 429, "rate_limited").await;

    // A list over Knock's 1,000-recipient limit is invalid whatever the rates: 422.
    let too_many: Vec<String> = (0..1001).map(|i| format!("x{i}")).collect();
    let res = send(&app, json!({"recipients": too_many, "tenant": "acme"})).await;
    assert_error(res, 422, "invalid_params").await;

    clock.advance(Duration::seconds(2));
    assert_eq!(send(&app, three).await.status(), 200);
    assert_eq!(runs(&app), 3);
}

#[tokio::test]
async fn the_key_item_rate_counts_every_tenant_together() {
    let (app, _clock) = limited_app(|s| s.item_rate_per_key = nz(2)).await;
    let res = send(
        &app,
        json!({"recipients": ["a1", "a2", "a3"], "tenant": "acme"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = send(
        &app,
        json!({"recipients": ["b1", "b2"], "tenant": "globex"}),
    )
    .await;
    assert_limited_by(res, "1", "--item-rate-per-key").await;
}

#[tokio::test]
async fn a_full_backlog_refuses_triggers_until_the_runner_has_caught_up() {
    let (app, clock) = limited_app(|s| s.max_queued_runs = nz(1)).await;
    let first = app
        .trigger("new-comment", json!({"recipients": ["u1"]}))
        .await;
    // The accepted run counts at once, without waiting for the next count of the table.
    let res = send(&app, json!({"recipients": ["u2"]})).await;
    assert_limited_by(res, "1", "--max-queued-runs").await;
    assert_eq!(runs(&app), 1);

    assert_eq!(db::wait_for_run(&app.db_path, &first).await, "completed");
    clock.advance(Duration::seconds(1));
    assert_eq!(
        send(&app, json!({"recipients": ["u2"]})).await.status(),
        200
    );
}

#[tokio::test]
async fn a_backlog_one_tenant_filled_refuses_that_tenant_and_still_admits_the_others() {
    // Ten queued runs at most; each tenant keeps a reserve of a tenth (one run).
    let (app, _clock) = limited_app(|s| s.max_queued_runs = nz(10)).await;
    for i in 0..10 {
        let body = json!({"recipients": [format!("a{i}")], "tenant": "tenant-a"});
        assert_eq!(
            send(&app, body).await.status(),
            200,
            "trigger {i} of tenant-a"
        );
    }
    // The backlog is full, and tenant-a filled it: its next trigger waits...
    let res = send(&app, json!({"recipients": ["a10"], "tenant": "tenant-a"})).await;
    assert_limited_by(res, "1", "--max-queued-runs").await;
    // ...while another tenant, and triggers without a tenant, still get their reserve.
    let b = send(&app, json!({"recipients": ["b1"], "tenant": "tenant-b"})).await;
    assert_eq!(b.status(), 200);
    assert_eq!(
        send(&app, json!({"recipients": ["n1"]})).await.status(),
        200
    );
    // A reserve is a tenth of the limit: tenant-b's second trigger waits too.
    let res = send(&app, json!({"recipients": ["b2"], "tenant": "tenant-b"})).await;
    assert_limited(res, "1").await;
    assert_eq!(runs(&app), 12, "the refused triggers stored nothing");
}

#[tokio::test]
async fn a_backlog_at_twice_its_limit_refuses_every_tenant() {
    let (app, _clock) = limited_app(|s| s.max_queued_runs = nz(1)).await;
    // One run fills it; a second tenant's reserve takes it to twice the limit.
    for tenant in ["t1", "t2"] {
        let body = json!({"recipients": ["u1"], "tenant": tenant});
        assert_eq!(send(&app, body).await.status(), 200, "{tenant}");
    }
    let res = send(&app, json!({"recipients": ["u1"], "tenant": "t3"})).await;
    assert_limited(res, "1").await;
    assert_eq!(runs(&app), 2);
}

#[tokio::test]
async fn the_official_node_sdk_sees_the_429_and_its_retry_after() {
    let js = installed_node_sdk();
    let (app, _clock) = limited_app(|s| s.trigger_rate_per_key = nz(1)).await;
    app.run_sdk_script(
        PathBuf::from("node"),
        js.join("ratelimit_sdk.mjs"),
        "node sdk rate limit: ok",
    )
    .await;
    assert_eq!(runs(&app), 2, "the SDK's refused trigger stored nothing");
}

#[tokio::test]
async fn a_backlog_of_queued_recipients_refuses_triggers_until_the_runner_has_drained_it() {
    let (app, clock) = limited_app(|s| s.max_queued_items = nz(3)).await;
    let first = app
        .trigger("new-comment", json!({"recipients": ["u1", "u2", "u3"]}))
        .await;
    // Three recipients queued, at the limit of three: the next trigger, even of one
    // recipient, waits (the run count, one, is far below `--max-queued-runs`).
    let res = send(&app, json!({"recipients": ["u4"]})).await;
    assert_limited_by(res, "1", "--max-queued-items").await;
    assert_eq!(runs(&app), 1, "the refused trigger stored nothing");
    assert_eq!(
        db::count(&app.db_path, "SELECT recipient_count FROM workflow_runs"),
        3
    );

    assert_eq!(db::wait_for_run(&app.db_path, &first).await, "completed");
    clock.advance(Duration::seconds(1));
    // Room for one more trigger; it may take the backlog past the limit by its own
    // recipients, so a trigger larger than the room is admitted rather than never.
    assert_eq!(
        send(&app, json!({"recipients": ["u4", "u5", "u6", "u7"]}))
            .await
            .status(),
        200
    );
    let res = send(&app, json!({"recipients": ["u8"]})).await;
    assert_limited(res, "1").await;
}
