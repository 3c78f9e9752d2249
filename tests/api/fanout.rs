//! Fan-out (spec §4.3): a trigger to an object runs for the object itself and for each
//! subscriber to depth 2, deduplicated across the trigger, never for the actor, with
//! preferences per subscriber and `recipient.subscription` in templates.

use serde_json::{Value, json};

use crate::db;
use crate::helpers::{TestApp, spawn_app};

/// A workflow whose body shows how the recipient was reached.
async fn follow_workflow(app: &TestApp) {
    let body = "{{ recipient.name }} ({{ recipient.subscription.role | default: \"direct\" }}) \
                via {{ recipient.subscription.object.name | default: \"-\" }}: {{ data.note }}";
    let (status, w) = app
        .put_json(
            "/v1/workflows/follow",
            json!({"workflow": {"name": "Follow", "categories": ["updates"], "steps": [
                {"ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed",
                 "channel_type": "in_app_feed", "template": {"markdown_body": body}}]}}),
        )
        .await;
    assert_eq!(status, 200, "{w}");
}

async fn object(app: &TestApp, collection: &str, id: &str, name: &str) {
    app.put_ok(
        &format!("/v1/objects/{collection}/{id}"),
        json!({"name": name}),
    )
    .await;
}

async fn subscribe(app: &TestApp, collection: &str, id: &str, body: Value) {
    let (status, out) = app
        .post_json(
            &format!("/v1/objects/{collection}/{id}/subscriptions"),
            body,
        )
        .await;
    assert_eq!(status, 200, "{out}");
}

async fn run(app: &TestApp, body: Value) -> String {
    let run_id = app.trigger("follow", body).await;
    assert_eq!(
        db::wait_for_run(&app.db_path, &run_id).await,
        "completed",
        "run {run_id}"
    );
    run_id
}

