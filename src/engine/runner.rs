//! The runner: one task that takes committed run ids (from `accept`, and at start from
//! the `queued` rows a crash left behind) and completes each run.
//!
//! For a run it builds the shared [`RunContext`] once, then goes page by page through its
//! audience (`audience`: the direct recipients, then object subscribers to depth 2, at
//! most `audience::PAGE_SIZE` per page): one read loads the page, the walks run on the
//! blocking pool, and ONE write stores the page's recipient runs + messages + waits + the
//! run's audience cursor (+ `status = completed` on the last page). Only after that write
//! returned are the page's messages published to sockets. The next page is read and
//! walked while the previous one commits (at most two pages in memory).
//!
//! Invariants:
//! - Exactly once: each page's write is one transaction, recipient runs are unique per
//!   (run, recipient) and messages per (recipient run, step), a recipient that already has
//!   a recipient run in this run is not walked again, and a run is skipped unless it is
//!   still `queued`. A run interrupted anywhere resumes after its last committed page.
//! - Memory per run is one page, whatever the audience size.
//! - A template that fails to render fails that recipient's step (recorded in the
//!   recipient run's `events`), never the whole run, and is never retried forever.
//! - Shutdown stops taking runs; runs already writing finish; the rest stay `queued`
//!   and resume at the next start.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashmap::DashSet;
use serde_json::{Map, Value};
use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::audience::{self, Audience, AudienceCursor};
use super::bus::SharedBus;
use super::preference_check;
use super::registry::Registry;
use super::scheduler::Scheduler;
use super::waits;
use super::walk::{RecipientContext, RecipientPlan, RunContext, StepPosition, walk};
use crate::clock::Clock;
use crate::model::RecipientRef;
use crate::store::messages::MessageRow;
use crate::store::{Db, Store, StoreError, recipients, runs};

/// Run ids waiting in memory; beyond this the runner rescans the table instead.
const QUEUE_DEPTH: usize = 10_000;
/// Runs processed at once; their writes share group commits.
const MAX_CONCURRENT_RUNS: usize = 16;
/// Attempts at a run whose write fails (e.g. the disk is full) before leaving it queued
/// for the next start.
const WRITE_ATTEMPTS: u32 = 3;
/// How often expired `Idempotency-Key` rows are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

struct Ctx {
    store: Store,
    clock: Clock,
    scheduler: Scheduler,
    bus: SharedBus,
    registry: Arc<Registry>,
    in_flight: DashSet<String>,
    stopping: AtomicBool,
    rescan: AtomicBool,
    permits: Arc<Semaphore>,
}

