//! Trigger backpressure (issue 10 item 3): a trigger is refused with Knock's 429
//! `rate_limited` and `Retry-After` — before anything is parsed deeply or stored — when the
//! durable backlog is at `--max-queued-runs` (runs) or `--max-queued-items` (their listed
//! recipients) and the trigger's tenant holds a tenth of it (or the backlog is at twice
//! those limits; see `backlog`), or when the key or the trigger's tenant is over its trigger rate or item
//! rate.
//!
//! What is counted: one trigger per `POST /v1/workflows/{key}/trigger`, and as items the
//! recipients the trigger lists (an object recipient counts once here; its subscribers are
//! expanded later by the runner, where the backlog gate bounds them; the item backlog
//! counts an object once too). Only that endpoint
//! is limited: scheduled runs and resumed delays were acknowledged when created and are
//! never refused.
//!
//! Invariant: a refused trigger stores nothing (the check runs before `engine::accept`);
//! an acknowledged trigger is never dropped by backpressure.

mod backlog;
mod limiter_clock;
mod limits;
mod refused;

pub use backlog::BacklogGate;
pub use limiter_clock::LimiterClock;
pub use limits::Limits;
pub use refused::{Reason, Refused};

use crate::clock::Clock;
use crate::config::Settings;
use crate::store::Store;

/// The limits and the backlog gate, shared by every trigger.
pub struct Backpressure {
    limits: Limits,
    backlog: BacklogGate,
}

impl Backpressure {
    pub fn new(settings: &Settings, store: Store, clock: Clock) -> Self {
        Backpressure {
            limits: Limits::new(settings, LimiterClock::new(clock.clone())),
            backlog: BacklogGate::new(
                store,
                clock,
                settings.max_queued_runs.get(),
                settings.max_queued_items.get(),
            ),
        }
    }

    /// Admits a trigger for `tenant` listing `items` recipients, or refuses it. The backlog
    /// is checked first: while it is full, refused triggers spend no rate.
    pub async fn admit(&self, tenant: Option<&str>, items: u32) -> Result<(), Refused> {
        self.backlog.check(tenant).await?;
        self.limits.check(tenant, items)
    }

    /// Tells the backlog gate a trigger of `tenant` listing `items` recipients was
    /// accepted (its run is queued).
    pub fn accepted(&self, tenant: Option<&str>, items: u32) {
        self.backlog.accepted(tenant, items);
    }

    /// The backlog gate (for `/metrics`).
    pub fn backlog(&self) -> &BacklogGate {
        &self.backlog
    }
}
