//! Trigger and item rates per key and per tenant: GCRA limiters from `governor` (keyed
//! ones on a `DashMap`), all reading the same [`LimiterClock`].
//!
//! A trigger is checked against, in order: the key's trigger rate, its tenant's trigger
//! rate, the key's item rate, the tenant's item rate. A refused check consumes nothing, but
//! the checks before it that passed keep their cells: a refused trigger still counts
//! against the limits it did not exceed (the usual behaviour of chained limiters).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::limiter_clock::LimiterClock;
use super::refused::{Reason, Refused};
use crate::config::Settings;

/// How many seconds' worth of a rate a client may send at once.
pub const BURST_SECONDS: u32 = 2;
/// Every this many checks, tenants idle long enough to have a full burst again are
/// forgotten, so a stream of distinct tenant ids cannot grow the maps without bound.
const PRUNE_EVERY: u64 = 4_096;

type Direct = RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<Nanos>>;
type Keyed = RateLimiter<String, DashMapStateStore<String>, LimiterClock, NoOpMiddleware<Nanos>>;

/// The four rate limits of `--trigger-rate-per-key` and its siblings.
pub struct Limits {
    key_triggers: Direct,
    key_items: Direct,
    tenant_triggers: Keyed,
    tenant_items: Keyed,
    clock: LimiterClock,
    checks: AtomicU64,
}

fn quota(per_second: NonZeroU32) -> Quota {
    let burst =
        NonZeroU32::new(per_second.get().saturating_mul(BURST_SECONDS)).unwrap_or(per_second);
    Quota::per_second(per_second).allow_burst(burst)
}

impl Limits {
    pub fn new(settings: &Settings, clock: LimiterClock) -> Self {
        Limits {
            key_triggers: RateLimiter::direct_with_clock(
                quota(settings.trigger_rate_per_key),
                clock.clone(),
            ),
            key_items: RateLimiter::direct_with_clock(
                quota(settings.item_rate_per_key),
                clock.clone(),
            ),
            tenant_triggers: RateLimiter::dashmap_with_clock(
                quota(settings.trigger_rate_per_tenant),
                clock.clone(),
            ),
            tenant_items: RateLimiter::dashmap_with_clock(
                quota(settings.item_rate_per_tenant),
                clock.clone(),
            ),
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// Admits one trigger of `items` recipients for `tenant`, or says which limit refused
    /// it and when to retry.
    pub fn check(&self, tenant: Option<&str>, items: u32) -> Result<(), Refused> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.tenant_triggers.retain_recent();
            self.tenant_items.retain_recent();
        }
        let tenant = tenant.map(str::to_owned);
        let one = NonZeroU32::MIN;
        self.direct(&self.key_triggers, one, Reason::KeyTriggers)?;
        if let Some(t) = &tenant {
            self.keyed(&self.tenant_triggers, t, one, Reason::TenantTriggers)?;
        }
        // A trigger without recipients is refused later as invalid; it adds no items.
        let Some(items) = NonZeroU32::new(items) else {
            return Ok(());
        };
        self.direct(&self.key_items, items, Reason::KeyItems)?;
        if let Some(t) = &tenant {
            self.keyed(&self.tenant_items, t, items, Reason::TenantItems)?;
        }
        Ok(())
    }

    fn direct(&self, limiter: &Direct, n: NonZeroU32, reason: Reason) -> Result<(), Refused> {
        self.verdict(limiter.check_n(n), n, reason)
    }

    fn keyed(
        &self,
        limiter: &Keyed,
        key: &String,
        n: NonZeroU32,
        reason: Reason,
    ) -> Result<(), Refused> {
        self.verdict(limiter.check_key_n(key, n), n, reason)
    }

    fn verdict(
        &self,
        outcome: Result<Result<(), governor::NotUntil<Nanos>>, governor::InsufficientCapacity>,
        n: NonZeroU32,
        reason: Reason,
    ) -> Result<(), Refused> {
        use governor::clock::Clock as _;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(Refused::Rate {
                    reason,
                    retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                })
            }
            Err(governor::InsufficientCapacity(burst)) => Err(Refused::OverBurst {
                reason,
                items: n.get(),
                burst,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    fn limits(configure: impl FnOnce(&mut Settings)) -> (Limits, Clock) {
        let clock = Clock::manual(Clock::system().now_utc());
        let mut settings = Settings::for_database("unused.db".into());
        configure(&mut settings);
        (
            Limits::new(&settings, LimiterClock::new(clock.clone())),
            clock,
        )
    }

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    #[test]
    fn a_key_gets_two_seconds_of_triggers_at_once_then_waits_for_the_rate() {
        let (limits, clock) = limits(|s| s.trigger_rate_per_key = nz(2));
        for _ in 0..4 {
            limits.check(None, 1).expect("within the burst");
        }
        let refused = limits.check(None, 1).expect_err("burst spent");
        assert_eq!(refused.reason(), Reason::KeyTriggers);
        assert_eq!(refused.retry_after_secs(), Some(1));
        clock.advance(chrono::Duration::milliseconds(500));
        limits
            .check(None, 1)
            .expect("one cell refilled after 1/rate");
        limits.check(None, 1).expect_err("and only one");
    }

    #[test]
    fn one_tenants_limit_leaves_other_tenants_and_untenanted_triggers_alone() {
        let (limits, _clock) = limits(|s| s.trigger_rate_per_tenant = nz(1));
        limits.check(Some("a"), 1).expect("a 1");
        limits.check(Some("a"), 1).expect("a 2");
        let refused = limits.check(Some("a"), 1).expect_err("a is over");
        assert_eq!(refused.reason(), Reason::TenantTriggers);
        limits.check(Some("b"), 1).expect("b is not");
        limits.check(None, 1).expect("no tenant is not");
    }

    #[test]
    fn items_are_counted_per_trigger_and_a_trigger_larger_than_the_burst_is_named() {
        let (limits, clock) = limits(|s| s.item_rate_per_tenant = nz(5));
        limits.check(Some("a"), 6).expect("6 of a burst of 10");
        let refused = limits.check(Some("a"), 6).expect_err("12 > 10");
        assert_eq!(refused.reason(), Reason::TenantItems);
        assert_eq!(
            refused.retry_after_secs(),
            Some(1),
            "two items short: 0.4 s"
        );
        clock.advance(chrono::Duration::seconds(1));
        limits.check(Some("a"), 6).expect("refilled");
        let over = limits
            .check(Some("b"), 11)
            .expect_err("more than any burst");
        assert!(
            matches!(
                over,
                Refused::OverBurst {
                    items: 11,
                    burst: 10,
                    ..
                }
            ),
            "{over:?}"
        );
        assert_eq!(over.retry_after_secs(), None, "retrying cannot help");
    }
}
