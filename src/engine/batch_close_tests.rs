//! The close of a due batch decided without a database: who continues, who completes,
//! what the continuing run carries, and a batch emptied by cancels.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, json};

use super::{closing, render_order};
use crate::clock::{self, Clock};
use crate::engine::registry::compile_for_test;
use crate::engine::walk::RunContext;
use crate::model::RecipientRef;
use crate::store::batches::ActivityRow;
use crate::store::ops::{DueBatch, PausedRun};

const NOW: &str = "2026-03-01T09:05:00.000000Z";

fn run() -> Arc<RunContext> {
    let workflow = compile_for_test(
        "workflow",
        &json!({"name": "workflow", "steps": [
            {"ref": "batch_1", "type": "batch",
             "settings": {"batch_window": {"unit": "minutes", "value": 5}}},
            {"ref": "feed", "type": "channel", "channel_key": "in-app-feed",
             "channel_type": "in_app_feed",
             "template": {"markdown_body": "{{ total_activities }} new"}}]}),
    );
    let mut run = RunContext::new("run-1".into(), workflow, None, None, Map::new(), None, None);
    run.clock = Clock::manual(clock::parse(NOW).expect("time"));
    Arc::new(run)
}

fn activity(seq: i64, rr: &str) -> ActivityRow {
    ActivityRow {
        seq,
        recipient_run: rr.into(),
        id: format!("a{seq}"),
        actor: None,
        data: json!({"n": seq}),
        inserted_at: NOW.into(),
    }
}

fn due(runs: &[&str], continuing: Option<PausedRun>) -> DueBatch {
    DueBatch {
        batch_id: "b1".into(),
        fingerprint: (runs.len() as i64, 9),
        runs: runs.iter().map(|r| (*r).to_owned()).collect(),
        rendered: runs
            .iter()
            .enumerate()
            .map(|(i, r)| activity(i as i64 + 1, r))
            .collect(),
        actors: Vec::new(),
        total_actors: 0,
        people: HashMap::new(),
        continuing,
    }
}

fn paused() -> PausedRun {
    PausedRun {
        workflow_run_id: "run-1".into(),
        recipient: RecipientRef::User("u1".into()),
        resume: Some(json!({"paused_at": [0], "step_ref": "batch_1"})),
        run: None,
        entity: None,
        default_set: None,
        tenant_set: None,
    }
}

#[test]
fn the_first_run_continues_carrying_the_batch_and_the_others_complete() {
    let clock = Clock::manual(clock::parse(NOW).expect("time"));
    let run = run();
    let close = closing(
        due(&["rr1", "rr2", "rr3"], Some(paused())),
        &clock,
        NOW,
        |_, _| Some(run.clone()),
    );
    assert_eq!(
        close.fingerprint,
        (3, 9),
        "the write re-checks what was read"
    );
    assert_eq!(close.others, vec!["rr2".to_owned(), "rr3".to_owned()]);
    assert_eq!(close.others_event["event"], "batch_closed");
    assert_eq!(close.others_event["data"]["batch_id"], "b1");
    assert_eq!(close.others_event["data"]["at"], NOW);
    let Some((rr, Some(Ok(plan)))) = close.continuing else {
        panic!("the first run walks on");
    };
    assert_eq!(rr, "rr1");
    assert_eq!(plan.messages.len(), 1);
    assert_eq!(plan.events[0]["event"], "resumed");
    let body = format!("{:?}", plan.messages[0]);
    assert!(
        body.contains("3 new"),
        "the batch's activities render: {body}"
    );
}

#[test]
fn a_batch_whose_runs_were_all_cancelled_just_closes() {
    let clock = Clock::manual(clock::parse(NOW).expect("time"));
    let close = closing(due(&[], None), &clock, NOW, |_, _| None);
    assert!(close.continuing.is_none());
    assert!(close.others.is_empty());
}

#[test]
fn a_continuing_run_that_no_longer_waits_writes_nothing_but_the_others_still_complete() {
    let clock = Clock::manual(clock::parse(NOW).expect("time"));
    let close = closing(due(&["rr1", "rr2"], None), &clock, NOW, |_, _| None);
    assert!(matches!(close.continuing, Some((ref rr, None)) if rr == "rr1"));
    assert_eq!(close.others, vec!["rr2".to_owned()]);
}

#[test]
fn a_batch_renders_as_its_settings_say_ten_oldest_first_by_default() {
    assert_eq!(render_order(&json!({})), (false, 10));
    assert_eq!(
        render_order(&json!({"render_limit": 3, "order": "desc"})),
        (true, 3)
    );
}
