//! Durability of paused work: SIGKILL the real binary while delayed recipient runs are
//! pending, restart it on the same database, and each delivers exactly once (overdue
//! timers fire at start).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::crash::{client, start_healthy};
use crate::db;
use crate::helpers::SECRET_KEY;

/// Triggers, and recipients per trigger: 1,000 delayed recipient runs.
const TRIGGERS: usize = 100;
const RECIPIENTS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_delays_survive_sigkill_and_deliver_exactly_once_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path: PathBuf = dir.path().join("delays.db");
    let client = client(Duration::from_secs(10));
    let (mut server, base) = start_healthy(&db_path, &client).await;

    crate::crash::put_workflow(&client, &base, "delayed-crash", json!({"name": "Delayed", "steps": [
            {"ref": "wait", "type": "delay", "settings": {"delay_for": {"unit": "seconds", "value": 2}}},
            {"ref": "msg", "type": "channel", "channel_key": "in-app-feed",
             "template": {"markdown_body": "after the delay"}}]})).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..TRIGGERS {
        let client = client.clone();
        let url = format!("{base}/v1/workflows/delayed-crash/trigger");
        set.spawn(async move {
            let recipients: Vec<String> = (0..RECIPIENTS).map(|r| format!("dc-{i}-{r}")).collect();
            let res = client
                .post(url)
                .bearer_auth(SECRET_KEY)
                .json(&json!({"recipients": recipients}))
                .send()
                .await
                .expect("trigger");
            assert_eq!(res.status(), 200);
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("trigger task");
    }
    let total = (TRIGGERS * RECIPIENTS) as i64;
    let deadline = Instant::now() + Duration::from_secs(20);
    let paused = loop {
        let paused = db::count(
            &db_path,
            "SELECT COUNT(*) FROM workflow_recipient_runs WHERE status IN ('paused', 'completed')",
        );
        if paused == total || Instant::now() > deadline {
            break paused;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(paused, total, "every trigger reached its delay");
    server.0.kill().expect("SIGKILL");
    let _ = server.0.wait();
    let pending = db::count(&db_path, "SELECT COUNT(*) FROM timers");
    eprintln!("{pending} of {total} delays pending at SIGKILL");
    assert!(
        pending > 0,
        "the kill came after every delay fired; the test proves nothing"
    );

    let (_restarted, _) = start_healthy(&db_path, &client).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while db::count(
        &db_path,
        "SELECT COUNT(*) FROM messages WHERE workflow_key = 'delayed-crash'",
    ) < total
    {
        assert!(
            Instant::now() < deadline,
            "not every delayed run delivered after restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Settle, then: exactly one item per recipient, no timers left, all completed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while db::count(&db_path, "SELECT COUNT(*) FROM timers") > 0 {
        assert!(Instant::now() < deadline, "timers left behind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        db::count(
            &db_path,
            "SELECT COUNT(DISTINCT recipient_id) FROM messages WHERE workflow_key = 'delayed-crash'"
        ),
        total
    );
    assert_eq!(
        db::count(
            &db_path,
            "SELECT COUNT(*) FROM messages WHERE workflow_key = 'delayed-crash'"
        ),
        total,
        "a delayed run delivered twice"
    );
    assert_eq!(
        db::count(
            &db_path,
            "SELECT COUNT(*) FROM workflow_recipient_runs WHERE status = 'completed'"
        ),
        total
    );
}
