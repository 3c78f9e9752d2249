//! Expiry, snooze and pin as the engine runs them (issue 21): the two scheduler
//! due-sources (expiries and their purge; wakes) and the snooze/pin operations the API
//! calls. Speaks no HTTP.
//!
//! Invariants:
//! - Each due item is claimed by its own state change in the write that applies it
//!   (`store::lifecycle`), so it fires exactly once, also across a crash: what was due
//!   while the server was down fires at the first pass after start.
//! - Pushes follow commits: an expiry or a snooze pushes the feeds' new counts; a wake
//!   pushes the item like a new one (with its counts), exactly once per wake.
//! - Reads never wait for a due-source: feed queries filter by the clock's `now`
//!   (`store::feeds`), so the due-sources only move counters and push.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::bus::{FeedBus, FeedRef, SharedBus};
use super::scheduler::{DueSource, Scheduler};
use crate::clock::{self, Clock};
use crate::model::message::MessageRow;
use crate::store::{Store, StoreResult};

/// How long an expired item is kept (for the messages API and audits) before it is
/// deleted: 7 days after its `expires_at`.
pub const EXPIRED_GRACE: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// Items one due-source pass handles (one write).
const FIRE_SLICE: usize = 256;

/// The engine's lifecycle operations; shared by the API and the due-sources.
pub struct Lifecycle {
    store: Store,
    bus: SharedBus,
    clock: Clock,
    scheduler: Scheduler,
}

fn feeds_of(rows: &[MessageRow]) -> Vec<FeedRef> {
    let mut seen = HashSet::new();
    rows.iter()
        .map(|m| (m.channel_id.clone(), m.recipient.clone()))
        .filter(|f| seen.insert(f.clone()))
        .collect()
}

impl Lifecycle {
    /// Registers the due-sources on `scheduler`; returns the handle the API uses.
    pub fn start(store: Store, bus: SharedBus, scheduler: Scheduler) -> Arc<Lifecycle> {
        let lifecycle = Arc::new(Lifecycle {
            store,
            bus,
            clock: scheduler.clock().clone(),
            scheduler: scheduler.clone(),
        });
        scheduler.register(Arc::new(ExpirySource(lifecycle.clone())));
        scheduler.register(Arc::new(WakeSource(lifecycle.clone())));
        lifecycle
    }

    /// The clock snoozes are checked against.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now_utc()
    }

    /// Snoozes each of `ids` until `until` in one write (unknown ids skipped, duplicates
    /// once); returns the snoozed rows in request order. Joined sockets get the lowered
    /// counts.
    pub async fn snooze(
        &self,
        ids: Vec<String>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<MessageRow>> {
        let (until, now) = (clock::format(until), self.clock.now());
        let rows = self.store.snooze_messages(ids, until, now).await?;
        self.bus.publish_counts(&feeds_of(&rows));
        // The new wake may be the earliest.
        self.scheduler.wake();
        Ok(rows)
    }

    /// Wakes message `id` now if it is snoozed (pushed like a new item); `None` when it
    /// was not snoozed.
    pub async fn wake_now(&self, id: String) -> StoreResult<Option<MessageRow>> {
        let now = self.clock.now();
        let row = self.store.wake_message(id, now).await?;
        if let Some(row) = &row {
            self.bus.republish(std::slice::from_ref(row));
        }
        Ok(row)
    }

    /// Pins or unpins message `id`; `None` for an unknown id. No count moves, so
    /// nothing is pushed.
    pub async fn pin(&self, id: String, pinned: bool) -> StoreResult<Option<MessageRow>> {
        let now = self.clock.now();
        self.store.pin_message(id, pinned, now).await
    }

    /// Applies a slice of due expiries and purges a slice of expired items past the
    /// grace period; returns how many it handled.
    async fn fire_expiries(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        let (now_s, cutoff) = (clock::format(now), clock::format(now - EXPIRED_GRACE));
        let (expired, purged) = self
            .store
            .expire_and_purge(now_s, cutoff, FIRE_SLICE)
            .await?;
        self.bus.publish_counts(&feeds_of(&expired));
        Ok(expired.len() + purged)
    }

    /// Wakes a slice of snoozed items due at `now`, in one write; each is pushed.
    async fn fire_wakes(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        let now_s = clock::format(now);
        let due = self.store.due_wakes(now_s.clone(), FIRE_SLICE).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let fired = due.len();
        // Each is claimed only if still snoozed with this time (not moved or woken).
        let woken = self.store.wake_due(due, now_s).await?;
        self.bus.republish(&woken);
        Ok(fired)
    }
}

/// The due-source for expiries (at `expires_at`) and their purge (a grace period later).
struct ExpirySource(Arc<Lifecycle>);

impl DueSource for ExpirySource {
    fn name(&self) -> &'static str {
        "expiry"
    }

    fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
        Box::pin(async move {
            let (expiry, expired) = self.0.store.next_expiries().await?;
            let expiry = expiry.and_then(|t| clock::parse(&t));
            let purge = expired
                .and_then(|t| clock::parse(&t))
                .map(|t| t + EXPIRED_GRACE);
            Ok(match (expiry, purge) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            })
        })
    }

    fn fire_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        Box::pin(self.0.fire_expiries(now))
    }
}

/// The due-source for snoozed items' wake-ups.
struct WakeSource(Arc<Lifecycle>);

impl DueSource for WakeSource {
    fn name(&self) -> &'static str {
        "wake"
    }

    fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
        Box::pin(async move {
            let next = self.0.store.next_wake().await?;
            Ok(next.and_then(|t| clock::parse(&t)))
        })
    }

    fn fire_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        Box::pin(self.0.fire_wakes(now))
    }
}

/// The engine's bus with one duty added: when committed items carry an expiry, the
/// scheduler re-reads its due times (the new expiry may be the earliest). The runner and
/// the resume paths publish through it unchanged.
pub struct ExpiryAwareBus {
    /// The bus the announcements go on to.
    pub inner: SharedBus,
    /// Woken when a committed item carries an expiry.
    pub scheduler: Scheduler,
}

impl FeedBus for ExpiryAwareBus {
    fn publish(&self, messages: &[MessageRow]) {
        if messages.iter().any(|m| m.expires_at.is_some()) {
            self.scheduler.wake();
        }
        self.inner.publish(messages);
    }

    fn republish(&self, messages: &[MessageRow]) {
        self.inner.republish(messages);
    }

    fn publish_counts(&self, feeds: &[FeedRef]) {
        self.inner.publish_counts(feeds);
    }
}
