//! Durability: SIGKILL the real binary during a burst of triggers, restart it on the same
//! database, and every trigger that was acknowledged has produced its items exactly once.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::db;
use crate::helpers::{SECRET_KEY, fixture};

/// Recipients per trigger.
const RECIPIENTS: usize = 20;
/// Triggers fired at once.
const BURST: usize = 400;
/// Acknowledged triggers after which the server is killed.
const KILL_AFTER: usize = 60;

/// Kills the child when the test ends, however it ends.
pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts the real binary on `db` at `port` with the suite's keys and `env` on top
/// (settings a test needs changed); killed when dropped.
pub(crate) fn start_with(db: &Path, port: u16, env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
    let child = command
        .env("TIDINGS_ADDR", format!("127.0.0.1:{port}"))
        .envs(crate::engine::database_env(db))
        .env(
            "TIDINGS_WORKFLOWS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows"),
        )
        .env("TIDINGS_SECRET_KEY", SECRET_KEY)
        .env("TIDINGS_PUBLIC_KEY", crate::helpers::PUBLIC_KEY)
        .env(
            "TIDINGS_SIGNING_PUBLIC_KEY",
            std::fs::read_to_string(fixture("signing_key.pub.pem")).expect("key"),
        )
        .env("TIDINGS_LOG", "warn")
        // The test's own settings last, so they win over the defaults above.
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the tidings binary");
    Server(child)
}

pub(crate) async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(res) = client.get(format!("{base}/health")).send().await
            && res.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "server did not become healthy");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A client whose requests give up after `timeout` (a killed server must not hang a test).
pub(crate) fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client")
}

/// Starts the real binary on `db` at a free port and waits until it is healthy; returns
/// the server (killed when dropped) and its base URL.
pub(crate) async fn start_healthy(db: &Path, client: &reqwest::Client) -> (Server, String) {
    start_healthy_with(db, client, &[]).await
}

/// [`start_healthy`] with more environment.
pub(crate) async fn start_healthy_with(
    db: &Path,
    client: &reqwest::Client,
    env: &[(&str, &str)],
) -> (Server, String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = start_with(db, port, env);
    wait_healthy(client, &base).await;
    (server, base)
}

/// Stores workflow `key` with `body` (`{"name", "steps"}`) on the binary at `base`,
/// asserting it was accepted (the crash tests' first step).
pub(crate) async fn put_workflow(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    body: serde_json::Value,
) {
    let res = client
        .put(format!("{base}/v1/workflows/{key}"))
        .bearer_auth(crate::helpers::SECRET_KEY)
        .json(&serde_json::json!({ "workflow": body }))
        .send()
        .await
        .expect("upsert");
    assert_eq!(res.status(), 200, "workflow {key}");
}

/// POSTs `body` with the secret key and returns the 200's JSON (anything else fails).
pub(crate) async fn post_ok(
    client: &reqwest::Client,
    url: String,
    body: serde_json::Value,
) -> serde_json::Value {
    let res = client
        .post(url)
        .bearer_auth(SECRET_KEY)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = res.status();
    let body: serde_json::Value = res.json().await.expect("JSON");
    assert_eq!(status, 200, "{body}");
    body
}

/// The object `projects/big` with `subscribers` (a multiple of 10,000) inline-identified
/// users `s-0`, `s-1`, …: one bulk call per 10,000 (100 groups of 100), as the SIGKILL
/// fan-out tests need a fan-out far longer than one page.
pub(crate) async fn big_project(client: &reqwest::Client, base: &str, subscribers: usize) {
    let res = client
        .put(format!("{base}/v1/objects/projects/big"))
        .bearer_auth(SECRET_KEY)
        .json(&json!({"name": "Big"}))
        .send()
        .await
        .expect("object");
    assert_eq!(res.status(), 200);
    for call in 0..subscribers / 10_000 {
        let groups: Vec<serde_json::Value> = (0..100)
            .map(|g| {
                let recipients: Vec<serde_json::Value> = (0..100)
                    .map(|i| json!({"id": format!("s-{}", call * 10_000 + g * 100 + i)}))
                    .collect();
                json!({"id": "big", "recipients": recipients})
            })
            .collect();
        let op = post_ok(
            client,
            format!("{base}/v1/objects/projects/bulk/subscriptions/add"),
            json!({"subscriptions": groups}),
        )
        .await;
        assert_eq!(op["success_count"], 10_000);
    }
}

