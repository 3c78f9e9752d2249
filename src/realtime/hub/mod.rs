//! The hub: which sessions are joined to which feed, and publishing after commit.
//!
//! One job per file:
//! - [`registry`]: feeds to subscribers; a [`Registration`] (one per socket) removes
//!   its entries when dropped.
//! - [`link`]: each socket's link, one small allocation: its push queue (empty and
//!   unallocated while idle), its stop state (evicted, shut down, silent too long, token
//!   expired), its two deadlines and the session's waker, woken for any of these. An
//!   idle socket's task waits on that waker and its client, nothing else.
//! - [`sweeper`]: deadlines (the idle timeout, a user token's expiry) are checked for
//!   every session by one task every [`DEADLINE_RESOLUTION`], so a socket closes at
//!   most that much after its deadline and holds no timer of its own.
//! - [`publish`]: `publish` is called only after the messages committed, never blocks
//!   and never awaits: it adds the items of joined feeds to the bounded outbox (which
//!   folds a feed past its bounds into one push with fresh counts, so memory stays
//!   bounded and no push is lost) and wakes one publisher task, which computes counts on
//!   the read-only pool (off the writer path), serializes each payload once and queues
//!   it on the session's link without waiting. A session whose queue is full is evicted
//!   (the client reconnects and refetches).
//!
//! No `.await` while a DashMap guard is held: subscribers are cloned out first.

mod link;
mod publish;
mod registry;
mod sweeper;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use super::outbox::Outbox;
pub use super::outbox::PUBLISH_QUEUE;
use crate::clock::Clock;
use crate::model::FeedFilters;
use crate::realtime::join::JoinParams;
use crate::store::Store;
use link::{SHUTDOWN, SessionLink};
pub use link::{Stopped, Wake};
pub use registry::{FeedId, Registration};
use registry::{FeedKey, Subscriber};
pub use sweeper::DEADLINE_RESOLUTION;

/// Store reads that sockets' joins may run at once (the channel lookup, the counts). A
/// burst of joins (every client reconnecting after a restart) then queues here instead
/// of occupying a blocking thread and a reader connection each: without the bound,
/// 64 concurrent joins grew the server by ~60 threads (issue 10 item 4).
pub const JOIN_READS: usize = 4;

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
    /// Parsed filter sets by their JSON text: sockets whose joins carry the same feed
    /// options (every browser of one app, usually) share one parse. Entries whose
    /// sockets have all left are swept once the table doubles (see `filter_set`).
    filters: DashMap<String, Weak<FeedFilters>>,
    /// Entries in `filters` after its last sweep.
    filters_after_sweep: AtomicUsize,
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

/// A handle that does not keep the hub alive, for tasks that should end with it (the
/// NATS subscriber).
#[derive(Clone)]
pub struct WeakHub(Weak<Inner>);

impl WeakHub {
    /// The hub, while any strong handle is left.
    pub fn upgrade(&self) -> Option<Hub> {
        self.0.upgrade().map(|inner| Hub { inner })
    }
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
                filters: DashMap::new(),
                filters_after_sweep: AtomicUsize::new(0),
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
        tokio::spawn(publish::publisher(weak.clone(), outbox));
        tokio::spawn(sweeper::sweeper(weak));
        hub
    }

    /// A handle that does not keep this hub alive.
    pub fn downgrade(&self) -> WeakHub {
        WeakHub(Arc::downgrade(&self.inner))
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

    /// Whether [`Hub::shutdown`] ran: new sockets are refused.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// The store joins read from (the same one the engine writes).
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

    /// Counters for `/metrics` and tests; O(feeds), read on a scrape only.
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

    /// Parses a `phx_join` payload; each of its filter sets is one another socket already
    /// parsed from the same options when there is one ([`JoinParams::parse_with`]).
    /// Equal JSON text means equal filters, so sharing is invisible to the sockets; what
    /// a socket may see is decided by its `restriction`, which is its own.
    pub fn join_params(&self, payload: &serde_json::Value) -> Result<Arc<JoinParams>, String> {
        JoinParams::parse_with(payload, |options| self.filter_set(options)).map(Arc::new)
    }

    /// The parsed filter set of `options`, shared with every socket that sent the same.
    fn filter_set(&self, options: &serde_json::Value) -> Result<Arc<FeedFilters>, String> {
        let text = options.to_string();
        if let Some(filters) = self.inner.filters.get(&text).and_then(|f| f.upgrade()) {
            return Ok(filters);
        }
        let filters = Arc::new(FeedFilters::from_socket_params(options)?);
        self.inner.filters.insert(text, Arc::downgrade(&filters));
        // Amortized O(1) per join; the table stays under twice its live entries (or
        // twice a small floor), however many distinct options come and go.
        let floor = self
            .inner
            .filters_after_sweep
            .load(Ordering::Relaxed)
            .max(64);
        if self.inner.filters.len() > 2 * floor {
            self.inner.filters.retain(|_, f| f.strong_count() > 0);
            self.inner
                .filters_after_sweep
                .store(self.inner.filters.len(), Ordering::Relaxed);
        }
        Ok(filters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn equal_filter_sets_share_one_parse_and_dead_entries_are_swept() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("hub.db"), false).expect("store");
        let hub = Hub::new(store, 1, Clock::system());
        // What two browsers of one app send: the same options under refs of their own.
        let a = hub
            .join_params(
                &serde_json::json!({"client_V1StGXR8": {"archived": "exclude", "mode": "compact"}}),
            )
            .expect("parses");
        let b = hub
            .join_params(
                &serde_json::json!({"client_Z5jdHi6B": {"archived": "exclude", "mode": "compact"}}),
            )
            .expect("parses");
        let (JoinParams::Refs(ra), JoinParams::Refs(rb)) = (&*a, &*b) else {
            panic!("ref-keyed: {a:?} {b:?}");
        };
        assert!(
            Arc::ptr_eq(&ra[0].1, &rb[0].1),
            "one parse of the same options"
        );
        assert_eq!(
            (&*ra[0].0, &*rb[0].0),
            ("client_V1StGXR8", "client_Z5jdHi6B")
        );
        // A flat (legacy) payload with the same options shares it too.
        let flat = hub
            .join_params(&serde_json::json!({"archived": "exclude", "mode": "compact"}))
            .expect("parses");
        let JoinParams::Legacy(f) = &*flat else {
            panic!("legacy: {flat:?}");
        };
        assert!(Arc::ptr_eq(&ra[0].1, f));
        let other = hub
            .join_params(&serde_json::json!({"client_V1StGXR8": {"archived": "include"}}))
            .expect("parses");
        assert_ne!(*a, *other);
        assert!(
            hub.join_params(&serde_json::json!({"client_0": {"status": "bogus"}}))
                .is_err()
        );
        drop((a, b, flat, other));
        for i in 0..1000 {
            let _ =
                hub.join_params(&serde_json::json!({ "client_0": {"tenant": format!("t{i}")} }));
        }
        assert!(
            hub.inner.filters.len() <= 2 * 64 + 1,
            "{} entries kept for filters no socket holds",
            hub.inner.filters.len()
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
}
