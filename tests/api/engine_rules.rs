//! Conditions (workflow and step), branch, throttle and `trigger_frequency` (issue 6),
//! on the manual clock.

use chrono::Duration;
use serde_json::{Value, json};

use crate::db;
use crate::engine_delay::{
    app_with_manual_clock, in_app, messages_of, upsert, wait_messages, wait_recipient_statuses,
};
use crate::helpers::assert_error;

fn cond(variable: &str, operator: &str, argument: Value) -> Value {
    json!({"variable": variable, "operator": operator, "argument": argument})
}

fn events_named(events: &Value, name: &str) -> Vec<Value> {
    events
        .as_array()
        .map(|e| e.iter().filter(|e| e["event"] == name).cloned().collect())
        .unwrap_or_default()
}

fn steps_of(app: &crate::helpers::TestApp, user: &str) -> Vec<String> {
    messages_of(app, user).into_iter().map(|(s, _)| s).collect()
}

#[tokio::test]
async fn workflow_conditions_halt_and_step_conditions_skip_with_the_reason_recorded() {
    let (app, _clock) = app_with_manual_clock().await;
    let (status, body) = app
        .put_json(
            "/v1/workflows/guarded",
            json!({"workflow": {"name": "Guarded",
                "conditions": {"all": [cond("data.send", "equal_to", json!(true))]},
                "steps": [
                    in_app("first", "first"),
                    {"ref": "pro_only", "type": "channel", "channel_key": "in-app-feed",
                     "template": {"markdown_body": "pro"},
                     "conditions": {"any": [cond("recipient.plan", "equal_to", json!("pro")),
                                            {"all": [cond("data.force", "exists", Value::Null),
                                                     cond("data.n", "is_between", json!([1, 3]))]}]}},
                    {"ref": "after_first", "type": "channel", "channel_key": "in-app-feed",
                     "template": {"markdown_body": "ref"},
                     "conditions": {"all": [cond("refs.first.status", "equal_to", json!("sent"))]}}]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.identify("g-pro", json!({"plan": "pro"})).await;
    app.identify("g-free", json!({"plan": "free"})).await;
    let halted = app
        .trigger(
            "guarded",
            json!({"recipients": ["g-pro"], "data": {"send": false}}),
        )
        .await;
    let run = app
        .trigger(
            "guarded",
            json!({"recipients": ["g-pro", "g-free"], "data": {"send": true}}),
        )
        .await;
    let forced = app
        .trigger(
            "guarded",
            json!({"recipients": [{"id": "g-forced"}],"data": {"send": true, "force": 1, "n": 2}}),
        )
        .await;
    wait_recipient_statuses(&app, &run, 2, &["completed"]).await;
    wait_recipient_statuses(&app, &halted, 1, &["completed"]).await;
    wait_recipient_statuses(&app, &forced, 1, &["completed"]).await;
    assert_eq!(
        steps_of(&app, "g-pro"),
        ["first", "pro_only", "after_first"]
    );
    assert_eq!(steps_of(&app, "g-free"), ["first", "after_first"]);
    assert_eq!(
        steps_of(&app, "g-forced"),
        ["first", "pro_only", "after_first"]
    );

    let h = db::recipient_runs(&app.db_path, &halted);
    let ev = events_named(&h[0].2, "run_halted");
    assert_eq!(ev[0]["data"]["reason"], "conditions", "{h:?}");
    assert_eq!(
        ev[0]["data"]["conditions"]["all"][0]["variable"],
        "data.send"
    );
    let r = db::recipient_runs(&app.db_path, &run);
    let free = r.iter().find(|r| r.0 == "g-free").expect("g-free");
    let skipped = events_named(&free.2, "step_skipped");
    assert_eq!(skipped[0]["step_ref"], "pro_only");
    assert_eq!(skipped[0]["data"]["reason"], "conditions");
    assert!(skipped[0]["data"]["conditions"]["any"].is_array());
}

/// Knock's editor writes condition arguments as text: `"true"` must equal a boolean
/// property, or such a step never sends.
#[tokio::test]
async fn a_step_condition_with_a_true_text_argument_matches_a_boolean_property() {
    let (app, _clock) = app_with_manual_clock().await;
    let low = json!({"ref": "low", "type": "channel", "channel_key": "in-app-feed",
                     "template": {"markdown_body": "low"},
                     "conditions": {"all": [cond("recipient.wants_low", "equal_to", json!("true"))]}});
    let high = json!({"ref": "high", "type": "channel", "channel_key": "in-app-feed",
                      "template": {"markdown_body": "high"},
                      "conditions": {"all": [cond("recipient.wants_low", "equal_to", json!("false"))]}});
    upsert(&app, "low-or-high", json!([low, high])).await;
    app.identify("c-low", json!({"wants_low": true})).await;
    app.identify("c-high", json!({"wants_low": false})).await;
    let run = app
        .trigger("low-or-high", json!({"recipients": ["c-low", "c-high"]}))
        .await;
    wait_recipient_statuses(&app, &run, 2, &["completed"]).await;
    assert_eq!(steps_of(&app, "c-low"), ["low"]);
    assert_eq!(steps_of(&app, "c-high"), ["high"]);
}

#[tokio::test]
async fn branches_take_the_first_match_terminate_and_resume_inside_after_a_delay() {
    let (app, clock) = app_with_manual_clock().await;
    let branch = json!({"ref": "plan_branch", "type": "branch", "name": "By plan", "branches": [
        {"name": "Pro", "conditions": {"all": [cond("recipient.plan", "equal_to", json!("pro"))]},
         "steps": [in_app("pro_msg", "pro")], "terminates": true},
        {"name": "Trial", "conditions": {"all": [cond("recipient.plan", "equal_to", json!("trial"))]},
         "steps": [{"ref": "trial_wait", "type": "delay", "settings": {"delay_for": {"unit": "hours", "value": 1}}},
                   in_app("trial_msg", "trial")], "terminates": false},
        {"name": "Default", "conditions": null, "steps": [in_app("default_msg", "default")], "terminates": false}]});
    upsert(
        &app,
        "branchy",
        json!([branch.clone(), in_app("tail", "tail")]),
    )
    .await;
    let (_, stored) = app.get_json("/v1/workflows/branchy").await;
    assert_eq!(
        stored["steps"][0], branch,
        "round-trips as knock-cli writes it"
    );

    for (user, plan) in [("b-pro", "pro"), ("b-trial", "trial"), ("b-free", "free")] {
        app.identify(user, json!({"plan": plan})).await;
    }
    let run = app
        .trigger(
            "branchy",
            json!({"recipients": ["b-pro", "b-trial", "b-free"]}),
        )
        .await;
    wait_recipient_statuses(&app, &run, 3, &["completed", "paused"]).await;
    wait_messages(&app, "b-free", 2).await;
    assert_eq!(
        steps_of(&app, "b-pro"),
        ["pro_msg"],
        "terminates: the tail never runs"
    );
    assert_eq!(steps_of(&app, "b-free"), ["default_msg", "tail"]);
    assert!(steps_of(&app, "b-trial").is_empty());
    let r = db::recipient_runs(&app.db_path, &run);
    let pro = r.iter().find(|r| r.0 == "b-pro").expect("b-pro");
    assert_eq!(
        events_named(&pro.2, "branch_taken")[0]["data"]["branch"],
        "Pro"
    );

    clock.advance(Duration::minutes(61));
    wait_messages(&app, "b-trial", 2).await;
    assert_eq!(
        steps_of(&app, "b-trial"),
        ["trial_msg", "tail"],
        "resumed inside the branch, then after it"
    );
    wait_recipient_statuses(&app, &run, 3, &["completed"]).await;
}

#[tokio::test]
async fn throttle_lets_limit_runs_through_per_window_and_key() {
    let (app, clock) = app_with_manual_clock().await;
    upsert(&app, "throttled", json!([
        {"ref": "gate", "type": "throttle", "settings": {"throttle_key": "data.project", "throttle_limit": 2,
                                                        "throttle_window": {"unit": "hours", "value": 1}}},
        in_app("msg", "{{ data.n }}")])).await;
    let mut runs = Vec::new();
    for n in 0..4 {
        runs.push(
            app.trigger(
                "throttled",
                json!({"recipients": ["t1"], "data": {"project": "p1", "n": n}}),
            )
            .await,
        );
        wait_recipient_statuses(&app, runs.last().expect("run"), 1, &["completed"]).await;
    }
    app.trigger(
        "throttled",
        json!({"recipients": ["t1"], "data": {"project": "p2", "n": 9}}),
    )
    .await;
    wait_messages(&app, "t1", 3).await;
    let last = db::recipient_runs(&app.db_path, &runs[3]);
    let throttled = events_named(&last[0].2, "throttled");
    assert_eq!(throttled[0]["data"]["limit"], 2, "{last:?}");
    assert!(events_named(&last[0].2, "message_created").is_empty());

    // A new window after the first closes.
    clock.advance(Duration::minutes(61));
    let run = app
        .trigger(
            "throttled",
            json!({"recipients": ["t1"], "data": {"project": "p1", "n": 5}}),
        )
        .await;
    wait_recipient_statuses(&app, &run, 1, &["completed"]).await;
    assert_eq!(messages_of(&app, "t1").len(), 4);

    // Concurrent triggers race for the gate; the store lets exactly `limit` through.
    let mut set = tokio::task::JoinSet::new();
    for n in 0..10 {
        let client = app.client.clone();
        let url = app.url("/v1/workflows/throttled/trigger");
        set.spawn(async move {
            client
                .post(url)
                .bearer_auth(crate::helpers::SECRET_KEY)
                .json(&json!({"recipients": ["t-race"], "data": {"project": "x", "n": n}}))
                .send()
                .await
                .expect("trigger")
                .status()
        });
    }
    while let Some(s) = set.join_next().await {
        assert_eq!(s.expect("task"), 200);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db::count(
        &app.db_path,
        "SELECT COUNT(*) FROM workflow_runs WHERE status = 'queued'",
    ) > 0
    {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(messages_of(&app, "t-race").len(), 2);
}

#[tokio::test]
async fn trigger_frequency_once_per_recipient_and_per_tenant() {
    let (app, _clock) = app_with_manual_clock().await;
    for (key, freq) in [
        ("once-ever", "once_per_recipient"),
        ("once-tenant", "once_per_recipient_per_tenant"),
    ] {
        let (status, body) = app
            .put_json(&format!("/v1/workflows/{key}"),
                      json!({"workflow": {"name": key, "trigger_frequency": freq, "steps": [in_app("msg", "hi")]}}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut last = String::new();
    for tenant in ["acme", "acme", "globex"] {
        app.trigger("once-ever", json!({"recipients": ["f1"], "tenant": tenant}))
            .await;
        last = app
            .trigger(
                "once-tenant",
                json!({"recipients": ["f2"], "tenant": tenant}),
            )
            .await;
    }
    wait_recipient_statuses(&app, &last, 1, &["completed"]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db::count(
        &app.db_path,
        "SELECT COUNT(*) FROM workflow_runs WHERE status = 'queued'",
    ) > 0
    {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(messages_of(&app, "f1").len(), 1);
    assert_eq!(
        messages_of(&app, "f2").len(),
        2,
        "once per tenant: acme and globex"
    );
    let (_, w) = app.get_json("/v1/workflows/once-tenant").await;
    assert_eq!(w["trigger_frequency"], "once_per_recipient_per_tenant");
    let halted = db::count(
        &app.db_path,
        "SELECT COUNT(*) FROM workflow_recipient_runs WHERE events LIKE '%\"trigger_frequency\"%'",
    );
    assert_eq!(halted, 3, "each refused run records why");
}

#[tokio::test]
async fn bad_conditions_branches_and_throttles_are_refused_naming_the_field() {
    let (app, _clock) = app_with_manual_clock().await;
    let ch = |c: Value| {
        json!({"ref": "s", "type": "channel", "channel_key": "in-app-feed",
                               "template": {"markdown_body": "x"}, "conditions": c})
    };
    for (workflow, field) in [
        (
            json!({"steps": [ch(json!({"all": [cond("data.a", "is_audience_member", json!("x"))]}))]}),
            "workflow.steps[0].conditions.all[0]",
        ),
        (
            json!({"steps": [ch(json!({"all": [cond("data.a", "bogus_op", json!(1))]}))]}),
            "workflow.steps[0].conditions.all[0]",
        ),
        (
            json!({"steps": [ch(json!({"all": [cond("payload.a", "equal_to", json!(1))]}))]}),
            "workflow.steps[0].conditions.all[0]",
        ),
        (
            json!({"steps": [ch(json!({"all": [cond("data.a", "equal_to", Value::Null)]}))]}),
            "workflow.steps[0].conditions.all[0]",
        ),
        (
            json!({"steps": [ch(json!([cond("data.a", "exists", Value::Null)]))]}),
            "workflow.steps[0].conditions",
        ),
        (
            json!({"conditions": {"all": [cond("x", "exists", Value::Null)]}, "steps": []}),
            "workflow.conditions.all[0]",
        ),
        (
            json!({"trigger_frequency": "twice", "steps": []}),
            "workflow.trigger_frequency",
        ),
        (
            json!({"steps": [{"ref": "b", "type": "branch", "branches": [
            {"name": "only", "conditions": {"all": [cond("data.a", "exists", Value::Null)]}, "steps": []}]}]}),
            "workflow.steps[0].branches[0].conditions",
        ),
        (
            json!({"steps": [{"ref": "b", "type": "branch", "branches": [
            {"name": "d", "steps": [{"ref": "x", "type": "delay", "settings": {}}]}]}]}),
            "workflow.steps[0].branches[0].steps[0].settings",
        ),
        (
            json!({"steps": [{"ref": "b", "type": "branch", "branches": []}]}),
            "workflow.steps[0].branches",
        ),
        (
            json!({"steps": [{"ref": "t", "type": "throttle", "settings": {"throttle_window": {"unit": "minutes", "value": 0}}}]}),
            "workflow.steps[0].settings.throttle_window",
        ),
        (
            json!({"steps": [{"ref": "t", "type": "throttle", "settings": {"throttle_limit": 0,
                                                                         "throttle_window": {"unit": "minutes", "value": 1}}}]}),
            "workflow.steps[0].settings.throttle_limit",
        ),
        (
            json!({"steps": [{"ref": "t", "type": "throttle", "settings": {}}]}),
            "workflow.steps[0].settings.throttle_window",
        ),
        (
            json!({"steps": [{"ref": "t", "type": "throttle", "settings": {"throttle_key": "nope",
                                                                         "throttle_window": {"unit": "minutes", "value": 1}}}]}),
            "workflow.steps[0].settings.throttle_key",
        ),
    ] {
        let mut workflow = workflow;
        workflow["name"] = json!("Bad");
        let res = app
            .put("/v1/workflows/bad-rules", json!({"workflow": workflow}))
            .send()
            .await
            .expect("put");
        let body = assert_error(res, 422, "invalid_params").await;
        assert!(
            body["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["field"] == field)),
            "{field}: {body}"
        );
    }
    let (status, _) = app.get_json("/v1/workflows/bad-rules").await;
    assert_eq!(status, 404, "nothing stored");
}
