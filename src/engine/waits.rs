//! What a walk's plan writes, the resume path for paused recipient runs (the scheduler's
//! `timers` due-source), and cancellation.
//!
//! Invariants:
//! - A paused recipient run, its `resume` state and its timer are written in ONE
//!   transaction (with the run's other results).
//! - A resume claims (deletes) its timer in the same transaction that writes the resumed
//!   steps' results; a cancel deletes the timer and marks the run `cancelled` in one
//!   transaction and only touches runs still `paused`. So each timer fires at most once,
//!   a crash before that commit fires it again after restart, and a cancel and a resume
//!   never both win.
//! - A cancel also records itself (`store::cancellations`) while a run of its key is
//!   still queued; a first-pass write that would pause a recipient it covers records the
//!   recipient run `cancelled` instead, in that same transaction. The writer orders the
//!   cancel and the write, so either the cancel sees the paused run or the write sees the
//!   cancel: a cancel accepted after a trigger is never missed.
//! - A resume re-reads the recipient (entity, preferences) and runs the workflow's
//!   current version; if the paused step's `ref` is no longer at the stored position, the
//!   recipient run fails with `step_failed` ("the workflow changed") instead of guessing.
//!
//! Events appended by this module: `resumed` (`step_ref` of the delay, `data.at`),
//! `cancelled` (`data.cancellation_key`), `step_failed` on an impossible resume.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::batch::ClosedBatch;
use super::batch_join;
use super::bus::SharedBus;
use super::preference_check;
use super::registry::Registry;
use super::scheduler::{DueSource, Scheduler};
use super::walk::{
    RecipientContext, RecipientPlan, RunContext, StepPosition, WaitKind, walk_isolated,
};
use crate::clock::{self, Clock};
use crate::model::RecipientRef;
use crate::model::run_state::RecipientRunStatus;
use crate::model::stored_trigger::StoredTrigger;
use crate::store::messages::{self, MessageRow, PreparedMessage};
use crate::store::timers::{self, RESUME};
use crate::store::{Db, Store, StoreResult, batches, cancellations, recipients, run_records, runs};

/// Timers fired per scheduler pass (one write each pass).
const FIRE_SLICE: usize = 256;

/// A recipient run's stored `failed` status.
const FAILED: &str = RecipientRunStatus::Failed.as_str();

/// Writes `plan`'s wait for recipient run `rr`: a delay's timer (a batch wait has none:
/// its batch's close resumes it, see `batch_close`).
fn write_wait(db: &Db<'_>, rr: &str, plan: &RecipientPlan) -> StoreResult<()> {
    if let Some(wait) = &plan.wait
        && let WaitKind::Until(until) = &wait.kind
    {
        timers::set(db, RESUME, rr, &clock::format(*until))?;
    }
    Ok(())
}

/// The write's clock reading (`now`, formatted by `clock::format`) as an instant. It is
/// always our own format; were it not, the epoch (never a second clock) stands in.
fn instant(now: &str) -> DateTime<Utc> {
    clock::parse(now).unwrap_or(DateTime::UNIX_EPOCH)
}

fn insert_messages(
    db: &Db<'_>,
    rr: &str,
    plan: RecipientPlan,
    rows: &mut Vec<MessageRow>,
) -> StoreResult<()> {
    for mut message in plan.messages {
        message.workflow_recipient_run_id = rr.to_owned();
        if let Some(row) = messages::insert(db, &message)? {
            rows.push(row);
        }
    }
    Ok(())
}

/// A first pass made ready for the writer before the write, off the writer thread.
///
/// A plain delivery ([`is_plain`]) has its messages stamped with its deterministic
/// recipient-run id and serialized here, so the writer runs only their INSERTs: it stores
/// no recipient run (its run record is derived from the messages, see
/// `store::run_records`). Any other plan is written by [`write_new`] as it is.
pub struct PreparedPlan(Prepared);

enum Prepared {
    Plain(Vec<PreparedMessage>),
    Decided(Box<RecipientPlan>),
}

/// Whether `plan` is a plain delivery: it completed with at least one message, without a
/// wait, gate or batch, and its events are exactly those its run record derives from its
/// messages (one `message_created` each, in order). Decided by comparing with what the
/// read side derives, so a plan that recorded anything else (a skip, a missing
/// translation, an unidentified recipient) keeps its stored row.
pub fn is_plain(plan: &RecipientPlan) -> bool {
    plan.wait.is_none()
        && plan.gates.is_empty()
        && plan.batches.is_empty()
        && plan.status == RecipientRunStatus::Completed
        && !plan.messages.is_empty()
        && plan.events.len() == plan.messages.len()
        && plan.events.iter().zip(&plan.messages).all(|(event, m)| {
            *event == run_records::message_created(&m.id, &m.step_ref, m.expires_at.as_deref())
        })
}

