//! Several nodes on one PostgreSQL (issue 20 item 1): work is claimed under leases, so
//! a node killed mid-work is replaced by another once its lease lapses, and every item is
//! delivered exactly once across nodes and node deaths. Three real binaries on the test's
//! schema, leases of 2 s; PostgreSQL only.
//!
//! `#[ignore]`d in the parallel suite: three nodes and a 100,000-recipient fan-out beside
//! ~400 other tests on two cores turn its deadlines into load tests. `scripts/test` runs
//! them after the suite, one at a time (`--ignored --test-threads=1`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::crash::{
    Server, assert_one_item_each, big_project, client, post_ok, put_workflow, start_healthy_with,
    trigger_big, wait_completed,
};
use crate::db;

/// Starts node `id` on the database of `db_path`.
async fn node(db_path: &Path, id: &str, http: &reqwest::Client) -> (Server, String) {
    start_healthy_with(
        db_path,
        http,
        &[
            ("TIDINGS_NODE_ID", id),
            ("TIDINGS_LEASE_SECS", "2"),
            ("TIDINGS_RUN_RESCAN_MS", "500"),
        ],
    )
    .await
}

/// Polls `sql` until it reads `want` (or panics at the deadline with the last value).
async fn wait_count(db_path: &Path, sql: &str, want: i64, within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = db::count(db_path, sql);
    while last != want {
        assert!(
            Instant::now() < deadline,
            "{sql}: {last}, never {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        last = db::count(db_path, sql);
    }
}

const FAN_OUT: usize = 100_000;

/// Subscribes [`FAN_OUT`] users to `projects/big` through `base`, triggers the fan-out
/// there and waits for its first committed page: the run's id, and the query counting
/// its items.
async fn fan_out_started(db_path: &Path, http: &reqwest::Client, base: &str) -> (String, String) {
    big_project(http, base, FAN_OUT).await;
    let run_id = trigger_big(http, base).await;
    let of_run = format!("SELECT COUNT(*) FROM messages WHERE workflow_run_id = '{run_id}'");
    let deadline = Instant::now() + Duration::from_secs(60);
    while db::count(db_path, &of_run) == 0 {
        assert!(Instant::now() < deadline, "the fan-out never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (run_id, of_run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "three nodes: run alone by scripts/test"]
async fn a_node_killed_mid_fan_out_is_replaced_and_every_recipient_has_one_item() {
    if !crate::engine::is_postgres() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path: PathBuf = dir.path().join("cluster.db");
    let http = client(Duration::from_secs(120));
    let (mut one, base_one) = node(&db_path, "node-1", &http).await;
    let (_two, _) = node(&db_path, "node-2", &http).await;
    let (_three, _) = node(&db_path, "node-3", &http).await;
    // Kill node 1 once its first pages are in (the run is its own: it accepted it).
    let (run_id, of_run) = fan_out_started(&db_path, &http, &base_one).await;
    one.0.kill().expect("SIGKILL node 1");
    let _ = one.0.wait();
    let at_kill = db::count(&db_path, &of_run);
    assert_eq!(
        db::run_status(&db_path, &run_id).as_deref(),
        Some("queued"),
        "the kill must land mid-fan-out ({at_kill} items committed)"
    );
    eprintln!(
        "{at_kill} of {} items committed before SIGKILL",
        FAN_OUT + 1
    );
    // Another node takes the run once node 1's lease lapses, and completes it.
    wait_completed(&db_path, &run_id, Duration::from_secs(300)).await;
    assert_one_item_each(&db_path, &run_id, FAN_OUT + 1);
}

/// Sends `signal` (`STOP`, `CONT`) to node `server`'s process.
fn signal(server: &Server, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), server.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal}");
}

/// A node frozen mid-fan-out (SIGSTOP: a paused VM, a stalled process), most likely
/// inside one of its page writes, holding that transaction's row locks. Its successor
/// takes the run once the lease lapses and is not blocked for longer than the idle
/// transaction limit (10 s here); the frozen node, woken once the run is complete,
/// writes nothing of it again and serves on. Every recipient has exactly one item and
/// the completed run carries no failure from the node that lost it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "three nodes: run alone by scripts/test"]
async fn a_node_frozen_mid_fan_out_neither_blocks_its_successor_nor_writes_again_when_it_wakes() {
    if !crate::engine::is_postgres() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path: PathBuf = dir.path().join("cluster.db");
    let http = client(Duration::from_secs(120));
    let (one, base_one) = node(&db_path, "node-1", &http).await;
    let (_two, base_two) = node(&db_path, "node-2", &http).await;
    let (run_id, of_run) = fan_out_started(&db_path, &http, &base_one).await;
    signal(&one, "STOP");
    let at_freeze = db::count(&db_path, &of_run);
    let in_transaction = db::count(
        &db_path,
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND state LIKE 'idle in transaction%'",
    );
    assert_eq!(
        db::run_status(&db_path, &run_id).as_deref(),
        Some("queued"),
        "the freeze must land mid-fan-out ({at_freeze} items committed)"
    );
    eprintln!(
        "{at_freeze} of {} items committed at the freeze; {in_transaction} session(s) idle in a transaction",
        FAN_OUT + 1
    );
    // Node 2 completes the run: within the lease, the idle limit and the fan-out itself.
    wait_completed(&db_path, &run_id, Duration::from_secs(300)).await;
    signal(&one, "CONT");
    // Node 1 serves again: a new trigger through it is delivered.
    crate::crash::wait_healthy(&http, &base_one).await;
    post_ok(
        &http,
        format!("{base_one}/v1/workflows/new-comment/trigger"),
        json!({"recipients": ["after-the-freeze"], "data": {"page_title": "Woken"}}),
    )
    .await;
    wait_count(
        &db_path,
        "SELECT COUNT(*) FROM messages WHERE recipient_id = 'after-the-freeze'",
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_one_item_each(&db_path, &run_id, FAN_OUT + 1);
    assert_eq!(
        db::run_status(&db_path, &run_id).as_deref(),
        Some("completed")
    );
    assert_eq!(
        db::count(
            &db_path,
            &format!(
                "SELECT COUNT(*) FROM workflow_runs WHERE id = '{run_id}' AND failure_reason IS NOT NULL"
            )
        ),
        0,
        "the completed run keeps no failure from the node that lost it"
    );
    // And node 2 still serves too.
    crate::crash::wait_healthy(&http, &base_two).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "three nodes: run alone by scripts/test"]
async fn delays_and_a_batch_on_a_node_that_dies_fire_once_through_the_others() {
    if !crate::engine::is_postgres() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path: PathBuf = dir.path().join("cluster.db");
    let http = client(Duration::from_secs(60));
    // Node 2 starts first: it holds the cluster duties (timers, batches) when it dies.
    let (mut two, base_two) = node(&db_path, "node-2", &http).await;
    let (_one, base_one) = node(&db_path, "node-1", &http).await;
    let (_three, _) = node(&db_path, "node-3", &http).await;
    for (key, steps) in [
        (
            "later",
            json!([
                {"ref": "delay_1", "type": "delay", "settings": {"delay_for": {"unit": "seconds", "value": 10}}},
                {"ref": "in_app", "type": "channel", "channel_key": "in-app-feed",
                 "channel_type": "in_app_feed", "template": {"markdown_body": "later"}}
            ]),
        ),
        (
            "digest",
            json!([
                {"ref": "batch_1", "type": "batch", "settings": {"batch_window": {"unit": "seconds", "value": 12}}},
                {"ref": "in_app", "type": "channel", "channel_key": "in-app-feed",
                 "channel_type": "in_app_feed", "template": {"markdown_body": "{{ total_activities }} things"}}
            ]),
        ),
    ] {
        put_workflow(&http, &base_one, key, json!({"name": key, "steps": steps})).await;
    }
    // 1,000 delays through node 2 (10 triggers of 100 recipients) and a batch window
    // opened there, with a second activity through node 1.
    let mut runs = Vec::new();
    for t in 0..10 {
        let recipients: Vec<_> = (0..100).map(|r| format!("d-{t}-{r}")).collect();
        let body = post_ok(
            &http,
            format!("{base_two}/v1/workflows/later/trigger"),
            json!({"recipients": recipients}),
        )
        .await;
        runs.push(body["workflow_run_id"].as_str().expect("run id").to_owned());
    }
    post_ok(
        &http,
        format!("{base_two}/v1/workflows/digest/trigger"),
        json!({"recipients": ["digest-user"], "actor": {"id": "a1"}}),
    )
    .await;
    post_ok(
        &http,
        format!("{base_one}/v1/workflows/digest/trigger"),
        json!({"recipients": ["digest-user"], "actor": {"id": "a2"}}),
    )
    .await;
    // Node 2 dies once the delays are scheduled and both activities are in the open
    // batch, before any delay is due (10 s) or the window closes (12 s).
    let scheduled = format!(
        "SELECT COUNT(*) FROM workflow_runs WHERE status = 'completed' AND id IN ('{}')",
        runs.join("', '")
    );
    wait_count(&db_path, &scheduled, 10, Duration::from_secs(8)).await;
    wait_count(
        &db_path,
        "SELECT COUNT(*) FROM batch_activities",
        2,
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(
        db::count(&db_path, "SELECT COUNT(*) FROM messages"),
        0,
        "nothing is due yet"
    );
    two.0.kill().expect("SIGKILL node 2");
    let _ = two.0.wait();

    let delayed = "SELECT COUNT(*) FROM messages WHERE workflow_key = 'later'".to_owned();
    wait_count(&db_path, &delayed, 1000, Duration::from_secs(120)).await;
    let digest = "SELECT COUNT(*) FROM messages WHERE workflow_key = 'digest'".to_owned();
    wait_count(&db_path, &digest, 1, Duration::from_secs(60)).await;
    // Settled: no timer, open batch or queued run is left that could deliver again
    // (a timer is claimed in the write that delivers its pass).
    for pending in [
        "SELECT COUNT(*) FROM timers",
        "SELECT COUNT(*) FROM batches WHERE status = 'open'",
        "SELECT COUNT(*) FROM workflow_runs WHERE status = 'queued'",
    ] {
        wait_count(&db_path, pending, 0, Duration::from_secs(60)).await;
    }
    assert_eq!(db::count(&db_path, &delayed), 1000, "each delay fired once");
    assert_eq!(
        db::count(
            &db_path,
            "SELECT COUNT(DISTINCT recipient_id) FROM messages WHERE workflow_key = 'later'"
        ),
        1000
    );
    let batches: Vec<String> = db::open(&db_path)
        .prepare(
            "SELECT b.id || ' ' || b.identity || ' ' || b.status || ' ' || \
             (SELECT COUNT(*) FROM batch_activities a WHERE a.batch_id = b.id) FROM batches b",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("batches");
    assert_eq!(
        db::count(&db_path, &digest),
        1,
        "the batch closed once; batches: {batches:?}"
    );
    for run in &runs {
        assert_eq!(db::run_status(&db_path, run).as_deref(), Some("completed"));
    }
}
