//! The rate limiters' time source: the app's injectable [`Clock`], so tests refill a limit by
//! advancing the manual clock instead of sleeping, while production measures monotonic time
//! (a wall-clock jump neither refills nor freezes a limit).

use std::time::Instant;

use chrono::{DateTime, Utc};
use governor::nanos::Nanos;

use crate::clock::Clock;

/// Nanoseconds since this clock was made, read from the monotonic clock, or from the
/// manual clock when the app runs on one.
#[derive(Debug, Clone)]
pub struct LimiterClock {
    clock: Clock,
    wall_start: DateTime<Utc>,
    start: Instant,
}

impl LimiterClock {
    pub fn new(clock: Clock) -> Self {
        LimiterClock {
            wall_start: clock.now_utc(),
            start: Instant::now(),
            clock,
        }
    }
}

impl governor::clock::Clock for LimiterClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        if self.clock.is_manual() {
            // A manual clock only moves forward; saturate anyway rather than panic.
            (self.clock.now_utc() - self.wall_start)
                .to_std()
                .map(Nanos::from)
                .unwrap_or_else(|_| Nanos::from(0))
        } else {
            Nanos::from(self.start.elapsed())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::Clock as _;

    #[test]
    fn a_manual_clock_moves_the_limiter_clock_by_exactly_the_advance() {
        let clock = Clock::manual(Clock::system().now_utc());
        let limiter = LimiterClock::new(clock.clone());
        let before = limiter.now();
        clock.advance(chrono::Duration::milliseconds(1500));
        let moved = std::time::Duration::from_nanos(limiter.now().as_u64() - before.as_u64());
        assert_eq!(moved, std::time::Duration::from_millis(1500));
    }
}
