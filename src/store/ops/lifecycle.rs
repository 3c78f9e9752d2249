//! Snooze, wake, pin and expiry of messages, as the engine's lifecycle runs them. Each
//! op is one write that claims what it changes by the change itself, so a due item fires
//! exactly once (see `store::lifecycle`).

use std::collections::HashSet;

use crate::model::message::MessageRow;
use crate::store::{Store, StoreResult, lifecycle};

impl Store {
    /// Snoozes each of `ids` until `until` in one write (unknown ids skipped, duplicates
    /// once); the snoozed rows in request order.
    pub(crate) async fn snooze_messages(
        &self,
        ids: Vec<String>,
        until: String,
        now: String,
    ) -> StoreResult<Vec<MessageRow>> {
        self.write(move |db| {
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for id in ids.iter().filter(|id| seen.insert(id.as_str())) {
                if let Some(row) = lifecycle::snooze(db, id, &until, &now)? {
                    out.push(row);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Wakes message `id` now if it is snoozed; `None` when it was not.
    pub(crate) async fn wake_message(
        &self,
        id: String,
        now: String,
    ) -> StoreResult<Option<MessageRow>> {
        self.write(move |db| lifecycle::wake(db, &id, None, &now))
            .await
    }

    /// Pins (`pinned`) or unpins message `id`; `None` for an unknown id.
    pub(crate) async fn pin_message(
        &self,
        id: String,
        pinned: bool,
        now: String,
    ) -> StoreResult<Option<MessageRow>> {
        self.write(move |db| lifecycle::set_pinned(db, &id, pinned.then_some(now.as_str()), &now))
            .await
    }

    /// In one write, applies up to `limit` expiries due at `now` and purges up to `limit`
    /// expired items whose grace ended before `cutoff`: the expired rows (their feeds'
    /// counts moved) and how many were purged.
    pub(crate) async fn expire_and_purge(
        &self,
        now: String,
        cutoff: String,
        limit: usize,
    ) -> StoreResult<(Vec<MessageRow>, usize)> {
        self.write(move |db| {
            let expired = lifecycle::expire_due(db, &now, limit)?;
            let purged = lifecycle::purge_expired(db, &cutoff, limit)?;
            Ok((expired, purged))
        })
        .await
    }

    /// The earliest pending expiry and the earliest already-expired item (whose purge
    /// follows a grace period), in one read.
    pub(crate) async fn next_expiries(&self) -> StoreResult<(Option<String>, Option<String>)> {
        self.read(|db| Ok((lifecycle::next_expiry(db)?, lifecycle::next_expired(db)?)))
            .await
    }

    /// The earliest snoozed item's wake time.
    pub(crate) async fn next_wake(&self) -> StoreResult<Option<String>> {
        self.read(lifecycle::next_wake).await
    }

    /// Up to `limit` snoozed items due at `now`: (id, snoozed-until).
    pub(crate) async fn due_wakes(
        &self,
        now: String,
        limit: usize,
    ) -> StoreResult<Vec<(String, String)>> {
        self.read(move |db| lifecycle::due_wakes(db, &now, limit))
            .await
    }

    /// Wakes each `(id, until)` in one write, each only if it is still snoozed until that
    /// very time (not moved or woken meanwhile): the woken rows.
    pub(crate) async fn wake_due(
        &self,
        due: Vec<(String, String)>,
        now: String,
    ) -> StoreResult<Vec<MessageRow>> {
        self.write(move |db| {
            let mut out = Vec::with_capacity(due.len());
            for (id, at) in &due {
                if let Some(row) = lifecycle::wake(db, id, Some(at), &now)? {
                    out.push(row);
                }
            }
            Ok(out)
        })
        .await
    }
}
