//! PostgreSQL stopped and started while Tidings serves (issue 19, "Bad input and
//! faults"): writes answer 503 with `Retry-After` in Knock's error shape while it is
//! down, nothing acknowledged is lost or delivered twice, and the server recovers by
//! itself when PostgreSQL is back, without a restart. Runs in the suite's PostgreSQL pass,
//! on a PostgreSQL server of its own (`private_pg`), so stopping it touches no other test.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::crash::put_workflow;
use crate::helpers::SECRET_KEY;
use crate::private_pg::PrivatePg;
use crate::process::{Launch, Proc};

const USER: &str = "fault-user";

async fn trigger(client: &reqwest::Client, server: &Proc, n: usize) -> reqwest::Response {
    client
        .post(server.url("/v1/workflows/faults/trigger"))
        .bearer_auth(SECRET_KEY)
        .json(&json!({"recipients": [USER], "data": {"n": n}}))
        .send()
        .await
        .expect("the server answers")
}

/// The feed's items as `n` → how many items carry it (one page holds them all).
async fn delivered(client: &reqwest::Client, server: &Proc) -> Option<BTreeMap<u64, usize>> {
    let channel = "in-app-feed";
    let res = client
        .get(server.url(&format!("/v1/users/{USER}/feeds/{channel}?page_size=50")))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .ok()?;
    if res.status() != 200 {
        return None;
    }
    let body: Value = res.json().await.ok()?;
    let mut seen = BTreeMap::new();
    for entry in body["entries"].as_array()? {
        *seen.entry(entry["data"]["n"].as_u64()?).or_insert(0) += 1;
    }
    Some(seen)
}

/// Polls the feed until it holds exactly `expected` (each once), or panics at the
/// deadline with what it last held.
async fn wait_for_feed(client: &reqwest::Client, server: &Proc, expected: &[usize]) {
    let want: BTreeMap<u64, usize> = expected.iter().map(|n| (*n as u64, 1)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        last = delivered(client, server).await;
        if last.as_ref() == Some(&want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the feed never held exactly {want:?}; last read: {last:?}");
}

#[tokio::test]
async fn postgres_stopped_while_serving_refuses_writes_then_recovers_with_nothing_lost() {
    if !crate::engine::is_postgres() {
        return;
    }
    let pg = PrivatePg::start().expect("PostgreSQL's binaries (scripts/test installs them)");
    let dir = tempfile::tempdir().expect("dir");
    let server = Launch::new(dir.path(), &["serve"])
        .test_keys()
        .env("TIDINGS_DATABASE_URL", &pg.url())
        .env("TIDINGS_DATABASE_POOL_SIZE", "2")
        .env("TIDINGS_RUN_RETRY_BASE_MS", "50")
        .serve()
        .await;
    let client = reqwest::Client::new();
    put_workflow(
        &client,
        &server.base,
        "faults",
        json!({"name": "faults", "steps": [
            {"ref": "in_app", "type": "channel", "channel_key": "in-app-feed",
             "channel_type": "in_app_feed", "template": {"markdown_body": "n {{ data.n }}"}}
        ]}),
    )
    .await;

    // Acknowledged, then PostgreSQL goes down at once: some of these runs are still
    // being delivered when their connections are cut.
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        let res = trigger(&client, &server, n).await;
        assert_eq!(res.status(), 200, "trigger {n} before the stop");
        acknowledged.push(n);
    }
    pg.stop();

    // Down: a write is refused with 503, `Retry-After` and Knock's error body.
    let res = trigger(&client, &server, 1000).await;
    assert_eq!(res.status(), 503, "a write while PostgreSQL is down");
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After: {retry_after:?}"
    );
    let body: Value = res.json().await.expect("a JSON error");
    assert_eq!(body["status"], 503, "{body}");
    assert!(
        body["code"].is_string() && body["message"].is_string(),
        "{body}"
    );
    // A read is refused too (not a 500, not a hang).
    let res = client
        .get(server.url(&format!("/v1/users/{USER}/feeds/in-app-feed")))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .expect("the server answers");
    assert_eq!(res.status(), 503, "a read while PostgreSQL is down");
    // The process is still serving, and its health check says the store is down.
    let res = client
        .get(server.url("/health"))
        .send()
        .await
        .expect("health answers");
    assert_eq!(res.status(), 503, "health while PostgreSQL is down");

    pg.start_again();
    // Back: the server recovers by itself (the SDKs' retry of a 503 would land here).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = trigger(&client, &server, 20).await;
        if res.status() == 200 {
            acknowledged.push(20);
            break;
        }
        assert_eq!(res.status(), 503, "only 503 while reconnecting");
        assert!(
            Instant::now() < deadline,
            "the server did not recover by itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in 21..25 {
        let res = trigger(&client, &server, n).await;
        assert_eq!(res.status(), 200, "trigger {n} after the restart");
        acknowledged.push(n);
    }
    // Every acknowledged trigger delivered exactly once; the refused one never.
    wait_for_feed(&client, &server, &acknowledged).await;
}
