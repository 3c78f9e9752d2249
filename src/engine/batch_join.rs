//! The write side of a walk's checkpoints: gates (throttle, `trigger_frequency`) and
//! batch joins, decided in plan order inside the recipient run's write transaction.
//!
//! Invariants:
//! - Each gate and each batch join is decided in the SAME transaction that writes the
//!   recipient run, so concurrent runs never both open a batch or both pass a full gate,
//!   and a crash leaves either all of it or none.
//! - A closed gate cuts the plan back to before it (and drops everything after). A
//!   `flush_leading` join that finds an open batch cuts the plan back to its step and
//!   pauses there as an activity; a join that opens the batch lets the plan run on.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::batch;
use super::plan::{BatchJoin, RecipientPlan};
use crate::clock;
use crate::ids;
use crate::model::run_state::RecipientRunStatus;
use crate::model::workflow::ExecutionMode;
use crate::store::StoreResult;
use crate::store::batches::OpenBatch;
use crate::store::ops::{ActivityWrite, Checkpoints, JoinWrite};

/// What a decided join still has to write once the recipient run's id is known.
pub enum JoinAction {
    Open { batch_id: String, join: BatchJoin },
    Append { batch: OpenBatch, join: BatchJoin },
}

/// Decides `plan`'s gates and batch joins in plan order, cutting the plan as they
/// require; returns the joins to write (see [`writes`]).
pub fn decide<C: Checkpoints + ?Sized>(
    checks: &C,
    plan: &mut RecipientPlan,
    now: &str,
) -> StoreResult<Vec<JoinAction>> {
    let mut gates = std::mem::take(&mut plan.gates)
        .into_iter()
        .enumerate()
        .peekable();
    let mut joins = std::mem::take(&mut plan.batches).into_iter().peekable();
    let mut actions = Vec::new();
    loop {
        let join_next = match (joins.peek(), gates.peek()) {
            (Some(j), Some((g, _))) => j.gates_at <= *g,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if join_next {
            let Some(join) = joins.next() else { break };
            match checks.open_batch(&join.identity)? {
                None => {
                    let batch_id = ids::uuid();
                    let flushed = join.mode == ExecutionMode::FlushLeading;
                    if let Some(event) = plan.events.get_mut(join.event_index) {
                        event["data"]["batch_id"] = json!(batch_id);
                        event["data"]["opened"] = json!(true);
                        event["data"]["closes_at"] = json!(clock::format(join.closes_at));
                        if flushed {
                            event["data"]["flushed"] = json!(true);
                        }
                    }
                    actions.push(JoinAction::Open { batch_id, join });
                }
                Some(open) => {
                    if join.mode == ExecutionMode::FlushLeading {
                        plan.events.truncate(join.event_index + 1);
                        plan.messages.truncate(join.messages_at);
                        plan.wait = Some(join.wait.clone());
                        plan.status = RecipientRunStatus::Paused;
                    }
                    if let Some(event) = plan.events.get_mut(join.event_index) {
                        event["data"]["batch_id"] = json!(open.id);
                        event["data"]["opened"] = json!(false);
                    }
                    actions.push(JoinAction::Append { batch: open, join });
                    // Anything after this step waits for the batch to close.
                    break;
                }
            }
        } else {
            let Some((_, gate)) = gates.next() else { break };
            let closes_at = gate.closes_at.map(clock::format);
            if !checks.pass_gate(&gate.key, gate.limit, closes_at.as_deref(), now)? {
                plan.events.truncate(gate.events_at);
                plan.events.push(gate.blocked);
                plan.messages.truncate(gate.messages_at);
                plan.wait = None;
                plan.status = RecipientRunStatus::Completed;
                // Joins after the gate never happened; joins before it keep their batch.
                break;
            }
        }
    }
    Ok(actions)
}

/// What the decided joins write (the recipient run's id is the write's): an opened
/// batch and, unless its opener is no activity (`flush_leading`), the activity; an append
/// and, as the batch's window type and item limit require, its moved close. `now` is the
/// write's clock reading; `checks` counts the batch's live activities when a limit needs
/// it (at most 1,000 rows, indexed), before this activity is added.
pub fn writes<C: Checkpoints + ?Sized>(
    checks: &C,
    actions: Vec<JoinAction>,
    now: DateTime<Utc>,
) -> StoreResult<Vec<JoinWrite>> {
    let mut out = Vec::with_capacity(actions.len());
    for action in actions {
        out.push(match action {
            JoinAction::Open { batch_id, join } => JoinWrite::Open {
                activity: (join.mode == ExecutionMode::Accumulate).then(|| activity(&join)),
                id: batch_id,
                identity: join.identity,
                opened_at: join.inserted_at,
                closes_at: clock::format(join.closes_at),
                extend_until: join.extend_until.map(clock::format),
                settings: join.settings,
            },
            JoinAction::Append { batch, join } => {
                // The live activities once this one is added.
                let live = match join.max_items {
                    Some(_) => checks.batch_items(&batch.id)?.saturating_add(1),
                    None => 0,
                };
                let current = clock::parse(&batch.closes_at).unwrap_or(now);
                let closes = batch::close_after_append(
                    current,
                    join.slide_to,
                    batch.extend_until.as_deref().and_then(clock::parse),
                    live,
                    join.max_items,
                    now,
                );
                JoinWrite::Append {
                    activity: activity(&join),
                    batch_id: batch.id,
                    closes_at: (closes != current).then(|| clock::format(closes)),
                }
            }
        });
    }
    Ok(out)
}

fn activity(join: &BatchJoin) -> ActivityWrite {
    ActivityWrite {
        id: join.activity_id.clone(),
        actor: join.actor.clone(),
        data: join.data.clone(),
        inserted_at: join.inserted_at.clone(),
    }
}

#[cfg(test)]
#[path = "batch_join_tests.rs"]
mod tests;
