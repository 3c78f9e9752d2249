//! Several servers in this process on the test's PostgreSQL database (issue 20):
//! - every occurrence of a daily schedule triggers its workflow once with three nodes,
//!   whichever holds the cluster duties, while they race for them and after the holder
//!   stops. The nodes share one manual clock: a day passes in an instant and every lease
//!   lapses at once with it, so the nodes race for the duties on each occurrence (the
//!   race the claim of an occurrence must win once);
//! - a translation upserted on one node is what another node's next render reads.
//!
//! PostgreSQL only (one SQLite file is one node).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use std::ops::Not;

use serde_json::{Value, json};
use tidings::clock::Clock;

use crate::db;
use crate::helpers::{TestApp, spawn_app_with};

const USERS: [&str; 3] = ["ada", "bob", "cy"];

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .expect("time")
}

/// Node `id` on the clock `clock`, on `db_path`'s database when given (the first node
/// makes it).
async fn node(id: &str, clock: &Clock, db_path: Option<std::path::PathBuf>) -> TestApp {
    let clock = clock.clone();
    let id = id.to_owned();
    spawn_app_with(move |s| {
        s.clock = clock;
        if let Some(db) = db_path {
            crate::engine::point_at(s, db);
        }
        s.node_id = id;
        s.lease_secs = 2;
    })
    .await
}

/// Polls (through `app`, ~10 s) until every user's schedule last fired at `at`.
async fn wait_all_fired(app: &TestApp, at: &str) {
    for user in USERS {
        let body = app
            .poll_json(&format!("/v1/users/{user}/schedules"), |b| {
                b["entries"][0]["last_occurrence_at"] == at
            })
            .await;
        assert_eq!(
            body["entries"][0]["last_occurrence_at"], at,
            "{user}: {body}"
        );
    }
}

/// Waits (~10 s) until the users hold `n` feed items in all: an occurrence's runs are
/// complete before the clock moves on, so each item carries its occurrence's day.
async fn wait_items(app: &TestApp, n: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let count = || db::count(&app.db_path, "SELECT COUNT(*) FROM messages");
    while count() < n && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(count(), n, "feed items after the occurrence");
}

/// Each user's feed items, by the day they were delivered.
fn items_per_user_and_day(app: &TestApp) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for user in USERS {
        for day in ["2030-01-01", "2030-01-02", "2030-01-03"] {
            let n = db::count(
                &app.db_path,
                &format!(
                    "SELECT COUNT(*) FROM messages WHERE recipient_id = '{user}' \
                     AND inserted_at LIKE '{day}T%'"
                ),
            );
            out.insert((user.to_owned(), day.to_owned()), n);
        }
    }
    out
}

