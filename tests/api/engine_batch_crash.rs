//! Durability of open batches: SIGKILL the real binary while 100 batches are open (two
//! activities each), restart it on the same database, and each batch produces exactly
//! one item (overdue batches close at start).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::crash::{client, start_healthy};
use crate::db;
use crate::helpers::SECRET_KEY;

/// Open batches at the kill: one per recipient.
const BATCHES: usize = 100;
/// Triggers per batch (activities).
const PER_BATCH: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_batches_survive_sigkill_and_each_closes_into_exactly_one_item_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path: PathBuf = dir.path().join("batches.db");
    let client = client(Duration::from_secs(10));
    let (mut server, base) = start_healthy(&db_path, &client).await;

    crate::crash::put_workflow(&client, &base, "batch-crash", json!({"name": "Batched", "steps": [
            {"ref": "collect", "type": "batch", "settings": {"batch_window": {"unit": "seconds", "value": 3}}},
            {"ref": "msg", "type": "channel", "channel_key": "in-app-feed",
             "template": {"markdown_body": "{{ total_activities }} things"}}]})).await;
    // One trigger carries every recipient, so each trigger is one write: all batches open
    // (and get their second activity) well inside the window.
    let recipients: Vec<String> = (0..BATCHES).map(|r| format!("bc-{r}")).collect();
    for _ in 0..PER_BATCH {
        let res = client
            .post(format!("{base}/v1/workflows/batch-crash/trigger"))
            .bearer_auth(SECRET_KEY)
            .json(&json!({"recipients": recipients}))
            .send()
            .await
            .expect("trigger");
        assert_eq!(res.status(), 200);
    }
    let total = (BATCHES * PER_BATCH) as i64;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let joined = db::count(
            &db_path,
            "SELECT COUNT(*) FROM workflow_recipient_runs WHERE workflow_key = 'batch-crash'",
        );
        if joined == total || Instant::now() > deadline {
            assert_eq!(joined, total, "every trigger reached its batch");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.0.kill().expect("SIGKILL");
    let _ = server.0.wait();
    let open = db::count(
        &db_path,
        "SELECT COUNT(*) FROM batches WHERE status = 'open'",
    );
    eprintln!("{open} of {BATCHES} batches open at SIGKILL");
    assert!(
        open > 0,
        "the kill came after every batch closed; the test proves nothing"
    );

    let (_restarted, _) = start_healthy(&db_path, &client).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while db::count(&db_path, "SELECT COUNT(*) FROM batches") > 0
        || db::count(
            &db_path,
            "SELECT COUNT(*) FROM messages WHERE workflow_key = 'batch-crash'",
        ) < BATCHES as i64
    {
        assert!(
            Instant::now() < deadline,
            "not every batch closed after restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        db::count(
            &db_path,
            "SELECT COUNT(*) FROM messages WHERE workflow_key = 'batch-crash'"
        ),
        BATCHES as i64,
        "a batch produced more than one item"
    );
    assert_eq!(
        db::count(
            &db_path,
            "SELECT COUNT(DISTINCT recipient_id) FROM messages WHERE workflow_key = 'batch-crash' \
             AND CAST(json_extract(batch, '$.total_activities') AS INTEGER) = 2 \
             AND json_extract(blocks, '$[0].rendered') LIKE '%2 things%'"
        ),
        BATCHES as i64,
        "each item renders both activities"
    );
    assert_eq!(
        db::count(
            &db_path,
            "SELECT COUNT(*) FROM workflow_recipient_runs WHERE workflow_key = 'batch-crash' \
             AND status = 'completed'"
        ),
        total,
        "the openers continued and the joiners ended"
    );
}
