//! The checkpoints of a recipient's plan that only the write transaction can decide
//! exactly (concurrent runs race for them): whether a batch is open for an identity, how
//! many activities it holds, whether a gate (throttle, `trigger_frequency`) still lets
//! one more pass, and whether a recorded cancel covers a recipient about to pause. The
//! decision logic is the engine's (`engine::batch_join::decide`, `engine::waits`), over
//! [`Checkpoints`].

use super::super::batches::{self, OpenBatch};
use super::super::{Db, StoreResult, cancellations, timers};
use crate::model::RecipientRef;

/// What the engine's write-time decisions ask, in plan order, inside the write.
pub trait Checkpoints {
    /// The open batch of `identity`, if any.
    fn open_batch(&self, identity: &str) -> StoreResult<Option<OpenBatch>>;

    /// How many live (not cancelled) activities batch `batch_id` holds now.
    fn batch_items(&self, batch_id: &str) -> StoreResult<u64>;

    /// Passes gate `key` if it is open (fewer than `limit` passes in its window, or no
    /// window: one opens now, closing at `closes_at`, none = never) and records the pass;
    /// `false` = closed.
    fn pass_gate(
        &self,
        key: &str,
        limit: u32,
        closes_at: Option<&str>,
        now: &str,
    ) -> StoreResult<bool>;

    /// The cancellation key of a cancel recorded for run `run_id` that covers
    /// `recipient` (see `store::cancellations`), if any.
    fn cancellation(&self, run_id: &str, recipient: &RecipientRef) -> StoreResult<Option<String>>;
}

impl Checkpoints for Db<'_> {
    fn open_batch(&self, identity: &str) -> StoreResult<Option<OpenBatch>> {
        batches::find_open(self, identity)
    }

    fn batch_items(&self, batch_id: &str) -> StoreResult<u64> {
        Ok(u64::try_from(batches::fingerprint(self, batch_id)?.0).unwrap_or(0))
    }

    fn pass_gate(
        &self,
        key: &str,
        limit: u32,
        closes_at: Option<&str>,
        now: &str,
    ) -> StoreResult<bool> {
        timers::gate_pass(self, key, limit, closes_at, now)
    }

    fn cancellation(&self, run_id: &str, recipient: &RecipientRef) -> StoreResult<Option<String>> {
        cancellations::covering(self, run_id, recipient)
    }
}