/// `recipient_id` (users) or `collection/id` (objects) → rendered markdown, per item.
fn items(app: &TestApp, run_id: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = db::messages_of_run(&app.db_path, run_id)
        .into_iter()
        .map(|m| {
            let who = if m.recipient_kind == "object" {
                format!("{}/{}", m.recipient_collection, m.recipient_id)
            } else {
                m.recipient_id.clone()
            };
            let text = m.blocks[0]["rendered"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (who, text)
        })
        .collect();
    out.sort();
    out
}

fn who(items: &[(String, String)]) -> Vec<&str> {
    items.iter().map(|(w, _)| w.as_str()).collect()
}

#[tokio::test]
async fn an_object_and_each_subscriber_get_one_item_even_when_also_listed_directly() {
    let app = spawn_app().await;
    follow_workflow(&app).await;
    object(&app, "projects", "p1", "Apollo").await;
    object(&app, "projects", "p2", "Gemini").await;
    subscribe(
        &app,
        "projects",
        "p1",
        json!({"recipients": [{"id": "ann", "name": "Ann"}, {"id": "bob", "name": "Bob"}],
                                               "properties": {"role": "viewer"}}),
    )
    .await;
    subscribe(
        &app,
        "projects",
        "p2",
        json!({"recipients": ["bob", {"id": "cy", "name": "Cy"}]}),
    )
    .await;
    let run_id = run(
        &app,
        json!({"recipients": [{"id": "p1", "collection": "projects"}, {"id": "p2", "collection": "projects"}, "ann"],
               "data": {"note": "shipped"}}),
    )
    .await;
    let got = items(&app, &run_id);
    assert_eq!(
        who(&got),
        vec!["ann", "bob", "cy", "projects/p1", "projects/p2"],
        "{got:?}"
    );
    // ann was listed directly: her item is the direct one; bob came first through p1.
    let text = |w: &str| got.iter().find(|(x, _)| x == w).unwrap().1.clone();
    assert!(
        text("ann").contains("Ann (direct) via -"),
        "{}",
        text("ann")
    );
    assert!(
        text("bob").contains("Bob (viewer) via Apollo"),
        "{}",
        text("bob")
    );
    assert!(
        text("cy").contains("Cy (direct) via Gemini"),
        "{}",
        text("cy")
    );
    // One recipient run per recipient, and the feeds agree.
    assert_eq!(db::recipient_runs(&app.db_path, &run_id).len(), 5);
    let (_, feed) = app.get_json("/v1/users/bob/feeds/in-app-feed").await;
    assert_eq!(feed["entries"].as_array().unwrap().len(), 1);
    let (_, own) = app
        .get_json("/v1/objects/projects/p1/feeds/in-app-feed")
        .await;
    assert_eq!(
        own["entries"].as_array().unwrap().len(),
        1,
        "the object's own item"
    );
}

#[tokio::test]
async fn the_actor_is_never_notified_as_a_subscriber() {
    let app = spawn_app().await;
    follow_workflow(&app).await;
    object(&app, "projects", "p1", "Apollo").await;
    subscribe(
        &app,
        "projects",
        "p1",
        json!({"recipients": [{"id": "ann"}, {"id": "bob"}]}),
    )
    .await;
    let run_id = run(
        &app,
        json!({"recipients": [{"id": "p1", "collection": "projects"}], "actor": "ann", "data": {"note": "x"}}),
    )
    .await;
    assert_eq!(who(&items(&app, &run_id)), vec!["bob", "projects/p1"]);
}

#[tokio::test]
async fn fan_out_reaches_depth_two_and_no_further() {
    let app = spawn_app().await;
    follow_workflow(&app).await;
    for (id, name) in [("org", "Org"), ("team", "Team"), ("squad", "Squad")] {
        object(&app, "groups", id, name).await;
    }
    // org ← team ← squad; u1 follows org, u2 team, u3 squad.
    subscribe(
        &app,
        "groups",
        "org",
        json!({"recipients": [{"id": "u1"}, {"id": "team", "collection": "groups"}]}),
    )
    .await;
    subscribe(
        &app,
        "groups",
        "team",
        json!({"recipients": [{"id": "u2"}, {"id": "squad", "collection": "groups"}],
                                               "properties": {"role": "member"}}),
    )
    .await;
    subscribe(
        &app,
        "groups",
        "squad",
        json!({"recipients": [{"id": "u3"}]}),
    )
    .await;
    let run_id = run(
        &app,
        json!({"recipients": [{"id": "org", "collection": "groups"}], "data": {"note": "all hands"}}),
    )
    .await;
    let got = items(&app, &run_id);
    assert_eq!(
        who(&got),
        vec!["groups/org", "groups/squad", "groups/team", "u1", "u2"],
        "u3 is depth 3: {got:?}"
    );
    let u2 = &got.iter().find(|(w, _)| w == "u2").unwrap().1;
    assert!(u2.contains("(member) via Team"), "{u2}");
}

#[tokio::test]
async fn a_subscriber_who_opted_out_gets_nothing_and_the_others_do() {
    let app = spawn_app().await;
    follow_workflow(&app).await;
    object(&app, "projects", "p1", "Apollo").await;
    subscribe(
        &app,
        "projects",
        "p1",
        json!({"recipients": [{"id": "ann"}, {"id": "bob"}]}),
    )
    .await;
    let (status, _) = app
        .put_json(
            "/v1/users/bob/preferences/default",
            json!({"categories": {"updates": false}}),
        )
        .await;
    assert_eq!(status, 200);
    let run_id = run(
        &app,
        json!({"recipients": [{"id": "p1", "collection": "projects"}], "data": {"note": "x"}}),
    )
    .await;
    assert_eq!(who(&items(&app, &run_id)), vec!["ann", "projects/p1"]);
    let runs = db::recipient_runs(&app.db_path, &run_id);
    let bob = runs
        .iter()
        .find(|(r, _, _)| r.contains("bob"))
        .expect("bob's run");
    assert!(bob.2.to_string().contains("step_skipped"), "{bob:?}");
}

#[tokio::test]
async fn a_subscription_made_before_a_cycle_was_refused_fans_out_once() {
    let app = spawn_app().await;
    follow_workflow(&app).await;
    object(&app, "projects", "a", "A").await;
    object(&app, "projects", "b", "B").await;
    subscribe(
        &app,
        "projects",
        "a",
        json!({"recipients": [{"id": "b", "collection": "projects"}, {"id": "u1"}]}),
    )
    .await;
    subscribe(&app, "projects", "b", json!({"recipients": ["u1"]})).await;
    let (status, err) = app
        .post_json(
            "/v1/objects/projects/b/subscriptions",
            json!({"recipients": [{"id": "a", "collection": "projects"}]}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    let run_id = run(
        &app,
        json!({"recipients": [{"id": "a", "collection": "projects"}, {"id": "b", "collection": "projects"}],
               "data": {"note": "x"}}),
    )
    .await;
    assert_eq!(
        who(&items(&app, &run_id)),
        vec!["projects/a", "projects/b", "u1"]
    );
}

/// Adds inline users `prefix{from..to}` (and `extra`) as subscribers of `groups/{id}`.
async fn bulk_follow(app: &TestApp, id: &str, users: std::ops::Range<usize>, extra: Vec<Value>) {
    let mut recipients: Vec<Value> = users.map(|i| json!({"id": format!("a{i}")})).collect();
    recipients.extend(extra);
    let groups: Vec<Value> = recipients
        .chunks(100)
        .map(|chunk| json!({"id": id, "recipients": chunk}))
        .collect();
    let (status, op) = app
        .post_json(
            "/v1/objects/groups/bulk/subscriptions/add",
            json!({"subscriptions": groups}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
}

#[tokio::test]
async fn pages_across_objects_and_depths_reach_everyone_once() {
    let app = spawn_app().await;
    follow_workflow(&app).await;
    for (id, name) in [("org", "Org"), ("team", "Team"), ("squad", "Squad")] {
        object(&app, "groups", id, name).await;
    }
    let team = json!({"id": "team", "collection": "groups"});
    let squad = json!({"id": "squad", "collection": "groups"});
    // org: a0..a599 and team; team: a300..a999 (300 shared) and squad; squad: depth 3.
    bulk_follow(&app, "org", 0..600, vec![team]).await;
    bulk_follow(&app, "team", 300..1000, vec![squad]).await;
    subscribe(
        &app,
        "groups",
        "squad",
        json!({"recipients": [{"id": "deep"}]}),
    )
    .await;
    let run_id = run(
        &app,
        json!({"recipients": [{"id": "org", "collection": "groups"}, "a700"], "actor": "a5",
               "data": {"note": "x"}}),
    )
    .await;
    let got = items(&app, &run_id);
    let mut expected: Vec<String> = (0..1000)
        .filter(|i| *i != 5)
        .map(|i| format!("a{i}"))
        .chain(["groups/org", "groups/squad", "groups/team"].map(String::from))
        .collect();
    expected.sort();
    assert_eq!(
        who(&got),
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        db::recipient_runs(&app.db_path, &run_id).len(),
        expected.len()
    );
    let text = |w: &str| {
        got.iter()
            .find(|(x, _)| x == w)
            .map(|(_, t)| t.clone())
            .unwrap_or_default()
    };
    assert!(
        text("a700").contains("(direct) via -"),
        "listed directly: {}",
        text("a700")
    );
    assert!(
        text("a400").contains("via Org"),
        "reached through org first: {}",
        text("a400")
    );
    assert!(text("a900").contains("via Team"), "{}", text("a900"));
}
