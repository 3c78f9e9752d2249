//! Schedules: the CRUD endpoints in Knock's shapes, bad input refused naming the field with
//! nothing stored, and firing: each occurrence triggers the workflow exactly once, per
//! (fake-clock) day and across a restart that skipped days.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tidings::clock::Clock;

use crate::db;
use crate::helpers::{
    TestApp, assert_error, assert_rejects_bad_credentials, installed_node_sdk, spawn_app,
    spawn_app_with,
};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .expect("time")
}

const DATA: &str = r#"{"page_title": "Weekly digest", "page_url": "https://example.com/d"}"#;

fn daily(recipients: Value) -> Value {
    json!({
        "workflow": "new-comment",
        "recipients": recipients,
        "repeats": [{"__typename": "ScheduleRepeat", "frequency": "daily", "interval": 1,
                     "days": null, "hours": 9, "minutes": 0, "day_of_month": null}],
        "scheduled_at": "2030-01-01T00:00:00Z",
        "data": serde_json::from_str::<Value>(DATA).expect("data"),
        "tenant": "acme",
    })
}

async fn create(app: &TestApp, body: Value) -> Vec<Value> {
    let (status, created) = app.post_json("/v1/schedules", body).await;
    assert_eq!(status, 200, "{created}");
    created.as_array().cloned().expect("an array of schedules")
}

fn count_runs(app: &TestApp) -> i64 {
    db::count(&app.db_path, "SELECT COUNT(*) FROM workflow_runs")
}

/// A server whose engine (and so its scheduler) runs on a manual clock standing at `start`.
async fn app_at(start: &str, db_path: Option<std::path::PathBuf>) -> (TestApp, Clock) {
    let clock = Clock::manual(t(start));
    let c = clock.clone();
    let app = spawn_app_with(move |s| {
        s.clock = c;
        if let Some(db) = db_path {
            crate::engine::point_at(s, db);
        }
    })
    .await;
    (app, clock)
}

/// Waits (~10 s) until `user`'s schedule says its last occurrence was `at`; returns it.
async fn wait_fired(app: &TestApp, user: &str, at: &str) -> Value {
    let body = app
        .poll_json(&format!("/v1/users/{user}/schedules"), |b| {
            b["entries"][0]["last_occurrence_at"] == at
        })
        .await;
    assert_eq!(body["entries"][0]["last_occurrence_at"], at, "{body}");
    body["entries"][0].clone()
}

#[tokio::test]
async fn create_answers_one_schedule_per_recipient_in_knocks_shape() {
    let app = spawn_app().await;
    let created = create(&app, daily(json!([{"id": "ada", "name": "Ada"}, "bob"]))).await;
    assert_eq!(created.len(), 2);
    let ada = &created[0];
    assert_eq!(ada["__typename"], "Schedule");
    assert!(uuid::Uuid::parse_str(ada["id"].as_str().unwrap_or("")).is_ok());
    assert_eq!(ada["workflow"], "new-comment");
    assert_eq!(ada["recipient"]["__typename"], "User");
    assert_eq!(ada["recipient"]["name"], "Ada", "inline identify");
    assert_eq!(created[1]["recipient"]["id"], "bob");
    assert_eq!(ada["tenant"], "acme");
    assert_eq!(ada["data"]["page_title"], "Weekly digest");
    assert_eq!(ada["actor"], Value::Null);
    assert_eq!(
        ada["repeats"],
        json!([{"__typename": "ScheduleRepeat", "frequency": "daily", "interval": 1,
                "days": null, "hours": 9, "minutes": 0, "day_of_month": null}])
    );
    assert_eq!(ada["next_occurrence_at"], "2030-01-01T09:00:00.000000Z");
    assert_eq!(ada["last_occurrence_at"], Value::Null);
    assert_eq!(ada["scheduled_at"], "2030-01-01T00:00:00.000000Z");
    assert!(ada["inserted_at"].is_string() && ada["updated_at"].is_string());
    assert_eq!(app.stored_user("ada").await["name"], "Ada");
}

