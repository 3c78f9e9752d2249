//! The backlog gate: refuses triggers while the durable backlog (queued runs in SQLite) is
//! at `--max-queued-runs`, or the recipients those runs listed are at `--max-queued-items`
//! (runs alone let 1,000-recipient triggers queue a thousand times more work).
//!
//! Fair between tenants: a full backlog refuses the tenants that filled it, not the
//! others. At a limit, a trigger is still admitted while its tenant holds less than a
//! tenth of that limit ([`RESERVE_DIVISOR`]; triggers without a tenant count as one
//! tenant), so one tenant's burst does not make every other tenant's notifications wait
//! for it to drain; at twice the limit everyone is refused. The durable backlog is thus
//! bounded by twice the configured limits.
//!
//! Counting the queued runs costs a read that grows with the backlog, so it is sampled: a
//! check re-reads the counts when the last read is older than [`REFRESH`] (one reader at a
//! time; the others use the sample), and every trigger (and its recipients) accepted since
//! that read is added to it, for its tenant and in total. The gate refuses once a count is
//! AT its limit, so one trigger may take the items past it by its own recipients (at most
//! 1,000): a trigger larger than the room left is admitted rather than refused forever.
//! The estimate can only run ahead of the truth by the runs finished since the read,
//! never behind it by more than a concurrent read's accepts, so the gate errs toward
//! refusing for at most [`REFRESH`]. Time is the app's injectable clock, so tests decide
//! when a sample goes stale.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};

use super::refused::{Reason, Refused};
use crate::clock::Clock;
use crate::store::Store;
use crate::store::backlog::{Backlog, Queued};

/// How old a sample may be before a check reads the count again.
pub const REFRESH: Duration = Duration::milliseconds(100);
/// What a refused client is told to wait: long enough for the runner to finish runs and
/// for the next sample, short enough not to idle a drained server.
const RETRY_AFTER_SECS: u64 = 1;
/// At a limit, a tenant holding less than `limit / RESERVE_DIVISOR` (at least one) of it
/// is still admitted, up to twice the limit.
pub const RESERVE_DIVISOR: u32 = 10;

#[derive(Default)]
struct Sample {
    read_at: Option<DateTime<Utc>>,
    backlog: Backlog,
    accepted_since: u64,
    items_since: u64,
    /// Accepted since the read, per tenant.
    since_by_tenant: HashMap<Option<String>, Queued>,
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

    /// Refuses a trigger of `tenant` when the estimated queued runs, or their recipients,
    /// are at their limit and `tenant` holds its reserve of them (or at twice the limit).
    pub async fn check(&self, tenant: Option<&str>) -> Result<(), Refused> {
        self.refresh_if_stale().await;
        let (total, own) = self.estimate(tenant);
        for (reason, queued, held, limit) in [
            (Reason::Backlog, total.runs, own.runs, self.limit),
            (
                Reason::BacklogItems,
                total.items,
                own.items,
                self.item_limit,
            ),
        ] {
            if refuses(queued, held, limit) {
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

    /// Counts a trigger of `tenant` just accepted, listing `items` recipients, until the
    /// next read sees its run.
    pub fn accepted(&self, tenant: Option<&str>, items: u32) {
        let mut sample = self.lock();
        sample.accepted_since += 1;
        sample.items_since += u64::from(items);
        let own = sample
            .since_by_tenant
            .entry(tenant.map(str::to_owned))
            .or_default();
        own.runs += 1;
        own.items += u64::from(items);
    }

    /// The latest sample (refreshed when stale), for `/metrics`.
    pub async fn current(&self) -> Backlog {
        self.refresh_if_stale().await;
        self.lock().backlog.clone()
    }

    /// (everyone's, `tenant`'s) queued runs and recipients as last read plus what was
    /// accepted since.
    fn estimate(&self, tenant: Option<&str>) -> (Queued, Queued) {
        let sample = self.lock();
        let key = tenant.map(str::to_owned);
        let read = sample
            .backlog
            .by_tenant
            .get(&key)
            .copied()
            .unwrap_or_default();
        let since = sample
            .since_by_tenant
            .get(&key)
            .copied()
            .unwrap_or_default();
        let total = Queued {
            runs: sample.backlog.queued_runs + sample.accepted_since,
            items: sample.backlog.queued_items + sample.items_since,
        };
        let own = Queued {
            runs: read.runs + since.runs,
            items: read.items + since.items,
        };
        (total, own)
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
        match self.store.backlog().await {
            Ok(backlog) => {
                let mut sample = self.lock();
                *sample = Sample {
                    read_at: Some(now),
                    backlog,
                    accepted_since: 0,
                    items_since: 0,
                    since_by_tenant: HashMap::new(),
                };
            }
            // Keep the old estimate: a failing read must not open or close the gate.
            Err(e) => tracing::warn!(error = %e, "could not count queued runs"),
        }
    }
}

/// Whether a backlog of `queued`, of which the trigger's tenant holds `held`, refuses the
/// trigger under `limit`: at the limit when the tenant holds its reserve, at twice the
/// limit always.
fn refuses(queued: u64, held: u64, limit: u32) -> bool {
    let limit = u64::from(limit);
    let reserve = (limit / u64::from(RESERVE_DIVISOR)).max(1);
    queued >= limit && (held >= reserve || queued >= 2 * limit)
}

#[cfg(test)]
mod tests {
    use super::refuses;

    #[test]
    fn a_full_backlog_refuses_the_tenants_holding_a_tenth_of_it_and_everyone_at_twice() {
        assert!(!refuses(999, 999, 1000), "below the limit");
        assert!(
            refuses(1000, 1000, 1000),
            "at the limit, the tenant that filled it"
        );
        assert!(refuses(1000, 100, 1000), "a tenth is the reserve");
        assert!(!refuses(1000, 99, 1000), "under a tenth: still admitted");
        assert!(!refuses(1999, 0, 1000));
        assert!(refuses(2000, 0, 1000), "twice the limit: everyone");
        // Tiny limits keep a reserve of one.
        assert!(refuses(1, 1, 1));
        assert!(!refuses(1, 0, 1));
        assert!(refuses(2, 0, 1));
    }
}
