//! Deciding a plan's gates and batch joins against in-memory checkpoints: what the write
//! transaction would find (open batches, gate counts), without a database.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{Value, json};

use super::{JoinAction, decide};
use crate::clock::{self, Clock};
use crate::engine::plan::RecipientPlan;
use crate::engine::registry::compile_for_test;
use crate::engine::walk::{RecipientContext, RunContext, StepPosition, walk};
use crate::model::RecipientRef;
use crate::model::run_state::RecipientRunStatus;
use crate::store::StoreResult;
use crate::store::batches::OpenBatch;
use crate::store::ops::Checkpoints;

const NOW: &str = "2026-03-01T09:00:00.000000Z";

/// Open batches by identity, and gates as (passes so far) with a fixed verdict log.
#[derive(Default)]
struct Fake {
    open: HashMap<String, OpenBatch>,
    passes: RefCell<HashMap<String, u32>>,
}

impl Checkpoints for Fake {
    fn open_batch(&self, identity: &str) -> StoreResult<Option<OpenBatch>> {
        Ok(self.open.get(identity).cloned())
    }

    fn batch_items(&self, _batch_id: &str) -> StoreResult<u64> {
        Ok(0)
    }

    fn cancellation(&self, _run: &str, _recipient: &RecipientRef) -> StoreResult<Option<String>> {
        Ok(None)
    }

    fn pass_gate(
        &self,
        key: &str,
        limit: u32,
        _closes_at: Option<&str>,
        _now: &str,
    ) -> StoreResult<bool> {
        let mut passes = self.passes.borrow_mut();
        let n = passes.entry(key.to_owned()).or_default();
        if *n >= limit {
            return Ok(false);
        }
        *n += 1;
        Ok(true)
    }
}

fn in_app(step_ref: &str) -> Value {
    json!({"ref": step_ref, "type": "channel", "channel_key": "in-app-feed",
           "channel_type": "in_app_feed", "template": {"markdown_body": step_ref}})
}

fn batch(mode: &str) -> Value {
    json!({"ref": "batch_1", "type": "batch",
           "settings": {"batch_window": {"unit": "minutes", "value": 5},
                        "batch_execution_mode": mode}})
}

fn throttle(limit: u32) -> Value {
    json!({"ref": "gate", "type": "throttle",
           "settings": {"throttle_limit": limit,
                        "throttle_window": {"unit": "hours", "value": 1}}})
}

fn plan_of(steps: Value) -> RecipientPlan {
    let workflow = compile_for_test("workflow", &json!({"name": "workflow", "steps": steps}));
    let mut run = RunContext::new(
        "run-1".into(),
        workflow,
        None,
        None,
        serde_json::Map::new(),
        None,
        None,
    );
    run.clock = Clock::manual(clock::parse(NOW).expect("time"));
    let recipient = RecipientContext {
        reference: RecipientRef::User("u1".into()),
        entity: Some(json!({"id": "u1"})),
        preferences: json!({}),
        trigger_data: None,
        subscription: None,
        batch: None,
    };
    walk(&run, &recipient, &StepPosition::start())
}

fn open_batch(id: &str) -> OpenBatch {
    OpenBatch {
        id: id.into(),
        opened_at: NOW.into(),
        closes_at: "2026-03-01T09:05:00.000000Z".into(),
        extend_until: None,
    }
}

#[test]
fn an_open_gate_lets_the_plan_through_and_counts_the_pass() {
    let mut plan = plan_of(json!([throttle(1), in_app("feed")]));
    let fake = Fake::default();
    let actions = decide(&fake, &mut plan, NOW).expect("decided");
    assert!(actions.is_empty());
    assert_eq!(plan.messages.len(), 1);
    assert_eq!(plan.status, RecipientRunStatus::Completed);
    assert_eq!(fake.passes.borrow().values().sum::<u32>(), 1);
}

#[test]
fn a_closed_gate_cuts_the_plan_back_to_before_it_and_records_why() {
    let steps = json!([in_app("first"), throttle(1), in_app("second")]);
    let fake = Fake::default();
    let mut passed = plan_of(steps.clone());
    decide(&fake, &mut passed, NOW).expect("decided");
    let mut plan = plan_of(steps);
    decide(&fake, &mut plan, NOW).expect("decided");
    assert_eq!(plan.messages.len(), 1, "only the step before the gate");
    assert_eq!(plan.messages[0].step_ref, "first");
    let last = plan.events.last().expect("events");
    assert_eq!(last["event"], "throttled");
    assert_eq!(plan.status, RecipientRunStatus::Completed);
    assert!(plan.wait.is_none());
}

#[test]
fn a_join_with_no_open_batch_opens_one_and_fills_in_its_event() {
    let mut plan = plan_of(json!([batch("accumulate"), in_app("digest")]));
    let actions = decide(&Fake::default(), &mut plan, NOW).expect("decided");
    let [JoinAction::Open { batch_id, join }] = actions.as_slice() else {
        panic!("one batch opened");
    };
    let event = &plan.events[join.event_index]["data"];
    assert_eq!(event["batch_id"], json!(batch_id));
    assert_eq!(event["opened"], true);
    assert_eq!(event["closes_at"], "2026-03-01T09:05:00.000000Z");
    assert_eq!(plan.status, RecipientRunStatus::Paused);
}

#[test]
fn a_join_that_finds_its_batch_open_appends_to_it() {
    let mut plan = plan_of(json!([batch("accumulate"), in_app("digest")]));
    let identity = plan.batches[0].identity.clone();
    let fake = Fake {
        open: HashMap::from([(identity, open_batch("b1"))]),
        ..Fake::default()
    };
    let actions = decide(&fake, &mut plan, NOW).expect("decided");
    let [JoinAction::Append { batch, join }] = actions.as_slice() else {
        panic!("appended");
    };
    assert_eq!(batch.id, "b1");
    assert_eq!(plan.events[join.event_index]["data"]["opened"], false);
    assert_eq!(plan.events[join.event_index]["data"]["batch_id"], "b1");
}

#[test]
fn flush_leading_opens_and_runs_on_but_a_later_trigger_pauses_in_the_open_batch() {
    let steps = json!([batch("flush_leading"), in_app("now")]);
    let mut leading = plan_of(steps.clone());
    let actions = decide(&Fake::default(), &mut leading, NOW).expect("decided");
    assert!(matches!(actions.as_slice(), [JoinAction::Open { .. }]));
    assert_eq!(leading.status, RecipientRunStatus::Completed);
    assert_eq!(leading.messages.len(), 1, "the opener is sent at once");
    assert_eq!(leading.events[0]["data"]["flushed"], true);

    let mut later = plan_of(steps);
    let identity = later.batches[0].identity.clone();
    let fake = Fake {
        open: HashMap::from([(identity, open_batch("b1"))]),
        ..Fake::default()
    };
    let actions = decide(&fake, &mut later, NOW).expect("decided");
    assert!(matches!(actions.as_slice(), [JoinAction::Append { .. }]));
    assert_eq!(later.status, RecipientRunStatus::Paused);
    assert!(later.messages.is_empty(), "cut back to the batch step");
    assert!(later.wait.is_some());
}
