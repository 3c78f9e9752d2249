//! The hub: which sessions are joined to which feed, and publishing after commit.
//!
//! Invariants:
//! - The registry maps a feed (channel UUID, recipient) to its subscribers; a
//!   [`Registration`] (one per socket) removes its entries when dropped.
//! - `publish` is called only after the messages committed, never blocks and never
//!   awaits: it adds the items of joined feeds to the bounded [`Outbox`] (which folds a
//!   feed past its bounds into one push with fresh counts, so memory stays bounded and
//!   no push is lost) and wakes one publisher task, which computes counts on the
//!   read-only pool (off the writer path), serializes each payload once and queues it on
//!   the session's link without waiting. A session whose queue is full is evicted (the
//!   client reconnects and refetches).
//! - Each socket's link is one small allocation: its push queue (empty and unallocated
//!   while idle), its stop state (evicted, shut down, silent too long, token expired),
//!   its two deadlines and the session's waker, woken for any of these. An idle
//!   socket's task waits on that waker and its client, nothing else: no timer of its own.
//! - Deadlines (the idle timeout, a user token's expiry) are checked for every session
//!   by one sweeper task every [`DEADLINE_RESOLUTION`], so a socket closes at most that
//!   much after its deadline, and a socket's task holds no timer.
//! - Batches are delivered in commit order; queued batches are folded into one pass, so
//!   a burst for one feed becomes one push whose counts are current.
//! - No `.await` while a DashMap guard is held: subscribers are cloned out first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use bytestring::ByteString;
use dashmap::DashMap;
use futures_util::task::AtomicWaker;
use tokio::time::Instant;

use super::frames::push_text;
use super::join::JoinParams;
pub use super::outbox::PUBLISH_QUEUE;
use super::outbox::{FeedBatch, Outbox, Waiting};
use crate::auth::access::restriction_admits;
use crate::clock::Clock;
use crate::model::feed_counts::FeedCounts;
use crate::model::message::MessageRow;
use crate::model::{FeedFilters, RecipientRef};
use crate::store::CountJob;
use crate::store::Store;

/// A feed: (channel UUID, recipient).
pub type FeedId = (String, RecipientRef);

/// A feed as the hub keys it: channel UUID and recipient in one string (see
/// [`feed_key`]), one allocation shared by the map and every joined socket's
/// registration.
type FeedKey = Arc<str>;

/// `{channel}\0u{user id}` or `{channel}\0o{collection}\0{object id}`: one string per
/// feed instead of three. Unambiguous: channel UUIDs and collection names hold no NUL.
fn feed_key(channel: &str, recipient: &RecipientRef) -> String {
    match recipient {
        RecipientRef::User(id) => format!("{channel}\0u{id}"),
        RecipientRef::Object { id, collection } => format!("{channel}\0o{collection}\0{id}"),
    }
}

/// Store reads that sockets' joins may run at once (the channel lookup, the counts). A
/// burst of joins (every client reconnecting after a restart) then queues here instead
/// of occupying a blocking thread and a reader connection each: without the bound,
/// 64 concurrent joins grew the server by ~60 threads (issue 10 item 4).
pub const JOIN_READS: usize = 4;

/// How often the sweeper looks for sessions past a deadline: a silent socket or one
/// whose token expired is closed at most this long after its deadline.
pub const DEADLINE_RESOLUTION: Duration = Duration::from_millis(250);

/// Why the hub stopped a session (see [`Registration::stopped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Its push queue overflowed: the client was not reading.
    Evicted,
    /// The server is shutting down.
    Shutdown,
    /// The client sent nothing for the idle timeout.
    Idle,
    /// The user token the socket connected with has expired.
    TokenExpired,
}

/// What the hub wakes a session for (see [`Registration::next`]).
#[derive(Debug)]
pub enum Wake {
    Push(ByteString),
    Stop(Stopped),
}

const RUNNING: u8 = 0;
const EVICTED: u8 = 1;
const SHUTDOWN: u8 = 2;
/// The session ended; pushes are dropped.
const GONE: u8 = 3;
const IDLE: u8 = 4;
const TOKEN_EXPIRED: u8 = 5;

