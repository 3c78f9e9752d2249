//! The scheduler: one task that sleeps until the earliest due time among its
//! [`DueSource`]s, fires what is due, and sleeps again. Inserting earlier work calls
//! [`Scheduler::wake`], which makes it re-read the due times at once. Time comes from the
//! injectable [`Clock`], so tests advance a manual clock and everything due fires at once.
//!
//! Extension point: a due-source is anything with pending rows that have a due time
//! (delay timers and batch windows here; schedules plug in the same way):
//! ```ignore
//! struct Schedules { /* … */ }
//! impl DueSource for Schedules {
//!     fn name(&self) -> &'static str { "schedules" }
//!     fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
//!         Box::pin(async move { next_due_at(&self.store).await })
//!     }
//!     fn fire_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
//!         Box::pin(async move { /* claim + act in ONE write per item */ })
//!     }
//! }
//! engine.scheduler().register(Arc::new(Schedules { … }));
//! ```
//!
//! Invariants (each source must keep them):
//! - Exactly once: an item is claimed (its row deleted or advanced) in the SAME write
//!   transaction that records its effect, so a crash before that commit fires it again
//!   after restart and a crash after it never fires it twice.
//! - Overdue work (e.g. due while the server was down) fires at the first pass after
//!   start, once.
//! - `fire_due` handles a bounded slice and returns how many it fired; the scheduler
//!   calls it again at once while it keeps firing, so one huge backlog cannot starve the
//!   other sources.
//! - No work pending = no CPU: the task waits on the wake signal only.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::store::StoreResult;

/// A kind of timed work the scheduler drives (see the module docs).
pub trait DueSource: Send + Sync + 'static {
    /// For logs.
    fn name(&self) -> &'static str;
    /// The earliest due time among this source's pending items, if any (one indexed read).
    fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>>;
    /// Fires a bounded slice of the items due at or before `now`, each exactly once;
    /// returns how many fired.
    fn fire_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>>;
}

/// How long to back off after a source failed (e.g. the disk is full).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// With several nodes, how often the duties node re-reads due times: a delay another node
/// stored fires at most this late.
pub const SHARED_POLL: Duration = Duration::from_millis(500);

struct Inner {
    clock: Clock,
    /// Several nodes (PostgreSQL): fire only while this node holds the duties lease.
    gate: RwLock<Option<crate::store::Store>>,
    sources: RwLock<Vec<Arc<dyn DueSource>>>,
    wake: Notify,
}

/// Handle to the scheduler task; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
    stop: Arc<watch::Sender<bool>>,
}

impl Scheduler {
    /// Starts the scheduler task (with no sources yet).
    pub fn spawn(clock: Clock) -> (Scheduler, tokio::task::JoinHandle<()>) {
        let inner = Arc::new(Inner {
            clock,
            gate: RwLock::new(None),
            sources: RwLock::new(Vec::new()),
            wake: Notify::new(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(inner.clone(), stop_rx));
        (
            Scheduler {
                inner,
                stop: Arc::new(stop),
            },
            task,
        )
    }

    /// Adds a due-source; its overdue items fire at once.
    pub fn register(&self, source: Arc<dyn DueSource>) {
        if let Ok(mut sources) = self.inner.sources.write() {
            sources.push(source);
        }
        self.wake();
    }

    /// Makes the scheduler re-read due times now (call after committing new timed work).
    /// Fires only while `store`'s node holds the cluster duties (several nodes on one
    /// database), and re-reads the due times at least every [`SHARED_POLL`] (work another
    /// node inserted does not wake this one). No effect on SQLite.
    pub fn gate_on(&self, store: crate::store::Store) {
        if store.is_shared()
            && let Ok(mut gate) = self.inner.gate.write()
        {
            *gate = Some(store);
        }
        self.wake();
    }

    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// The clock the scheduler runs on.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Stops the task; pending work stays stored and fires after the next start.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let gate = inner.gate.read().ok().and_then(|g| g.clone());
        if let Some(store) = &gate
            && !store.holds_duties()
        {
            // Another node does the duties; wait until this one holds them.
            tokio::select! {
                _ = stop.changed() => return,
                _ = store.duties_changed() => {}
                _ = tokio::time::sleep(SHARED_POLL) => {}
            }
            continue;
        }
        let sources: Vec<Arc<dyn DueSource>> =
            inner.sources.read().map(|s| s.clone()).unwrap_or_default();
        let mut next: Option<DateTime<Utc>> = None;
        let mut failed = false;
        let mut busy = false;
        for source in &sources {
            let now = inner.clock.now_utc();
            match source.fire_due(now).await {
                Ok(0) => {}
                Ok(_) => busy = true,
                Err(e) => {
                    tracing::error!(source = source.name(), error = %e, "scheduler could not fire due work");
                    failed = true;
                }
            }
            match source.next_due().await {
                Ok(Some(due)) => next = Some(next.map_or(due, |n| n.min(due))),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(source = source.name(), error = %e, "scheduler could not read due times");
                    failed = true;
                }
            }
        }
        if busy {
            // A slice fired: go again before sleeping (bounded slices keep sources fair).
            tokio::task::yield_now().await;
            continue;
        }
        let clock = inner.clock.clone();
        tokio::select! {
            _ = stop.changed() => return,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(RETRY_AFTER), if failed => {}
            _ = tokio::time::sleep(SHARED_POLL), if gate.is_some() => {}
            _ = async {
                match next {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            }, if !failed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Items with due times; firing removes them.
    struct Items(Mutex<Vec<DateTime<Utc>>>, Mutex<Vec<DateTime<Utc>>>);

    impl DueSource for Items {
        fn name(&self) -> &'static str {
            "items"
        }
        fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
            Box::pin(async move {
                Ok(self
                    .0
                    .lock()
                    .map(|v| v.iter().min().copied())
                    .unwrap_or(None))
            })
        }
        fn fire_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
            Box::pin(async move {
                let mut items = self.0.lock().expect("lock");
                let (due, rest): (Vec<_>, Vec<_>) = items.iter().partition(|t| **t <= now);
                *items = rest;
                self.1.lock().expect("lock").extend(due.iter().copied());
                Ok(due.len())
            })
        }
    }

    #[tokio::test]
    async fn fires_each_item_once_when_the_manual_clock_reaches_it() {
        let start = crate::clock::parse("2026-01-01T00:00:00Z").expect("time");
        let clock = Clock::manual(start);
        let (scheduler, _task) = Scheduler::spawn(clock.clone());
        let items = Arc::new(Items(
            Mutex::new(vec![
                start + chrono::Duration::minutes(10),
                start + chrono::Duration::minutes(1),
            ]),
            Mutex::new(Vec::new()),
        ));
        scheduler.register(items.clone());
        let fired = || items.1.lock().map(|v| v.len()).unwrap_or(0);
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(fired(), 0);
        clock.advance(chrono::Duration::minutes(2));
        wait_until(|| fired() == 1).await;
        clock.advance(chrono::Duration::hours(1));
        wait_until(|| fired() == 2).await;
        scheduler.stop();
    }

    async fn wait_until(done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("condition not reached");
    }
}
