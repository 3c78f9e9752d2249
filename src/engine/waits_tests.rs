//! The decisions of `waits` without a database: what a decided pass writes (pause,
//! timer, cancel before the pause, batch joins), the stored resume state, and what a
//! resume does with what the store read.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{ResumeWork, decide_new, decide_resumed, resume_work};
use crate::clock::{self, Clock};
use crate::engine::plan::{RecipientPlan, ResumeState};
use crate::engine::registry::compile_for_test;
use crate::engine::walk::{RecipientContext, RunContext, StepPosition, walk};
use crate::model::RecipientRef;
use crate::model::run_state::RecipientRunStatus;
use crate::store::StoreResult;
use crate::store::batches::OpenBatch;
use crate::store::ops::{Checkpoints, JoinWrite, PausedRun};

const NOW: &str = "2026-03-01T09:00:00.000000Z";

/// What the write would find: open batches (with their live activities) and a recorded
/// cancel; counts how often the cancel is asked.
#[derive(Default)]
struct Fake {
    open: HashMap<String, (OpenBatch, u64)>,
    cancel: Option<String>,
    asked_cancel: Cell<u32>,
}

impl Checkpoints for Fake {
    fn open_batch(&self, identity: &str) -> StoreResult<Option<OpenBatch>> {
        Ok(self.open.get(identity).map(|(b, _)| b.clone()))
    }

    fn batch_items(&self, batch_id: &str) -> StoreResult<u64> {
        Ok(self
            .open
            .values()
            .find(|(b, _)| b.id == batch_id)
            .map_or(0, |(_, n)| *n))
    }

    fn pass_gate(&self, _: &str, _: u32, _: Option<&str>, _: &str) -> StoreResult<bool> {
        Ok(true)
    }

    fn cancellation(&self, _run: &str, _r: &RecipientRef) -> StoreResult<Option<String>> {
        self.asked_cancel.set(self.asked_cancel.get() + 1);
        Ok(self.cancel.clone())
    }
}

fn in_app(step_ref: &str) -> Value {
    json!({"ref": step_ref, "type": "channel", "channel_key": "in-app-feed",
           "channel_type": "in_app_feed", "template": {"markdown_body": step_ref}})
}

fn delay() -> Value {
    json!({"ref": "wait", "type": "delay",
           "settings": {"delay_for": {"unit": "minutes", "value": 10}}})
}

fn run_of(steps: Value) -> Arc<RunContext> {
    let workflow = compile_for_test("workflow", &json!({"name": "workflow", "steps": steps}));
    let mut run = RunContext::new("run-1".into(), workflow, None, None, Map::new(), None, None);
    run.clock = Clock::manual(clock::parse(NOW).expect("time"));
    Arc::new(run)
}

fn recipient() -> RecipientContext {
    RecipientContext {
        reference: RecipientRef::User("u1".into()),
        entity: Some(json!({"id": "u1"})),
        preferences: json!({}),
        trigger_data: Some(json!({"n": 1}).as_object().cloned().unwrap_or_default()),
        subscription: None,
        batch: None,
    }
}

fn plan_of(steps: Value) -> RecipientPlan {
    walk(&run_of(steps), &recipient(), &StepPosition::start())
}

#[test]
fn a_delay_pauses_with_its_resume_state_and_its_timer() {
    let plan = plan_of(json!([in_app("before"), delay(), in_app("after")]));
    let write = decide_new(&Fake::default(), "run-1", plan, NOW).expect("decide");
    assert_eq!(write.status, RecipientRunStatus::Paused);
    assert_eq!(write.messages.len(), 1, "only the step before the delay");
    assert_eq!(
        write.resume_at.as_deref(),
        Some("2026-03-01T09:10:00.000000Z")
    );
    assert!(!write.leave_batches);
    let state: ResumeState =
        serde_json::from_value(write.resume.expect("resume state")).expect("parses");
    assert_eq!(state.step_ref, "wait");
    assert_eq!(state.paused_at, StepPosition(vec![1]));
    assert_eq!(state.trigger_data, json!({"n": 1}).as_object().cloned());
}

