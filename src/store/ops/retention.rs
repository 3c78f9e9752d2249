//! Retention and housekeeping deletes, and the feed-counter fold: each call is one
//! bounded batch in its own writer command on the bulk lane, so trigger acknowledgements
//! never wait behind it.

use crate::store::fold::{self, Progress};
use crate::store::retention::{self as sql, Age, Channels};
use crate::store::{Db, Store, StoreError, StoreResult};

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

    /// Folds one chunk of messages into the feed counters; the progress after it. On
    /// SQLite one writer command (the one writer settles every sequence number); on
    /// PostgreSQL a transaction of its own on a pooled connection, beside the writer, so
    /// a fan-out's pages never wait for it (`store::fold`).
    pub async fn fold_chunk(&self) -> StoreResult<Progress> {
        if !self.is_postgres() {
            let mut one_writer = fold::Horizon::default();
            return self
                .write_weighted(fold::CHUNK as usize, move |db| {
                    fold::fold(db, fold::CHUNK, &mut one_writer)
                })
                .await;
        }
        let horizon = self.fold_horizon.clone();
        self.read(move |db| {
            let mut horizon = horizon
                .lock()
                .map_err(|_| StoreError::Blocking("the fold's horizon lock is poisoned".into()))?;
            fold::fold_in_own_transaction(db, fold::CHUNK, &mut horizon)
        })
        .await
    }
}
