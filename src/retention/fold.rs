//! When the fold runs (`store::fold`): every `--fold-interval-ms` (200 ms by default)
//! while anything is unfolded, and chunk after chunk, without waiting, while a whole chunk
//! is waiting.
//!
//! The bound this keeps: a feed's unfolded tail (what a badge read counts live) holds at
//! most the items written to that feed since the last fold began, so about one interval of
//! its deliveries plus the time one chunk waits in the writer's bulk lane; across all
//! feeds the tail stays under about one [`fold::CHUNK`] plus one interval of writes, as long
//! as the writer folds faster than it inserts (a fold costs one aggregate row read per
//! item and one counter upsert per (feed, tenant), less than an insert).
//!
//! Invariants: on SQLite each chunk is its own writer command in the bulk lane (weighing
//! [`fold::CHUNK`] items), so trigger acknowledgements never wait behind more than one; on
//! PostgreSQL each is a transaction of its own beside the writers, which never wait for it;
//! badges are exact at any moment without it (counters plus tail), so a crash or a slow
//! fold never costs correctness, only a longer tail to count.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::{Store, StoreResult, fold};

/// How often (ms) the fold looks for unfolded messages unless `--fold-interval-ms` says.
pub const DEFAULT_INTERVAL_MS: u64 = 200;

/// Folds until less than a chunk is waiting (or the task is stopping); how many chunks.
pub async fn catch_up(store: &Store, stopped: &impl Fn() -> bool) -> StoreResult<usize> {
    let mut chunks = 0;
    let mut progress = store.fold_progress().await?;
    while progress.unfolded() > 0 && !stopped() {
        let before = progress.folded_through;
        progress = store.fold_chunk().await?;
        if progress.folded_through == before {
            // Not now (PostgreSQL: a status change held the lock, or the newest numbers
            // are not settled yet): the next tick tries again.
            break;
        }
        chunks += 1;
        if progress.unfolded() < fold::CHUNK {
            break;
        }
        // Let the commands queued meanwhile go first.
        tokio::task::yield_now().await;
    }
    Ok(chunks)
}

pub(super) async fn run(store: Store, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = super::duty_ticker(every);
    // Several nodes: one folds (the duties node); two folding at once would count a chunk
    // twice.
    while super::next_duty_tick(&store, &mut ticker, &mut stop).await {
        let stopped = || *stop.borrow();
        match catch_up(&store, &stopped).await {
            Ok(_) => {}
            // PostgreSQL: status changes held the fold's lock past its short wait.
            Err(crate::store::StoreError::Sql(e)) if e.is_lock_timeout() => {
                tracing::debug!("feed counter fold waited out; retrying at the next tick")
            }
            Err(e) => {
                tracing::warn!(error = %e, "feed counter fold failed; retrying at the next tick")
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}
