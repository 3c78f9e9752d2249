//! The hub: which sessions are joined to which feed, and publishing after commit.
//!
//! Invariants:
//! - The registry maps a feed (channel UUID, recipient) to its subscribers; a
//!   [`Registration`] (one per socket) removes its entries when dropped.
//! - `publish` is called only after the messages committed, never blocks and never
//!   awaits: it hands the batch to one publisher task, which computes counts on the
//!   read-only pool (off the writer path), serializes each payload once and `try_send`s
//!   it. A session whose queue is full is evicted (the client reconnects and refetches).
//! - Batches are delivered in commit order; queued batches are folded into one pass, so
//!   a burst for one feed becomes one push whose counts are current.
//! - No `.await` while a DashMap guard is held: subscribers are cloned out first.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytestring::ByteString;
use dashmap::DashMap;
use tokio::sync::{Notify, mpsc, watch};

use super::frames::push_text;
use super::join::JoinParams;
use crate::auth::access::restriction_admits;
use crate::model::{FeedFilters, RecipientRef};
use crate::store::Store;
use crate::store::feeds::{self, FeedCounts};
use crate::store::messages::MessageRow;

/// A session's push queue (sending end); see [`PushQueue`].
type PushSender = futures_channel::mpsc::Sender<ByteString>;

/// A session's push queue: bounded, filled with `try_send` by the publisher. A
/// `futures-channel` queue costs nothing per slot until a push waits in it (a tokio
/// queue allocates a block of slots up front), which matters at 10,000 idle sockets.
pub type PushQueue = futures_channel::mpsc::Receiver<ByteString>;

/// A feed: (channel UUID, recipient).
pub type FeedKey = (String, RecipientRef);

/// What the hub knows about one socket.
struct SessionLink {
    id: u64,
    /// Locked only for a `try_send`. Never cloned: each `futures-channel` sender adds a
    /// slot of its own, so the one sender keeps the queue bounded at its depth.
    tx: std::sync::Mutex<PushSender>,
    evicted: AtomicBool,
    wake: Notify,
}

impl SessionLink {
    fn evict(&self) {
        self.evicted.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// One joined topic of one session.
#[derive(Clone)]
struct Subscriber {
    link: Arc<SessionLink>,
    topic: Arc<str>,
    join_ref: Option<Arc<str>>,
    params: Arc<JoinParams>,
    restriction: Option<Arc<[String]>>,
}

/// Counters for operators and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    pub sessions: usize,
    pub feeds: usize,
    pub pushes: u64,
    pub evictions: u64,
    /// Pushes not delivered: the session was already evicted or gone, or counting the
    /// feed for the push failed.
    pub dropped: u64,
    /// Topics joined across all sessions (a feed joined by two sockets counts twice).
    pub topics: usize,
    /// Topic joins accepted since start.
    pub joins: u64,
}

struct Inner {
    store: Store,
    queue: usize,
    feeds: DashMap<FeedKey, Vec<Subscriber>>,
    sessions: DashMap<u64, Arc<SessionLink>>,
    next_id: AtomicU64,
    pushes: AtomicU64,
    evictions: AtomicU64,
    dropped: AtomicU64,
    joins: AtomicU64,
    publish_tx: mpsc::UnboundedSender<Vec<MessageRow>>,
    shutdown: watch::Sender<bool>,
}

/// Cheap to clone; every clone is the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// Creates the hub and starts its publisher task; call inside the tokio runtime.
    /// `queue` is each session's push queue depth.
    pub fn new(store: Store, queue: usize) -> Self {
        let (publish_tx, publish_rx) = mpsc::unbounded_channel();
        let (shutdown, _) = watch::channel(false);
        let hub = Hub {
            inner: Arc::new(Inner {
                store,
                queue: queue.max(1),
                feeds: DashMap::new(),
                sessions: DashMap::new(),
                next_id: AtomicU64::new(1),
                pushes: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                joins: AtomicU64::new(0),
                publish_tx,
                shutdown,
            }),
        };
        // The task holds only a weak handle, so dropping the last `Hub` ends it.
        let weak = Arc::downgrade(&hub.inner);
        tokio::spawn(publisher(weak, publish_rx));
        hub
    }

    /// Called by the engine after messages committed. Never blocks.
    pub fn publish(&self, messages: &[MessageRow]) {
        if messages.is_empty() || self.inner.feeds.is_empty() {
            return;
        }
        let _ = self.inner.publish_tx.send(messages.to_vec());
    }

