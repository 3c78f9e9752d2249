//! Durability of a large fan-out: SIGKILL the real binary in the middle of a trigger to an
//! object with 20,000 subscribers, restart it on the same database, and every subscriber
//! has exactly one item (the run resumes after its last committed page).

use std::path::PathBuf;
use std::time::Duration;

use crate::crash::{
    assert_one_item_each, big_project, client, kill_mid_fan_out, start_healthy, trigger_big,
    wait_completed,
};
use crate::db;

const SUBSCRIBERS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fan_out_killed_midway_finishes_exactly_once_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path: PathBuf = dir.path().join("fanout.db");
    let client = client(Duration::from_secs(60));
    let (server, base) = start_healthy(&db_path, &client).await;

    big_project(&client, &base, SUBSCRIBERS).await;
    let run_id = trigger_big(&client, &base).await;
    // Kill as soon as the first pages are committed, well before the last.
    let at_kill = kill_mid_fan_out(server, &db_path, &run_id).await;
    assert!(at_kill < (SUBSCRIBERS + 1) as i64, "{at_kill}");
    eprintln!(
        "{at_kill} of {} items committed before SIGKILL",
        SUBSCRIBERS + 1
    );

    let (_restarted, _) = start_healthy(&db_path, &client).await;
    wait_completed(&db_path, &run_id, Duration::from_secs(120)).await;
    assert_one_item_each(&db_path, &run_id, SUBSCRIBERS + 1);
    assert_eq!(
        db::count(
            &db_path,
            &format!(
                "SELECT COUNT(*) FROM {} WHERE workflow_run_id = '{run_id}'",
                db::all_recipient_runs()
            )
        ),
        (SUBSCRIBERS + 1) as i64,
        "each recipient has exactly one recipient run, stored or derived"
    );
}
