//! Housekeeping against a real server (issue 17 item 10): expired idempotency keys,
//! closed throttle windows, old bulk operations and released cancellations are deleted
//! by the retention task (always on, in batches), as of the injectable clock; live rows
//! stay; `/metrics` shows the WAL's size.

use chrono::{Duration, Utc};
use tidings::retention::{RetentionPolicy, run_pass};

use crate::helpers::{TestApp, spawn_app_with};

/// A writable connection to the test server's file, for seeding rows no endpoint makes
/// in bulk (a million idempotency keys take a day of triggers).
fn seed(app: &TestApp, sql: &str) {
    crate::db::execute_batch(&app.db_path, sql);
}

fn count(app: &TestApp, table: &str) -> i64 {
    crate::db::open(&app.db_path)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

#[tokio::test]
async fn a_pass_deletes_expired_housekeeping_rows_in_batches_and_keeps_live_ones() {
    let clock = tidings::clock::Clock::manual(Utc::now());
    let c = clock.clone();
    let app = spawn_app_with(move |s| s.clock = c).await;
    let now = clock.now_utc();
    let at = |d: Duration| tidings::clock::format(now - d);
    let (old_key, new_key) = (at(Duration::hours(25)), at(Duration::hours(23)));
    let (closed, open) = (at(Duration::seconds(1)), at(Duration::seconds(-60)));
    let (old_op, new_op) = (at(Duration::days(8)), at(Duration::days(6)));
    seed(
        &app,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1299)
             INSERT INTO idempotency_keys SELECT 'k' || i, 'h', 'r', 'q',
               CASE WHEN i < 1234 THEN '{old_key}' ELSE '{new_key}' END FROM n;
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 799)
             INSERT INTO engine_gates SELECT 'g' || i, '{old_key}',
               CASE WHEN i < 700 THEN '{closed}' WHEN i < 750 THEN '{open}' ELSE NULL END, 1 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 599)
             INSERT INTO bulk_operations SELECT 'b' || i, '{{}}',
               CASE WHEN i < 550 THEN '{old_op}' ELSE '{new_op}' END FROM n;
             INSERT INTO workflow_cancellations VALUES ('w', 'released', '', '', '', '{old_key}');"
        ),
    );
    let report = run_pass(&app.state.store, &RetentionPolicy::default(), now, None)
        .await
        .expect("pass");
    assert_eq!(count(&app, "idempotency_keys"), 66, "{report:?}");
    assert_eq!(
        count(&app, "engine_gates"),
        100,
        "open and `once` windows stay"
    );
    assert_eq!(count(&app, "bulk_operations"), 50);
    assert_eq!(count(&app, "workflow_cancellations"), 0);
    // (The pass the task runs at start may have taken some of them first; the batch
    // bound itself is `store::retention`'s unit test.)
    assert!(report.batches >= 1, "{report:?}");
}

#[tokio::test]
async fn the_background_task_forgets_idempotency_keys_once_the_clock_passes_24_hours() {
    let clock = tidings::clock::Clock::manual(Utc::now());
    let c = clock.clone();
    let app = spawn_app_with(move |s| {
        s.clock = c;
        s.retention_interval_secs = 1;
    })
    .await;
    let fresh = tidings::clock::format(clock.now_utc() - Duration::hours(1));
    seed(
        &app,
        &format!("INSERT INTO idempotency_keys VALUES ('k', 'h', 'r', 'q', '{fresh}');"),
    );
    // A replay inside the window is still answered from the key (nothing deleted yet).
    assert_eq!(count(&app, "idempotency_keys"), 1);
    clock.advance(Duration::hours(24));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count(&app, "idempotency_keys") != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the key outlived its window"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_show_the_wal_size_and_the_publish_queue() {
    let app = spawn_app_with(|_| {}).await;
    app.identify("u1", serde_json::json!({"name": "Ann"})).await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    for series in ["tidings_wal_bytes ", "tidings_realtime_publish_queue "] {
        assert!(
            text.lines().any(|l| l.starts_with(series)),
            "no {series} in:\n{text}"
        );
    }
}