    /// Closes every socket (code 1001) and refuses new ones; called on shutdown.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// A receiver that turns true when the server is shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn stats(&self) -> HubStats {
        HubStats {
            sessions: self.inner.sessions.len(),
            feeds: self.inner.feeds.len(),
            pushes: self.inner.pushes.load(Ordering::Relaxed),
            evictions: self.inner.evictions.load(Ordering::Relaxed),
            dropped: self.inner.dropped.load(Ordering::Relaxed),
            // O(feeds); read on a scrape, never per push.
            topics: self.inner.feeds.iter().map(|e| e.value().len()).sum(),
            joins: self.inner.joins.load(Ordering::Relaxed),
        }
    }

    /// Registers a new socket: its registration handle and the receiving end of its queue.
    pub fn register(&self) -> (Registration, PushQueue) {
        // Its capacity is `buffer` plus one slot for the one sender: `queue` in all.
        let (tx, rx) = futures_channel::mpsc::channel(self.inner.queue - 1);
        let link = Arc::new(SessionLink {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            tx: std::sync::Mutex::new(tx),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
        });
        self.inner.sessions.insert(link.id, link.clone());
        let registration = Registration {
            hub: self.clone(),
            link,
            topics: Vec::new(),
        };
        (registration, rx)
    }

    fn remove(&self, key: &FeedKey, session: u64, topic: &str) {
        let now_empty = match self.inner.feeds.get_mut(key) {
            Some(mut subs) => {
                subs.retain(|s| !(s.link.id == session && &*s.topic == topic));
                subs.is_empty()
            }
            None => false,
        };
        if now_empty {
            self.inner.feeds.remove_if(key, |_, subs| subs.is_empty());
        }
    }
}

/// A socket's membership in the hub. Dropping it unregisters every topic.
pub struct Registration {
    hub: Hub,
    link: Arc<SessionLink>,
    /// Joined topics (at most `TIDINGS_WS_MAX_TOPICS`, usually one or two): a `Vec`
    /// sized to fit costs a tenth of a `HashMap` per idle socket; the topic string is
    /// shared with the hub's subscriber entry.
    topics: Vec<(Arc<str>, FeedKey)>,
}

impl Registration {
    pub fn id(&self) -> u64 {
        self.link.id
    }

    /// Subscribes `topic` to `key`, replacing any earlier join of the same topic.
    pub fn join(
        &mut self,
        topic: &str,
        key: FeedKey,
        join_ref: Option<&str>,
        params: Arc<JoinParams>,
        restriction: Option<Vec<String>>,
    ) {
        self.leave(topic);
        self.hub.inner.joins.fetch_add(1, Ordering::Relaxed);
        let topic: Arc<str> = Arc::from(topic);
        let subscriber = Subscriber {
            link: self.link.clone(),
            topic: topic.clone(),
            join_ref: join_ref.map(Arc::from),
            params,
            restriction: restriction.map(Arc::from),
        };
        self.hub
            .inner
            .feeds
            .entry(key.clone())
            // Most feeds have one socket: `push` onto an empty `Vec` would reserve four.
            .or_insert_with(|| Vec::with_capacity(1))
            .push(subscriber);
        self.topics.reserve_exact(1);
        self.topics.push((topic, key));
    }

    /// Unsubscribes `topic`; false when it was not joined.
    pub fn leave(&mut self, topic: &str) -> bool {
        match self.topics.iter().position(|(t, _)| &**t == topic) {
            Some(i) => {
                let (_, key) = self.topics.swap_remove(i);
                self.hub.remove(&key, self.link.id, topic);
                true
            }
            None => false,
        }
    }

    pub fn is_joined(&self, topic: &str) -> bool {
        self.topics.iter().any(|(t, _)| &**t == topic)
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Completes once the hub evicted this session (its queue overflowed).
    pub async fn evicted(&self) {
        while !self.link.evicted.load(Ordering::SeqCst) {
            self.link.wake.notified().await;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        for (topic, key) in std::mem::take(&mut self.topics) {
            self.hub.remove(&key, self.link.id, &topic);
        }
        self.hub.inner.sessions.remove(&self.link.id);
    }
}

async fn publisher(hub: std::sync::Weak<Inner>, mut rx: mpsc::UnboundedReceiver<Vec<MessageRow>>) {
    while let Some(mut batch) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            batch.extend(more);
        }
        let Some(inner) = hub.upgrade() else { return };
        deliver(Hub { inner }, batch).await;
    }
}

/// A count query: one distinct (feed, filters, restriction).
type CountJob = (FeedKey, FeedFilters, Option<Arc<[String]>>);

