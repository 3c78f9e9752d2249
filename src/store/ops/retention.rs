//! Retention and housekeeping deletes, and the feed-counter fold: each call is one
//! bounded batch in its own writer command on the bulk lane, so trigger acknowledgements
//! never wait behind it.

use crate::store::fold::{self, Progress};
use crate::store::retention::{self as sql, Age, Channels};
use crate::store::{Db, Store, StoreResult};

/// One kind of expired row, with its cutoff (a stored timestamp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// Messages of `channels` whose `age` timestamp is older than `cutoff`.
    Messages {
        age: Age,
        channels: Channels,
        cutoff: String,
    },
    /// Finished runs older than `cutoff`.
    Runs { cutoff: String },
    /// Idempotency keys older than `cutoff`.
    IdempotencyKeys { cutoff: String },
    /// Throttle windows closed at `now`.
    Gates { now: String },
    /// Bulk operations older than `cutoff`.
    BulkOperations { cutoff: String },
    /// Cancellations that cover no queued run any more.
    ReleasedCancellations,
}

impl Expiry {
    fn delete(&self, db: &Db<'_>, limit: usize) -> StoreResult<usize> {
        match self {
            Expiry::Messages {
                age,
                channels,
                cutoff,
            } => sql::delete_expired_messages(db, *age, channels, cutoff, limit),
            Expiry::Runs { cutoff } => sql::delete_expired_runs(db, cutoff, limit),
            Expiry::IdempotencyKeys { cutoff } => {
                sql::delete_expired_idempotency_keys(db, cutoff, limit)
            }
            Expiry::Gates { now } => sql::delete_expired_gates(db, now, limit),
            Expiry::BulkOperations { cutoff } => {
                sql::delete_expired_bulk_operations(db, cutoff, limit)
            }
            Expiry::ReleasedCancellations => sql::delete_released_cancellations(db, limit),
        }
    }
}

impl Store {
    /// Deletes at most `limit` rows `expiry` names, in one writer command weighing
    /// `limit` items; how many went (fewer than `limit`: nothing more is expired).
    pub(crate) async fn delete_expired(&self, expiry: Expiry, limit: usize) -> StoreResult<usize> {
        self.write_weighted(limit, move |db| expiry.delete(db, limit))
            .await
    }

    /// How far the feed-counter fold has got.
    pub(crate) async fn fold_progress(&self) -> StoreResult<Progress> {
        self.read(fold::progress).await
    }

    /// Folds one chunk of messages into the feed counters, in one writer command;
    /// the progress after it.
    pub(crate) async fn fold_chunk(&self) -> StoreResult<Progress> {
        self.write_weighted(fold::CHUNK as usize, |db| fold::fold(db, fold::CHUNK))
            .await
    }
}