/// Prepares `plan`, a first pass of run `run_id` (started at `started_ms`, see
/// `RunContext::started_ms`), for [`write_page`] (see [`PreparedPlan`]).
pub fn prepare(plan: RecipientPlan, run_id: &str, started_ms: i64) -> StoreResult<PreparedPlan> {
    if !is_plain(&plan) {
        return Ok(PreparedPlan(Prepared::Decided(Box::new(plan))));
    }
    let rr = crate::ids::recipient_run_id(run_id, started_ms, &plan.reference);
    Ok(PreparedPlan(Prepared::Plain(
        plan.messages
            .into_iter()
            .map(|mut message| {
                message.workflow_recipient_run_id.clone_from(&rr);
                message.prepare()
            })
            .collect::<StoreResult<_>>()?,
    )))
}

/// Writes a page of first passes of run `run_id` (its run's facts read once), appending
/// the inserted messages to `rows`.
pub fn write_page(
    db: &Db<'_>,
    run_id: &str,
    mut plans: Vec<PreparedPlan>,
    now: &str,
    rows: &mut Vec<MessageRow>,
) -> StoreResult<()> {
    let mut facts = None;
    // The page's feed keys in one lookup, not one per message.
    messages::resolve_feeds(
        db,
        plans.iter_mut().flat_map(|PreparedPlan(plan)| match plan {
            Prepared::Plain(messages) => messages.as_mut_slice(),
            Prepared::Decided(_) => &mut [],
        }),
    )?;
    for PreparedPlan(plan) in plans {
        match plan {
            Prepared::Decided(plan) => {
                let facts = match &facts {
                    Some(facts) => facts,
                    None => facts.insert(runs::run_facts(db, run_id)?),
                };
                write_new(db, run_id, facts, *plan, now, rows)?;
            }
            Prepared::Plain(messages) => {
                for message in messages {
                    if let Some(row) = messages::insert_prepared(db, message)? {
                        rows.push(row);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Writes a first pass: the recipient run (with its events and resume state), its
/// messages and its wait. Appends the inserted messages to `rows`.
pub fn write_new(
    db: &Db<'_>,
    run_id: &str,
    facts: &runs::RunFacts,
    mut plan: RecipientPlan,
    now: &str,
    rows: &mut Vec<MessageRow>,
) -> StoreResult<()> {
    let joins = batch_join::decide(db, &mut plan, now)?;
    // A cancel recorded before this pause (see `store::cancellations`) ends the run here,
    // as if it had arrived just after: what came before the pause is still delivered.
    let cancel = match plan.wait {
        Some(_) => cancellations::covering(db, run_id, &plan.reference)?,
        None => None,
    };
    let cancelled = cancel.is_some();
    if let Some(key) = cancel {
        plan.status = RecipientRunStatus::Cancelled;
        plan.events
            .push(json!({"event": "cancelled", "status": "ok",
                                "data": {"cancellation_key": key, "at": now}}));
    }
    let events = serde_json::to_string(&plan.events)?;
    let rr = runs::ensure_recipient_run_as(
        db,
        runs::NewRecipientRun {
            run_id,
            facts,
            id: runs::recipient_run_id(run_id, facts, &plan.reference),
            recipient: &plan.reference,
            status: plan.status.as_str(),
            events: &events,
        },
    )?;
    if let Some(wait) = &plan.wait
        && !cancelled
    {
        timers::update_recipient_run(
            db,
            &rr,
            plan.status.as_str(),
            &[],
            Some(&wait.resume_state()),
        )?;
    }
    batch_join::record(db, &rr, joins, instant(now))?;
    if cancelled {
        // Leaves the batch it just joined, exactly as a cancel after the join would.
        batches::cancel_activity(db, &rr)?;
    } else {
        write_wait(db, &rr, &plan)?;
    }
    insert_messages(db, &rr, plan, rows)
}

/// Writes a resumed pass over recipient run `rr`: appended events, new status and resume
/// state, messages, and the next wait.
pub(crate) fn write_resumed(
    db: &Db<'_>,
    rr: &str,
    mut plan: RecipientPlan,
    now: &str,
    rows: &mut Vec<MessageRow>,
) -> StoreResult<()> {
    let joins = batch_join::decide(db, &mut plan, now)?;
    let resume = plan.wait.as_ref().map(|w| w.resume_state());
    timers::update_recipient_run(db, rr, plan.status.as_str(), &plan.events, resume.as_ref())?;
    batch_join::record(db, rr, joins, instant(now))?;
    write_wait(db, rr, &plan)?;
    insert_messages(db, rr, plan, rows)
}

/// Everything shared by the engine's due-sources and the cancel path.
pub struct Waits {
    pub store: Store,
    pub bus: SharedBus,
    pub registry: Arc<Registry>,
    pub clock: Clock,
}

/// The scheduler due-source for paused recipient runs (`timers` rows of kind `resume`).
pub struct ResumeSource(pub Arc<Waits>);

impl DueSource for ResumeSource {
    fn name(&self) -> &'static str {
        "resume"
    }

    fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
        Box::pin(async move {
            let earliest = self.0.store.read(timers::earliest).await?;
            Ok(earliest.and_then(|t| clock::parse(&t)))
        })
    }

    fn fire_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        Box::pin(fire(self.0.clone(), now))
    }
}

/// What the resume of one timer needs, loaded in one read.
struct Loaded {
    timer_id: i64,
    rr: String,
    /// `None`: nothing to run (the run is no longer paused or is gone): just drop the timer.
    work: Option<ResumeWork>,
}

/// What resuming a paused recipient run does: walk on, or fail it with this event.
pub(crate) enum ResumeWork {
    Walk(Box<Resume>),
    Fail(Value),
}

/// A paused recipient run ready to walk on from `from`.
pub(crate) struct Resume {
    pub run: Arc<RunContext>,
    pub recipient: RecipientContext,
    pub from: StepPosition,
    /// The `resumed` event the plan starts with.
    pub resumed: Value,
}

impl ResumeWork {
    /// Walks a resume (pure CPU: call on the blocking pool); `Err` = fail with this event.
    pub(crate) fn plan(self) -> Result<RecipientPlan, Value> {
        match self {
            ResumeWork::Walk(r) => {
                let mut plan = walk_isolated(&r.run, &r.recipient, &r.from);
                plan.events.insert(0, r.resumed);
                Ok(plan)
            }
            ResumeWork::Fail(event) => Err(event),
        }
    }
}

/// A fired timer: its id, its recipient run, and what to write (`None`: just drop it;
/// `Err`: fail the recipient run with this event).
type Fired = (i64, String, Option<Result<RecipientPlan, Value>>);

/// Run-level inputs loaded once per run per pass.
pub(crate) struct RunInputs {
    request: StoredTrigger,
    tenant_default: Option<Value>,
}

async fn fire(w: Arc<Waits>, now: DateTime<Utc>) -> StoreResult<usize> {
    let now_s = clock::format(now);
    let due = w
        .store
        .read(move |db| timers::due(db, &now_s, FIRE_SLICE))
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let fired = due.len();
    let registry = w.registry.clone();
    let clock = w.clock.clone();
    let loaded: Vec<Loaded> = w
        .store
        .read(move |db| {
            let mut runs_seen: HashMap<String, Option<Arc<RunContext>>> = HashMap::new();
            let mut inputs: HashMap<String, RunInputs> = HashMap::new();
            let mut out = Vec::with_capacity(due.len());
            for timer in due {
                let work = load_one(
                    db,
                    &timer.target,
                    &registry,
                    &clock,
                    &mut runs_seen,
                    &mut inputs,
                )?;
                out.push(Loaded {
                    timer_id: timer.id,
                    rr: timer.target,
                    work,
                });
            }
            Ok(out)
        })
        .await?;
    let planned: Vec<Fired> = tokio::task::spawn_blocking(move || {
        loaded
            .into_iter()
            .map(|l| {
                let plan = l.work.map(ResumeWork::plan);
                (l.timer_id, l.rr, plan)
            })
            .collect()
    })
    .await
    .map_err(|e| crate::store::StoreError::Blocking(e.to_string()))?;
    let now_s = clock::format(now);
    let rows = w
        .store
        .write(move |db| {
            let mut rows = Vec::new();
            for (timer_id, rr, plan) in planned {
                if !timers::claim(db, timer_id)? {
                    continue; // cancelled (or fired) meanwhile
                }
                match plan {
                    None => {}
                    Some(Ok(plan)) => write_resumed(db, &rr, plan, &now_s, &mut rows)?,
                    Some(Err(event)) => {
                        timers::update_recipient_run(db, &rr, FAILED, &[event], None)?
                    }
                }
            }
            Ok(rows)
        })
        .await?;
    w.bus.publish(&rows);
    Ok(fired)
}

/// Loads what resuming recipient run `rr` needs; run-level inputs once per run.
pub(crate) fn load_one(
    db: &Db<'_>,
    rr: &str,
    registry: &Registry,
    clock: &Clock,
    contexts: &mut HashMap<String, Option<Arc<RunContext>>>,
    inputs: &mut HashMap<String, RunInputs>,
) -> StoreResult<Option<ResumeWork>> {
    let Some(row) = timers::get_recipient_run(db, rr)? else {
        return Ok(None);
    };
    if RecipientRunStatus::parse(&row.status) != Some(RecipientRunStatus::Paused) {
        return Ok(None);
    }
    let fail = |why: &str| {
        Ok(Some(ResumeWork::Fail(
            json!({"event": "step_failed", "status": "error",
                                         "data": {"error": why}}),
        )))
    };
    let Some(state) = row.resume.as_ref() else {
        return fail("the paused run has no resume state");
    };
    let Ok(paused_at) = serde_json::from_value::<StepPosition>(state["paused_at"].clone()) else {
        return fail("the paused run's position is corrupt");
    };
    let step_ref = state["step_ref"].as_str().unwrap_or_default().to_owned();
    if !contexts.contains_key(&row.workflow_run_id) {
        let ctx = match runs::get_run(db, &row.workflow_run_id)? {
            None => None,
            Some(run) => match StoredTrigger::from_stored(&run.request) {
                Err(_) => None,
                Ok(request) => {
                    let workflow = registry.get(&run.workflow_key);
                    let tenant = request.tenant.clone();
                    let actor_value = match &request.actor {
                        Some(a) => Some(
                            recipients::get_recipient(db, a)?
                                .unwrap_or_else(|| recipients::minimal(a)),
                        ),
                        None => None,
                    };
                    let tenant_value = match &tenant {
                        Some(t) => recipients::get_tenant(db, t)?,
                        None => None,
                    };
                    let tenant_default = preference_check::tenant_default(db, tenant.as_deref())?;
                    inputs.insert(
                        row.workflow_run_id.clone(),
                        RunInputs {
                            request,
                            tenant_default,
                        },
                    );
                    workflow.map(|workflow| {
                        let input = &inputs[&row.workflow_run_id];
                        let mut ctx = RunContext::new(
                            row.workflow_run_id.clone(),
                            workflow,
                            input.request.tenant.clone(),
                            input.request.actor.clone(),
                            input.request.data.clone(),
                            actor_value,
                            tenant_value,
                        );
                        ctx.clock = clock.clone();
                        ctx.skip_delay = input.request.settings.skip_delay;
                        ctx.translations = registry.translations().snapshot();
                        Arc::new(ctx)
                    })
                }
            },
        };
        contexts.insert(row.workflow_run_id.clone(), ctx);
    }
    let Some(run) = contexts.get(&row.workflow_run_id).cloned().flatten() else {
        return fail("the run's workflow or stored request is gone");
    };
    if run.workflow.step_at(&paused_at.0).map(|s| s.step_ref()) != Some(step_ref.as_str()) {
        return fail("the workflow changed while this run was paused: its paused step is gone");
    }
    let tenant_default = inputs
        .get(&row.workflow_run_id)
        .and_then(|i| i.tenant_default.clone());
    let entity = recipients::get_recipient(db, &row.recipient)?;
    let preferences = preference_check::effective_set(
        db,
        &row.recipient,
        run.tenant.as_deref(),
        tenant_default.as_ref(),
    )?;
    let recipient = RecipientContext {
        reference: row.recipient,
        entity,
        preferences,
        trigger_data: state["trigger_data"].as_object().cloned(),
        subscription: match &state["subscription"] {
            Value::Null => None,
            v => Some(v.clone()),
        },
        batch: ClosedBatch::from_value(&state["batch"]).map(Arc::new),
    };
    let resumed = json!({"event": "resumed", "status": "ok", "step_ref": step_ref,
                         "data": {"at": clock.now()}});
    Ok(Some(ResumeWork::Walk(Box::new(Resume {
        run,
        recipient,
        from: paused_at.next(),
        resumed,
    }))))
}

/// Cancels the paused recipient runs of `workflow_key` triggered with
/// `cancellation_key` (only those of `recipients` when given) and records the cancel for
/// the runs that have not paused yet; returns how many paused runs it cancelled.
pub async fn cancel(
    store: &Store,
    scheduler: &Scheduler,
    workflow_key: &str,
    cancellation_key: &str,
    recipients: Option<Vec<RecipientRef>>,
) -> StoreResult<usize> {
    let key = workflow_key.to_owned();
    let ck = cancellation_key.to_owned();
    let now = scheduler.clock().now();
    let n = store
        .write(move |db| {
            // Runs not paused yet (queued, or mid-fan-out) are cancelled when they pause.
            cancellations::record(db, &key, &ck, recipients.as_deref())?;
            let ids = timers::paused_by_cancellation_key(db, &key, &ck, recipients.as_deref())?;
            let event = json!({"event": "cancelled", "status": "ok",
                               "data": {"cancellation_key": ck, "at": now}});
            for id in &ids {
                timers::remove(db, RESUME, id)?;
                // Leaves the batch it waits in (if any); the window stays open.
                batches::cancel_activity(db, id)?;
                timers::update_recipient_run(
                    db,
                    id,
                    RecipientRunStatus::Cancelled.as_str(),
                    std::slice::from_ref(&event),
                    None,
                )?;
            }
            Ok(ids.len())
        })
        .await?;
    Ok(n)
}
