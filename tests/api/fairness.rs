//! Fairness between tenants (issue 10, item 2): the runner takes one fan-out page per
//! turn and gives the next turn to the tenant with the least running, so another
//! tenant's single trigger does not wait behind a big fan-out queued before it.
//! Asserts the order of completion (stored timestamps), never timings.

use serde_json::{Value, json};

use crate::db;
use crate::helpers::{TestApp, spawn_app_with};

/// Runs of tenant A, each with this many recipients (one page each: many slices).
const A_RUNS: usize = 20;
const A_RECIPIENTS: usize = 30;

async fn plain_workflow(app: &TestApp) {
    let (status, w) = app
        .put_json(
            "/v1/workflows/fair",
            json!({"workflow": {"name": "Fair", "steps": [
                {"ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed",
                 "channel_type": "in_app_feed", "template": {"markdown_body": "hi {{ data.n }}"}}]}}),
        )
        .await;
    assert_eq!(status, 200, "{w}");
}

/// When the run was marked completed (its last page's transaction).
fn completed_at(app: &TestApp, run_id: &str) -> String {
    db::open(&app.db_path)
        .query_row(
            "SELECT updated_at FROM workflow_runs WHERE id = ?1 AND status = 'completed'",
            [run_id],
            |r| r.get(0),
        )
        .expect("a completed run")
}

fn body(tenant: &str, recipients: Value) -> Value {
    json!({"recipients": recipients, "tenant": tenant, "data": {"n": 1}})
}

/// Sends `runs` triggers of `recipients` users each (named `{prefix}{run}-{i}`) with
/// `extra` merged into each body (e.g. a tenant); returns their run ids.
async fn trigger_many(
    app: &TestApp,
    workflow: &str,
    prefix: &str,
    (runs, recipients): (usize, usize),
    extra: Value,
) -> Vec<String> {
    let triggers = (0..runs).map(|r| {
        let users: Vec<String> = (0..recipients)
            .map(|i| format!("{prefix}{r}-{i}"))
            .collect();
        let mut body = json!({"recipients": users, "data": {"n": 1}});
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra.clone()) {
            body.extend(extra);
        }
        app.trigger(workflow, body)
    });
    futures_util::future::join_all(triggers).await
}

#[tokio::test]
async fn another_tenants_single_trigger_completes_before_a_big_fan_out_queued_first() {
    let app = spawn_app_with(|s| {
        s.fanout_page_size = 1;
        s.fanout_solo_page_size = 1;
    })
    .await;
    plain_workflow(&app).await;
    // More runs than the runner has slices, each of many one-recipient pages.
    let a_runs = trigger_many(
        &app,
        "fair",
        "a",
        (A_RUNS, A_RECIPIENTS),
        json!({"tenant": "tenant-a"}),
    )
    .await;
    let b_run = app
        .trigger("fair", body("tenant-b", json!(["b-user"])))
        .await;

    for run in a_runs.iter().chain([&b_run]) {
        assert_eq!(db::wait_for_run(&app.db_path, run).await, "completed");
    }
    let b_done = completed_at(&app, &b_run);
    let first_a_done = a_runs
        .iter()
        .map(|run| completed_at(&app, run))
        .min()
        .expect("tenant A ran");
    assert!(
        b_done < first_a_done,
        "tenant B's single trigger completed at {b_done}, after tenant A's first run ({first_a_done})"
    );
    // Nothing was lost or doubled on the way: one item per recipient.
    assert_eq!(
        db::count(&app.db_path, "SELECT COUNT(*) FROM messages") as usize,
        A_RUNS * A_RECIPIENTS + 1
    );
}

#[tokio::test]
async fn work_without_a_tenant_is_shared_per_workflow() {
    let app = spawn_app_with(|s| {
        s.fanout_page_size = 1;
        s.fanout_solo_page_size = 1;
    })
    .await;
    plain_workflow(&app).await;
    let (status, w) = app
        .put_json(
            "/v1/workflows/other",
            json!({"workflow": {"name": "Other", "steps": [
                {"ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed",
                 "channel_type": "in_app_feed", "template": {"markdown_body": "other"}}]}}),
        )
        .await;
    assert_eq!(status, 200, "{w}");
    let big_runs = trigger_many(&app, "fair", "w", (A_RUNS, A_RECIPIENTS), json!({})).await;
    let small = app
        .trigger("other", json!({"recipients": ["someone"]}))
        .await;
    for run in big_runs.iter().chain([&small]) {
        assert_eq!(db::wait_for_run(&app.db_path, run).await, "completed");
    }
    let first_big_done = big_runs
        .iter()
        .map(|run| completed_at(&app, run))
        .min()
        .expect("runs");
    assert!(completed_at(&app, &small) < first_big_done);
}

#[tokio::test]
async fn pages_that_change_size_mid_run_lose_and_double_nothing() {
    // A starts alone, so its first pages are solo-sized (nobody else had work yet); B's
    // triggers arrive while A is mid-fan-out, so A's later pages are shared-sized: A's
    // runs change page size between pages, and every recipient still gets one item.
    const A_RECIPIENTS_HERE: usize = 60;
    let app = spawn_app_with(|s| {
        s.fanout_page_size = 3;
        s.fanout_solo_page_size = 7;
    })
    .await;
    plain_workflow(&app).await;
    let a_total = A_RUNS * A_RECIPIENTS_HERE;
    let a_runs = trigger_many(
        &app,
        "fair",
        "a",
        (A_RUNS, A_RECIPIENTS_HERE),
        json!({"tenant": "tenant-a"}),
    )
    .await;
    let a_items = "SELECT COUNT(*) FROM messages WHERE tenant = 'tenant-a'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while db::count(&app.db_path, a_items) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "tenant A never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let b_runs = trigger_many(&app, "fair", "b", (5, 1), json!({"tenant": "tenant-b"})).await;
    // B's runs were accepted while A still had pages to go (else no page changed size).
    let a_when_b_came = db::count(&app.db_path, a_items) as usize;
    assert!(
        a_when_b_came < a_total,
        "tenant A had finished ({a_when_b_came} items) before tenant B came"
    );
    for run in a_runs.iter().chain(&b_runs) {
        assert_eq!(db::wait_for_run(&app.db_path, run).await, "completed");
    }
    assert_eq!(
        db::count(
            &app.db_path,
            "SELECT COUNT(DISTINCT recipient_id) FROM messages WHERE recipient_id LIKE 'a%'"
        ) as usize,
        a_total
    );
    assert_eq!(
        db::count(&app.db_path, "SELECT COUNT(*) FROM messages") as usize,
        a_total + 5
    );
}