/// One push to build once the counts are known.
struct Pending {
    subscriber: Subscriber,
    count_jobs: Vec<usize>,
    attn: Vec<bool>,
}

async fn deliver(hub: Hub, messages: Vec<MessageRow>) {
    let mut by_feed: HashMap<FeedKey, Vec<MessageRow>> = HashMap::new();
    for m in messages {
        by_feed
            .entry((m.channel_id.clone(), m.recipient.clone()))
            .or_default()
            .push(m);
    }
    let mut jobs: Vec<CountJob> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    for (key, msgs) in &by_feed {
        // Clone out and drop the guard before anything else.
        let subscribers = match hub.inner.feeds.get(key) {
            Some(subs) => subs.clone(),
            None => continue,
        };
        for subscriber in subscribers {
            let restriction = subscriber.restriction.as_deref();
            let attn: Vec<bool> = subscriber
                .params
                .filters()
                .iter()
                .map(|f| {
                    msgs.iter().any(|m| {
                        f.matches_new_message(m)
                            && restriction_admits(restriction, m.tenant.as_deref())
                    })
                })
                .collect();
            if !attn.contains(&true) {
                continue;
            }
            let count_jobs = subscriber
                .params
                .filters()
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
    if pending.is_empty() {
        return;
    }
    let counts = match hub.inner.store.read(move |db| count_all(db, &jobs)).await {
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
    key: &FeedKey,
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

fn count_all(
    db: &crate::store::Db<'_>,
    jobs: &[CountJob],
) -> crate::store::StoreResult<Vec<FeedCounts>> {
    jobs.iter()
        .map(|((channel, recipient), filters, restriction)| {
            feeds::counts(db, channel, recipient, filters, restriction.as_deref())
        })
        .collect()
}

/// Queues `text` for the subscriber's session without waiting; evicts it when full.
fn send(hub: &Hub, subscriber: &Subscriber, text: ByteString) {
    let link = &subscriber.link;
    if link.evicted.load(Ordering::SeqCst) {
        hub.inner.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let sent = match link.tx.lock() {
        Ok(mut tx) => tx.try_send(text).map_err(|e| e.is_full()),
        Err(_) => Err(false),
    };
    match sent {
        Ok(()) => {
            hub.inner.pushes.fetch_add(1, Ordering::Relaxed);
        }
        Err(true) => {
            hub.inner.evictions.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                session = link.id,
                "realtime: evicting a session that fell behind"
            );
            link.evict();
        }
        Err(false) => {
            hub.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The in-process bus: committed messages go straight to this node's sockets.
impl crate::engine::bus::FeedBus for Hub {
    fn publish(&self, messages: &[MessageRow]) {
        Hub::publish(self, messages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber_of(hub: &Hub, key: &FeedKey, session: u64) -> Subscriber {
        hub.inner
            .feeds
            .get(key)
            .and_then(|subs| subs.iter().find(|s| s.link.id == session).cloned())
            .expect("joined")
    }

    #[tokio::test]
    async fn stats_count_topics_and_each_push_outcome_once() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("hub.db"), false).expect("store");
        let hub = Hub::new(store, 1);
        let key: FeedKey = ("channel".into(), RecipientRef::User("u1".into()));
        let params = Arc::new(JoinParams::parse(&serde_json::json!({})).expect("params"));
        let (mut slow, _slow_rx) = hub.register();
        let (mut gone, gone_rx) = hub.register();
        slow.join("feeds:c:u1", key.clone(), None, params.clone(), None);
        slow.join("feeds:c:u1:again", key.clone(), None, params.clone(), None);
        gone.join("feeds:c:u1", key.clone(), None, params, None);
        let stats = hub.stats();
        assert_eq!((stats.sessions, stats.feeds, stats.topics), (2, 1, 3));

        let to_slow = subscriber_of(&hub, &key, slow.id());
        send(&hub, &to_slow, ByteString::from("1"));
        send(&hub, &to_slow, ByteString::from("2"));
        send(&hub, &to_slow, ByteString::from("3"));
        drop(gone_rx);
        send(
            &hub,
            &subscriber_of(&hub, &key, gone.id()),
            ByteString::from("4"),
        );
        let stats = hub.stats();
        assert_eq!(stats.pushes, 1, "the first fits the queue of 1");
        assert_eq!(stats.evictions, 1, "the second overflows it");
        assert_eq!(
            stats.dropped, 2,
            "the third finds it evicted; the fourth a closed socket"
        );

        drop(gone);
        assert_eq!(hub.stats().topics, 2);
    }
}
