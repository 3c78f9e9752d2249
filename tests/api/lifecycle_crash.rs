//! Durability of snoozes (issue 21): SIGKILL the real binary right after 1,000 snoozes
//! were acknowledged, let their wake time pass while it is down, restart it on the same
//! database, and each item wakes exactly once.
//!
//! The binary runs on the system clock and a snooze lasts at least a minute, so instead
//! of waiting out the minute the test moves the stored wake times into the past while
//! the server is down: to the restarted server they fell due during the downtime.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::crash::{client, start_healthy};
use crate::db;
use crate::helpers::SECRET_KEY;

const TRIGGERS: usize = 10;
const RECIPIENTS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snoozes_due_during_a_sigkill_downtime_each_wake_exactly_once_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path: PathBuf = dir.path().join("snooze.db");
    let client = client(Duration::from_secs(20));
    let (mut server, base) = start_healthy(&db_path, &client).await;
    crate::crash::put_workflow(
        &client,
        &base,
        "snooze-crash",
        json!({"name": "Snooze", "steps": [
            {"ref": "msg", "type": "channel", "channel_key": "in-app-feed",
             "template": {"markdown_body": "remind me"}}]}),
    )
    .await;
    for i in 0..TRIGGERS {
        let recipients: Vec<String> = (0..RECIPIENTS).map(|r| format!("sc-{i}-{r}")).collect();
        let res = client
            .post(format!("{base}/v1/workflows/snooze-crash/trigger"))
            .bearer_auth(SECRET_KEY)
            .json(&json!({"recipients": recipients}))
            .send()
            .await
            .expect("trigger");
        assert_eq!(res.status(), 200);
    }
    let total = (TRIGGERS * RECIPIENTS) as i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while db::count(&db_path, "SELECT COUNT(*) FROM messages") < total {
        assert!(Instant::now() < deadline, "not every item was delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ids: Vec<String> = {
        let conn = db::open(&db_path);
        let mut stmt = conn.prepare("SELECT id FROM messages").expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("ids")
    };
    let until = tidings::clock::format(chrono::Utc::now() + chrono::Duration::minutes(5));
    let res = client
        .post(format!("{base}/v1/messages/batch/snoozed"))
        .bearer_auth(SECRET_KEY)
        .json(&json!({"message_ids": ids, "snoozed_until": until}))
        .send()
        .await
        .expect("snooze");
    assert_eq!(res.status(), 200);
    let snoozed: Value = res.json().await.expect("body");
    assert_eq!(snoozed.as_array().map(Vec::len), Some(ids.len()));
    // SIGKILL right after the acknowledgement: nothing acknowledged may be lost.
    server.0.kill().expect("SIGKILL");
    let _ = server.0.wait();
    assert_eq!(
        db::count(
            &db_path,
            "SELECT COUNT(*) FROM messages WHERE snoozed_until IS NOT NULL"
        ),
        total,
        "every acknowledged snooze survived the kill"
    );
    assert_eq!(
        db::count(
            &db_path,
            &format!(
                "SELECT coalesce(sum(unread), 0) FROM ({}) AS badges",
                db::BADGES
            )
        ),
        0
    );
    let seq_before = db::count(
        &db_path,
        "SELECT seq FROM sqlite_sequence WHERE name = 'messages'",
    );
    // The downtime outlasts the snooze: the wake times pass while the server is down.
    db::execute(
        &db_path,
        "UPDATE messages SET snoozed_until = '2020-01-01T00:00:00.000000Z'",
        [],
    );

    let (_restarted, base) = start_healthy(&db_path, &client).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while db::count(
        &db_path,
        "SELECT COUNT(*) FROM messages WHERE snoozed_until IS NOT NULL",
    ) > 0
    {
        assert!(Instant::now() < deadline, "not every snoozed item woke");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Exactly once: each wake takes one new sequence number, so 1,000 wakes move the
    // sequence by exactly 1,000, every item now above the old head, none twice.
    let seq_after = db::count(
        &db_path,
        "SELECT seq FROM sqlite_sequence WHERE name = 'messages'",
    );
    assert_eq!(seq_after - seq_before, total, "each item woke exactly once");
    assert_eq!(
        db::count(
            &db_path,
            &format!("SELECT COUNT(DISTINCT seq) FROM messages WHERE seq > {seq_before}")
        ),
        total
    );
    assert_eq!(
        db::count(
            &db_path,
            "SELECT COUNT(*) FROM messages WHERE read_at IS NULL AND seen_at IS NULL"
        ),
        total
    );
    // The badges count every woken item once, as a recipient's feed shows.
    assert_eq!(
        db::count(
            &db_path,
            &format!(
                "SELECT coalesce(sum(unread), 0) FROM ({}) AS badges",
                db::BADGES
            )
        ),
        total
    );
    let res = client
        .get(format!("{base}/v1/users/sc-3-7/feeds/in-app-feed"))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .expect("feed");
    let feed: Value = res.json().await.expect("feed body");
    assert_eq!(feed["meta"]["unread_count"], 1);
    assert_eq!(feed["entries"].as_array().map(Vec::len), Some(1));
}