/// Handle to the runner task.
pub struct Runner {
    tx: mpsc::Sender<String>,
    ctx: Arc<Ctx>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Runner {
    /// Starts the runner; it first resumes every run left `queued`.
    pub fn spawn(
        store: Store,
        bus: SharedBus,
        registry: Arc<Registry>,
        scheduler: Scheduler,
    ) -> Runner {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let (stop, stop_rx) = watch::channel(false);
        let ctx = Arc::new(Ctx {
            store,
            clock: scheduler.clock().clone(),
            scheduler,
            bus,
            registry,
            in_flight: DashSet::new(),
            stopping: AtomicBool::new(false),
            rescan: AtomicBool::new(true),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_RUNS)),
        });
        let task = tokio::spawn(run_loop(ctx.clone(), rx, stop_rx));
        Runner {
            tx,
            ctx,
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// Hands a committed run to the runner. Never blocks: when the queue is full the
    /// runner rescans the table (the run is durable either way).
    pub fn enqueue(&self, run_id: String) {
        if self.tx.try_send(run_id).is_err() {
            self.ctx.rescan.store(true, Ordering::SeqCst);
        }
    }

    /// Runs being processed right now (for `/metrics`).
    pub fn running(&self) -> usize {
        self.ctx.in_flight.len()
    }

    /// Stops taking runs and waits for the ones already running.
    pub async fn shutdown(&self) {
        self.ctx.stopping.store(true, Ordering::SeqCst);
        let _ = self.stop.send(true);
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

async fn run_loop(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<String>, mut stop: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    let mut purge = tokio::time::interval(PURGE_EVERY);
    loop {
        if ctx.rescan.swap(false, Ordering::SeqCst) {
            match ctx.store.read(runs::queued_run_ids).await {
                Ok(ids) => {
                    if !ids.is_empty() {
                        tracing::info!(count = ids.len(), "resuming queued workflow runs");
                    }
                    for id in ids {
                        tasks.spawn(process(ctx.clone(), id));
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not scan queued runs"),
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            msg = rx.recv() => match msg {
                Some(id) => { tasks.spawn(process(ctx.clone(), id)); }
                None => break,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = purge.tick() => purge_idempotency_keys(&ctx.store).await,
        }
    }
    // Runs waiting for a permit see `stopping` and return; running ones finish.
    while tasks.join_next().await.is_some() {}
}

/// Forgets `Idempotency-Key`s older than the replay window.
async fn purge_idempotency_keys(store: &Store) {
    let before = super::accept::idempotency_since();
    match store
        .write(move |db| runs::purge_idempotency(db, &before))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::debug!(purged = n, "expired idempotency keys deleted"),
        Err(e) => tracing::warn!(error = %e, "could not purge idempotency keys"),
    }
}

/// Removes a run from the in-flight set however processing ends.
struct InFlight<'a>(&'a DashSet<String>, String);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.remove(&self.1);
    }
}

async fn process(ctx: Arc<Ctx>, run_id: String) {
    let Ok(_permit) = ctx.permits.clone().acquire_owned().await else {
        return;
    };
    if ctx.stopping.load(Ordering::SeqCst) || !ctx.in_flight.insert(run_id.clone()) {
        return;
    }
    let _guard = InFlight(&ctx.in_flight, run_id.clone());
    for attempt in 1..=WRITE_ATTEMPTS {
        match run_once(&ctx, &run_id).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(run = %run_id, attempt, error = %e, "workflow run failed");
                if ctx.stopping.load(Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt * attempt))).await;
            }
        }
    }
    tracing::error!(run = %run_id, "giving up on this run until the next start; it stays queued");
}

/// The normalized trigger stored with a run (see `Trigger::to_stored`).
pub(crate) struct StoredRequest {
    pub recipients: Vec<(RecipientRef, Option<Map<String, Value>>)>,
    pub actor: Option<RecipientRef>,
    pub data: Map<String, Value>,
    pub tenant: Option<String>,
    pub skip_delay: bool,
}

