//! The step interpreter without a database: a compiled workflow, a run context and a
//! recipient in memory, and the plan `walk` returns checked field by field.

use chrono::Duration;
use serde_json::{Map, Value, json};

use super::{RecipientContext, RunContext, StepPosition, walk, walk_isolated};
use crate::clock::{self, Clock};
use crate::engine::plan::WaitKind;
use crate::engine::registry::compile_for_test;
use crate::model::RecipientRef;
use crate::model::run_state::RecipientRunStatus;

fn in_app(step_ref: &str, body: &str) -> Value {
    json!({"ref": step_ref, "type": "channel", "channel_key": "in-app-feed",
           "channel_type": "in_app_feed", "template": {"markdown_body": body}})
}

fn minutes(n: i64) -> Value {
    json!({"unit": "minutes", "value": n})
}

fn data(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

const START: &str = "2026-03-01T09:00:00Z";

fn run(steps: Value, data_: Value) -> RunContext {
    let workflow = compile_for_test("workflow", &json!({"name": "workflow", "steps": steps}));
    let mut ctx = RunContext::new(
        "run-1".into(),
        workflow,
        None,
        Some(RecipientRef::User("al".into())),
        data(data_),
        Some(json!({"id": "al", "name": "Al"})),
        None,
    );
    ctx.clock = Clock::manual(clock::parse(START).expect("time"));
    ctx
}

fn user(id: &str, identified: bool) -> RecipientContext {
    RecipientContext {
        reference: RecipientRef::User(id.into()),
        entity: identified.then(|| json!({"__typename": "User", "id": id, "name": "Ann"})),
        preferences: json!({}),
        trigger_data: None,
        subscription: None,
        batch: None,
    }
}

fn event_names(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["event"].as_str()).collect()
}

#[test]
fn a_channel_step_renders_one_message_for_an_identified_recipient() {
    let run = run(
        json!([in_app("feed", "Hi {{ recipient.name }}, {{ data.n }}")]),
        json!({"n": 7}),
    );
    let plan = walk(&run, &user("u1", true), &StepPosition::start());
    assert_eq!(plan.status, RecipientRunStatus::Completed);
    assert_eq!(plan.messages.len(), 1);
    assert_eq!(plan.messages[0].step_ref, "feed");
    assert_eq!(plan.messages[0].channel_id, "channel-in-app-feed");
    assert_eq!(
        plan.messages[0].actors,
        vec![RecipientRef::User("al".into())]
    );
    assert_eq!(event_names(&plan.events), ["message_created"]);
    assert!(plan.wait.is_none() && plan.gates.is_empty() && plan.batches.is_empty());
}

#[test]
fn an_unidentified_recipient_is_recorded_and_still_walked() {
    let run = run(json!([in_app("feed", "Hi")]), json!({}));
    let plan = walk(&run, &user("ghost", false), &StepPosition::start());
    assert_eq!(
        event_names(&plan.events),
        ["recipient_not_identified", "message_created"]
    );
}

#[test]
fn a_delay_pauses_the_walk_and_the_resume_runs_the_steps_after_it() {
    let steps = json!([
        in_app("before", "first"),
        {"ref": "wait", "type": "delay", "settings": {"delay_for": minutes(10)}},
        in_app("after", "second"),
    ]);
    let run = run(steps, json!({}));
    let plan = walk(&run, &user("u1", true), &StepPosition::start());
    assert_eq!(plan.status, RecipientRunStatus::Paused);
    assert_eq!(plan.messages.len(), 1, "only the step before the delay");
    let wait = plan.wait.expect("a wait");
    assert_eq!(wait.step_ref, "wait");
    let due = clock::parse(START).expect("time") + Duration::minutes(10);
    assert_eq!(wait.kind, WaitKind::Until(due));

    let resumed = walk(&run, &user("u1", true), &wait.paused_at.next());
    assert_eq!(resumed.status, RecipientRunStatus::Completed);
    assert_eq!(resumed.messages.len(), 1);
    assert_eq!(resumed.messages[0].step_ref, "after");
}

#[test]
fn skip_delay_passes_the_delay_at_once() {
    let steps = json!([
        {"ref": "wait", "type": "delay", "settings": {"delay_for": minutes(10)}},
        in_app("after", "x"),
    ]);
    let mut run = run(steps, json!({}));
    run.skip_delay = true;
    let plan = walk(&run, &user("u1", true), &StepPosition::start());
    assert_eq!(plan.status, RecipientRunStatus::Completed);
    assert_eq!(plan.messages.len(), 1);
    assert_eq!(plan.events[0]["data"]["reason"], "skip_delay");
}

#[test]
fn a_step_whose_conditions_fail_is_skipped_and_the_walk_goes_on() {
    let mut gated = in_app("gated", "never");
    gated["conditions"] = json!({"all": [{"variable": "data.vip", "operator": "equal_to",
                                          "argument": true}]});
    let run = run(
        json!([gated, in_app("always", "yes")]),
        json!({"vip": false}),
    );
    let plan = walk(&run, &user("u1", true), &StepPosition::start());
    assert_eq!(plan.messages.len(), 1);
    assert_eq!(plan.messages[0].step_ref, "always");
    assert_eq!(
        event_names(&plan.events),
        ["step_skipped", "message_created"]
    );
    assert_eq!(plan.events[0]["data"]["reason"], "conditions");
}

#[test]
fn a_throttle_leaves_its_decision_to_the_write_as_a_gate() {
    let steps = json!([
        {"ref": "gate", "type": "throttle", "settings": {"throttle_limit": 2,
                                                         "throttle_window": minutes(60)}},
        in_app("feed", "x"),
    ]);
    let run = run(steps, json!({}));
    let plan = walk(&run, &user("u1", true), &StepPosition::start());
    assert_eq!(plan.gates.len(), 1);
    let gate = &plan.gates[0];
    assert_eq!(gate.limit, 2);
    assert_eq!((gate.events_at, gate.messages_at), (0, 0));
    assert_eq!(gate.blocked["event"], "throttled");
    assert_eq!(
        plan.messages.len(),
        1,
        "walked on: the write cuts it if closed"
    );
}

#[test]
fn a_batch_step_pauses_as_a_join_the_write_decides() {
    let steps = json!([
        {"ref": "batch_1", "type": "batch", "settings": {"batch_window": minutes(5)}},
        in_app("digest", "{{ total_activities }}"),
    ]);
    let run = run(steps, json!({"n": 1}));
    let plan = walk(&run, &user("u1", true), &StepPosition::start());
    assert_eq!(plan.status, RecipientRunStatus::Paused);
    assert!(plan.messages.is_empty());
    assert_eq!(plan.batches.len(), 1);
    let join = &plan.batches[0];
    let closes = clock::parse(START).expect("time") + Duration::minutes(5);
    assert_eq!(join.closes_at, closes);
    assert_eq!(plan.events[join.event_index]["event"], "batched");
    assert_eq!(plan.wait.as_ref().map(|w| &w.kind), Some(&WaitKind::Batch));
}

#[test]
fn a_panicking_walk_fails_only_that_recipient() {
    let mut run = run(json!([in_app("feed", "x")]), json!({}));
    run.panic_recipient = Some("boom".into());
    let plan = walk_isolated(&run, &user("boom", true), &StepPosition::start());
    assert_eq!(plan.status, RecipientRunStatus::Failed);
    assert_eq!(event_names(&plan.events), ["run_failed"]);
    let ok = walk_isolated(&run, &user("fine", true), &StepPosition::start());
    assert_eq!(ok.status, RecipientRunStatus::Completed);
}
