//! Badges across a crash: SIGKILL the real binary in the middle of a fan-out, while the
//! fold of the badge counters runs beside it, restart it on the same database, let the
//! run finish, and every recipient's badge counts (total, unread, unseen) equal a recount
//! of its feed, with every item there exactly once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::crash::{
    big_project, client, kill_mid_fan_out, post_ok, start_healthy, start_healthy_with, trigger_big,
};
use crate::db;
use crate::helpers::SECRET_KEY;

const SUBSCRIBERS: usize = 10_000;

async fn wait_completed(db_path: &Path, run_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while db::run_status(db_path, run_id).as_deref() != Some("completed") {
        assert!(Instant::now() < deadline, "run {run_id} never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The stored badges (counters plus tail, in one statement) equal a recount of the
/// counted messages, for every feed: what the file holds is consistent at any moment.
fn assert_stored_badges_exact(db_path: &Path, when: &str) {
    let conn = db::open(db_path);
    let rows = |sql: &str| db::badge_rows(&conn, sql);
    let recount = rows(
        "SELECT channel_id, recipient_id, coalesce(tenant, ''), count(*), sum(read_at IS NULL), \
         sum(seen_at IS NULL) FROM messages WHERE archived_at IS NULL AND snoozed_until IS NULL \
         AND expired = 0 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    );
    assert_eq!(rows(db::BADGES), recount, "{when}");
}

/// Marks the messages at `ids` with `status` through the batch endpoint, 1,000 at a time.
async fn mark(client: &reqwest::Client, base: &str, status: &str, ids: Vec<String>) {
    for chunk in ids.chunks(1000) {
        let done = post_ok(
            client,
            format!("{base}/v1/messages/batch/{status}"),
            json!({"message_ids": chunk}),
        )
        .await;
        assert_eq!(done.as_array().map(Vec::len), Some(chunk.len()));
    }
}

/// Every subscriber's feed through the API: its badges equal a recount of the items it
/// lists, each item is there once, and it holds exactly one item of each run (less those
/// archived). Returns how many feeds were read.
async fn assert_every_badge_equals_a_recount(
    client: &reqwest::Client,
    base: &str,
    runs: usize,
    archived: &HashSet<String>,
) -> usize {
    let checks = futures_util::stream::iter(0..SUBSCRIBERS)
        .map(|i| async move {
            let user = format!("s-{i}");
            let res = client
                .get(format!(
                    "{base}/v1/users/{user}/feeds/in-app-feed?page_size=50"
                ))
                .bearer_auth(SECRET_KEY)
                .send()
                .await
                .expect("feed");
            assert_eq!(res.status(), 200, "{user}");
            let feed: Value = res.json().await.expect("feed body");
            (user, feed)
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for (user, feed) in &checks {
        let entries = feed["entries"].as_array().expect("entries");
        let ids: HashSet<&str> = entries.iter().filter_map(|e| e["id"].as_str()).collect();
        assert_eq!(ids.len(), entries.len(), "{user}: an item twice");
        let gone = usize::from(archived.contains(user));
        assert_eq!(entries.len(), runs - gone, "{user}: one item per run");
        let unread = entries.iter().filter(|e| e["read_at"].is_null()).count();
        let unseen = entries.iter().filter(|e| e["seen_at"].is_null()).count();
        let meta = &feed["meta"];
        assert_eq!(
            (
                meta["total_count"].as_u64(),
                meta["unread_count"].as_u64(),
                meta["unseen_count"].as_u64()
            ),
            (
                Some(entries.len() as u64),
                Some(unread as u64),
                Some(unseen as u64)
            ),
            "{user}: badges against the listed items"
        );
    }
    checks.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn badges_equal_a_recount_after_a_kill_mid_fan_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path: PathBuf = dir.path().join("badges.db");
    let client = client(Duration::from_secs(60));
    let (server, base) = start_healthy(&db_path, &client).await;
    big_project(&client, &base, SUBSCRIBERS).await;

    // A first run delivered in full, then read, seen and archived here and there while
    // the fold has counted part of it: changes on both sides of the watermark.
    let first = trigger_big(&client, &base).await;
    wait_completed(&db_path, &first).await;
    let items: Vec<(String, String)> = {
        let conn = db::open(&db_path);
        conn.prepare(
            "SELECT id, recipient_id FROM messages WHERE workflow_run_id = ?1 \
             AND recipient_kind = 'user' ORDER BY seq",
        )
        .expect("query")
        .query_map([&first], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
    };
    assert_eq!(items.len(), SUBSCRIBERS);
    let every = |n: usize| -> Vec<(String, String)> {
        items
            .iter()
            .enumerate()
            .filter(|(i, _)| i % n == 0)
            .map(|(_, item)| item.clone())
            .collect()
    };
    let ids = |picked: Vec<(String, String)>| -> Vec<String> {
        picked.into_iter().map(|(id, _)| id).collect()
    };
    mark(&client, &base, "read", ids(every(3))).await;
    mark(&client, &base, "seen", ids(every(5))).await;
    let archived: HashSet<String> = every(7).into_iter().map(|(_, user)| user).collect();
    mark(&client, &base, "archived", ids(every(7))).await;

    // The second run: killed as soon as its first pages are committed.
    let second = trigger_big(&client, &base).await;
    let of_run = format!("SELECT COUNT(*) FROM messages WHERE workflow_run_id = '{second}'");
    let at_kill = kill_mid_fan_out(server, &db_path, &second).await;
    let folded = db::count(&db_path, "SELECT folded_through FROM feed_fold");
    let newest = db::count(&db_path, "SELECT max(seq) FROM messages");
    eprintln!(
        "{at_kill} of {} items committed before SIGKILL; folded through {folded} of {newest}",
        SUBSCRIBERS + 1
    );
    assert_stored_badges_exact(&db_path, "right after the kill");

    // Restarted with the fold slowed to once an hour: it folds what is committed as it
    // starts, and the resumed fan-out's items stay in the tail, so the API's badges below
    // are counters and a live count at once.
    let (restarted, base) = start_healthy_with(
        &db_path,
        &client,
        &[("TIDINGS_FOLD_INTERVAL_MS", "3600000")],
    )
    .await;
    wait_completed(&db_path, &second).await;
    assert_eq!(
        db::count(
            &db_path,
            &format!(
                "SELECT COUNT(DISTINCT recipient_kind || recipient_collection || '/' || recipient_id) \
                 FROM messages WHERE workflow_run_id = '{second}'"
            )
        ),
        (SUBSCRIBERS + 1) as i64,
        "each subscriber (and the object) has exactly one item of the run"
    );
    assert_eq!(db::count(&db_path, &of_run), (SUBSCRIBERS + 1) as i64);
    assert_stored_badges_exact(&db_path, "after the run finished");
    let unfolded = db::count(
        &db_path,
        "SELECT (SELECT max(seq) FROM messages) - (SELECT folded_through FROM feed_fold)",
    );
    assert!(unfolded > 0, "the resumed items are read from the tail");
    let read = assert_every_badge_equals_a_recount(&client, &base, 2, &archived).await;
    assert_eq!(read, SUBSCRIBERS);

    // And once the fold has caught up (restarted at the default interval), the same
    // badges from the counters alone.
    drop(restarted);
    let (_restarted, base) = start_healthy(&db_path, &client).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while db::count(
        &db_path,
        "SELECT (SELECT max(seq) FROM messages) - (SELECT folded_through FROM feed_fold)",
    ) > 0
    {
        assert!(Instant::now() < deadline, "the fold never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_stored_badges_exact(&db_path, "folded");
    assert_every_badge_equals_a_recount(&client, &base, 2, &archived).await;
}