#[test]
fn a_cancel_recorded_before_the_pause_ends_the_run_cancelled_and_leaves_its_batch() {
    let checks = Fake {
        cancel: Some("order-7".into()),
        ..Fake::default()
    };
    let plan = plan_of(json!([in_app("before"), delay(), in_app("after")]));
    let write = decide_new(&checks, "run-1", plan, NOW).expect("decide");
    assert_eq!(write.status, RecipientRunStatus::Cancelled);
    assert_eq!(
        write.messages.len(),
        1,
        "what came before the pause is delivered"
    );
    assert_eq!(write.resume, None);
    assert_eq!(write.resume_at, None, "no timer: nothing will resume it");
    assert!(write.leave_batches);
    let last = write.events.last().expect("an event");
    assert_eq!(last["event"], "cancelled");
    assert_eq!(last["data"]["cancellation_key"], "order-7");
    assert_eq!(last["data"]["at"], NOW);
}

#[test]
fn a_run_that_does_not_pause_never_asks_for_a_cancel() {
    let checks = Fake {
        cancel: Some("order-7".into()),
        ..Fake::default()
    };
    let write = decide_new(&checks, "run-1", plan_of(json!([in_app("only")])), NOW).expect("ok");
    assert_eq!(write.status, RecipientRunStatus::Completed);
    assert_eq!(checks.asked_cancel.get(), 0);
    assert!(!write.leave_batches);
    assert_eq!((write.resume, write.resume_at), (None, None));
}

#[test]
fn a_resumed_pass_is_never_cancelled_by_a_recorded_cancel() {
    let checks = Fake {
        cancel: Some("order-7".into()),
        ..Fake::default()
    };
    let plan = plan_of(json!([delay(), in_app("after")]));
    let write = decide_resumed(&checks, plan, NOW).expect("decide");
    assert_eq!(write.status, RecipientRunStatus::Paused);
    assert_eq!(checks.asked_cancel.get(), 0);
    assert!(write.resume_at.is_some());
}

fn batch_step(max_items: Option<u32>) -> Value {
    let mut settings = json!({"batch_window": {"unit": "minutes", "value": 5}});
    if let Some(max) = max_items {
        settings["batch_items_max_limit"] = json!(max);
    }
    json!({"ref": "batch_1", "type": "batch", "settings": settings})
}

/// The identity the walk gives the one batch of `plan`.
fn identity(plan: &RecipientPlan) -> String {
    plan.batches[0].identity.clone()
}

#[test]
fn joining_an_open_batch_appends_and_a_full_batch_closes_now() {
    let plan = plan_of(json!([batch_step(Some(3)), in_app("after")]));
    let open = OpenBatch {
        id: "b1".into(),
        opened_at: NOW.into(),
        closes_at: "2026-03-01T09:04:00.000000Z".into(),
        extend_until: None,
    };
    // Two live activities: this one makes three, the limit.
    let checks = Fake {
        open: HashMap::from([(identity(&plan), (open.clone(), 2))]),
        ..Fake::default()
    };
    let write = decide_new(&checks, "run-1", plan, NOW).expect("decide");
    match write.joins.as_slice() {
        [
            JoinWrite::Append {
                batch_id,
                closes_at,
                ..
            },
        ] => {
            assert_eq!(batch_id, "b1");
            assert_eq!(closes_at.as_deref(), Some(NOW), "full: closes at once");
        }
        other => panic!("expected one append, got {other:?}"),
    }
    // One live activity: this one makes two, under the limit: the close stays.
    let plan = plan_of(json!([batch_step(Some(3)), in_app("after")]));
    let checks = Fake {
        open: HashMap::from([(identity(&plan), (open, 1))]),
        ..Fake::default()
    };
    let write = decide_new(&checks, "run-1", plan, NOW).expect("decide");
    assert!(matches!(
        write.joins.as_slice(),
        [JoinWrite::Append {
            closes_at: None,
            ..
        }]
    ));
}

#[test]
fn the_first_join_opens_the_batch_with_its_activity_and_waits_for_the_close() {
    let plan = plan_of(json!([batch_step(None), in_app("after")]));
    let write = decide_new(&Fake::default(), "run-1", plan, NOW).expect("decide");
    match write.joins.as_slice() {
        [
            JoinWrite::Open {
                closes_at,
                activity,
                ..
            },
        ] => {
            assert_eq!(closes_at, "2026-03-01T09:05:00.000000Z");
            assert!(activity.is_some(), "an accumulating opener is an activity");
        }
        other => panic!("expected one open, got {other:?}"),
    }
    assert_eq!(write.status, RecipientRunStatus::Paused);
    assert_eq!(write.resume_at, None, "a batch wait has no timer");
    assert!(write.resume.is_some());
}

