//! Retention against a real server: a pass at an injected "now" deletes exactly the
//! expired items (by creation and by archive time, per channel or for all), never a newer
//! one, and the badge counters still equal a recount.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use tidings::retention::{RetentionPolicy, run_pass};

use crate::db;
use crate::feed_support::{assert_counts_exact, comment, ids, put};
use crate::helpers::TestApp;
use crate::helpers::spawn_app;

fn policy(items: Option<&str>, archived: Option<&str>, runs: Option<u32>) -> RetentionPolicy {
    RetentionPolicy {
        items: items.map(|r| r.parse().expect("rule")),
        archived: archived.map(|r| r.parse().expect("rule")),
        runs_days: runs,
    }
}

/// Every stored message id.
fn stored_ids(app: &TestApp) -> BTreeSet<String> {
    db::open(&app.db_path)
        .prepare("SELECT id FROM messages")
        .expect("query")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("query")
}

/// The badges (counter rows plus tail, all-zero rows aside) equal a recount of the
/// non-archived messages.
fn assert_counters_equal_a_recount(app: &TestApp) {
    let conn = db::open(&app.db_path);
    let rows = |sql: &str| db::badge_rows(&conn, sql);
    let counters = rows(db::BADGES);
    let recount = rows(
        "SELECT channel_id, recipient_id, coalesce(tenant, ''), count(*), sum(read_at IS NULL), \
         sum(seen_at IS NULL) FROM messages WHERE archived_at IS NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    );
    assert_eq!(counters, recount);
}

async fn feed_ids(app: &TestApp, user: &str, n: usize) -> Vec<String> {
    ids(&app.wait_for_feed(user, "archived=include", n).await)
}

#[tokio::test]
async fn retention_deletes_exactly_the_expired_items_and_counters_equal_a_recount() {
    let app = spawn_app().await;
    for i in 0..4 {
        comment(&app, json!(["ada", "bob"]), json!({"n": i}), Some("acme")).await;
    }
    let old: BTreeSet<String> = feed_ids(&app, "ada", 4)
        .await
        .into_iter()
        .chain(feed_ids(&app, "bob", 4).await)
        .collect();
    let old_list: Vec<String> = old.iter().cloned().collect();
    put(
        &app,
        &format!("/v1/messages/{}/archived", old_list[0]),
        json!({}),
    )
    .await;
    put(
        &app,
        &format!("/v1/messages/{}/read", old_list[1]),
        json!({}),
    )
    .await;
    // `t` is after every old item was created and archived, before any new one.
    let t = Utc::now();
    for i in 0..3 {
        comment(&app, json!(["ada", "bob"]), json!({"n": 10 + i}), None).await;
    }
    feed_ids(&app, "ada", 7).await;
    feed_ids(&app, "bob", 7).await;
    let all = stored_ids(&app);
    assert_eq!(all.len(), 14);
    let new: Vec<String> = all.difference(&old).cloned().collect();
    put(
        &app,
        &format!("/v1/messages/{}/archived", new[0]),
        json!({}),
    )
    .await;
    put(&app, &format!("/v1/messages/{}/seen", new[1]), json!({})).await;
    assert_counters_equal_a_recount(&app);

    let keep_60_archived_30 = policy(Some("60"), Some("30"), None);
    let store = &app.state.store;

    // 30 days after `t`: only the item archived before `t` has been archived for 30 days.
    let r = run_pass(store, &keep_60_archived_30, t + Duration::days(30), None)
        .await
        .unwrap();
    assert_eq!((r.items, r.archived), (0, 1), "{r:?}");
    let mut expected = all.clone();
    expected.remove(&old_list[0]);
    assert_eq!(stored_ids(&app), expected);
    assert_counters_equal_a_recount(&app);
    assert_counts_exact(&app, "ada").await;
    assert_counts_exact(&app, "bob").await;

    // A second pass at the same instant finds nothing more.
    let again = run_pass(store, &keep_60_archived_30, t + Duration::days(30), None)
        .await
        .unwrap();
    assert_eq!((again.items, again.archived), (0, 0));

    // 60 days after `t`: every old item is 60 days old (the new ones are not, by a
    // hair), and the new archived item has been archived for 30 days.
    let r = run_pass(store, &keep_60_archived_30, t + Duration::days(60), None)
        .await
        .unwrap();
    assert_eq!((r.items, r.archived), (7, 1), "{r:?}");
    let expected: BTreeSet<String> = new.iter().skip(1).cloned().collect();
    assert_eq!(stored_ids(&app), expected);
    assert_counters_equal_a_recount(&app);
    assert_counts_exact(&app, "ada").await;
    assert_counts_exact(&app, "bob").await;
    // Both feeds together: the 5 new items left, all unread, one seen.
    let mut meta = (0, 0, 0);
    for user in ["ada", "bob"] {
        let (_, feed) = app
            .get_json(&format!("/v1/users/{user}/feeds/in-app-feed"))
            .await;
        let m = &feed["meta"];
        meta.0 += m["total_count"].as_i64().unwrap_or(-100);
        meta.1 += m["unread_count"].as_i64().unwrap_or(-100);
        meta.2 += m["unseen_count"].as_i64().unwrap_or(-100);
    }
    assert_eq!(meta, (5, 5, 4));

    // Runs: finished runs older than the limit go with their recipient runs, except the
    // 3 whose items are still stored (items read their data from their run).
    let runs_before = db::count(&app.db_path, "SELECT count(*) FROM workflow_runs");
    assert_eq!(runs_before, 7);
    let r = run_pass(
        store,
        &policy(None, None, Some(1)),
        Utc::now() + Duration::days(2),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.runs, 4);
    assert_eq!(
        db::count(&app.db_path, "SELECT count(*) FROM workflow_runs"),
        3
    );
    assert_eq!(
        db::count(
            &app.db_path,
            "SELECT count(*) FROM workflow_recipient_runs WHERE workflow_run_id NOT IN (SELECT id FROM workflow_runs)"
        ),
        0
    );
    assert_eq!(
        stored_ids(&app),
        expected,
        "run retention leaves feed items alone"
    );
    let (_, feed) = app
        .get_json("/v1/users/ada/feeds/in-app-feed?archived=include")
        .await;
    for entry in feed["entries"].as_array().into_iter().flatten() {
        assert!(
            entry["data"]["n"].as_i64().is_some_and(|n| n >= 10),
            "{entry}"
        );
    }
}

#[tokio::test]
async fn a_per_channel_rule_deletes_only_that_channels_items() {
    let app = spawn_app().await;
    let alerts: Value = json!({"workflow": {"name": "Alerts", "steps": [{"ref": "a", "type": "channel",
        "channel_key": "alerts", "template": {"markdown_body": "Alert {{ data.n }}"}}]}});
    app.put_ok("/v1/workflows/alert", alerts).await;
    for i in 0..3 {
        comment(&app, json!(["ada"]), json!({"n": i}), None).await;
        app.trigger("alert", json!({"recipients": ["ada"], "data": {"n": i}}))
            .await;
    }
    feed_ids(&app, "ada", 3).await;
    let alerts_feed = app
        .poll_json("/v1/users/ada/feeds/alerts", |b| {
            b["entries"].as_array().is_some_and(|e| e.len() == 3)
        })
        .await;
    let alert_ids: BTreeSet<String> = ids(&alerts_feed).into_iter().collect();
    assert_eq!(alert_ids.len(), 3);

    let now = Utc::now() + Duration::days(11);
    let r = run_pass(
        &app.state.store,
        &policy(Some("in-app-feed=10"), None, None),
        now,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.items, 3);
    assert_eq!(stored_ids(&app), alert_ids, "only in-app-feed items went");
    // A default for every other channel: the alerts go too once they are old enough.
    let r = run_pass(
        &app.state.store,
        &policy(Some("12,in-app-feed=10"), None, None),
        now,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.items, 0, "11 days is within the 12-day default");
    let r = run_pass(
        &app.state.store,
        &policy(Some("12,in-app-feed=10"), None, None),
        now + Duration::days(2),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.items, 3);
    assert!(stored_ids(&app).is_empty());
    assert_counters_equal_a_recount(&app);
}

#[tokio::test]
async fn retention_is_off_by_default_and_bad_settings_are_refused() {
    let app = spawn_app().await;
    assert!(app.state.settings.retain_items_days.is_none());
    assert!(!tidings::retention::RetentionPolicy::from_settings(&app.state.settings).is_enabled());
    for (flag, value) in [
        ("--retain-items-days", "0"),
        ("--retain-items-days", "ten"),
        ("--retain-archived-days", "a=1,a=2"),
        ("--retain-runs-days", "-3"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args([format!("{flag}={value}").as_str(), "keys"])
            .envs(crate::engine::database_env(
                app.db_path.with_extension("other.db"),
            ))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(flag),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn the_background_task_deletes_items_once_the_clock_passes_their_limit() {
    let clock = tidings::clock::Clock::manual(Utc::now());
    let c = clock.clone();
    let app = crate::helpers::spawn_app_with(move |s| {
        s.clock = c;
        s.retain_items_days = Some("1".parse().expect("rule"));
        s.retention_interval_secs = 1;
    })
    .await;
    for i in 0..3 {
        comment(&app, json!(["ada"]), json!({"n": i}), None).await;
    }
    feed_ids(&app, "ada", 3).await;
    clock.advance(Duration::hours(25));
    let body = app
        .poll_json("/v1/users/ada/feeds/in-app-feed?archived=include", |b| {
            b["entries"].as_array().is_some_and(Vec::is_empty)
        })
        .await;
    assert_eq!(body["entries"], json!([]), "{body}");
    assert_eq!(body["meta"]["total_count"], 0);
    assert_counters_equal_a_recount(&app);
}
