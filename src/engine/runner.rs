//! The runner: takes committed run ids (from `accept`, and at start from the `queued`
//! rows a crash left behind) and completes each run, in bounded slices shared fairly
//! between tenants.
//!
//! For a run it builds the shared [`RunContext`] once, then goes page by page through its
//! audience (`audience`: the direct recipients, then object subscribers to depth 2, at
//! most `page_size` per page): one read loads the page, the walks run on the blocking
//! pool, and ONE write stores the page's recipient runs + messages + waits + the run's
//! audience cursor (+ `status = completed` on the last page). Only after that write
//! returned are the page's messages published to sockets. The next page is read and
//! walked while the previous one commits (at most two pages in memory per run).
//!
//! Fairness (issue 10, item 2): one page is one *slice*. Up to [`MAX_SLICES`] slices run
//! at once; between slices a run waits in its tenant's queue (`fair`: per tenant, or per
//! workflow without a tenant), and the next free slot goes to the key with the fewest
//! slices running. So another tenant's single notify waits for one slice, not for a
//! 1,000,000-item fan-out; the writer's quick lane does the same for its commit. A page
//! has `page_size` recipients while other keys have work, `solo_page_size` once one key
//! has had the runner alone for a second (`fair::PageSizer`: fewer commits per item).
//!
//! Invariants:
//! - Exactly once: each page's write is one transaction, recipient runs are unique per
//!   (run, recipient) and messages per (recipient run, step), a recipient that already has
//!   a recipient run in this run is not walked again, and a run is skipped unless it is
//!   still `queued`. A run interrupted anywhere resumes after its last committed page.
//!   A run is in at most one slice at a time, and its pages are written in order.
//! - Memory per run is two pages, whatever the audience size; runs are opened per key
//!   only as slices free up, so what is open is bounded by the slices.
//! - A template that fails to render fails that recipient's step (recorded in the
//!   recipient run's `events`), never the whole run, and is never retried forever.
//! - Shutdown stops taking slices; writes already submitted commit and are published;
//!   the runs stay `queued` and resume at the next start.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinSet;

use super::audience::{self, Audience, AudienceCursor};
use super::bus::SharedBus;
use super::fair::{FairKey, FairQueue, PageSizer};
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
/// Slices (one page each) processed at once; their writes share group commits.
pub const MAX_SLICES: usize = 16;
/// Slices one key (tenant) may run at once: the rest stay free for other tenants, and
/// fewer renders compete for the CPU with their requests.
pub const MAX_SLICES_PER_KEY: usize = 4;
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
    page_size: usize,
    solo_page_size: usize,
    stopping: AtomicBool,
    rescan: AtomicBool,
    /// Slices running (each is one run).
    running: AtomicUsize,
}