/// What the hub knows about one socket.
struct SessionLink {
    id: u64,
    /// Pushes not yet taken by the session, at most the hub's `queue`. Locked only to
    /// push or pop; released (no allocation) whenever it empties.
    pending: std::sync::Mutex<VecDeque<ByteString>>,
    /// `RUNNING`, or why not (`EVICTED`, `SHUTDOWN`, `IDLE`, `TOKEN_EXPIRED`, `GONE`);
    /// leaves `RUNNING` once.
    state: AtomicU8,
    /// When the client has been silent too long, in milliseconds after the hub's start;
    /// moved on by every frame from the client ([`Registration::touch`]).
    idle_at: AtomicU64,
    /// When the socket's user token expires, in the same clock (`u64::MAX`: never).
    expires_at: AtomicU64,
    /// The session's task, woken when a push was queued or it must stop. The session
    /// registers before it looks at the queue and the state, so nothing set after its
    /// look goes unnoticed. (Kept here rather than as a `Notified` in the session's
    /// future: an idle task is then 128 bytes smaller, issue 10 item 4.)
    wake: AtomicWaker,
}

impl SessionLink {
    fn stop(&self, why: u8) -> bool {
        let stopped = self
            .state
            .compare_exchange(RUNNING, why, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if stopped {
            self.wake.wake();
        }
        stopped
    }

    /// Stops the session if `now` is past one of its deadlines (the token's first).
    fn check_deadlines(&self, now: u64) {
        if self.expires_at.load(Ordering::Relaxed) <= now {
            self.stop(TOKEN_EXPIRED);
        } else if self.idle_at.load(Ordering::Relaxed) <= now {
            self.stop(IDLE);
        }
    }

    fn stopped(&self) -> Option<Stopped> {
        match self.state.load(Ordering::SeqCst) {
            EVICTED => Some(Stopped::Evicted),
            SHUTDOWN => Some(Stopped::Shutdown),
            IDLE => Some(Stopped::Idle),
            TOKEN_EXPIRED => Some(Stopped::TokenExpired),
            // GONE is set only by the session itself, on its way out.
            _ => None,
        }
    }

    fn pop(&self) -> Option<ByteString> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let text = pending.pop_front();
        if pending.is_empty() && pending.capacity() > 0 {
            // An idle socket holds no queue memory.
            *pending = VecDeque::new();
        }
        text
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
    /// Committed items waiting for the publisher (at most [`PUBLISH_QUEUE`]).
    pub publish_queue: usize,
}

struct Inner {
    store: Store,
    /// [`JOIN_READS`] permits.
    join_reads: tokio::sync::Semaphore,
    queue: usize,
    feeds: DashMap<FeedKey, Vec<Subscriber>>,
    sessions: DashMap<u64, Arc<SessionLink>>,
    /// Parsed join params by their payload's JSON text: sockets that send the same
    /// payload (every browser of one app, usually) share one parse. Entries whose
    /// sockets have all left are swept once the table doubles (see `join_params`).
    params: DashMap<String, Weak<JoinParams>>,
    /// Entries in `params` after its last sweep.
    params_after_sweep: AtomicUsize,
    next_id: AtomicU64,
    pushes: AtomicU64,
    evictions: AtomicU64,
    dropped: AtomicU64,
    joins: AtomicU64,
    /// Committed items on their way to the publisher task.
    outbox: Arc<Outbox>,
    /// The engine's clock: counts leave out items past their expiry at its `now`.
    clock: Clock,
    shutting_down: AtomicBool,
    /// The clock of the sessions' deadlines.
    started: Instant,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The publisher waits on the outbox, not the hub: wake it to end.
        self.outbox.close();
    }
}

impl Inner {
    /// Milliseconds since the hub started (the deadlines' clock).
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `after` from now, in the deadlines' clock.
    fn deadline(&self, after: Duration) -> u64 {
        let after = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        self.now().saturating_add(after)
    }
}