#[tokio::test]
async fn lists_filter_by_workflow_recipient_and_tenant_and_page() {
    let app = spawn_app().await;
    let users: Vec<String> = (0..5).map(|i| format!("u{i}")).collect();
    create(&app, daily(json!(users))).await;
    let mut other = daily(json!(["u0", {"id": "p1", "collection": "projects"}]));
    other["tenant"] = Value::Null;
    create(&app, other).await;

    let (_, all) = app
        .get_json("/v1/schedules?workflow=new-comment&page_size=4")
        .await;
    assert_eq!(all["entries"].as_array().map(Vec::len), Some(4));
    assert_eq!(all["page_info"]["page_size"], 4);
    let after = all["page_info"]["after"].as_str().expect("more pages");
    let (_, rest) = app
        .get_json(&format!(
            "/v1/schedules?workflow=new-comment&page_size=4&after={after}"
        ))
        .await;
    assert_eq!(rest["entries"].as_array().map(Vec::len), Some(3));
    assert_eq!(rest["page_info"]["after"], Value::Null);

    let (_, mine) = app
        .get_json("/v1/schedules?workflow=new-comment&recipients[]=u0&recipients[]=u1")
        .await;
    assert_eq!(mine["entries"].as_array().map(Vec::len), Some(3));
    let (_, acme) = app
        .get_json("/v1/schedules?workflow=new-comment&tenant=acme")
        .await;
    assert_eq!(acme["entries"].as_array().map(Vec::len), Some(5));
    let (_, none) = app.get_json("/v1/schedules?workflow=project-invite").await;
    assert_eq!(none["entries"], json!([]));

    let (_, u0) = app.get_json("/v1/users/u0/schedules").await;
    assert_eq!(u0["entries"].as_array().map(Vec::len), Some(2));
    let (_, p1) = app.get_json("/v1/objects/projects/p1/schedules").await;
    let p1 = p1["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(p1.len(), 1);
    assert_eq!(p1[0]["recipient"]["collection"], "projects");
}

#[tokio::test]
async fn update_changes_every_listed_schedule_and_recomputes_the_next_occurrence() {
    let app = spawn_app().await;
    let created = create(&app, daily(json!(["a", "b"]))).await;
    let ids: Vec<&str> = created.iter().filter_map(|s| s["id"].as_str()).collect();
    let (status, updated) = app
        .put_json(
            "/v1/schedules",
            json!({"schedule_ids": ids, "repeats": [{"frequency": "weekly", "days": ["fri"], "hours": 17}],
                   "data": {"page_title": "Friday", "page_url": "https://example.com/f"}, "tenant": null}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let updated = updated.as_array().cloned().unwrap_or_default();
    assert_eq!(updated.len(), 2);
    for s in &updated {
        assert_eq!(s["repeats"][0]["frequency"], "weekly");
        assert_eq!(s["data"]["page_title"], "Friday");
        assert_eq!(s["tenant"], Value::Null);
        assert_eq!(s["scheduled_at"], "2030-01-01T00:00:00.000000Z", "kept");
        // 2030-01-04 is the first Friday on or after 2030-01-01.
        assert_eq!(s["next_occurrence_at"], "2030-01-04T17:00:00.000000Z");
    }
    let (_, listed) = app.get_json("/v1/users/a/schedules").await;
    assert_eq!(listed["entries"][0]["repeats"][0]["days"], json!(["fri"]));
}

#[tokio::test]
async fn delete_removes_the_listed_schedules_and_answers_them() {
    let app = spawn_app().await;
    let created = create(&app, daily(json!(["a", "b"]))).await;
    let a = created[0]["id"].as_str().expect("id");
    let res = app
        .server(reqwest::Method::DELETE, "/v1/schedules")
        .json(&json!({"schedule_ids": [a]}))
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 200);
    let deleted: Value = res.json().await.expect("json");
    assert_eq!(deleted[0]["id"], a);
    let (_, left) = app.get_json("/v1/schedules?workflow=new-comment").await;
    assert_eq!(left["entries"].as_array().map(Vec::len), Some(1));
    assert_eq!(left["entries"][0]["recipient"]["id"], "b");
}

#[tokio::test]
async fn deleting_a_user_deletes_its_schedules_and_a_merge_readdresses_them() {
    let app = spawn_app().await;
    for user in ["a", "b", "c"] {
        let (status, body) = app
            .put_json(&format!("/v1/users/{user}"), json!({"name": user}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    create(&app, daily(json!(["a", "b", "c"]))).await;
    let res = app
        .server(reqwest::Method::DELETE, "/v1/users/a")
        .send()
        .await
        .expect("delete user");
    assert!(res.status().is_success(), "{}", res.status());
    let (status, body) = app
        .post_json("/v1/users/b/merge", json!({"from_user_id": "c"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, left) = app.get_json("/v1/schedules?workflow=new-comment").await;
    let recipients: Vec<&str> = left["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["recipient"]["id"].as_str())
        .collect();
    assert_eq!(recipients, vec!["b", "b"], "{left}");
}

#[tokio::test]
async fn bulk_create_makes_each_entry_and_answers_a_completed_bulk_operation() {
    let app = spawn_app().await;
    let entry = |r: Value| {
        let mut e = daily(json!([]));
        e.as_object_mut().map(|o| o.remove("recipients"));
        e["recipient"] = r;
        e
    };
    let (status, op) = app
        .post_json(
            "/v1/schedules/bulk/create",
            json!({"schedules": [entry(json!("a")), entry(json!({"id": "p", "collection": "projects"}))]}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["__typename"], "BulkOperation");
    assert_eq!(op["status"], "completed");
    assert_eq!(op["success_count"], 2);
    let (_, listed) = app.get_json("/v1/schedules?workflow=new-comment").await;
    assert_eq!(listed["entries"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_daily_schedule_fires_once_per_day_and_once_after_a_restart_that_skipped_days() {
    let (app, clock) = app_at("2030-01-01T00:00:00Z", None).await;
    let id = create(&app, daily(json!(["ada"]))).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let before = count_runs(&app);
    clock.advance(Duration::hours(9));
    let s = wait_fired(&app, "ada", "2030-01-01T09:00:00.000000Z").await;
    assert_eq!(s["next_occurrence_at"], "2030-01-02T09:00:00.000000Z");
    clock.advance(Duration::hours(14)); // 23:00: nothing due
    clock.advance(Duration::hours(10)); // day 2, 09:00
    wait_fired(&app, "ada", "2030-01-02T09:00:00.000000Z").await;
    assert_eq!(count_runs(&app) - before, 2, "one run per day");

    // The runs are real runs: they complete, and the run records name the schedule.
    let body = app
        .poll_json("/v1/workflow_recipient_runs?recipient=ada", |b| {
            b["items"].as_array().map_or(0, Vec::len) == 2
        })
        .await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(body["items"][0]["trigger_source"]["type"], "schedule");
    assert_eq!(
        body["items"][0]["trigger_source"]["schedule_id"],
        id.as_str()
    );
    assert_eq!(body["items"][0]["tenant"], "acme");
    let feed = app.wait_for_feed("ada", "", 2).await;
    assert_eq!(feed["entries"].as_array().map(Vec::len), Some(2));

    // Stop, then start again on the same database after four missed days.
    app.handle.stop(true).await;
    let (again, clock) = app_at("2030-01-06T12:00:00Z", Some(app.db_path.clone())).await;
    let s = wait_fired(&again, "ada", "2030-01-03T09:00:00.000000Z").await;
    assert_eq!(
        s["next_occurrence_at"], "2030-01-07T09:00:00.000000Z",
        "the missed days fire once, then the schedule moves past now"
    );
    assert_eq!(count_runs(&again) - before, 3);
    clock.advance(Duration::hours(21));
    wait_fired(&again, "ada", "2030-01-07T09:00:00.000000Z").await;
    assert_eq!(count_runs(&again) - before, 4);
}

/// Knock reads a recurring schedule on its recipient's `timezone`: 09:00 in New York is
/// 14:00Z in winter and 13:00Z once clocks go forward (Sunday 2030-03-10).
#[tokio::test]
async fn a_daily_schedule_fires_at_nine_on_the_recipients_clock_across_dst() {
    let (app, clock) = app_at("2030-03-08T00:00:00Z", None).await;
    let (status, body) = app
        .put_json("/v1/users/nyc", json!({"timezone": "America/New_York"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut body = daily(json!(["nyc", {"id": "utc-user"}]));
    body["scheduled_at"] = json!("2030-03-08T00:00:00Z");
    let created = create(&app, body).await;
    assert_eq!(
        created[0]["next_occurrence_at"],
        "2030-03-08T14:00:00.000000Z"
    );
    assert_eq!(
        created[1]["next_occurrence_at"], "2030-03-08T09:00:00.000000Z",
        "a recipient without a timezone is read in UTC"
    );
    clock.advance(Duration::hours(14));
    let s = wait_fired(&app, "nyc", "2030-03-08T14:00:00.000000Z").await;
    assert_eq!(s["next_occurrence_at"], "2030-03-09T14:00:00.000000Z");
    clock.advance(Duration::hours(24));
    let s = wait_fired(&app, "nyc", "2030-03-09T14:00:00.000000Z").await;
    assert_eq!(
        s["next_occurrence_at"], "2030-03-10T13:00:00.000000Z",
        "after the DST change 09:00 New York is 13:00Z"
    );

    // A changed timezone applies from the following occurrence.
    let (status, _) = app
        .put_json("/v1/users/nyc", json!({"timezone": "Europe/Paris"}))
        .await;
    assert_eq!(status, 200);
    clock.advance(Duration::hours(23));
    let s = wait_fired(&app, "nyc", "2030-03-10T13:00:00.000000Z").await;
    assert_eq!(s["next_occurrence_at"], "2030-03-11T08:00:00.000000Z");
}

#[tokio::test]
async fn a_timezone_that_is_no_tz_database_name_is_refused_and_nothing_changes() {
    let app = spawn_app().await;
    let (status, _) = app
        .put_json("/v1/users/tz", json!({"timezone": "Europe/Paris"}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .put_json(
            "/v1/users/tz",
            json!({"timezone": "Mars/Olympus", "name": "T"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_params", "{body}");
    assert!(body.to_string().contains("timezone"), "{body}");
    let (_, user) = app.get_json("/v1/users/tz").await;
    assert_eq!(user["timezone"], "Europe/Paris");
    assert_eq!(user["name"], Value::Null);
    let mut bad_inline = daily(json!([{"id": "tz2", "timezone": "UTC+25"}]));
    bad_inline["scheduled_at"] = json!("2030-03-08T00:00:00Z");
    let (status, body) = app.post_json("/v1/schedules", bad_inline).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = app.get_json("/v1/users/tz2").await;
    assert_eq!(status, 404, "a refused inline identify stores nothing");
}

#[tokio::test]
async fn a_one_off_fires_once_and_ending_at_stops_a_series() {
    let (app, clock) = app_at("2030-01-01T00:00:00Z", None).await;
    let mut one = daily(json!(["ada"]));
    one["repeats"] = Value::Null;
    one["scheduled_at"] = json!("2030-01-03T10:00:00Z");
    create(&app, one).await;
    let mut ending = daily(json!(["bob"]));
    ending["ending_at"] = json!("2030-01-02T09:00:00Z");
    create(&app, ending).await;
    clock.advance(Duration::hours(9));
    wait_fired(&app, "bob", "2030-01-01T09:00:00.000000Z").await;
    clock.advance(Duration::days(1));
    let bob = wait_fired(&app, "bob", "2030-01-02T09:00:00.000000Z").await;
    assert_eq!(bob["next_occurrence_at"], Value::Null, "bob's series ended");
    clock.advance(Duration::days(1) + Duration::hours(1));
    let ada = wait_fired(&app, "ada", "2030-01-03T10:00:00.000000Z").await;
    assert_eq!(
        ada["next_occurrence_at"],
        Value::Null,
        "a one-off fires once"
    );
    assert_eq!(count_runs(&app), 3);
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_stores_nothing() {
    let app = spawn_app().await;
    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let mut bad_repeats = daily(json!(["a"]));
    bad_repeats["repeats"] = json!([{"frequency": "fortnightly"}]);
    let mut bad_hours = daily(json!(["a"]));
    bad_hours["repeats"][0]["hours"] = json!(25);
    let mut never = daily(json!(["a"]));
    never["ending_at"] = json!("2029-01-01T00:00:00Z");
    let mut schema = daily(json!(["a"]));
    schema["workflow"] = json!("project-invite");
    for (body, field) in [
        (daily(json!(many)), "recipients"),
        (bad_repeats, "repeats[0].frequency"),
        (bad_hours, "repeats[0].hours"),
        (never, "ending_at"),
        (
            json!({"workflow": "new-comment", "recipients": ["a"]}),
            "repeats",
        ),
        (
            json!({"workflow": "new-comment", "recipients": "a", "repeats": [{"frequency": "daily"}]}),
            "recipients",
        ),
        (
            json!({"workflow": "new-comment", "recipients": ["a"], "repeats": [{"frequency": "daily"}], "scheduled_at": "soon"}),
            "scheduled_at",
        ),
        (schema, "project_name"),
    ] {
        let res = app
            .post("/v1/schedules", body.clone())
            .send()
            .await
            .expect("post");
        let err = assert_error(res, 422, "invalid_params").await;
        let fields: Vec<String> = err["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            fields.iter().any(|f| f.contains(field)),
            "{field} not in {err} for {body}"
        );
    }
    let mut unknown = daily(json!(["a"]));
    unknown["workflow"] = json!("no-such-workflow");
    let res = app
        .post("/v1/schedules", unknown)
        .send()
        .await
        .expect("post");
    assert_error(res, 404, "workflow_missing").await;
    let res = app
        .server(reqwest::Method::POST, "/v1/schedules")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);
    let missing = "00000000-0000-4000-8000-000000000000";
    let res = app
        .put(
            "/v1/schedules",
            json!({"schedule_ids": [missing], "data": {}}),
        )
        .send()
        .await
        .expect("put");
    assert_error(res, 404, "resource_missing").await;
    let res = app
        .server(reqwest::Method::DELETE, "/v1/schedules")
        .json(&json!({"schedule_ids": [missing]}))
        .send()
        .await
        .expect("delete");
    assert_error(res, 404, "resource_missing").await;
    let res = app.get("/v1/schedules").send().await.expect("list");
    let err = assert_error(res, 422, "invalid_params").await;
    assert_eq!(err["errors"][0]["field"], "workflow");
    let res = app
        .post("/v1/schedules/bulk/create", json!({"schedules": [{"workflow": "new-comment", "recipient": "a", "repeats": [{"frequency": "x"}]}]}))
        .send()
        .await
        .expect("bulk");
    let err = assert_error(res, 422, "invalid_params").await;
    assert_eq!(
        err["errors"][0]["field"],
        "schedules[0].repeats[0].frequency"
    );
    assert_eq!(db::count(&app.db_path, "SELECT COUNT(*) FROM schedules"), 0);
    assert_eq!(db::count(&app.db_path, "SELECT COUNT(*) FROM users"), 0);

    // An update that would make a schedule invalid changes nothing.
    let id = create(&app, daily(json!(["a"]))).await[0]["id"].clone();
    let res = app
        .put(
            "/v1/schedules",
            json!({"schedule_ids": [id], "repeats": [{"frequency": "daily", "minutes": 60}]}),
        )
        .send()
        .await
        .expect("put");
    assert_error(res, 422, "invalid_params").await;
    let (_, listed) = app.get_json("/v1/users/a/schedules").await;
    assert_eq!(listed["entries"][0]["repeats"][0]["hours"], 9);
}

#[tokio::test]
async fn schedules_need_the_secret_key() {
    let app = spawn_app().await;
    let body = daily(json!(["a"]));
    for (method, path, json) in [
        (reqwest::Method::POST, "/v1/schedules", Some(&body)),
        (
            reqwest::Method::GET,
            "/v1/schedules?workflow=new-comment",
            None,
        ),
        (reqwest::Method::PUT, "/v1/schedules", Some(&body)),
        (reqwest::Method::DELETE, "/v1/schedules", Some(&body)),
        (
            reqwest::Method::POST,
            "/v1/schedules/bulk/create",
            Some(&body),
        ),
        (reqwest::Method::GET, "/v1/users/a/schedules", None),
        (
            reqwest::Method::GET,
            "/v1/objects/projects/p/schedules",
            None,
        ),
    ] {
        assert_rejects_bad_credentials(&app, method, path, json).await;
    }
    assert_eq!(db::count(&app.db_path, "SELECT COUNT(*) FROM schedules"), 0);
}

#[tokio::test]
async fn the_official_node_sdk_creates_lists_updates_and_deletes_schedules() {
    let js = installed_node_sdk();
    let app = spawn_app().await;
    app.run_sdk_script(
        std::path::PathBuf::from("node"),
        js.join("schedules_sdk.mjs"),
        "schedules sdk: ok",
    )
    .await;
}