/// Handle to the runner task.
pub struct Runner {
    tx: mpsc::Sender<String>,
    ctx: Arc<Ctx>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Runner {
    /// Starts the runner; it first resumes every run left `queued`. `page_size` is the
    /// recipients per page (and slice) while other tenants have work, `solo_page_size`
    /// while one has the runner alone; `audience::PAGE_SIZE` and `SOLO_PAGE_SIZE` unless
    /// tuned.
    pub fn spawn(
        store: Store,
        bus: SharedBus,
        registry: Arc<Registry>,
        scheduler: Scheduler,
        page_size: usize,
        solo_page_size: usize,
    ) -> Runner {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let (stop, stop_rx) = watch::channel(false);
        let ctx = Arc::new(Ctx {
            store,
            clock: scheduler.clock().clone(),
            scheduler,
            bus,
            registry,
            page_size,
            solo_page_size,
            stopping: AtomicBool::new(false),
            rescan: AtomicBool::new(true),
            running: AtomicUsize::new(0),
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

    /// Runs in a slice right now (for `/metrics`).
    pub fn running(&self) -> usize {
        self.ctx.running.load(Ordering::Relaxed)
    }

    /// Stops taking slices and waits for the ones running.
    pub async fn shutdown(&self) {
        self.ctx.stopping.store(true, Ordering::SeqCst);
        let _ = self.stop.send(true);
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

/// A run between slices.
enum Work {
    /// Not started yet (or restarting from its row after a failed attempt).
    Fresh { run_id: String, attempt: u32 },
    /// Started: its context, where its audience stands, and the page still committing.
    Started(Box<ActiveRun>),
}

impl Work {
    fn run_id(&self) -> &str {
        match self {
            Work::Fresh { run_id, .. } => run_id,
            Work::Started(run) => &run.run_id,
        }
    }
}

/// What the dispatcher knows: queued work per key, and every run it holds (queued or in a
/// slice), so a run enqueued twice (a rescan racing a trigger) is taken once.
struct Dispatch {
    queue: FairQueue<Work>,
    known: HashSet<String>,
    slices: HashMap<tokio::task::Id, (FairKey, String)>,
    pages: PageSizer,
}

impl Dispatch {
    fn admit(&mut self, run: runs::QueuedRun) {
        if self.known.insert(run.id.clone()) {
            let key = FairKey::of(&run.workflow_key, run.tenant.as_deref());
            self.queue.push_back(
                key,
                Work::Fresh {
                    run_id: run.id,
                    attempt: 1,
                },
            );
        }
    }

    /// Starts slices while slots are free.
    fn fill(&mut self, ctx: &Arc<Ctx>, tasks: &mut JoinSet<Option<Work>>) {
        while tasks.len() < MAX_SLICES {
            let Some((key, work)) = self.queue.pop() else {
                return;
            };
            let run_id = work.run_id().to_owned();
            let others = self.queue.others_than(&key);
            let page_size = self.pages.next(others, std::time::Instant::now());
            let handle = tasks.spawn(slice(ctx.clone(), work, page_size));
            self.slices.insert(handle.id(), (key, run_id));
            ctx.running.store(self.slices.len(), Ordering::Relaxed);
        }
    }

    /// A slice ended: its run goes back to the front of its key's queue, or is done.
    fn ended(&mut self, ctx: &Ctx, id: tokio::task::Id, next: Option<Work>) {
        let Some((key, run_id)) = self.slices.remove(&id) else {
            return;
        };
        ctx.running.store(self.slices.len(), Ordering::Relaxed);
        match next {
            Some(work) => self.queue.push_front(key.clone(), work),
            None => {
                self.known.remove(&run_id);
            }
        }
        self.queue.done(&key);
    }
}

async fn run_loop(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<String>, mut stop: watch::Receiver<bool>) {
    let mut dispatch = Dispatch {
        queue: FairQueue::new(MAX_SLICES_PER_KEY),
        known: HashSet::new(),
        slices: HashMap::new(),
        pages: PageSizer::new(ctx.page_size, ctx.solo_page_size),
    };
    let mut tasks: JoinSet<Option<Work>> = JoinSet::new();
    let mut purge = tokio::time::interval(PURGE_EVERY);
    loop {
        if ctx.rescan.swap(false, Ordering::SeqCst) {
            match ctx.store.read(runs::queued_runs).await {
                Ok(queued) => {
                    if !queued.is_empty() {
                        tracing::info!(count = queued.len(), "resuming queued workflow runs");
                    }
                    queued.into_iter().for_each(|run| dispatch.admit(run));
                }
                Err(e) => tracing::error!(error = %e, "could not scan queued runs"),
            }
        }
        dispatch.fill(&ctx, &mut tasks);
        tokio::select! {
            _ = stop.changed() => break,
            msg = rx.recv() => match msg {
                Some(id) => admit_new(&ctx, &mut dispatch, &mut rx, id).await,
                None => break,
            },
            Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => match ended {
                Ok((id, next)) => dispatch.ended(&ctx, id, next),
                Err(e) => {
                    tracing::error!(error = %e, "a workflow run slice panicked; the run stays queued");
                    dispatch.ended(&ctx, e.id(), None);
                }
            },
            _ = purge.tick() => purge_idempotency_keys(&ctx.store).await,
        }
    }
    // Slices see `stopping` and end after the write in progress; parked runs' submitted
    // writes commit and are published. Their runs stay queued for the next start.
    while let Some(ended) = tasks.join_next_with_id().await {
        if let Ok((_, Some(Work::Started(run)))) = ended {
            settle(run.writing).await;
        }
    }
    for work in dispatch.queue.drain() {
        if let Work::Started(run) = work {
            settle(run.writing).await;
        }
    }
}

/// Keys `id` and every other id already waiting by their run rows (one read), and queues
/// those still `queued`.
async fn admit_new(
    ctx: &Ctx,
    dispatch: &mut Dispatch,
    rx: &mut mpsc::Receiver<String>,
    first: String,
) {
    let mut ids = vec![first];
    while ids.len() < 512 {
        match rx.try_recv() {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
    }
    ids.retain(|id| !dispatch.known.contains(id));
    if ids.is_empty() {
        return;
    }
    match ctx.store.read(move |db| runs::queued_among(db, &ids)).await {
        Ok(queued) => queued.into_iter().for_each(|run| dispatch.admit(run)),
        Err(e) => {
            tracing::error!(error = %e, "could not read new runs; rescanning");
            ctx.rescan.store(true, Ordering::SeqCst);
        }
    }
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

/// One slice: opens the run if it is fresh, then one page of at most `page_size`
/// recipients. Returns the run when it has more to do (or is to be retried), `None` when
/// it completed, cannot run or gave up.
async fn slice(ctx: Arc<Ctx>, work: Work, page_size: usize) -> Option<Work> {
    if ctx.stopping.load(Ordering::SeqCst) {
        return Some(work);
    }
    let (run_id, attempt) = match &work {
        Work::Fresh { run_id, attempt } => (run_id.clone(), *attempt),
        Work::Started(run) => (run.run_id.clone(), run.attempt),
    };
    let outcome = match work {
        Work::Fresh { .. } => match start_run(&ctx, &run_id, attempt).await {
            Ok(Some(run)) => run.next_page(&ctx, page_size).await,
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        },
        Work::Started(run) => run.next_page(&ctx, page_size).await,
    };
    match outcome {
        Ok(next) => next.map(Work::Started),
        Err(e) => {
            tracing::error!(run = %run_id, attempt, error = %e, "workflow run failed");
            if ctx.stopping.load(Ordering::SeqCst) {
                return None;
            }
            if attempt >= WRITE_ATTEMPTS {
                tracing::error!(run = %run_id, "giving up on this run until the next start; it stays queued");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt * attempt))).await;
            Some(Work::Fresh {
                run_id,
                attempt: attempt + 1,
            })
        }
    }
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

/// Opens a run from its row: `None` when it is no longer `queued` or cannot run at all
/// (then it is marked failed).
async fn start_run(
    ctx: &Ctx,
    run_id: &str,
    attempt: u32,
) -> Result<Option<Box<ActiveRun>>, StoreError> {
    let id = run_id.to_owned();
    let Some(run) = ctx.store.read(move |db| runs::get_run(db, &id)).await? else {
        return Ok(None);
    };
    if run.status != "queued" {
        return Ok(None);
    }
    let request = StoredRequest::parse(&run.request);
    let workflow = ctx.registry.get(&run.workflow_key);
    let (request, workflow) = match (request, workflow) {
        (Ok(r), Some(w)) => (r, w),
        (Err(e), _) => {
            fail_run(ctx, run_id, &format!("stored request is corrupt: {e}")).await?;
            return Ok(None);
        }
        (_, None) => {
            fail_run(ctx, run_id, "its workflow no longer exists").await?;
            return Ok(None);
        }
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
    let page = Arc::new(PageInputs {
        run_id: run_id.to_owned(),
        direct: request.recipients,
        actor: request.actor,
        tenant: request.tenant,
        tenant_default,
    });
    // A restart resumes after the last committed page (see `audience`).
    let cursor: AudienceCursor = run
        .audience_cursor
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    Ok(Some(Box::new(ActiveRun {
        run_id: run_id.to_owned(),
        attempt,
        run_ctx: Arc::new(run_ctx),
        page,
        cursor,
        writing: None,
    })))
}

/// A started run between its slices.
struct ActiveRun {
    run_id: String,
    attempt: u32,
    run_ctx: Arc<RunContext>,
    page: Arc<PageInputs>,
    /// Where the next page starts.
    cursor: AudienceCursor,
    /// The previous page's write, still committing.
    writing: Option<PageWrite>,
}

impl ActiveRun {
    /// One page: `Some(self)` while pages remain, `None` once the run completed (or the
    /// runner is stopping; the run then stays queued at its last committed page).
    ///
    /// Pipelined: a page is read and walked while the previous page's write commits. Its
    /// recipients are excluded from the page being read (they may not be committed yet),
    /// and writes stay in page order, so the stored cursor only moves forward.
    async fn next_page(
        mut self: Box<Self>,
        ctx: &Ctx,
        page_size: usize,
    ) -> Result<Option<Box<Self>>, StoreError> {
        let inputs = self.page.clone();
        let at = self.cursor.clone();
        let exclude = self.writing.as_ref().map(|w| w.recipients.clone());
        let loaded = ctx
            .store
            .read(move |db| load_page(db, &inputs, &at, exclude.as_deref(), page_size))
            .await;
        let (contexts, next) = match loaded {
            Ok(page) => page,
            Err(e) => return Err(finish_then(self.writing, e).await),
        };
        let walked = self.run_ctx.clone();
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
                let error = StoreError::Blocking(e.to_string());
                return Err(finish_then(self.writing, error).await);
            }
        };
        if let Some(previous) = self.writing.take() {
            previous.finish().await?;
        }
        if ctx.stopping.load(Ordering::SeqCst) {
            // Stays queued at the last committed page; the next start finishes it.
            return Ok(None);
        }
        let done = next.is_done();
        if next.truncated && done {
            tracing::warn!(run = %self.run_id, limit = audience::MAX_AUDIENCE,
                "fan-out stopped at the per-trigger audience limit; the rest were not notified");
        }
        let write = PageWrite::start(ctx, &self.run_id, plans, &next)?;
        if done {
            write.finish().await?;
            return Ok(None);
        }
        self.writing = Some(write);
        self.cursor = next;
        Ok(Some(self))
    }
}

/// One page's write, committing in the background: recipient runs, messages, waits and
/// the audience cursor (+ `completed` on the last page). Its messages are published as
/// soon as it committed, even while its run waits for its next slice.
struct PageWrite {
    task: tokio::task::JoinHandle<Result<(), StoreError>>,
    recipients: Arc<HashSet<RecipientRef>>,
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
        let bus = ctx.bus.clone();
        let scheduler = ctx.scheduler.clone();
        let now = ctx.clock.now();
        // A page of a few recipients weighs little: it commits in the writer's quick lane.
        let weight = plans.len();
        let task = tokio::spawn(async move {
            // Serialized here, not on the writer thread (see `waits::PreparedPlan`).
            let plans = plans
                .into_iter()
                .map(waits::prepare)
                .collect::<Result<Vec<_>, _>>()?;
            let inserted: Vec<MessageRow> = store
                .write_weighted(weight, move |db| {
                    let mut rows = Vec::new();
                    waits::write_page(db, &run_id, plans, &now, &mut rows)?;
                    runs::set_audience_cursor(db, &run_id, &cursor_json)?;
                    if done {
                        runs::set_run_status(db, &run_id, "completed")?;
                    }
                    Ok(rows)
                })
                .await?;
            bus.publish(&inserted);
            if paused {
                scheduler.wake();
            }
            Ok(())
        });
        Ok(PageWrite { task, recipients })
    }

    /// Waits for the commit (and the push that follows it).
    async fn finish(self) -> Result<(), StoreError> {
        self.task
            .await
            .map_err(|e| StoreError::Blocking(e.to_string()))?
    }
}

/// Lets a write in progress finish (so nothing runs behind a retry) and returns `error`.
async fn finish_then(writing: Option<PageWrite>, error: StoreError) -> StoreError {
    settle(writing).await;
    error
}

/// Waits for a write in progress, if any (its messages are then published).
async fn settle(writing: Option<PageWrite>) {
    if let Some(write) = writing
        && let Err(e) = write.finish().await
    {
        tracing::warn!(error = %e, "a fan-out page write failed");
    }
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
    page_size: usize,
) -> Result<(Vec<RecipientContext>, AudienceCursor), StoreError> {
    let audience = Audience {
        direct: &inputs.direct,
        actor: inputs.actor.as_ref(),
    };
    let (mut targets, next) = audience.next_page(db, cursor, page_size)?;
    if let Some(writing) = writing {
        targets.retain(|t| !writing.contains(&t.reference));
    }
    let fresh = runs::without_recipient_runs(db, &inputs.run_id, targets, |t| &t.reference)?;
    // Entities and effective preferences of the whole page: one read each.
    let refs: Vec<&RecipientRef> = fresh.iter().map(|t| &t.reference).collect();
    let mut entities = recipients::get_recipients_by_ref(db, &refs)?;
    let preferences = preference_check::effective_sets(
        db,
        &refs,
        inputs.tenant.as_deref(),
        inputs.tenant_default.as_ref(),
    )?;
    let contexts = fresh
        .into_iter()
        .zip(preferences)
        .map(|(t, preferences)| RecipientContext {
            entity: entities.remove(&t.reference),
            reference: t.reference,
            preferences,
            trigger_data: t.trigger_data,
            subscription: t.subscription,
            batch: None,
        })
        .collect();
    Ok((contexts, next))
}

async fn fail_run(ctx: &Ctx, run_id: &str, why: &str) -> Result<(), StoreError> {
    tracing::error!(run = %run_id, reason = why, "workflow run cannot execute; marking it failed");
    let id = run_id.to_owned();
    ctx.store
        .write(move |db| runs::set_run_status(db, &id, "failed"))
        .await
}
