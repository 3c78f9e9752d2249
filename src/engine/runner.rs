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
//! - A run's last page commits after its slice ended (for a one-recipient run, waiting for
//!   the commit was most of the slice, which capped one workflow's small runs at about
//!   `MAX_SLICES_PER_KEY` per commit latency). The run stays known to the dispatcher until
//!   that commit (a rescan cannot take it twice), a failed commit retries the run as any
//!   failed attempt does, and at most `MAX_FINISHING` such commits wait at once.
//! - A template that fails to render fails that recipient's step (recorded in the
//!   recipient run's `events`), never the whole run, and is never retried forever.
//! - Shutdown stops taking slices; writes already submitted commit and are published;
//!   the runs stay `queued` and resume at the next start.
//! - No committed run waits for a restart: besides `enqueue`, a periodic rescan (every
//!   `--run-rescan-ms`, one bounded page of the queued index per pass) admits every queued
//!   run the dispatcher does not hold. A failed attempt (store error, panic) is retried
//!   with backoff, and a run is given up (`failed`, with the reason) once its attempts are
//!   used up (see `run_failure`).

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
use super::run_failure::{self, FailedRuns, RunHooks, RunnerOptions};
use super::scheduler::Scheduler;
use super::waits;
use super::walk::{RecipientContext, RecipientPlan, RunContext, StepPosition, walk_isolated};
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
/// Last-page writes still committing after their slice ended. A run's last page does not
/// hold its slice while it commits (for a one-recipient run that wait is most of the
/// slice), but its run stays known until the commit, and this bounds what waits.
const MAX_FINISHING: usize = 256;

struct Ctx {
    store: Store,
    clock: Clock,
    scheduler: Scheduler,
    bus: SharedBus,
    registry: Arc<Registry>,
    page_size: usize,
    solo_page_size: usize,
    rescan_every: Duration,
    max_attempts: u32,
    retry_base: Duration,
    hooks: RunHooks,
    /// A debug build's crash-loop test hook (`run_failure::ABORT_WORKFLOW_ENV`).
    abort_workflow: Option<String>,
    stopping: AtomicBool,
    rescan: AtomicBool,
    /// Slices running (each is one run).
    running: AtomicUsize,
    failed: Arc<FailedRuns>,
}

