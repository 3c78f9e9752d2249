//! The sweeper: one task that closes every session past a deadline (the idle timeout, a
//! user token's expiry), so a socket's own task holds no timer.

use std::time::Duration;

use super::Inner;

/// How often the sweeper looks for sessions past a deadline: a silent socket or one
/// whose token expired is closed at most this long after its deadline.
pub const DEADLINE_RESOLUTION: Duration = Duration::from_millis(250);

/// Stops every session past one of its deadlines, every [`DEADLINE_RESOLUTION`]; ends
/// with the hub. One pass is a read of two atomics per session.
pub(super) async fn sweeper(hub: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(DEADLINE_RESOLUTION);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = hub.upgrade() else { return };
        let now = inner.now();
        for session in inner.sessions.iter() {
            session.value().check_deadlines(now);
        }
    }
}
#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use tokio::time::Instant;

    use super::super::{Hub, Stopped, Wake};
    use crate::clock::Clock;
    use crate::store::Store;
    use std::time::Duration;

    #[tokio::test]
    async fn the_sweeper_stops_silent_sessions_and_expired_tokens_never_early() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("hub.db"), false).expect("store");
        let hub = Hub::new(store, 1, Clock::system());
        let started = Instant::now();
        let silent = hub.register(Duration::from_millis(600), None);
        let expiring = hub.register(Duration::from_secs(60), Some(Duration::from_millis(300)));
        let touched = hub.register(Duration::from_secs(60), None);
        assert_eq!(expiring.stopped().await, Stopped::TokenExpired);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(silent.stopped().await, Stopped::Idle);
        assert!(started.elapsed() >= Duration::from_millis(600));
        assert!(matches!(silent.next().await, Wake::Stop(Stopped::Idle)));
        // A frame from the client moves the idle deadline to `idle` from now.
        let before = touched.link.idle_at.load(Ordering::Relaxed);
        touched.touch(Duration::from_secs(120));
        assert!(touched.link.idle_at.load(Ordering::Relaxed) >= before + 59_000);
        touched.link.check_deadlines(hub.inner.now());
        assert!(touched.link.stopped().is_none());
    }
}
