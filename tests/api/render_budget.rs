//! Issue 17 item 2, the template side: a render over its budget fails that recipient's
//! step quickly, on the real binary, with its memory bounded, while other triggers
//! still deliver.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary::Binary;
use crate::db;
use crate::helpers::SECRET_KEY;

/// Peak RSS the over-budget renders may add. Before the budget, the range trigger alone
/// took more than 6 GB.
const MEMORY_BOUND_MIB: u64 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_billion_iteration_range_fails_its_step_fast_while_others_deliver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path = dir.path().join("budget.db");
    let server = Binary::start(&db_path, &[]).await;
    let client = reqwest::Client::new();
    let body = "{% for i in (1..data.n) %}{% endfor %}\
                {% assign s = data.s %}{% for i in (1..data.doublings) %}{% assign s = s | append: s %}{% endfor %}\
                Hello {{ data.who }} {{ s | size }}";
    let res = client
        .put(format!("{}/v1/workflows/loopy", server.base))
        .bearer_auth(SECRET_KEY)
        .json(&json!({"workflow": {"name": "Loopy", "steps": [{
            "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed",
            "channel_type": "in_app_feed", "template": {"markdown_body": body}}]}}))
        .send()
        .await
        .expect("put workflow");
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let before = server.peak_rss_kib();
    let started = Instant::now();
    let trigger = |recipient: &str, data: Value| {
        let request = client
            .post(format!("{}/v1/workflows/loopy/trigger", server.base))
            .bearer_auth(SECRET_KEY)
            .json(&json!({"recipients": [recipient], "data": data}));
        async move {
            let res: Value = request
                .send()
                .await
                .expect("trigger")
                .json()
                .await
                .expect("JSON");
            res["workflow_run_id"]
                .as_str()
                .expect("a run id")
                .to_owned()
        }
    };
    let ranged = trigger(
        "ranged",
        json!({"n": 1_000_000_000, "doublings": 0, "s": "x", "who": "R"}),
    )
    .await;
    let doubled = trigger(
        "doubled",
        json!({"n": 1, "doublings": 60, "s": "ab", "who": "D"}),
    )
    .await;
    trigger(
        "bystander",
        json!({"n": 100, "doublings": 3, "s": "ab", "who": "B"}),
    )
    .await;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let feed: Value = client
            .get(format!(
                "{}/v1/users/bystander/feeds/in-app-feed",
                server.base
            ))
            .bearer_auth(SECRET_KEY)
            .send()
            .await
            .expect("feed")
            .json()
            .await
            .expect("feed JSON");
        if let Some(item) = feed["entries"].get(0) {
            let rendered = item["blocks"][0]["rendered"].as_str().unwrap_or_default();
            assert!(rendered.contains("Hello B 16"), "{rendered}");
            break;
        }
        assert!(Instant::now() < deadline, "the bystander got nothing");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for (run, what) in [
        (&ranged, "a range of 1000000000 items"),
        (&doubled, "added more than"),
    ] {
        let (_, status, events) = loop {
            let runs = db::recipient_runs(&db_path, run);
            if let Some(r) = runs.into_iter().find(|(_, s, _)| s != "running") {
                break r;
            }
            assert!(Instant::now() < deadline, "run {run} did not finish");
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        assert_eq!(status, "failed", "{events}");
        let failed = events
            .as_array()
            .and_then(|e| e.iter().find(|e| e["event"] == "step_failed"))
            .expect("a step_failed event");
        let error = failed["data"]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("over the render budget") && error.contains(what),
            "{failed}"
        );
    }
    let elapsed = started.elapsed();
    let peak = server.peak_rss_kib();
    eprintln!("three triggers done in {elapsed:?}; peak RSS {before} KiB -> {peak} KiB");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(
        peak < before + MEMORY_BOUND_MIB * 1024,
        "peak RSS grew from {before} KiB to {peak} KiB"
    );
    for user in ["ranged", "doubled"] {
        let feed: Value = client
            .get(format!("{}/v1/users/{user}/feeds/in-app-feed", server.base))
            .bearer_auth(SECRET_KEY)
            .send()
            .await
            .expect("feed")
            .json()
            .await
            .expect("feed JSON");
        assert_eq!(feed["entries"], json!([]), "{user}");
    }
}