/// Cheap to clone; every clone is the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// Creates the hub and starts its publisher task; call inside the tokio runtime.
    /// `queue` is each session's push queue depth; `clock` is the engine's (counts leave
    /// out what expired by its reading).
    pub fn new(store: Store, queue: usize, clock: Clock) -> Self {
        let outbox = Arc::new(Outbox::default());
        let hub = Hub {
            inner: Arc::new(Inner {
                store,
                join_reads: tokio::sync::Semaphore::new(JOIN_READS),
                queue: queue.max(1),
                feeds: DashMap::new(),
                sessions: DashMap::new(),
                params: DashMap::new(),
                params_after_sweep: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                pushes: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                joins: AtomicU64::new(0),
                outbox: outbox.clone(),
                clock,
                shutting_down: AtomicBool::new(false),
                started: Instant::now(),
            }),
        };
        // The task holds only a weak handle, so dropping the last `Hub` ends it.
        let weak = Arc::downgrade(&hub.inner);
        tokio::spawn(publisher(weak.clone(), outbox));
        tokio::spawn(sweeper(weak));
        hub
    }

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

    /// Closes every socket (code 1001) and refuses new ones; called on shutdown.
    pub fn shutdown(&self) {
        // The flag first: a session registering from here on sees it (`register`), and
        // one registered before is in `sessions` below.
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let links: Vec<Arc<SessionLink>> = self
            .inner
            .sessions
            .iter()
            .map(|e| e.value().clone())
            .collect();
        for link in links {
            link.stop(SHUTDOWN);
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Runs a socket join's store read (`read`, e.g. `store.feed_counts(..)`), at most
    /// [`JOIN_READS`] at once.
    pub async fn join_read<T>(
        &self,
        read: impl Future<Output = crate::store::StoreResult<T>>,
    ) -> crate::store::StoreResult<T> {
        // The semaphore is never closed; were it, the read would run unbounded.
        let _permit = self.inner.join_reads.acquire().await.ok();
        read.await
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
            publish_queue: self.inner.outbox.depth(),
        }
    }

    /// Parses a `phx_join` payload, or hands out the params another socket already
    /// parsed from the same payload. Equal JSON text means equal params, so sharing is
    /// invisible to the sockets; what a socket may see is decided by its `restriction`,
    /// which is its own.
    pub fn join_params(&self, payload: &serde_json::Value) -> Result<Arc<JoinParams>, String> {
        let text = payload.to_string();
        if let Some(params) = self.inner.params.get(&text).and_then(|p| p.upgrade()) {
            return Ok(params);
        }
        let params = Arc::new(JoinParams::parse(payload)?);
        self.inner.params.insert(text, Arc::downgrade(&params));
        // Amortized O(1) per join; the table stays under twice its live entries (or
        // twice a small floor), however many distinct payloads come and go.
        let floor = self
            .inner
            .params_after_sweep
            .load(Ordering::Relaxed)
            .max(64);
        if self.inner.params.len() > 2 * floor {
            self.inner.params.retain(|_, p| p.strong_count() > 0);
            self.inner
                .params_after_sweep
                .store(self.inner.params.len(), Ordering::Relaxed);
        }
        Ok(params)
    }

    /// Registers a new socket, to be stopped after `idle` without a frame from its
    /// client ([`Registration::touch`]) and once `expires_in` has passed (its user
    /// token's expiry, if any); dropping the registration unregisters it.
    pub fn register(&self, idle: Duration, expires_in: Option<Duration>) -> Registration {
        let link = Arc::new(SessionLink {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            pending: std::sync::Mutex::new(VecDeque::new()),
            state: AtomicU8::new(RUNNING),
            idle_at: AtomicU64::new(self.inner.deadline(idle)),
            expires_at: AtomicU64::new(expires_in.map_or(u64::MAX, |e| self.inner.deadline(e))),
            wake: AtomicWaker::new(),
        });
        self.inner.sessions.insert(link.id, link.clone());
        if self.is_shutting_down() {
            link.stop(SHUTDOWN);
        }
        Registration {
            hub: self.clone(),
            link,
            topics: Vec::new(),
        }
    }

    fn remove(&self, key: &str, session: u64, topic: &str) {
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

    /// The client was heard from: it is next due for the idle timeout `idle` from now.
    pub fn touch(&self, idle: Duration) {
        let at = self.hub.inner.deadline(idle);
        self.link.idle_at.store(at, Ordering::Relaxed);
    }

    /// Subscribes `topic` to `key`, replacing any earlier join of the same topic.
    pub fn join(
        &mut self,
        topic: &str,
        key: FeedId,
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
        let mut entry = self
            .hub
            .inner
            .feeds
            .entry(Arc::from(feed_key(&key.0, &key.1)))
            // Most feeds have one socket: `push` onto an empty `Vec` would reserve four.
            .or_insert_with(|| Vec::with_capacity(1));
        entry.push(subscriber);
        // The map's key, shared (a feed joined before keeps its first allocation).
        let key = entry.key().clone();
        drop(entry);
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

    /// The next thing the hub has for this session: a stop (checked first) or a push.
    pub async fn next(&self) -> Wake {
        std::future::poll_fn(|cx| {
            self.link.wake.register(cx.waker());
            if let Some(why) = self.link.stopped() {
                return Poll::Ready(Wake::Stop(why));
            }
            match self.link.pop() {
                Some(text) => Poll::Ready(Wake::Push(text)),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Completes once the hub stopped this session. Pushes stay queued for [`next`]
    /// (a push's wake-up lands here too, and is answered there once this returns to
    /// the loop, which looks at the queue before it waits).
    ///
    /// [`next`]: Registration::next
    pub async fn stopped(&self) -> Stopped {
        std::future::poll_fn(|cx| {
            self.link.wake.register(cx.waker());
            match self.link.stopped() {
                Some(why) => Poll::Ready(why),
                None => Poll::Pending,
            }
        })
        .await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.link.state.store(GONE, Ordering::SeqCst);
        *self.link.pending.lock().unwrap_or_else(|e| e.into_inner()) = VecDeque::new();
        for (topic, key) in std::mem::take(&mut self.topics) {
            self.hub.remove(&key, self.link.id, &topic);
        }
        self.hub.inner.sessions.remove(&self.link.id);
    }
}

/// Stops every session past one of its deadlines, every [`DEADLINE_RESOLUTION`]; ends
/// with the hub. One pass is a read of two atomics per session.
async fn sweeper(hub: std::sync::Weak<Inner>) {
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

async fn publisher(hub: std::sync::Weak<Inner>, outbox: Arc<Outbox>) {
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
fn send(hub: &Hub, subscriber: &Subscriber, text: ByteString) {
    let link = &subscriber.link;
    let queued = {
        let mut pending = link.pending.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock, so a session that is going away (`GONE`) gets nothing more.
        if link.state.load(Ordering::SeqCst) != RUNNING {
            None
        } else if pending.len() >= hub.inner.queue {
            Some(false)
        } else {
            pending.push_back(text);
            Some(true)
        }
    };
    match queued {
        Some(true) => {
            hub.inner.pushes.fetch_add(1, Ordering::Relaxed);
            link.wake.wake();
        }
        // Full: this push evicts the session (unless another push just did).
        Some(false) if link.stop(EVICTED) => {
            hub.inner.evictions.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                session = link.id,
                "realtime: evicting a session that fell behind"
            );
        }
        Some(false) | None => {
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
    use super::*;

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

    #[tokio::test]
    async fn equal_join_payloads_share_one_parse_and_dead_entries_are_swept() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("hub.db"), false).expect("store");
        let hub = Hub::new(store, 1, Clock::system());
        let payload = serde_json::json!({"client_0": {"archived": "exclude"}});
        let a = hub.join_params(&payload).expect("parses");
        let b = hub.join_params(&payload).expect("parses");
        assert!(Arc::ptr_eq(&a, &b));
        let other = hub
            .join_params(&serde_json::json!({"client_0": {"archived": "include"}}))
            .expect("parses");
        assert!(!Arc::ptr_eq(&a, &other));
        assert_ne!(*a, *other);
        assert!(
            hub.join_params(&serde_json::json!({"client_0": {"status": "bogus"}}))
                .is_err()
        );
        drop((a, b, other));
        for i in 0..1000 {
            let _ =
                hub.join_params(&serde_json::json!({ "client_0": {"tenant": format!("t{i}")} }));
        }
        assert!(
            hub.inner.params.len() <= 2 * 64 + 1,
            "{} entries kept for params no socket holds",
            hub.inner.params.len()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn joins_run_at_most_join_reads_store_reads_at_once() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("hub.db"), false).expect("store");
        let hub = Hub::new(store, 1, Clock::system());
        let active = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let reads = (0..4 * JOIN_READS).map(|_| {
            let (hub, active, most) = (hub.clone(), active.clone(), most.clone());
            tokio::spawn(async move {
                hub.join_read(async move {
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Long enough for unbounded reads to overlap well past the bound.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    active.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
            })
        });
        for read in reads.collect::<Vec<_>>() {
            read.await.expect("task").expect("read");
        }
        let most = most.load(Ordering::SeqCst);
        assert!((1..=JOIN_READS).contains(&most), "{most} reads at once");
    }

    #[test]
    fn feed_keys_name_one_feed_each() {
        let user = |id: &str| RecipientRef::User(id.into());
        let object = |collection: &str, id: &str| RecipientRef::Object {
            id: id.into(),
            collection: collection.into(),
        };
        let keys = [
            feed_key("c1", &user("u1")),
            feed_key("c2", &user("u1")),
            feed_key("c1", &user("u2")),
            feed_key("c1", &object("projects", "u1")),
            feed_key("c1", &object("projects", "p:1")),
            feed_key("c1", &object("projects.x", "1")),
            feed_key("c1", &object("projects", "x.1")),
        ];
        let distinct: std::collections::HashSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        assert_eq!(keys[0], feed_key("c1", &user("u1")));
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
