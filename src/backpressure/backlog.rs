//! The backlog gate: refuses triggers while the durable backlog (queued runs in SQLite) is
//! at `--max-queued-runs`, or the recipients those runs listed are at `--max-queued-items`
//! (runs alone let 1,000-recipient triggers queue a thousand times more work).
//!
//! Counting the queued runs costs a read that grows with the backlog, so it is sampled: a
//! check re-reads the counts when the last read is older than [`REFRESH`] (one reader at a
//! time; the others use the sample), and every trigger (and its recipients) accepted since
//! that read is added to it. The gate refuses once a count is AT its limit, so one trigger
//! may take the items past it by its own recipients (at most 1,000): a trigger larger
//! than the room left is admitted rather than refused forever. The estimate can only run ahead of the truth by the runs finished since the
//! read, never behind it by more than a concurrent read's accepts, so the gate errs
//! toward refusing for at most [`REFRESH`]. Time is the app's injectable clock, so tests
//! decide when a sample goes stale.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};

use super::refused::{Reason, Refused};
use crate::clock::Clock;
use crate::store::Store;
use crate::store::backlog::{self, Backlog};

/// How old a sample may be before a check reads the count again.
pub const REFRESH: Duration = Duration::milliseconds(100);
/// What a refused client is told to wait: long enough for the runner to finish runs and
/// for the next sample, short enough not to idle a drained server.
const RETRY_AFTER_SECS: u64 = 1;

#[derive(Default)]
struct Sample {
    read_at: Option<DateTime<Utc>>,
    backlog: Backlog,
    accepted_since: u64,
    items_since: u64,
}

/// The sampled backlog and its limits.
pub struct BacklogGate {
    store: Store,
    clock: Clock,
    limit: u32,
    item_limit: u32,
    sample: Mutex<Sample>,
    reading: AtomicBool,
}

/// Clears the one-reader flag however the read ends (a dropped request future included).
struct Reading<'a>(&'a AtomicBool);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl BacklogGate {
    /// A gate refusing at `limit` queued runs or `item_limit` queued recipients.
    pub fn new(store: Store, clock: Clock, limit: u32, item_limit: u32) -> Self {
        BacklogGate {
            store,
            clock,
            limit,
            item_limit,
            sample: Mutex::new(Sample::default()),
            reading: AtomicBool::new(false),
        }
    }

    /// Refuses when the estimated queued runs, or their recipients, are at their limit.
    pub async fn check(&self) -> Result<(), Refused> {
        self.refresh_if_stale().await;
        let (runs, items) = self.estimate();
        for (reason, queued, limit) in [
            (Reason::Backlog, runs, self.limit),
            (Reason::BacklogItems, items, self.item_limit),
        ] {
            if queued >= u64::from(limit) {
                return Err(Refused::Backlog {
                    reason,
                    queued,
                    limit,
                    retry_after_secs: RETRY_AFTER_SECS,
                });
            }
        }
        Ok(())
    }

    /// Counts a trigger just accepted, listing `items` recipients, until the next read
    /// sees its run.
    pub fn accepted(&self, items: u32) {
        let mut sample = self.lock();
        sample.accepted_since += 1;
        sample.items_since += u64::from(items);
    }

    /// The latest sample (refreshed when stale), for `/metrics`.
    pub async fn current(&self) -> Backlog {
        self.refresh_if_stale().await;
        self.lock().backlog.clone()
    }

    /// (queued runs, queued recipients) as last read plus what was accepted since.
    fn estimate(&self) -> (u64, u64) {
        let sample = self.lock();
        (
            sample.backlog.queued_runs + sample.accepted_since,
            sample.backlog.queued_items + sample.items_since,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sample> {
        // A panic while holding this lock leaves plain counters behind; keep using them.
        self.sample.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn refresh_if_stale(&self) {
        let now = self.clock.now_utc();
        let stale = self.lock().read_at.is_none_or(|at| now - at >= REFRESH);
        if !stale || self.reading.swap(true, Ordering::AcqRel) {
            return;
        }
        let _reading = Reading(&self.reading);
        match self.store.read(backlog::backlog).await {
            Ok(backlog) => {
                let mut sample = self.lock();
                *sample = Sample {
                    read_at: Some(now),
                    backlog,
                    accepted_since: 0,
                    items_since: 0,
                };
            }
            // Keep the old estimate: a failing read must not open or close the gate.
            Err(e) => tracing::warn!(error = %e, "could not count queued runs"),
        }
    }
}
