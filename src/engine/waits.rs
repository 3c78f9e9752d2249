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
use super::plan::ResumeState;
use super::preference_check;
use super::registry::Registry;
use super::scheduler::{DueSource, Scheduler};
use super::walk::{RecipientContext, RecipientPlan, RunContext, WaitKind, walk_isolated};
use crate::clock::{self, Clock};
use crate::model::RecipientRef;
use crate::model::run_state::RecipientRunStatus;
use crate::store::ops::{Checkpoints, OpenedRun, PageEntry, PausedRun, RecipientWrite};
use crate::store::{Store, StoreError, StoreResult, run_records};

/// Timers fired per scheduler pass (one write each pass).
const FIRE_SLICE: usize = 256;

/// The write's clock reading (`now`, formatted by `clock::format`) as an instant. It is
/// always our own format; were it not, the epoch (never a second clock) stands in.
fn instant(now: &str) -> DateTime<Utc> {
    clock::parse(now).unwrap_or(DateTime::UNIX_EPOCH)
}

/// A first pass made ready for the writer before the write, off the writer thread.
///
/// A plain delivery ([`is_plain`]) has its messages stamped with its deterministic
/// recipient-run id and serialized here, so the writer runs only their INSERTs: it stores
/// no recipient run (its run record is derived from the messages, see
/// `store::run_records`). Any other plan is decided in the write by [`decide_new`].
pub type PreparedPlan = PageEntry<RecipientPlan>;

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
            run_records::is_message_created(event, &m.id, &m.step_ref, m.expires_at.as_deref())
        })
}

/// Prepares `plan`, a first pass of run `run_id` (started at `started_ms`, see
/// `RunContext::started_ms`), for `Store::write_run_page` (see [`PreparedPlan`]).
pub fn prepare(plan: RecipientPlan, run_id: &str, started_ms: i64) -> StoreResult<PreparedPlan> {
    if !is_plain(&plan) {
        return Ok(PageEntry::Decided(plan));
    }
    let rr = crate::ids::recipient_run_id(run_id, started_ms, &plan.reference);
    Ok(PageEntry::Plain(
        plan.messages
            .into_iter()
            .map(|mut message| {
                message.workflow_recipient_run_id.clone_from(&rr);
                message.prepare()
            })
            .collect::<StoreResult<_>>()?,
    ))
}

/// The `cancelled` event of a recipient run cancelled with `key` at `now`.
fn cancelled_event(key: &str, now: &str) -> Value {
    json!({"event": "cancelled", "status": "ok",
           "data": {"cancellation_key": key, "at": now}})
}

/// Decides a first pass of run `run_id` inside its write (`now`: the write's clock
/// reading): its gates and batch joins ([`batch_join::decide`]) and, when it pauses, a
/// cancel recorded before the pause (see `store::cancellations`), which ends it here as
/// if the cancel had arrived just after: what came before the pause is still delivered,
/// and it leaves the batch it just joined.
pub fn decide_new(
    checks: &dyn Checkpoints,
    run_id: &str,
    mut plan: RecipientPlan,
    now: &str,
) -> StoreResult<RecipientWrite> {
    let joins = batch_join::decide(checks, &mut plan, now)?;
    let cancel = match plan.wait {
        Some(_) => checks.cancellation(run_id, &plan.reference)?,
        None => None,
    };
    let cancelled = cancel.is_some();
    if let Some(key) = cancel {
        plan.status = RecipientRunStatus::Cancelled;
        plan.events.push(cancelled_event(&key, now));
    }
    let joins = batch_join::writes(checks, joins, instant(now))?;
    to_write(plan, joins, cancelled)
}

/// Decides a resumed pass inside its write: its gates and batch joins.
pub fn decide_resumed(
    checks: &dyn Checkpoints,
    mut plan: RecipientPlan,
    now: &str,
) -> StoreResult<RecipientWrite> {
    let joins = batch_join::decide(checks, &mut plan, now)?;
    let joins = batch_join::writes(checks, joins, instant(now))?;
    to_write(plan, joins, false)
}

/// What storing a decided plan writes: a paused run (unless `cancelled`) stores its
/// resume state, and a delay its timer (a batch wait has none: its batch's close resumes
/// it, see `batch_close`).
fn to_write(
    plan: RecipientPlan,
    joins: Vec<crate::store::ops::JoinWrite>,
    cancelled: bool,
) -> StoreResult<RecipientWrite> {
    let (resume, resume_at) = match &plan.wait {
        Some(wait) if !cancelled => (
            Some(serde_json::to_value(wait.resume_state())?),
            match wait.kind {
                WaitKind::Until(until) => Some(clock::format(until)),
                WaitKind::Batch => None,
            },
        ),
        _ => (None, None),
    };
    Ok(RecipientWrite {
        reference: plan.reference,
        status: plan.status,
        events: plan.events,
        messages: plan.messages,
        resume,
        resume_at,
        joins,
        leave_batches: cancelled,
    })
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
            let earliest = self.0.store.next_resume_due().await?;
            Ok(earliest.and_then(|t| clock::parse(&t)))
        })
    }

    fn fire_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        Box::pin(fire(self.0.clone(), now))
    }
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
    pub from: super::walk::StepPosition,
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

