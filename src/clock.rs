//! Timestamps as Knock writes them: ISO-8601 UTC with microseconds (`…T22:08:30.816897Z`).
//! Stored in the same form, so lexical order is time order.
//!
//! [`Clock`] is the engine's injectable time source (delays, batch windows, the
//! scheduler): the system clock in production, a manual clock in tests, which advance it
//! instantly ([`Clock::advance`]) and wake whatever sleeps on it. `Settings::clock`
//! carries it into the server.
//!
//! One clock (issue 17 item 11): every timestamp the server writes or compares (runs,
//! recipient runs, messages and their status times, idempotency windows, `*_now`
//! conditions, cancellations, entities) is read from that one [`Clock`]: the store's
//! queries through `Db::now`, everything else from `Settings::clock`. There is no free
//! "now" here to read instead; only [`unix_now`], for JWT expiry (see there).

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;

/// Formats a UTC instant the one way Tidings stores and answers timestamps.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Now on the system clock, in Unix seconds: for JWT `exp`/`iat` only. A token's expiry is
/// a fact about real time shared with whoever signed it (another machine, a vault), so it
/// is checked against the system clock, not the server's injectable [`Clock`], which tests
/// move by hand; nothing this returns is stored or compared with stored times.
#[allow(clippy::disallowed_methods)] // the one JWT reading of real time, see above
pub fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

/// Parses any RFC 3339 timestamp (any offset) into the stored UTC form, or `None`.
pub fn normalize(input: &str) -> Option<String> {
    parse(input).map(format)
}

/// Parses any RFC 3339 timestamp (any offset) into a UTC instant, or `None`.
pub fn parse(input: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(input)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The longest a system-clock sleep lasts before re-reading the clock (so a wall-clock
/// jump delays a timer by at most this much).
const MAX_SYSTEM_SLEEP: std::time::Duration = std::time::Duration::from_secs(30);

/// An injectable time source. Cloning shares it: advancing a manual clock is seen by
/// every clone.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<watch::Sender<DateTime<Utc>>>>);

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::System"),
            Some(t) => write!(f, "Clock::Manual({})", format(*t.borrow())),
        }
    }
}

impl Clock {
    /// The system clock.
    pub const fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands still at `start` until advanced (tests).
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock(Some(Arc::new(watch::Sender::new(start))))
    }

    /// Whether this is a manual clock; monotonic measurers (rate limits) read the system's
    /// monotonic time instead of the wall clock unless a test drives time by hand.
    pub fn is_manual(&self) -> bool {
        self.0.is_some()
    }

    /// Now.
    #[allow(clippy::disallowed_methods)] // the system clock behind `Clock::system`
    pub fn now_utc(&self) -> DateTime<Utc> {
        match &self.0 {
            None => Utc::now(),
            Some(t) => *t.borrow(),
        }
    }

    /// Now, formatted for storage and the wire.
    pub fn now(&self) -> String {
        format(self.now_utc())
    }

    /// Moves a manual clock forward by `by` and wakes its sleepers; no-op on the system
    /// clock.
    pub fn advance(&self, by: chrono::Duration) {
        if let Some(t) = &self.0 {
            t.send_modify(|now| *now += by);
        }
    }

    /// Returns once the clock reads `at` or later (for the system clock, re-checks at
    /// least every 30 s, so a wall-clock jump is noticed).
    pub async fn sleep_until(&self, at: DateTime<Utc>) {
        match &self.0 {
            None => loop {
                let left = at - self.now_utc();
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(MAX_SYSTEM_SLEEP)).await;
            },
            Some(t) => {
                let mut rx = t.subscribe();
                while *rx.borrow_and_update() < at {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_converts_offsets_to_utc_micros() {
        assert_eq!(
            normalize("2026-01-01T02:00:00+02:00").as_deref(),
            Some("2026-01-01T00:00:00.000000Z")
        );
        assert_eq!(normalize("yesterday"), None);
    }

    #[test]
    fn formatted_timestamps_sort_lexically_in_time_order() {
        let a = normalize("2026-01-01T00:00:00Z").unwrap_or_default();
        let b = normalize("2026-01-01T00:00:00.5Z").unwrap_or_default();
        assert!(a < b);
    }

    #[tokio::test]
    async fn a_manual_clock_wakes_its_sleepers_when_advanced() {
        let start = parse("2026-01-01T00:00:00Z").expect("time");
        let clock = Clock::manual(start);
        let sleeper = clock.clone();
        let task = tokio::spawn(async move {
            sleeper
                .sleep_until(start + chrono::Duration::minutes(5))
                .await
        });
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        clock.advance(chrono::Duration::minutes(5));
        task.await.expect("sleeper wakes");
        assert_eq!(clock.now(), "2026-01-01T00:05:00.000000Z");
    }
}
