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

mod dispatch;
mod open;
mod page;
mod run_loop;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, watch};

use super::bus::SharedBus;
use super::registry::Registry;
use super::run_failure::{self, FailedRuns, RunHooks, RunnerOptions};
use super::scheduler::Scheduler;
use crate::clock::Clock;
use crate::store::Store;

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
        let task = tokio::spawn(run_loop::run_loop(ctx.clone(), rx, stop_rx));
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
