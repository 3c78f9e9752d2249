//! Housekeeping: what the server deletes on its own, always on, whatever the retention
//! settings: idempotency keys past Knock's 24 h replay window, throttle windows that
//! closed, bulk operations older than [`BULK_OPERATION_DAYS`], and cancellations that
//! cover no queued run any more. Without it these tables grow forever.
//!
//! Invariants: like retention, every delete is one batch of at most [`BATCH`] rows found
//! through an index, in its own writer command weighing [`BATCH`] items (the writer's
//! bulk lane, so the quick lane of trigger acknowledgements is never held behind it),
//! and the task yields between batches. A row goes only when strictly older than its
//! cutoff, computed from the injectable clock's `now`.

use chrono::{DateTime, Utc};

use super::{BATCH, PassReport, timed};
use crate::engine::accept::IDEMPOTENCY_WINDOW_HOURS;
use crate::store::{Expiry, Store, StoreResult};

/// Days a finished bulk operation stays readable at `GET /v1/bulk_operations/{id}`.
pub const BULK_OPERATION_DAYS: i64 = 7;

/// The housekeeping part of a pass as of `now`; `stopped` is checked between batches.
pub(super) async fn run(
    store: &Store,
    now: DateTime<Utc>,
    stopped: &impl Fn() -> bool,
    report: &mut PassReport,
) -> StoreResult<()> {
    let keys_cutoff = crate::clock::format(now - chrono::Duration::hours(IDEMPOTENCY_WINDOW_HOURS));
    let now_text = crate::clock::format(now);
    let bulk_cutoff = crate::clock::format(now - chrono::Duration::days(BULK_OPERATION_DAYS));
    report.idempotency_keys += drain(
        store,
        stopped,
        report,
        Expiry::IdempotencyKeys {
            cutoff: keys_cutoff,
        },
    )
    .await?;
    report.gates += drain(store, stopped, report, Expiry::Gates { now: now_text }).await?;
    report.bulk_operations += drain(
        store,
        stopped,
        report,
        Expiry::BulkOperations {
            cutoff: bulk_cutoff,
        },
    )
    .await?;
    report.cancellations += drain(store, stopped, report, Expiry::ReleasedCancellations).await?;
    Ok(())
}

/// Deletes what `expiry` names in batches of at most [`BATCH`] rows until a batch deletes
/// fewer, or the task is stopping; returns the rows deleted.
pub(super) async fn drain(
    store: &Store,
    stopped: &impl Fn() -> bool,
    report: &mut PassReport,
    expiry: Expiry,
) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        if stopped() {
            return Ok(total);
        }
        let (n, took) = timed(store.delete_expired(expiry.clone(), BATCH)).await?;
        report.record_batch(took);
        total += n;
        if n < BATCH {
            return Ok(total);
        }
        // Let the triggers queued meanwhile go first.
        tokio::task::yield_now().await;
    }
}
