//! Durability of a large fan-out: SIGKILL the real binary in the middle of a trigger to an
//! object with 20,000 subscribers, restart it on the same database, and every subscriber
//! has exactly one item (the run resumes after its last committed page).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::crash::{big_project, client, kill_mid_fan_out, start_healthy, trigger_big};
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
    let of_run = format!("SELECT COUNT(*) FROM messages WHERE workflow_run_id = '{run_id}'");
    // Kill as soon as the first pages are committed, well before the last.
    let at_kill = kill_mid_fan_out(server, &db_path, &run_id).await;
    assert!(at_kill < (SUBSCRIBERS + 1) as i64, "{at_kill}");
    eprintln!(
        "{at_kill} of {} items committed before SIGKILL",
        SUBSCRIBERS + 1
    );

    let (_restarted, _) = start_healthy(&db_path, &client).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while db::run_status(&db_path, &run_id).as_deref() != Some("completed") {
        assert!(Instant::now() < deadline, "the fan-out never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(db::count(&db_path, &of_run), (SUBSCRIBERS + 1) as i64);
    assert_eq!(
        db::count(
            &db_path,
            &format!(
                "SELECT COUNT(DISTINCT recipient_kind || recipient_collection || '/' || recipient_id) \
                 FROM messages WHERE workflow_run_id = '{run_id}'"
            )
        ),
        (SUBSCRIBERS + 1) as i64,
        "each subscriber (and the object) has exactly one item"
    );
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