fn runs(app: &TestApp) -> i64 {
    db::count(&app.db_path, "SELECT COUNT(*) FROM workflow_runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daily_schedule_fires_once_per_occurrence_with_three_nodes_running() {
    if !crate::engine::is_postgres() {
        return;
    }
    let clock = Clock::manual(t("2030-01-01T00:00:00Z"));
    let one = node("sched-node-1", &clock, None).await;
    let two = node("sched-node-2", &clock, Some(one.db_path.clone())).await;
    let three = node("sched-node-3", &clock, Some(one.db_path.clone())).await;

    let (status, created) = two
        .post_json(
            "/v1/schedules",
            json!({
                "workflow": "new-comment",
                "recipients": USERS,
                "repeats": [{"frequency": "daily", "hours": 9, "minutes": 0}],
                "data": {"page_title": "Daily digest", "page_url": "https://example.com/d"},
            }),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created.as_array().map(Vec::len), Some(3), "{created}");
    let before = runs(&one);

    // Day 1 and day 2 with all three nodes racing for the duties at each occurrence.
    clock.advance(Duration::hours(9));
    wait_all_fired(&three, "2030-01-01T09:00:00.000000Z").await;
    wait_items(&three, 3).await;
    clock.advance(Duration::hours(24));
    wait_all_fired(&one, "2030-01-02T09:00:00.000000Z").await;
    wait_items(&one, 6).await;

    // The node holding the duties stops (handing them back); day 3 fires through the others.
    let holder: String = db::open(&one.db_path)
        .query_row("SELECT owner FROM leases WHERE name = 'duties'", [], |r| {
            r.get(0)
        })
        .expect("a node holds the duties");
    let mut nodes = vec![
        ("sched-node-1", one),
        ("sched-node-2", two),
        ("sched-node-3", three),
    ];
    let at = nodes
        .iter()
        .position(|(id, _)| *id == holder)
        .unwrap_or_else(|| panic!("no node is {holder}"));
    let (stopped_id, stopped) = nodes.remove(at);
    stopped.handle.stop(true).await;
    let running: Vec<&TestApp> = nodes.iter().map(|(_, app)| app).collect();
    clock.advance(Duration::hours(24));
    wait_all_fired(running[0], "2030-01-03T09:00:00.000000Z").await;
    wait_items(running[0], 9).await;

    // Every occurrence made exactly one run and one item per user: 3 users × 3 days.
    let got = items_per_user_and_day(running[0]);
    let want: BTreeMap<(String, String), i64> = got.keys().cloned().map(|k| (k, 1)).collect();
    assert_eq!(got, want, "one item per user per occurrence");
    assert_eq!(runs(running[0]) - before, 9, "one run per occurrence");
    let schedules: Value = running[1]
        .get("/v1/users/ada/schedules")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        schedules["entries"][0]["next_occurrence_at"], "2030-01-04T09:00:00.000000Z",
        "{schedules}"
    );
    // Node 1 made the database (its drop drops it): the others go first.
    nodes.push((stopped_id, stopped));
    nodes.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    drop(nodes);
}

/// Triggers `translated` on `app` for a user of its own (the `n`th), waits for the item
/// and answers its rendered body.
async fn render_on(app: &TestApp, n: &mut usize) -> String {
    *n += 1;
    let user = format!("ada-{n}");
    app.trigger(
        "translated",
        json!({"recipients": [{"id": user, "name": "Ada"}]}),
    )
    .await;
    let feed = app.wait_for_feed(&user, "", 1).await;
    assert_eq!(feed["entries"].as_array().map(Vec::len), Some(1), "{feed}");
    feed["entries"][0]["blocks"][0]["rendered"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_translation_upserted_on_one_node_is_rendered_by_another() {
    if !crate::engine::is_postgres() {
        return;
    }
    let clock = Clock::default();
    let a = node("tr-node-a", &clock, None).await;
    let b = node("tr-node-b", &clock, Some(a.db_path.clone())).await;
    let (status, res) = a
        .put_json(
            "/v1/workflows/translated",
            json!({"workflow": {"name": "Translated", "steps": [{
                "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed",
                "channel_type": "in_app_feed",
                "template": {"markdown_body": "{{ \"greeting\" | t: name: recipient.name }}"}}]}}),
        )
        .await;
    assert_eq!(status, 200, "{res}");
    let mut n = 0;
    for greeting in ["Hello, {{ name }}!", "Welcome back, {{ name }}!"] {
        let (status, res) = a
            .put_json(
                "/v1/translations/en",
                json!({"translation": {"content": json!({"greeting": greeting}).to_string(),
                                       "format": "json"}}),
            )
            .await;
        assert_eq!(status, 200, "{res}");
        // Node b takes the change within its one-second follow; each trigger renders once.
        let want = greeting.replace("{{ name }}", "Ada");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut got = render_on(&b, &mut n).await;
        while got.contains(&want).not() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            got = render_on(&b, &mut n).await;
        }
        assert!(got.contains(&want), "node b renders {got:?}, not {want:?}");
    }
    drop(b);
    drop(a);
}
