//! Online backup through the real binary: `tidings backup FILE` beside a serving instance,
//! during a burst of triggers. The copy opens, passes SQLite's integrity check, holds every
//! run acknowledged before the backup started, and Tidings serves it (restore = start on it).

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::db;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn backup(db: &std::path::Path, file: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .envs(crate::engine::database_env(db))
        .env("TIDINGS_LOG", "warn")
        .arg("backup")
        .arg(file)
        .output()
        .expect("the tidings binary runs")
}

/// Triggers until `stop`, recording each acknowledged run id.
async fn burst(app: Arc<TestApp>, acked: Arc<Mutex<Vec<String>>>, stop: Arc<tokio::sync::Notify>) {
    let mut i = 0;
    loop {
        let body = json!({"recipients": [format!("u{}", i % 5)], "data": {"comment_preview": i}});
        tokio::select! {
            _ = stop.notified() => return,
            id = app.trigger("new-comment", body) => acked.lock().expect("lock").push(id),
        }
        i += 1;
    }
}

#[tokio::test]
async fn a_backup_during_a_trigger_burst_holds_every_acknowledged_run_and_serves() {
    if crate::engine::is_postgres() {
        return; // the SQLite online backup; PostgreSQL refuses `tidings backup` (below)
    }
    let app = Arc::new(spawn_app().await);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let writers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(burst(app.clone(), acked.clone(), stop.clone())))
        .collect();
    // Let the burst get going: wait until some runs are acknowledged (no sleep-and-hope).
    while acked.lock().unwrap().len() < 40 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let before: Vec<String> = acked.lock().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.db");
    let (db_path, file_for_cli) = (app.db_path.clone(), file.clone());
    let out = tokio::task::spawn_blocking(move || backup(&db_path, &file_for_cli))
        .await
        .unwrap();
    // The burst goes on once the copy is written: the backup left no lock behind. (Whether
    // an ack also landed *during* the copy depends on how fast the copy was, so it is not
    // asserted: that made the test fail on a loaded machine.)
    let after_backup = acked.lock().unwrap().len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked.lock().unwrap().len() <= after_backup {
        assert!(
            std::time::Instant::now() < deadline,
            "no trigger was acknowledged after the backup"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop.notify_waiters();
    for w in writers {
        w.abort();
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("backup written"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let conn = db::open(&file);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let runs: HashSet<String> = conn
        .prepare("SELECT id FROM workflow_runs")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let missing: Vec<&String> = before.iter().filter(|id| !runs.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup, missing: {missing:?}"
    );
    drop(conn);

    // Restore = start Tidings on the copy: the same keys, and every run in it completes
    // into feed items (runs still queued in the copy resume).
    let copied_runs = runs.len();
    let restored = spawn_app_with(move |s| crate::engine::point_at(s, file)).await;
    let total = |v: &serde_json::Value| v["meta"]["total_count"].as_i64().unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut items = 0;
    while std::time::Instant::now() < deadline {
        items = 0;
        for u in 0..5 {
            items += total(
                &restored
                    .stored(&format!("/v1/users/u{u}/feeds/in-app-feed"))
                    .await,
            );
        }
        if items as usize >= copied_runs {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        items as usize, copied_runs,
        "one feed item per run in the copy"
    );
}

#[test]
fn backup_refuses_an_existing_target_and_a_missing_database() {
    if crate::engine::is_postgres() {
        return; // the SQLite backup; PostgreSQL refuses it (on_postgres_backup_refuses_and_names_pg_dump)
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db");
    let out = backup(&db, &dir.path().join("copy.db"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));
    assert!(!db.exists(), "a missing database is not created");

    let existing = dir.path().join("exists.db");
    std::fs::write(&existing, b"keep me").unwrap();
    let created = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .envs(crate::engine::database_env(&db))
        .arg("keys")
        .output()
        .unwrap();
    assert!(created.status.success());
    let out = backup(&db, &existing);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
}

/// On PostgreSQL, `tidings backup` says to use PostgreSQL's own backups and copies nothing.
#[tokio::test]
async fn on_postgres_backup_refuses_and_names_pg_dump() {
    if !crate::engine::is_postgres() {
        return; // the SQLite path is the tests above
    }
    let dir = tempfile::tempdir().expect("dir");
    let target = dir.path().join("copy.db");
    let (ok, _, stderr) = crate::process::Launch::new(dir.path(), &["backup", "copy.db"])
        .test_keys()
        .output()
        .await;
    assert!(!ok, "backup must fail on PostgreSQL");
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!target.exists(), "nothing was written");
}
