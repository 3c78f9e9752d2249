//! Publishing after commit: the engine's committed items (or changed counts) go into the
//! bounded outbox without blocking, and one publisher task per hub folds what waits,
//! counts each feed once on the read-only pool and queues each session's push on its
//! link, never waiting for a socket.
//!
//! Batches are delivered in commit order; queued batches are folded into one pass, so a
//! burst for one feed becomes one push whose counts are current.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytestring::ByteString;

use super::link::Offered;
use super::registry::{FeedId, Subscriber, feed_key, feed_of_key};
use super::{Hub, Inner};
use crate::auth::access::restriction_admits;
use crate::model::FeedFilters;
use crate::model::feed_counts::FeedCounts;
use crate::model::message::MessageRow;
use crate::realtime::frames::push_text;
use crate::realtime::outbox::{FeedBatch, Outbox, Waiting};
use crate::store::CountJob;

impl Hub {
    /// Called by the engine after messages committed. Never blocks.
    pub fn publish(&self, messages: &[MessageRow]) {
        if messages.is_empty() || self.inner.feeds.is_empty() {
            return;
        }
        let feeds = &self.inner.feeds;
        self.inner.outbox.push(messages, |channel, recipient| {
            feeds.contains_key(feed_key(channel, recipient).as_str())
        });
    }

    /// Pushes current counts to every socket joined to one of `feeds` (their counts
    /// changed without a new item: an expiry, a snooze). Never blocks: the feeds are
    /// folded in the bounded outbox, which pushes fresh counts on every ref.
    pub fn publish_counts(&self, feeds: &[FeedId]) {
        if feeds.is_empty() || self.inner.feeds.is_empty() {
            return;
        }
        let joined = &self.inner.feeds;
        self.inner.outbox.push_counts(feeds, |channel, recipient| {
            joined.contains_key(feed_key(channel, recipient).as_str())
        });
    }
}

impl Hub {
    /// Pushes current counts on every ref of every joined feed, as a folded feed gets:
    /// every client refetches. For when this node may have missed announcements (its
    /// NATS link was down); one pass, through the bounded outbox.
    pub fn refresh_all(&self) {
        let feeds: Vec<FeedId> = self
            .inner
            .feeds
            .iter()
            .filter_map(|e| feed_of_key(e.key()))
            .collect();
        self.publish_counts(&feeds);
    }
}

/// Empties the outbox whenever it is woken, one folded pass at a time; ends with the
/// hub (it holds only a weak handle) or when the outbox closes.
pub(super) async fn publisher(hub: std::sync::Weak<Inner>, outbox: Arc<Outbox>) {
    loop {
        outbox.ready().await;
        if outbox.is_closed() {
            return;
        }
        // Everything committed since the last pass, folded into one.
        let pending = outbox.take();
        if pending.is_empty() {
            continue;
        }
        let Some(inner) = hub.upgrade() else { return };
        deliver(Hub { inner }, pending).await;
    }
}

/// One push to build once the counts are known.
struct Pending {
    subscriber: Subscriber,
    count_jobs: Vec<usize>,
    attn: Vec<bool>,
}

async fn deliver(hub: Hub, waiting: Waiting) {
    let by_feed = waiting.feeds;
    let mut jobs: Vec<CountJob> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    for (key, batch) in &by_feed {
        // Clone out and drop the guard before anything else.
        let subscribers = match hub.inner.feeds.get(feed_key(&key.0, &key.1).as_str()) {
            Some(subs) => subs.clone(),
            None => continue,
        };
        for subscriber in subscribers {
            let restriction = subscriber.restriction.as_deref();
            let filters = subscriber.params.filters();
            let attn: Vec<bool> = match batch {
                FeedBatch::Items(msgs) => filters
                    .iter()
                    .map(|f| {
                        msgs.iter().any(|m| {
                            f.matches_new_message(m)
                                && restriction_admits(restriction, m.tenant.as_deref())
                        })
                    })
                    .collect(),
                // The items were not kept: every ref refetches, with fresh counts.
                FeedBatch::Folded => vec![true; filters.len()],
            };
            if !attn.contains(&true) {
                continue;
            }
            let count_jobs = filters
                .into_iter()
                .map(|f| job_index(&mut jobs, key, f, &subscriber.restriction))
                .collect();
            pending.push(Pending {
                subscriber,
                count_jobs,
                attn,
            });
        }
    }
    push_with_counts(hub, jobs, pending).await;
}

/// Counts `jobs` in one read, then queues each pending push with its refs' counts.
async fn push_with_counts(hub: Hub, jobs: Vec<CountJob>, pending: Vec<Pending>) {
    if pending.is_empty() {
        return;
    }
    let now = hub.inner.clock.now();
    let counts = match hub.inner.store.feed_counts(jobs, now).await {
        Ok(counts) => counts,
        Err(e) => {
            tracing::error!(error = %e, "realtime: counting feeds for a push failed");
            hub.inner
                .dropped
                .fetch_add(pending.len() as u64, Ordering::Relaxed);
            return;
        }
    };
    for p in pending {
        let c: Vec<FeedCounts> = p
            .count_jobs
            .iter()
            .map(|&i| counts.get(i).copied().unwrap_or_default())
            .collect();
        let payload = p
            .subscriber
            .params
            .new_message_payload(&c, &p.attn)
            .to_string();
        let text = push_text(
            p.subscriber.join_ref.as_deref(),
            &p.subscriber.topic,
            "new-message",
            &payload,
        );
        send(&hub, &p.subscriber, text);
    }
}