/// SIGKILLs `server` as soon as run `run_id` has committed its first items, and checks
/// the kill landed mid-fan-out (the run still `queued`); how many items it had committed.
pub(crate) async fn kill_mid_fan_out(mut server: Server, db_path: &Path, run_id: &str) -> i64 {
    let of_run = format!("SELECT COUNT(*) FROM messages WHERE workflow_run_id = '{run_id}'");
    let deadline = Instant::now() + Duration::from_secs(60);
    while db::count(db_path, &of_run) == 0 {
        assert!(Instant::now() < deadline, "the fan-out never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.0.kill().expect("SIGKILL the server");
    let _ = server.0.wait();
    let at_kill = db::count(db_path, &of_run);
    assert_eq!(
        db::run_status(db_path, run_id).as_deref(),
        Some("queued"),
        "the kill must land mid-fan-out ({at_kill} items committed)"
    );
    at_kill
}

/// Waits (≤ `within`) until run `run_id` is `completed`.
pub(crate) async fn wait_completed(db_path: &Path, run_id: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while db::run_status(db_path, run_id).as_deref() != Some("completed") {
        assert!(Instant::now() < deadline, "the fan-out never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts run `run_id` made `recipients` items, one per recipient.
pub(crate) fn assert_one_item_each(db_path: &Path, run_id: &str, recipients: usize) {
    let of_run = format!("SELECT COUNT(*) FROM messages WHERE workflow_run_id = '{run_id}'");
    assert_eq!(db::count(db_path, &of_run), recipients as i64);
    assert_eq!(
        db::count(
            db_path,
            &format!(
                "SELECT COUNT(DISTINCT recipient_kind || recipient_collection || '/' || recipient_id) \
                 FROM messages WHERE workflow_run_id = '{run_id}'"
            )
        ),
        recipients as i64,
        "each subscriber (and the object) has exactly one item"
    );
}

/// Triggers `new-comment` to `projects/big`; its run id.
pub(crate) async fn trigger_big(client: &reqwest::Client, base: &str) -> String {
    let body = post_ok(
        client,
        format!("{base}/v1/workflows/new-comment/trigger"),
        json!({"recipients": [{"id": "big", "collection": "projects"}], "data": {"page_title": "Launch"}}),
    )
    .await;
    body["workflow_run_id"].as_str().expect("run id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_runs_survive_sigkill_and_complete_exactly_once_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path: PathBuf = dir.path().join("crash.db");
    let client = client(Duration::from_secs(10));
    let (mut server, base) = start_healthy(&db_path, &client).await;

    let acked = Arc::new(AtomicUsize::new(0));
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let client = client.clone();
        let url = format!("{base}/v1/workflows/new-comment/trigger");
        let acked = acked.clone();
        burst.spawn(async move {
            let recipients: Vec<_> = (0..RECIPIENTS)
                .map(|r| json!({"id": format!("crash-{i}-{r}"), "name": format!("R{r}")}))
                .collect();
            let res = client
                .post(url)
                .bearer_auth(SECRET_KEY)
                .json(&json!({"recipients": recipients, "data": {"page_title": format!("T{i}")}}))
                .send()
                .await
                .ok()?;
            if res.status() != 200 {
                return None;
            }
            let body: serde_json::Value = res.json().await.ok()?;
            let run_id = body["workflow_run_id"].as_str()?.to_owned();
            acked.fetch_add(1, Ordering::SeqCst);
            Some(run_id)
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.load(Ordering::SeqCst) < KILL_AFTER && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.0.kill().expect("SIGKILL the server");
    let _ = server.0.wait();
    let mut acknowledged = Vec::new();
    while let Some(result) = burst.join_next().await {
        if let Some(run_id) = result.expect("task") {
            acknowledged.push(run_id);
        }
    }
    assert!(
        acknowledged.len() >= KILL_AFTER,
        "only {} triggers were acknowledged before the kill",
        acknowledged.len()
    );
    let left_queued = crate::db::count(
        &db_path,
        "SELECT COUNT(*) FROM workflow_runs WHERE status = 'queued'",
    );
    eprintln!(
        "{} of {BURST} triggers acknowledged before SIGKILL; {left_queued} runs left queued",
        acknowledged.len()
    );

    let (_restarted, _) = start_healthy(&db_path, &client).await;

    for run_id in &acknowledged {
        assert_eq!(
            db::wait_for_run(&db_path, run_id).await,
            "completed",
            "run {run_id}"
        );
        let messages = db::messages_of_run(&db_path, run_id);
        assert_eq!(messages.len(), RECIPIENTS, "run {run_id}: {messages:?}");
        let mut recipients: Vec<&str> = messages.iter().map(|m| m.recipient_id.as_str()).collect();
        recipients.sort_unstable();
        recipients.dedup();
        assert_eq!(
            recipients.len(),
            RECIPIENTS,
            "run {run_id} has a duplicate item"
        );
    }
    assert_eq!(
        db::count(
            &db_path,
            "SELECT COUNT(*) FROM (SELECT 1 FROM messages GROUP BY workflow_run_id, recipient_kind, \
             recipient_collection, recipient_id, step_ref HAVING COUNT(*) > 1) AS dupes"
        ),
        0,
        "no run produced a duplicate item"
    );
    // Runs that committed but whose answer was lost in the kill are resumed too.
    let deadline = Instant::now() + Duration::from_secs(20);
    while db::count(
        &db_path,
        "SELECT COUNT(*) FROM workflow_runs WHERE status = 'queued'",
    ) > 0
    {
        assert!(
            Instant::now() < deadline,
            "a committed run was never resumed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