/// Handle to the runner task.
pub struct Runner {
    tx: mpsc::Sender<(String, bool)>,
    ctx: Arc<Ctx>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Runner {
    /// Starts the runner; it first resumes every run left `queued`. `options` holds the
    /// page sizes (recipients per page, and slice, while other tenants have work or while
    /// one has the runner alone), the rescan period and the retry policy.
    pub fn spawn(
        store: Store,
        bus: SharedBus,
        registry: Arc<Registry>,
        scheduler: Scheduler,
        options: RunnerOptions,
    ) -> Runner {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let (stop, stop_rx) = watch::channel(false);
        let ctx = Arc::new(Ctx {
            store,
            clock: scheduler.clock().clone(),
            scheduler,
            bus,
            registry,
            page_size: options.page_size,
            solo_page_size: options.solo_page_size,
            rescan_every: options.rescan_every,
            max_attempts: options.max_attempts.max(1),
            retry_base: options.retry_base,
            hooks: options.hooks,
            abort_workflow: run_failure::abort_workflow(),
            stopping: AtomicBool::new(false),
            rescan: AtomicBool::new(true),
            running: AtomicUsize::new(0),
            failed: Arc::default(),
        });
        let task = tokio::spawn(run_loop(ctx.clone(), rx, stop_rx));
        Runner {
            tx,
            ctx,
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// Hands a run just committed by its insert (which counted its first attempt) to the
    /// runner. Never blocks: when the queue is full the runner rescans the table (the run
    /// is durable either way).
    pub fn enqueue(&self, run_id: String) {
        self.send(run_id, true);
    }

    /// Hands the runner a run that may be queued since earlier (an idempotent replay):
    /// taken, with its attempt counted, unless a runner task already holds it.
    pub fn enqueue_existing(&self, run_id: String) {
        self.send(run_id, false);
    }

    fn send(&self, run_id: String, counted: bool) {
        if self.tx.try_send((run_id, counted)).is_err() {
            self.ctx.rescan.store(true, Ordering::SeqCst);
        }
    }

    /// Runs given up (`failed` after their last attempt) since start (for `/metrics`).
    pub fn failed_total(&self) -> u64 {
        self.ctx.failed.total()
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
    /// Not started yet (or restarting from its row after a failed attempt); `counted`
    /// when the row already counts this attempt (a run just inserted).
    Fresh { run_id: String, counted: bool },
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
    slices: HashMap<tokio::task::Id, Held>,
    /// Last-page writes committing after their slice ended, by task.
    finishing: HashMap<tokio::task::Id, Held>,
    /// Runs waiting out their backoff before their next attempt (still known).
    retrying: JoinSet<(FairKey, Work)>,
    pages: PageSizer,
}

/// A run a task holds: its key, id and the attempt it is in (0 while not yet counted).
struct Held {
    key: FairKey,
    run_id: String,
    attempt: u32,
}

impl Dispatch {
    /// Queues `run` unless it is already held; `counted` when its row already counts the
    /// attempt about to start.
    fn admit(&mut self, run: runs::QueuedRun, counted: bool) {
        if self.known.insert(run.id.clone()) {
            let key = FairKey::of(&run.workflow_key, run.tenant.as_deref());
            self.queue.push_back(
                key,
                Work::Fresh {
                    run_id: run.id,
                    counted,
                },
            );
        }
    }

    /// A failed attempt: its reason is stored, and the run is queued again after its
    /// backoff (still known meanwhile, so no rescan takes it twice). Nothing when the
    /// runner is stopping: the run stays queued for the next start.
    fn retry(&mut self, ctx: &Arc<Ctx>, held: Held, reason: String) {
        tracing::error!(run = %held.run_id, attempt = held.attempt, error = %reason, "workflow run attempt failed");
        if ctx.stopping.load(Ordering::SeqCst) {
            self.known.remove(&held.run_id);
            return;
        }
        let ctx = ctx.clone();
        let wait = run_failure::backoff(ctx.retry_base, held.attempt.max(1));
        self.retrying.spawn(async move {
            run_failure::note_failure(&ctx.store, &held.run_id, &reason).await;
            tokio::time::sleep(wait).await;
            let work = Work::Fresh {
                run_id: held.run_id,
                counted: false,
            };
            (held.key, work)
        });
    }

    /// Starts slices while slots are free.
    fn fill(&mut self, ctx: &Arc<Ctx>, tasks: &mut JoinSet<SliceEnd>) {
        while tasks.len() < MAX_SLICES && self.finishing.len() < MAX_FINISHING {
            let Some((key, work)) = self.queue.pop() else {
                return;
            };
            let run_id = work.run_id().to_owned();
            let attempt = match &work {
                Work::Fresh { counted, .. } => u32::from(*counted),
                Work::Started(run) => run.attempt,
            };
            let others = self.queue.others_than(&key);
            let page_size = self.pages.next(others, std::time::Instant::now());
            let handle = tasks.spawn(slice(ctx.clone(), work, page_size));
            self.slices.insert(
                handle.id(),
                Held {
                    key,
                    run_id,
                    attempt,
                },
            );
            ctx.running.store(self.slices.len(), Ordering::Relaxed);
        }
    }

    /// A slice ended: its run goes back to the front of its key's queue, is done, is
    /// retried after a failed attempt, or waits for its last page to commit (returned, for
    /// the caller to wait on and [`Dispatch::track_finishing`]; the slice's slot is free
    /// meanwhile).
    fn ended(&mut self, id: tokio::task::Id, end: SliceEnd) -> Ended {
        let Some(mut held) = self.slices.remove(&id) else {
            return Ended::Nothing;
        };
        let key = held.key.clone();
        let last = match end {
            SliceEnd::Again(work) => {
                self.queue.push_front(key.clone(), work);
                Ended::Nothing
            }
            SliceEnd::Done => {
                self.known.remove(&held.run_id);
                Ended::Nothing
            }
            SliceEnd::Failed { attempt, reason } => {
                held.attempt = attempt.max(held.attempt);
                Ended::Retry(held, reason)
            }
            SliceEnd::Finishing { write, attempt } => Ended::Finishing(Finishing {
                key: key.clone(),
                run_id: held.run_id,
                attempt,
                write,
            }),
        };
        self.queue.done(&key);
        last
    }

    /// Notes the task waiting for a run's last page (the run stays known until then).
    fn track_finishing(&mut self, id: tokio::task::Id, key: FairKey, run_id: String, attempt: u32) {
        self.finishing.insert(
            id,
            Held {
                key,
                run_id,
                attempt,
            },
        );
    }

    /// A last page's write ended: the run is done, or (its write failed, with `failure`)
    /// returned for [`Dispatch::retry`].
    fn finished(&mut self, id: tokio::task::Id, failure: Option<String>) -> Option<(Held, String)> {
        let held = self.finishing.remove(&id)?;
        match failure {
            Some(reason) => Some((held, reason)),
            None => {
                self.known.remove(&held.run_id);
                None
            }
        }
    }
}

/// What the run loop does after a slice ended.
enum Ended {
    Nothing,
    /// The attempt failed: retry it (see [`Dispatch::retry`]).
    Retry(Held, String),
    /// The run's last page is committing.
    Finishing(Finishing),
}

async fn run_loop(
    ctx: Arc<Ctx>,
    mut rx: mpsc::Receiver<(String, bool)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut dispatch = Dispatch {
        queue: FairQueue::new(MAX_SLICES_PER_KEY),
        known: HashSet::new(),
        slices: HashMap::new(),
        finishing: HashMap::new(),
        retrying: JoinSet::new(),
        pages: PageSizer::new(ctx.page_size, ctx.solo_page_size),
    };
    let mut tasks: JoinSet<SliceEnd> = JoinSet::new();
    let mut finishing: JoinSet<Option<String>> = JoinSet::new();
    let mut rescan = tokio::time::interval(ctx.rescan_every);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Where the rescan goes on (a rowid of the queued index; 0 = from the start).
    let mut rescan_after = 0;
    loop {
        // A rescan that stopped at a full page goes on as soon as the dispatcher holds
        // less than half its depth (a backlog resumes at full speed, in bounded steps).
        if rescan_after > 0 && dispatch.known.len() < QUEUE_DEPTH / 2 {
            ctx.rescan.store(true, Ordering::SeqCst);
        }
        if ctx.rescan.swap(false, Ordering::SeqCst) {
            // Runs already sent are admitted first, as just inserted: a rescan taking
            // them would count an attempt (one write each) they have not begun.
            while let Ok(first) = rx.try_recv() {
                admit_new(&ctx, &mut dispatch, &mut rx, first).await;
            }
            rescan_after = rescan_page(&ctx, &mut dispatch, rescan_after).await;
        }
        dispatch.fill(&ctx, &mut tasks);
        tokio::select! {
            _ = stop.changed() => break,
            msg = rx.recv() => match msg {
                Some(first) => admit_new(&ctx, &mut dispatch, &mut rx, first).await,
                None => break,
            },
            Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let last = match ended {
                    Ok((id, end)) => dispatch.ended(id, end),
                    Err(e) => {
                        // A panic ends this run's attempt only: it is retried (and given up
                        // once its attempts are used up); every other run goes on.
                        let id = e.id();
                        let end = SliceEnd::Failed { attempt: 0, reason: run_failure::panic_reason(e) };
                        dispatch.ended(id, end)
                    }
                };
                ctx.running.store(dispatch.slices.len(), Ordering::Relaxed);
                match last {
                    Ended::Nothing => {}
                    Ended::Retry(held, reason) => dispatch.retry(&ctx, held, reason),
                    Ended::Finishing(Finishing { key, run_id, attempt, write }) => {
                        let task = finish_run(run_id.clone(), write);
                        let handle = finishing.spawn(task);
                        dispatch.track_finishing(handle.id(), key, run_id, attempt);
                    }
                }
            }
            Some(finished) = finishing.join_next_with_id(), if !finishing.is_empty() => {
                let retry = match finished {
                    Ok((id, failure)) => dispatch.finished(id, failure),
                    Err(e) => {
                        let id = e.id();
                        dispatch.finished(id, Some(run_failure::panic_reason(e)))
                    }
                };
                if let Some((held, reason)) = retry {
                    dispatch.retry(&ctx, held, reason);
                }
            }
            Some(due) = dispatch.retrying.join_next(), if !dispatch.retrying.is_empty() => {
                if let Ok((key, work)) = due {
                    dispatch.queue.push_back(key, work);
                }
            }
            _ = rescan.tick() => ctx.rescan.store(true, Ordering::SeqCst),
        }
    }
    // Runs waiting out a backoff stay queued for the next start.
    dispatch.retrying.abort_all();
    // Slices see `stopping` and end after the write in progress; parked runs' submitted
    // writes commit and are published. Their runs stay queued for the next start.
    while let Some(ended) = tasks.join_next_with_id().await {
        match ended {
            Ok((_, SliceEnd::Again(Work::Started(run)))) => settle(run.writing).await,
            Ok((_, SliceEnd::Finishing { write, .. })) => settle(Some(write)).await,
            _ => {}
        }
    }
    while finishing.join_next().await.is_some() {}
    for work in dispatch.queue.drain() {
        if let Work::Started(run) = work {
            settle(run.writing).await;
        }
    }
}

/// One bounded pass of the rescan: the next page of queued runs after `after`, those no
/// task holds admitted (their attempt is counted when they start). Returns where the next
/// pass starts: after this page when it was full, else from the start again (0).
async fn rescan_page(ctx: &Ctx, dispatch: &mut Dispatch, after: i64) -> i64 {
    match ctx
        .store
        .read(move |db| runs::queued_page(db, after, run_failure::RESCAN_PAGE))
        .await
    {
        Ok(page) => {
            let full = page.len() == run_failure::RESCAN_PAGE;
            let next = page.last().map_or(0, |(rowid, _)| *rowid);
            let before = dispatch.known.len();
            for (_, run) in page {
                dispatch.admit(run, false);
            }
            let admitted = dispatch.known.len() - before;
            if admitted > 0 {
                tracing::info!(
                    count = admitted,
                    "picked up queued workflow runs no task held"
                );
            }
            if full { next } else { 0 }
        }
        Err(e) => {
            // From the start at the next tick (not at once: a failing read must not spin).
            tracing::error!(error = %e, "could not scan queued runs");
            0
        }
    }
}

/// Keys `id` and every other id already waiting by their run rows (one read), and queues
/// those still `queued`.
async fn admit_new(
    ctx: &Ctx,
    dispatch: &mut Dispatch,
    rx: &mut mpsc::Receiver<(String, bool)>,
    first: (String, bool),
) {
    let mut sent = vec![first];
    while sent.len() < 512 {
        match rx.try_recv() {
            Ok(next) => sent.push(next),
            Err(_) => break,
        }
    }
    sent.retain(|(id, _)| !dispatch.known.contains(id));
    if sent.is_empty() {
        return;
    }
    let counted: HashMap<String, bool> = sent.iter().cloned().collect();
    let ids: Vec<String> = sent.into_iter().map(|(id, _)| id).collect();
    match ctx.store.read(move |db| runs::queued_among(db, &ids)).await {
        Ok(queued) => queued.into_iter().for_each(|run| {
            let counted = counted.get(&run.id).copied().unwrap_or(false);
            dispatch.admit(run, counted);
        }),
        Err(e) => {
            tracing::error!(error = %e, "could not read new runs; rescanning");
            ctx.rescan.store(true, Ordering::SeqCst);
        }
    }
}

/// Forgets `Idempotency-Key`s older than the replay window.
/// A run whose last page is committing, out of its slice.
struct Finishing {
    key: FairKey,
    run_id: String,
    attempt: u32,
    write: PageWrite,
}

/// How a slice ended, for the dispatcher.
enum SliceEnd {
    /// The run has more to do (or is to be retried): back to the front of its key's queue.
    Again(Work),
    /// The run completed, cannot run, was given up, or the runner is stopping.
    Done,
    /// The attempt failed (its number, 0 if not known): retried after a backoff.
    Failed { attempt: u32, reason: String },
    /// The run's last page is committing: the slice's slot is free, and the run is done
    /// (still known, so a rescan does not take it twice) once that commit is.
    Finishing { write: PageWrite, attempt: u32 },
}

/// One slice: opens the run if it is fresh, then one page of at most `page_size`
/// recipients.
async fn slice(ctx: Arc<Ctx>, work: Work, page_size: usize) -> SliceEnd {
    if ctx.stopping.load(Ordering::SeqCst) {
        return SliceEnd::Again(work);
    }
    let (outcome, attempt) = match work {
        Work::Fresh { run_id, counted } => match start_run(&ctx, &run_id, counted).await {
            Ok(Some(run)) => {
                let attempt = run.attempt;
                (run.next_page(&ctx, page_size).await, attempt)
            }
            Ok(None) => (Ok(PageEnd::Stopped), 0),
            Err(e) => (Err(e), 0),
        },
        Work::Started(run) => {
            let attempt = run.attempt;
            (run.next_page(&ctx, page_size).await, attempt)
        }
    };
    match outcome {
        Ok(PageEnd::More(run)) => SliceEnd::Again(Work::Started(run)),
        Ok(PageEnd::Stopped) => SliceEnd::Done,
        Ok(PageEnd::Last(write)) => SliceEnd::Finishing { write, attempt },
        Err(e) if ctx.stopping.load(Ordering::SeqCst) => {
            tracing::warn!(error = %e, "a workflow run attempt ended while stopping; it stays queued");
            SliceEnd::Done
        }
        Err(e) => SliceEnd::Failed {
            attempt,
            reason: e.to_string(),
        },
    }
}

/// Waits for a run's last page to commit; on failure, why (the run is then retried).
async fn finish_run(run_id: String, write: PageWrite) -> Option<String> {
    match write.finish().await {
        Ok(()) => None,
        Err(e) => {
            tracing::warn!(run = %run_id, error = %e, "a run's last page did not commit");
            Some(e.to_string())
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
/// (then it is marked failed, as it is once its attempts are used up). An attempt the
/// row does not count yet (`counted` false) is counted first, in its own write.
async fn start_run(
    ctx: &Ctx,
    run_id: &str,
    counted: bool,
) -> Result<Option<Box<ActiveRun>>, StoreError> {
    let (attempt, last_failure) = if counted {
        (1, None)
    } else {
        let id = run_id.to_owned();
        match ctx
            .store
            .write(move |db| runs::begin_attempt(db, &id))
            .await?
        {
            Some(begun) => begun,
            None => return Ok(None),
        }
    };
    // One read: the run's row and, for a run that can run, the facts every walk of it
    // reads (for a one-recipient run, reads are a good part of its cost).
    let id = run_id.to_owned();
    let opened = ctx
        .store
        .read(move |db| {
            let Some(run) = runs::get_run(db, &id)? else {
                return Ok(None);
            };
            if run.status != "queued" {
                return Ok(None);
            }
            let opened = match StoredRequest::parse(&run.request) {
                Ok(request) => {
                    let facts = run_facts(db, &request)?;
                    Ok((request, facts))
                }
                Err(e) => Err(e),
            };
            Ok(Some((run, opened)))
        })
        .await?;
    let Some((run, opened)) = opened else {
        return Ok(None);
    };
    let workflow = ctx.registry.get(&run.workflow_key);
    let (request, workflow, facts) = match (opened, workflow) {
        (Ok((r, facts)), Some(w)) => (r, w, facts),
        (Err(e), _) => {
            let why = format!("its stored request is corrupt: {e}");
            fail_run(ctx, run_id, &why, Vec::new()).await?;
            return Ok(None);
        }
        (Ok((r, _)), None) => {
            let direct = r.recipients.into_iter().map(|(r, _)| r).collect();
            fail_run(ctx, run_id, "its workflow no longer exists", direct).await?;
            return Ok(None);
        }
    };
    if attempt > ctx.max_attempts {
        let why = run_failure::exhausted_reason(ctx.max_attempts, last_failure.as_deref());
        let direct = request.recipients.into_iter().map(|(r, _)| r).collect();
        fail_run(ctx, run_id, &why, direct).await?;
        return Ok(None);
    }
    if ctx.hooks.panic_workflow.as_deref() == Some(run.workflow_key.as_str()) {
        panic!("test hook: runs of `{}` panic", run.workflow_key);
    }
    if ctx.abort_workflow.as_deref() == Some(run.workflow_key.as_str()) {
        tracing::error!(run = %run_id, attempt, "test hook: aborting the process");
        std::process::abort();
    }
    let skip_delay = request.skip_delay;
    let mut run_ctx = RunContext::new(
        run_id.to_owned(),
        workflow,
        request.tenant.clone(),
        request.actor.clone(),
        request.data,
        facts.actor,
        facts.tenant,
    );
    run_ctx.clock = ctx.clock.clone();
    run_ctx.skip_delay = skip_delay;
    run_ctx.translations = ctx.registry.translations().snapshot();
    run_ctx.panic_recipient = ctx.hooks.panic_recipient.clone();
    run_ctx.started_ms = runs::started_ms(&run.inserted_at);
    let page = Arc::new(PageInputs {
        run_id: run_id.to_owned(),
        direct: request.recipients,
        actor: request.actor,
        tenant: request.tenant,
        tenant_default: facts.tenant_default,
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

/// What the walks of a run read besides each recipient.
struct RunFacts {
    /// The actor's entity (a minimal one when never identified).
    actor: Option<Value>,
    tenant: Option<Value>,
    /// The tenant's default preferences.
    tenant_default: Option<Value>,
}

fn run_facts(db: &Db<'_>, request: &StoredRequest) -> Result<RunFacts, StoreError> {
    let tenant = request.tenant.as_deref();
    Ok(RunFacts {
        tenant_default: preference_check::tenant_default(db, tenant)?,
        actor: match &request.actor {
            Some(a) => {
                Some(recipients::get_recipient(db, a)?.unwrap_or_else(|| recipients::minimal(a)))
            }
            None => None,
        },
        tenant: match tenant {
            Some(t) => recipients::get_tenant(db, t)?,
            None => None,
        },
    })
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
    /// One page: the run while pages remain, its last page's write (still committing)
    /// once there are none, or `Stopped` when the runner is stopping (the run then stays
    /// queued at its last committed page).
    ///
    /// Pipelined: a page is read and walked while the previous page's write commits. Its
    /// recipients are excluded from the page being read (they may not be committed yet),
    /// and writes stay in page order, so the stored cursor only moves forward.
    async fn next_page(
        mut self: Box<Self>,
        ctx: &Ctx,
        page_size: usize,
    ) -> Result<PageEnd, StoreError> {
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
                .map(|r| walk_isolated(&walked, r, &StepPosition::start()))
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
            return Ok(PageEnd::Stopped);
        }
        let done = next.is_done();
        if next.truncated && done {
            tracing::warn!(run = %self.run_id, limit = audience::MAX_AUDIENCE,
                "fan-out stopped at the per-trigger audience limit; the rest were not notified");
        }
        let write = PageWrite::start(ctx, &self.run_id, self.run_ctx.started_ms, plans, &next)?;
        if done {
            return Ok(PageEnd::Last(write));
        }
        self.writing = Some(write);
        self.cursor = next;
        Ok(PageEnd::More(self))
    }
}

/// Where a run stands after one of its pages.
enum PageEnd {
    /// Pages remain.
    More(Box<ActiveRun>),
    /// The run's last page, committing.
    Last(PageWrite),
    /// The runner is stopping (or the run no longer runs).
    Stopped,
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
        started_ms: i64,
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
                .map(|plan| waits::prepare(plan, &run_id, started_ms))
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

/// Ends a run `failed` with `why` (see `run_failure::give_up`).
async fn fail_run(
    ctx: &Ctx,
    run_id: &str,
    why: &str,
    direct: Vec<RecipientRef>,
) -> Result<(), StoreError> {
    run_failure::give_up(&ctx.store, &ctx.failed, run_id, why, direct).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatch() -> Dispatch {
        Dispatch {
            queue: FairQueue::new(MAX_SLICES_PER_KEY),
            known: HashSet::new(),
            slices: HashMap::new(),
            finishing: HashMap::new(),
            retrying: JoinSet::new(),
            pages: PageSizer::new(100, 500),
        }
    }

    fn queued(id: &str) -> runs::QueuedRun {
        runs::QueuedRun {
            id: id.into(),
            workflow_key: "w".into(),
            tenant: None,
        }
    }

    /// Takes the next queued run into a (pretend) slice, as `fill` does; returns its id.
    fn start_slice(d: &mut Dispatch, ids: &mut JoinSet<()>) -> (tokio::task::Id, Work) {
        let (key, work) = d.queue.pop().expect("a queued run");
        let id = ids.spawn(async {}).id();
        let held = Held {
            key,
            run_id: work.run_id().to_owned(),
            attempt: 1,
        };
        d.slices.insert(id, held);
        (id, work)
    }

    /// Queues `run`, takes it into a slice and ends the slice on its last page's write, as
    /// the run loop does; returns the id of the task waiting for that write.
    fn last_page_committing(d: &mut Dispatch, ids: &mut JoinSet<()>, run: &str) -> tokio::task::Id {
        d.admit(queued(run), true);
        let (slice, _) = start_slice(d, ids);
        let write = PageWrite {
            task: tokio::spawn(async { Ok(()) }),
            recipients: Arc::default(),
        };
        let end = SliceEnd::Finishing { write, attempt: 1 };
        let Ended::Finishing(last) = d.ended(slice, end) else {
            panic!("the last page is committing");
        };
        assert_eq!(last.run_id, run);
        let waiting = ids.spawn(async {}).id();
        d.track_finishing(waiting, last.key, last.run_id, 1);
        waiting
    }

    #[tokio::test]
    async fn a_run_whose_last_page_is_committing_is_not_taken_again_until_it_committed() {
        let mut d = dispatch();
        let mut ids = JoinSet::new();
        let waiting = last_page_committing(&mut d, &mut ids, "r1");

        // The row still says `queued` until the commit: a rescan lists it, and must not
        // queue it a second time (its page would be walked and written twice).
        d.admit(queued("r1"), false);
        assert!(
            d.queue.is_empty(),
            "taken twice while its last page commits"
        );
        // Its slot is free meanwhile: another run of the same key starts.
        d.admit(queued("r2"), false);
        assert_eq!(start_slice(&mut d, &mut ids).1.run_id(), "r2");

        assert!(d.finished(waiting, None).is_none());
        assert!(!d.known.contains("r1"), "forgotten once committed");
    }

    #[tokio::test]
    async fn a_run_whose_last_commit_failed_is_retried_and_stays_held_meanwhile() {
        let mut d = dispatch();
        let mut ids = JoinSet::new();
        let waiting = last_page_committing(&mut d, &mut ids, "r1");

        let (held, reason) = d
            .finished(waiting, Some("commit failed: disk full".into()))
            .expect("retried");
        assert_eq!((held.run_id.as_str(), held.attempt), ("r1", 1));
        assert_eq!(reason, "commit failed: disk full");
        assert!(
            d.known.contains("r1"),
            "a rescan must not take it meanwhile"
        );
        d.admit(queued("r1"), false);
        assert!(d.queue.is_empty());
    }

    #[tokio::test]
    async fn a_failed_slice_frees_its_slot_and_keeps_its_run_held_for_the_retry() {
        let mut d = dispatch();
        let mut ids = JoinSet::new();
        d.admit(queued("r1"), true);
        let (slice, _) = start_slice(&mut d, &mut ids);
        let end = SliceEnd::Failed {
            attempt: 3,
            reason: "the run panicked: boom".into(),
        };
        let Ended::Retry(held, reason) = d.ended(slice, end) else {
            panic!("a failed attempt is retried");
        };
        assert_eq!((held.run_id.as_str(), held.attempt), ("r1", 3));
        assert_eq!(reason, "the run panicked: boom");
        assert!(d.slices.is_empty());
        assert!(d.known.contains("r1"));
    }
}