fn job_index(
    jobs: &mut Vec<CountJob>,
    key: &FeedId,
    filters: &FeedFilters,
    restriction: &Option<Arc<[String]>>,
) -> usize {
    if let Some(i) = jobs
        .iter()
        .position(|(k, f, r)| k == key && f == filters && r == restriction)
    {
        return i;
    }
    jobs.push((key.clone(), filters.clone(), restriction.clone()));
    jobs.len() - 1
}

/// Queues `text` for the subscriber's session without waiting; evicts it when full.
pub(super) fn send(hub: &Hub, subscriber: &Subscriber, text: ByteString) {
    let link = &subscriber.link;
    match link.offer(text, hub.inner.queue) {
        Offered::Queued => {
            hub.inner.pushes.fetch_add(1, Ordering::Relaxed);
        }
        Offered::Evicted => {
            hub.inner.evictions.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                session = link.id,
                "realtime: evicting a session that fell behind"
            );
        }
        Offered::Dropped => {
            hub.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The in-process bus: committed messages go straight to this node's sockets.
impl crate::engine::bus::FeedBus for Hub {
    fn publish(&self, messages: &[MessageRow]) {
        Hub::publish(self, messages);
    }

    fn republish(&self, messages: &[MessageRow]) {
        Hub::publish(self, messages);
    }

    fn publish_counts(&self, feeds: &[FeedId]) {
        Hub::publish_counts(self, feeds);
    }
}
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::Clock;
    use crate::model::RecipientRef;
    use crate::realtime::hub::{Stopped, Wake};
    use crate::realtime::join::JoinParams;
    use crate::store::Store;

    fn subscriber_of(hub: &Hub, key: &FeedId, session: u64) -> Subscriber {
        hub.inner
            .feeds
            .get(feed_key(&key.0, &key.1).as_str())
            .and_then(|subs| subs.iter().find(|s| s.link.id == session).cloned())
            .expect("joined")
    }

    #[tokio::test]
    async fn stats_count_topics_and_each_push_outcome_once() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("hub.db"), false).expect("store");
        let hub = Hub::new(store, 1, Clock::system());
        let key: FeedId = ("channel".into(), RecipientRef::User("u1".into()));
        let params = Arc::new(JoinParams::parse(&serde_json::json!({})).expect("params"));
        let mut slow = hub.register(Duration::from_secs(60), None);
        let mut gone = hub.register(Duration::from_secs(60), None);
        slow.join("feeds:c:u1", key.clone(), None, params.clone(), None);
        slow.join("feeds:c:u1:again", key.clone(), None, params.clone(), None);
        gone.join("feeds:c:u1", key.clone(), None, params, None);
        let stats = hub.stats();
        assert_eq!((stats.sessions, stats.feeds, stats.topics), (2, 1, 3));

        let to_slow = subscriber_of(&hub, &key, slow.id());
        send(&hub, &to_slow, ByteString::from("1"));
        send(&hub, &to_slow, ByteString::from("2"));
        send(&hub, &to_slow, ByteString::from("3"));
        let to_gone = subscriber_of(&hub, &key, gone.id());
        drop(gone);
        assert_eq!(hub.stats().topics, 2);
        send(&hub, &to_gone, ByteString::from("4"));
        let stats = hub.stats();
        assert_eq!(stats.pushes, 1, "the first fits the queue of 1");
        assert_eq!(stats.evictions, 1, "the second overflows it");
        assert_eq!(
            stats.dropped, 2,
            "the third finds it evicted; the fourth a closed socket"
        );
        assert!(matches!(slow.next().await, Wake::Stop(Stopped::Evicted)));
        assert_eq!(slow.stopped().await, Stopped::Evicted);
    }

    #[tokio::test]
    async fn pushes_wake_the_session_in_order_and_shutdown_stops_it() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("hub.db"), false).expect("store");
        let hub = Hub::new(store, 4, Clock::system());
        let key: FeedId = ("channel".into(), RecipientRef::User("u1".into()));
        let params = Arc::new(JoinParams::parse(&serde_json::json!({})).expect("params"));
        let mut session = hub.register(Duration::from_secs(60), None);
        session.join("feeds:c:u1", key.clone(), None, params.clone(), None);
        // Another socket on the same feed shares the hub's key.
        let mut other = hub.register(Duration::from_secs(60), None);
        other.join("feeds:c:u1", key.clone(), None, params, None);
        assert!(Arc::ptr_eq(&session.topics[0].1, &other.topics[0].1));

        let to = subscriber_of(&hub, &key, session.id());
        let waiting = tokio::spawn({
            let hub = hub.clone();
            async move {
                let session = session;
                let mut got = Vec::new();
                while let Wake::Push(text) = session.next().await {
                    got.push(text.to_string());
                    if got.len() == 2 {
                        break;
                    }
                }
                assert_eq!(
                    session.link.pending.lock().expect("lock").capacity(),
                    0,
                    "an emptied queue holds no memory"
                );
                hub.shutdown();
                (got, session.next().await, session.stopped().await)
            }
        });
        tokio::task::yield_now().await;
        send(&hub, &to, ByteString::from("a"));
        send(&hub, &to, ByteString::from("b"));
        let (got, next, stopped) = waiting.await.expect("session task");
        assert_eq!(got, ["a", "b"]);
        assert!(matches!(next, Wake::Stop(Stopped::Shutdown)));
        assert_eq!(stopped, Stopped::Shutdown);
        assert_eq!(other.stopped().await, Stopped::Shutdown);
        let late = hub.register(Duration::from_secs(60), None);
        assert_eq!(
            late.stopped().await,
            Stopped::Shutdown,
            "registered after shutdown"
        );
    }
}