impl StoredRequest {
    pub fn parse(v: &Value) -> Result<StoredRequest, String> {
        let recipients = v["recipients"]
            .as_array()
            .ok_or("recipients missing")?
            .iter()
            .map(|r| {
                let reference = RecipientRef::parse(&r["ref"])?;
                Ok((reference, r["trigger_data"].as_object().cloned()))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let actor = match &v["actor"] {
            Value::Null => None,
            a => Some(RecipientRef::parse(a)?),
        };
        Ok(StoredRequest {
            recipients,
            actor,
            data: v["data"].as_object().cloned().unwrap_or_default(),
            tenant: v["tenant"].as_str().map(str::to_owned),
            skip_delay: v["settings"]["skip_delay"].as_bool().unwrap_or(false),
        })
    }
}

async fn run_once(ctx: &Ctx, run_id: &str) -> Result<(), StoreError> {
    let id = run_id.to_owned();
    let Some(run) = ctx.store.read(move |db| runs::get_run(db, &id)).await? else {
        return Ok(());
    };
    if run.status != "queued" {
        return Ok(());
    }
    let request = StoredRequest::parse(&run.request);
    let workflow = ctx.registry.get(&run.workflow_key);
    let (request, workflow) = match (request, workflow) {
        (Ok(r), Some(w)) => (r, w),
        (Err(e), _) => {
            return fail_run(ctx, run_id, &format!("stored request is corrupt: {e}")).await;
        }
        (_, None) => return fail_run(ctx, run_id, "its workflow no longer exists").await,
    };
    let actor = request.actor.clone();
    let tenant = request.tenant.clone();
    let (actor_value, tenant_value, tenant_default) = ctx
        .store
        .read(move |db| {
            let tenant_default = preference_check::tenant_default(db, tenant.as_deref())?;
            let actor_value = match &actor {
                Some(a) => Some(
                    recipients::get_recipient(db, a)?.unwrap_or_else(|| recipients::minimal(a)),
                ),
                None => None,
            };
            let tenant_value = match &tenant {
                Some(t) => recipients::get_tenant(db, t)?,
                None => None,
            };
            Ok((actor_value, tenant_value, tenant_default))
        })
        .await?;
    let skip_delay = request.skip_delay;
    let mut run_ctx = RunContext::new(
        run_id.to_owned(),
        workflow,
        request.tenant.clone(),
        request.actor.clone(),
        request.data,
        actor_value,
        tenant_value,
    );
    run_ctx.clock = ctx.clock.clone();
    run_ctx.skip_delay = skip_delay;
    let run_ctx = Arc::new(run_ctx);
    let page = Arc::new(PageInputs {
        run_id: run_id.to_owned(),
        direct: request.recipients,
        actor: request.actor,
        tenant: request.tenant,
        tenant_default,
    });
    // A restart resumes after the last committed page (see `audience`).
    let mut cursor: AudienceCursor = run
        .audience_cursor
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    // Pipelined: a page is read and walked while the previous page's write commits. Its
    // recipients are excluded from the page being read (they may not be committed yet),
    // and writes stay in page order, so the stored cursor only moves forward.
    let mut writing: Option<PageWrite> = None;
    loop {
        let inputs = page.clone();
        let at = cursor.clone();
        let exclude = writing.as_ref().map(|w| w.recipients.clone());
        let loaded = ctx
            .store
            .read(move |db| load_page(db, &inputs, &at, exclude.as_deref()))
            .await;
        let (contexts, next) = match loaded {
            Ok(page) => page,
            Err(e) => return Err(finish_then(ctx, writing, e).await),
        };
        let walked = run_ctx.clone();
        let plans = tokio::task::spawn_blocking(move || {
            contexts
                .iter()
                .map(|r| walk(&walked, r, &StepPosition::start()))
                .collect::<Vec<RecipientPlan>>()
        })
        .await;
        let plans = match plans {
            Ok(plans) => plans,
            Err(e) => {
                return Err(finish_then(ctx, writing, StoreError::Blocking(e.to_string())).await);
            }
        };
        if let Some(previous) = writing.take() {
            previous.finish(ctx).await?;
        }
        if ctx.stopping.load(Ordering::SeqCst) {
            // Stays queued at the last committed page; the next start finishes it.
            return Ok(());
        }
        let done = next.is_done();
        if next.truncated && done {
            tracing::warn!(run = %run_id, limit = audience::MAX_AUDIENCE,
                "fan-out stopped at the per-trigger audience limit; the rest were not notified");
        }
        let write = PageWrite::start(ctx, run_id, plans, &next)?;
        if done {
            return write.finish(ctx).await;
        }
        writing = Some(write);
        cursor = next;
    }
}

/// One page's write, committing in the background: recipient runs, messages, waits and
/// the audience cursor (+ `completed` on the last page).
struct PageWrite {
    task: tokio::task::JoinHandle<Result<Vec<MessageRow>, StoreError>>,
    recipients: Arc<HashSet<RecipientRef>>,
    paused: bool,
}

impl PageWrite {
    fn start(
        ctx: &Ctx,
        run_id: &str,
        plans: Vec<RecipientPlan>,
        next: &AudienceCursor,
    ) -> Result<PageWrite, StoreError> {
        let done = next.is_done();
        // A batch join can open a batch even when the run goes on (`flush_leading`).
        let paused = plans
            .iter()
            .any(|p| p.wait.is_some() || !p.batches.is_empty());
        let recipients = Arc::new(plans.iter().map(|p| p.reference.clone()).collect());
        let cursor_json = serde_json::to_string(next)?;
        let run_id = run_id.to_owned();
        let store = ctx.store.clone();
        let now = ctx.clock.now();
        let task = tokio::spawn(async move {
            store
                .write(move |db| {
                    let mut rows = Vec::new();
                    for plan in plans {
                        waits::write_new(db, &run_id, plan, &now, &mut rows)?;
                    }
                    runs::set_audience_cursor(db, &run_id, &cursor_json)?;
                    if done {
                        runs::set_run_status(db, &run_id, "completed")?;
                    }
                    Ok(rows)
                })
                .await
        });
        Ok(PageWrite {
            task,
            recipients,
            paused,
        })
    }

    /// Waits for the commit, then pushes the page's messages.
    async fn finish(self, ctx: &Ctx) -> Result<(), StoreError> {
        let inserted = self
            .task
            .await
            .map_err(|e| StoreError::Blocking(e.to_string()))??;
        ctx.bus.publish(&inserted);
        if self.paused {
            ctx.scheduler.wake();
        }
        Ok(())
    }
}

/// Lets a write in progress finish (so nothing runs behind a retry) and returns `error`.
async fn finish_then(ctx: &Ctx, writing: Option<PageWrite>, error: StoreError) -> StoreError {
    if let Some(write) = writing
        && let Err(e) = write.finish(ctx).await
    {
        tracing::warn!(error = %e, "a fan-out page write failed too");
    }
    error
}

/// What every page of one run needs besides the cursor.
struct PageInputs {
    run_id: String,
    direct: Vec<(RecipientRef, Option<Map<String, Value>>)>,
    actor: Option<RecipientRef>,
    tenant: Option<String>,
    tenant_default: Option<Value>,
}

/// One read: the next page of the audience, minus recipients this run already reached
/// (committed, or in the page being written), loaded (entity + effective preferences) for walking.
fn load_page(
    db: &Db<'_>,
    inputs: &PageInputs,
    cursor: &AudienceCursor,
    writing: Option<&HashSet<RecipientRef>>,
) -> Result<(Vec<RecipientContext>, AudienceCursor), StoreError> {
    let audience = Audience {
        direct: &inputs.direct,
        actor: inputs.actor.as_ref(),
    };
    let (mut targets, next) = audience.next_page(db, cursor, audience::PAGE_SIZE)?;
    if let Some(writing) = writing {
        targets.retain(|t| !writing.contains(&t.reference));
    }
    let fresh = runs::without_recipient_runs(db, &inputs.run_id, targets, |t| &t.reference)?;
    let contexts = fresh
        .into_iter()
        .map(|t| {
            let entity = recipients::get_recipient(db, &t.reference)?;
            let preferences = preference_check::effective_set(
                db,
                &t.reference,
                inputs.tenant.as_deref(),
                inputs.tenant_default.as_ref(),
            )?;
            Ok(RecipientContext {
                reference: t.reference,
                entity,
                preferences,
                trigger_data: t.trigger_data,
                subscription: t.subscription,
                batch: None,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((contexts, next))
}

async fn fail_run(ctx: &Ctx, run_id: &str, why: &str) -> Result<(), StoreError> {
    tracing::error!(run = %run_id, reason = why, "workflow run cannot execute; marking it failed");
    let id = run_id.to_owned();
    ctx.store
        .write(move |db| runs::set_run_status(db, &id, "failed"))
        .await
}