#[test]
fn resume_state_rows_written_before_the_type_read_the_same() {
    // As `Wait::resume_state` wrote it with `json!` (nulls included).
    let old = json!({"paused_at": [2], "step_ref": "wait", "trigger_data": {"a": 1},
                     "subscription": null, "batch": null});
    let state: ResumeState = serde_json::from_value(old).expect("parses");
    assert_eq!(state.paused_at, StepPosition(vec![2]));
    assert_eq!(state.step_ref, "wait");
    assert_eq!(state.subscription, None);
    assert_eq!(state.batch, None);
    let round: ResumeState =
        serde_json::from_value(serde_json::to_value(&state).expect("json")).expect("parses");
    assert_eq!(round, state);
    // Only the position is required.
    let bare: ResumeState = serde_json::from_value(json!({"paused_at": []})).expect("parses");
    assert_eq!(bare.trigger_data, None);
    assert!(serde_json::from_value::<ResumeState>(json!({"step_ref": "x"})).is_err());
}

fn paused(resume: Option<Value>) -> PausedRun {
    PausedRun {
        workflow_run_id: "run-1".into(),
        recipient: RecipientRef::User("u1".into()),
        resume,
        run: None,
        entity: Some(json!({"id": "u1", "name": "Ann"})),
        default_set: None,
        tenant_set: None,
    }
}

fn failure(work: ResumeWork) -> String {
    match work {
        ResumeWork::Fail(event) => {
            assert_eq!(event["event"], "step_failed");
            event["data"]["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
        ResumeWork::Walk(_) => panic!("expected a failure"),
    }
}

#[test]
fn a_resume_walks_on_after_its_paused_step_with_the_recipient_read_afresh() {
    let run = run_of(json!([in_app("before"), delay(), in_app("after")]));
    let state = json!({"paused_at": [1], "step_ref": "wait", "trigger_data": {"n": 2}});
    let clock = Clock::manual(clock::parse(NOW).expect("time"));
    let work = resume_work(paused(Some(state)), &clock, &mut HashMap::new(), |_, _| {
        Some(run.clone())
    });
    let ResumeWork::Walk(resume) = work else {
        panic!("expected a walk");
    };
    assert_eq!(resume.from, StepPosition(vec![2]));
    assert_eq!(
        resume.recipient.entity,
        Some(json!({"id": "u1", "name": "Ann"}))
    );
    assert_eq!(
        resume.recipient.trigger_data,
        json!({"n": 2}).as_object().cloned()
    );
    assert_eq!(resume.resumed["event"], "resumed");
    assert_eq!(resume.resumed["step_ref"], "wait");
    let plan = ResumeWork::Walk(resume).plan().expect("walks");
    assert_eq!(plan.messages.len(), 1, "only the step after the delay");
    assert_eq!(plan.events[0]["event"], "resumed");
}

#[test]
fn a_resume_that_cannot_run_fails_saying_why() {
    let run = run_of(json!([in_app("before"), delay()]));
    let clock = Clock::manual(clock::parse(NOW).expect("time"));
    let ctx = |_: &str, _: Option<&crate::store::ops::OpenedRun>| Some(run.clone());
    let none = resume_work(paused(None), &clock, &mut HashMap::new(), ctx);
    assert!(failure(none).contains("no resume state"));
    let corrupt = paused(Some(json!({"paused_at": "x"})));
    let corrupt = resume_work(corrupt, &clock, &mut HashMap::new(), ctx);
    assert!(failure(corrupt).contains("corrupt"));
    let moved = paused(Some(json!({"paused_at": [0], "step_ref": "wait"})));
    let moved = resume_work(moved, &clock, &mut HashMap::new(), ctx);
    assert!(failure(moved).contains("workflow changed"));
    let gone = paused(Some(json!({"paused_at": [1], "step_ref": "wait"})));
    let gone = resume_work(gone, &clock, &mut HashMap::new(), |_, _| None);
    assert!(failure(gone).contains("gone"));
}
