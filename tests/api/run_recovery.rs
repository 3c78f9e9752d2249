//! No acknowledged run waits for a restart (issue 17, items 1 and 2): a committed run the
//! runner was never told about is found by the periodic rescan, an idempotent replay of a
//! still-queued run hands it over, a panicking run is retried and then marked `failed`
//! with the reason (run records, `/metrics`) while other runs go on, and a run that
//! crashes the real binary at every attempt ends `failed` after a bounded number of
//! restarts instead of crash-looping the server.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::crash::{client, free_port};
use crate::db;
use crate::engine_delay::{in_app, upsert};
use crate::helpers::{PUBLIC_KEY, SECRET_KEY, TestApp, fixture, spawn_app_with};

/// The run's status, attempts and failure reason as stored.
fn run_row(path: &Path, run_id: &str) -> (String, i64, Option<String>) {
    db::open(path)
        .query_row(
            "SELECT status, attempts, failure_reason FROM workflow_runs WHERE id = ?1",
            [run_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("run row")
}

async fn trigger_with_key(app: &TestApp, workflow: &str, body: &Value, key: &str) -> Value {
    let res = app
        .post(&format!("/v1/workflows/{workflow}/trigger"), body.clone())
        .header("Idempotency-Key", key)
        .send()
        .await
        .expect("trigger");
    assert_eq!(res.status(), 200);
    res.json().await.expect("json")
}

#[tokio::test]
async fn a_committed_run_the_runner_was_never_handed_is_delivered_by_the_rescan() {
    let app = spawn_app_with(|s| {
        s.run_hooks.skip_enqueue = true;
        s.run_rescan_ms = 50;
    })
    .await;
    let run = app
        .trigger("new-comment", json!({"recipients": ["lost-1"]}))
        .await;
    assert_eq!(db::wait_for_run(&app.db_path, &run).await, "completed");
    app.wait_for_feed("lost-1", "", 1).await;
    assert_eq!(run_row(&app.db_path, &run).0, "completed");
}

#[tokio::test]
async fn an_idempotent_replay_of_a_still_queued_run_hands_it_to_the_runner() {
    // No periodic rescan within the test: only the replay can hand the run over.
    let app = spawn_app_with(|s| {
        s.run_hooks.skip_enqueue = true;
        s.run_rescan_ms = 3_600_000;
    })
    .await;
    let body = json!({"recipients": ["replayed-1"]});
    let first = trigger_with_key(&app, "new-comment", &body, "replay-key-1").await;
    let run = first["workflow_run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    assert_eq!(run_row(&app.db_path, &run).0, "queued");
    let replay = trigger_with_key(&app, "new-comment", &body, "replay-key-1").await;
    assert_eq!(replay["workflow_run_id"], first["workflow_run_id"]);
    assert_eq!(db::wait_for_run(&app.db_path, &run).await, "completed");
    let feed = app.wait_for_feed("replayed-1", "", 1).await;
    assert_eq!(feed["entries"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_panicking_run_is_retried_then_failed_with_its_reason_while_other_runs_complete() {
    let app = spawn_app_with(|s| {
        s.run_hooks.panic_workflow = Some("boom".into());
        s.run_attempts = 3;
        s.run_retry_base_ms = 1;
    })
    .await;
    upsert(&app, "boom", json!([in_app("msg", "never")])).await;
    let doomed = app
        .trigger("boom", json!({"recipients": ["p-1", "p-2"]}))
        .await;
    let fine = app
        .trigger("new-comment", json!({"recipients": ["p-3"]}))
        .await;
    assert_eq!(db::wait_for_run(&app.db_path, &fine).await, "completed");
    assert_eq!(db::wait_for_run(&app.db_path, &doomed).await, "failed");

    let (status, attempts, reason) = run_row(&app.db_path, &doomed);
    assert_eq!(status, "failed");
    // Three attempts, and the fourth counted before it was refused.
    assert_eq!(attempts, 4);
    let reason = reason.expect("a failure reason");
    assert!(
        reason.contains("gave up after 3 attempts") && reason.contains("panicked"),
        "{reason}"
    );

    // Run records: each recipient has a failed recipient run naming the reason.
    let (code, list) = app
        .get_json("/v1/workflow_recipient_runs?workflow=boom&status=failed")
        .await;
    assert_eq!(code, 200, "{list}");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{list}");
    for item in items {
        assert_eq!(item["workflow_run_id"], doomed.as_str());
        assert_eq!(item["status"], "failed");
        assert_eq!(item["error_count"], 1);
    }
    let id = items[0]["id"].as_str().expect("id");
    let (_, detail) = app
        .get_json(&format!("/v1/workflow_recipient_runs/{id}"))
        .await;
    assert_eq!(detail["events"][0]["event"], "run_failed", "{detail}");
    assert_eq!(detail["events"][0]["status"], "error");
    assert_eq!(detail["events"][0]["data"]["reason"], reason.as_str());

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l == "tidings_workflow_runs_failed_total 1"),
        "{metrics}"
    );
}

/// Starts the binary without waiting for it: a run may abort it at any moment.
fn spawn_binary(db: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .env("TIDINGS_ADDR", format!("127.0.0.1:{port}"))
        .envs(crate::engine::database_env(db))
        .env(
            "TIDINGS_WORKFLOWS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows"),
        )
        .env("TIDINGS_SECRET_KEY", SECRET_KEY)
        .env("TIDINGS_PUBLIC_KEY", PUBLIC_KEY)
        .env(
            "TIDINGS_SIGNING_PUBLIC_KEY",
            std::fs::read_to_string(fixture("signing_key.pub.pem")).expect("key"),
        )
        .env("TIDINGS_LOG", "off")
        .env("TIDINGS_RUN_ATTEMPTS", "3")
        .env("TIDINGS_TEST_ABORT_WORKFLOW", "crashy")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the tidings binary")
}

/// Waits until the child exits (`false`) or answers `/health` (`true`).
async fn crashed_or_healthy(child: &mut Child, client: &reqwest::Client, base: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("child status").is_some() {
            return false;
        }
        if let Ok(res) = client.get(format!("{base}/health")).send().await
            && res.status() == 200
        {
            return true;
        }
        assert!(Instant::now() < deadline, "neither crashed nor healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the child exited; `false` if it is still up after the run was decided.
async fn wait_exit_or(child: &mut Child, db: &Path, run_id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("child status").is_some() {
            return true;
        }
        if db::run_status(db, run_id).as_deref() == Some("failed") {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "the run neither crashed nor failed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_crashes_the_process_at_every_attempt_fails_after_bounded_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path = dir.path().join("crashloop.db");
    let client = client(Duration::from_secs(5));

    // Every start has the hook: the first stores the workflow, acknowledges the trigger,
    // and is aborted by the run's first attempt.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = spawn_binary(&db_path, port);
    assert!(crashed_or_healthy(&mut first, &client, &base).await);
    crate::crash::put_workflow(
        &client,
        &base,
        "crashy",
        json!({"name": "Crashy", "steps": [in_app("msg", "boom")]}),
    )
    .await;
    // The trigger commits; its run aborts the process right after, possibly before the
    // answer is written, so the run is read from the database.
    let answer = client
        .post(format!("{base}/v1/workflows/crashy/trigger"))
        .bearer_auth(SECRET_KEY)
        .json(&json!({"recipients": ["crash-victim"]}))
        .send()
        .await;
    if let Ok(res) = answer {
        assert_eq!(res.status(), 200);
    }
    let run: String = db::open(&db_path)
        .query_row(
            "SELECT id FROM workflow_runs WHERE workflow_key = 'crashy'",
            [],
            |r| r.get(0),
        )
        .expect("the committed run");
    assert!(
        wait_exit_or(&mut first, &db_path, &run).await,
        "the first attempt aborts"
    );

    // Each restart resumes the queued run, which aborts again, until its attempts are
    // used up: then it is marked failed and the server stays up.
    let mut crashes = 1;
    let survivor = loop {
        assert!(crashes <= 5, "still crash-looping after {crashes} crashes");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = spawn_binary(&db_path, port);
        let up = crashed_or_healthy(&mut child, &client, &base).await;
        if up && !wait_exit_or(&mut child, &db_path, &run).await {
            break (child, base);
        }
        crashes += 1;
    };
    assert_eq!(crashes, 3, "one crash per allowed attempt");
    let (mut child, base) = survivor;
    let (status, attempts, reason) = run_row(&db_path, &run);
    assert_eq!((status.as_str(), attempts), ("failed", 4));
    let reason = reason.unwrap_or_default();
    assert!(
        reason.contains("gave up after 3 attempts") && reason.contains("crashed"),
        "{reason}"
    );
    let records = db::recipient_runs(&db_path, &run);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].1, "failed");
    assert_eq!(records[0].2[0]["data"]["reason"], reason.as_str());

    // Still up, and still delivering other workflows.
    let res = client
        .post(format!("{base}/v1/workflows/new-comment/trigger"))
        .bearer_auth(SECRET_KEY)
        .json(&json!({"recipients": ["after-crashes"]}))
        .send()
        .await
        .expect("trigger");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    let other = body["workflow_run_id"].as_str().expect("run id");
    assert_eq!(db::wait_for_run(&db_path, other).await, "completed");
    assert!(child.try_wait().expect("status").is_none(), "still running");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_walk_that_panics_fails_only_that_recipient_with_the_reason() {
    let app = spawn_app_with(|s| s.run_hooks.panic_recipient = Some("walk-bad".into())).await;
    let run = app
        .trigger(
            "new-comment",
            json!({"recipients": ["walk-ok", "walk-bad"]}),
        )
        .await;
    assert_eq!(db::wait_for_run(&app.db_path, &run).await, "completed");
    app.wait_for_feed("walk-ok", "", 1).await;
    let records = db::recipient_runs(&app.db_path, &run);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(
        (records[0].0.as_str(), records[0].1.as_str()),
        ("walk-bad", "failed")
    );
    assert_eq!(records[0].2[0]["event"], "run_failed");
    let reason = records[0].2[0]["data"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("panicked"), "{reason}");
    assert_eq!(
        (records[1].0.as_str(), records[1].1.as_str()),
        ("walk-ok", "completed")
    );
}

#[tokio::test]
async fn a_render_error_fails_the_recipients_step_with_the_field_and_reason_in_run_records() {
    let app = spawn_app_with(|_| {}).await;
    upsert(
        &app,
        "fragile-render",
        json!([in_app("msg", "{{ data.n | divided_by: data.zero }}")]),
    )
    .await;
    let run = app
        .trigger(
            "fragile-render",
            json!({"recipients": ["render-1", "render-2"], "data": {"n": 1, "zero": 0}}),
        )
        .await;
    assert_eq!(db::wait_for_run(&app.db_path, &run).await, "completed");
    let (code, list) = app
        .get_json("/v1/workflow_recipient_runs?workflow=fragile-render&has_errors=true")
        .await;
    assert_eq!(code, 200, "{list}");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{list}");
    for item in items {
        assert_eq!(item["status"], "failed");
        let id = item["id"].as_str().expect("id");
        let (_, detail) = app
            .get_json(&format!("/v1/workflow_recipient_runs/{id}"))
            .await;
        let failed = detail["events"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["event"] == "step_failed"))
            .unwrap_or_else(|| panic!("no step_failed in {detail}"));
        assert_eq!(failed["status"], "error");
        assert_eq!(failed["step_ref"], "msg");
        assert_eq!(failed["data"]["field"], "markdown_body", "{failed}");
        let error = failed["data"]["error"].as_str().unwrap_or_default();
        assert!(error.contains("markdown_body"), "{error}");
    }
}