async fn fire(w: Arc<Waits>, now: DateTime<Utc>) -> StoreResult<usize> {
    let due = w.store.due_resumes(clock::format(now), FIRE_SLICE).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let fired = due.len();
    let registry = w.registry.clone();
    let clock = w.clock.clone();
    let planned = tokio::task::spawn_blocking(move || {
        let mut contexts = HashMap::new();
        due.into_iter()
            .map(|d| {
                let work = d.paused.map(|p| {
                    resume_work(p, &clock, &mut contexts, resume_context(&registry, &clock))
                });
                (d.timer_id, d.recipient_run, work.map(ResumeWork::plan))
            })
            .collect()
    })
    .await
    .map_err(|e| StoreError::Blocking(e.to_string()))?;
    let now_s = clock::format(now);
    // A timer cancelled (or fired) meanwhile is skipped by the write.
    let rows = w
        .store
        .write_resumes(planned, move |checks, plan| {
            decide_resumed(checks, plan, &now_s)
        })
        .await?;
    w.bus.publish(&rows);
    Ok(fired)
}

/// [`run_context`] over `registry`, for [`resume_work`].
pub(crate) fn resume_context<'a>(
    registry: &'a Registry,
    clock: &'a Clock,
) -> impl FnOnce(&str, Option<&OpenedRun>) -> Option<Arc<RunContext>> + 'a {
    move |id, run| run_context(id, run, registry, clock)
}

/// Run `run_id`'s context for its resumes (`None`: its workflow or stored request is
/// gone).
fn run_context(
    run_id: &str,
    run: Option<&OpenedRun>,
    registry: &Registry,
    clock: &Clock,
) -> Option<Arc<RunContext>> {
    let run = run?;
    let (request, entities) = run.request.as_ref().ok()?;
    let workflow = registry.get(&run.workflow_key)?;
    let mut ctx = RunContext::new(
        run_id.to_owned(),
        workflow,
        request.tenant.clone(),
        request.actor.clone(),
        request.data.clone(),
        entities.actor.clone(),
        entities.tenant.clone(),
    );
    ctx.clock = clock.clone();
    ctx.skip_delay = request.settings.skip_delay;
    ctx.translations = registry.translations().snapshot();
    Some(Arc::new(ctx))
}

/// The `step_failed` event of a resume that cannot run, saying `why`.
fn resume_failed(why: &str) -> ResumeWork {
    ResumeWork::Fail(json!({"event": "step_failed", "status": "error", "data": {"error": why}}))
}

/// Decides what resuming paused run `paused` does (pure: no I/O). It resumes at the step
/// after the one it paused at in the workflow's current version, with its recipient read
/// afresh; it fails instead when its resume state is missing or corrupt, its run's
/// workflow or stored request is gone, or its paused step is no longer at its position.
/// `contexts` holds each run's context once per pass, made by `context` (see
/// [`run_context`]); `clock` stamps the `resumed` event.
pub(crate) fn resume_work(
    paused: PausedRun,
    clock: &Clock,
    contexts: &mut HashMap<String, Option<Arc<RunContext>>>,
    context: impl FnOnce(&str, Option<&OpenedRun>) -> Option<Arc<RunContext>>,
) -> ResumeWork {
    let Some(state) = paused.resume else {
        return resume_failed("the paused run has no resume state");
    };
    let Ok(state) = serde_json::from_value::<ResumeState>(state) else {
        return resume_failed("the paused run's position is corrupt");
    };
    let run = contexts
        .entry(paused.workflow_run_id.clone())
        .or_insert_with(|| context(&paused.workflow_run_id, paused.run.as_deref()))
        .clone();
    let Some(run) = run else {
        return resume_failed("the run's workflow or stored request is gone");
    };
    if run
        .workflow
        .step_at(&state.paused_at.0)
        .map(|s| s.step_ref())
        != Some(state.step_ref.as_str())
    {
        return resume_failed(
            "the workflow changed while this run was paused: its paused step is gone",
        );
    }
    let tenant_default = paused
        .run
        .as_ref()
        .and_then(|r| r.request.as_ref().ok())
        .and_then(|(_, entities)| entities.tenant_default.as_ref());
    let preferences = preference_check::effective(
        run.tenant.as_deref(),
        tenant_default,
        paused.default_set,
        paused.tenant_set,
    );
    let recipient = RecipientContext {
        reference: paused.recipient,
        entity: paused.entity,
        preferences,
        trigger_data: state.trigger_data,
        subscription: state.subscription,
        batch: state
            .batch
            .as_ref()
            .and_then(ClosedBatch::from_value)
            .map(Arc::new),
    };
    let resumed = json!({"event": "resumed", "status": "ok", "step_ref": state.step_ref,
                         "data": {"at": clock.now()}});
    ResumeWork::Walk(Box::new(Resume {
        run,
        recipient,
        from: state.paused_at.next(),
        resumed,
    }))
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
    let now = scheduler.clock().now();
    let event = cancelled_event(cancellation_key, &now);
    store
        .cancel_paused(
            workflow_key.to_owned(),
            cancellation_key.to_owned(),
            recipients,
            event,
        )
        .await
}

#[cfg(test)]
#[path = "waits_tests.rs"]
mod tests;
