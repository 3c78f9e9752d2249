//! The checkpoints of a recipient's plan that only the write transaction can decide
//! exactly (concurrent runs race for them): whether a batch is open for an identity, and
//! whether a gate (throttle, `trigger_frequency`) still lets one more pass. The decision
//! logic is the engine's (`engine::batch_join::decide`), over [`Checkpoints`].

use super::super::batches::{self, OpenBatch};
use super::super::{Db, StoreResult, timers};

/// What `engine::batch_join::decide` asks, in plan order, inside the write.
pub trait Checkpoints {
    /// The open batch of `identity`, if any.
    fn open_batch(&self, identity: &str) -> StoreResult<Option<OpenBatch>>;

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
}

impl Checkpoints for Db<'_> {
    fn open_batch(&self, identity: &str) -> StoreResult<Option<OpenBatch>> {
        batches::find_open(self, identity)
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
}
