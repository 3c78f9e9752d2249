//! Issue 18: a database written by the release before the lean write path (schema 17:
//! a recipient-run row per delivery, counters keyed by text, the run's data inside its
//! request) upgrades in place when today's binary starts on it: every badge, item, filter
//! and run record answers as it did, and new deliveries land beside the old ones.
//! `tests/fixtures/schema17.db` was written by that release's binary (see its README).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::SECRET_KEY;
use crate::process::{Launch, Proc};

async fn get(proc: &Proc, path: &str) -> Value {
    let res = reqwest::Client::new()
        .get(proc.url(path))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.expect("json")
}

async fn feed(proc: &Proc, user: &str, query: &str) -> Value {
    get(proc, &format!("/v1/users/{user}/feeds/in-app-feed?{query}")).await
}

fn meta(feed: &Value) -> (i64, i64, i64) {
    let m = &feed["meta"];
    (
        m["total_count"].as_i64().expect("total"),
        m["unread_count"].as_i64().expect("unread"),
        m["unseen_count"].as_i64().expect("unseen"),
    )
}

fn projects(feed: &Value) -> Vec<String> {
    feed["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["data"]["project"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn records(list: &Value) -> Vec<(String, String, String)> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| {
            (
                r["workflow"].as_str().unwrap_or("?").to_owned(),
                r["recipient"].as_str().unwrap_or("?").to_owned(),
                r["status"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

fn rec(workflow: &str, recipient: &str, status: &str) -> (String, String, String) {
    (workflow.into(), recipient.into(), status.into())
}

#[tokio::test]
async fn a_schema_17_database_upgrades_in_place_and_answers_as_before() {
    if crate::engine::is_postgres() {
        return; // a SQLite file written by an older Tidings
    }
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("tidings.db");
    std::fs::copy(crate::helpers::fixture("schema17.db"), &db).expect("copy fixture");
    let proc = Launch::new(dir.path(), &["serve"])
        .env("TIDINGS_DB", &db.display().to_string())
        .env("TIDINGS_LOG", "info")
        .test_keys()
        .serve()
        .await;

    // Badges and items as the old release left them: u1's older item was read.
    let u1 = feed(&proc, "u1", "").await;
    assert_eq!(meta(&u1), (2, 1, 2));
    assert_eq!(projects(&u1), ["zeus", "apollo"]);
    assert_eq!(meta(&feed(&proc, "u2", "").await), (1, 1, 1));
    assert_eq!(meta(&feed(&proc, "u3", "").await), (0, 0, 0));
    // The shared data of old items answers the trigger_data filter.
    let zeus = feed(&proc, "u1", "trigger_data=%7B%22project%22%3A%22zeus%22%7D").await;
    assert_eq!((projects(&zeus), meta(&zeus).0), (vec!["zeus".into()], 1));
    let acme = feed(&proc, "u1", "tenant=acme&has_tenant=true").await;
    assert_eq!(projects(&acme), ["apollo"]);

    // Old run records still answer, newest first, and each one by id with its events.
    let list = get(&proc, "/v1/workflow_recipient_runs").await;
    assert_eq!(
        records(&list),
        [
            rec("later", "u2", "paused"),
            rec("plain", "u1", "completed"),
            rec("plain", "u3", "completed"),
            rec("plain", "u2", "completed"),
            rec("plain", "u1", "completed"),
        ]
    );
    let skipped = &list["items"][2]["id"];
    let detail = get(
        &proc,
        &format!(
            "/v1/workflow_recipient_runs/{}",
            skipped.as_str().expect("id")
        ),
    )
    .await;
    assert_eq!(detail["events"][0]["event"], "step_skipped", "{detail}");

    // A new delivery lands beside the old ones: badges move, its record lists first.
    let res = reqwest::Client::new()
        .post(proc.url("/v1/workflows/plain/trigger"))
        .bearer_auth(SECRET_KEY)
        .json(&json!({"recipients": ["u1"], "data": {"project": "hermes"}}))
        .send()
        .await
        .expect("trigger");
    assert_eq!(res.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let u1 = loop {
        let u1 = feed(&proc, "u1", "").await;
        if meta(&u1).0 == 3 {
            break u1;
        }
        assert!(Instant::now() < deadline, "the new item never landed: {u1}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(meta(&u1), (3, 2, 3));
    assert_eq!(projects(&u1), ["hermes", "zeus", "apollo"]);
    let list = get(&proc, "/v1/workflow_recipient_runs").await;
    assert_eq!(records(&list).len(), 6);
    assert_eq!(records(&list)[0], rec("plain", "u1", "completed"));
    let hermes = feed(
        &proc,
        "u1",
        "trigger_data=%7B%22project%22%3A%22hermes%22%7D",
    )
    .await;
    assert_eq!(projects(&hermes), ["hermes"]);
    let (ok, _, stderr) = proc.stop().await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("database schema upgraded") && stderr.contains("from=17"),
        "{stderr}"
    );
}
