//! Leases as the engine uses them (several nodes on one PostgreSQL; see `store::leases`).
//! On SQLite every call is a no-op that says "held": one process owns the file.

use std::time::Duration;

use crate::store::leases;
use crate::store::runs::QueuedRun;
use crate::store::{Store, StoreResult};

/// This node's name and how long its leases last without renewal.
#[derive(Debug)]
pub struct NodeLease {
    /// Unique per running node (`--node-id`): a node restarted under the same id takes
    /// its own leases back at once.
    pub node_id: String,
    /// `--lease-secs`: how long a dead node's work waits before another node takes it.
    pub lease: Duration,
    /// Whether this node holds the cluster-wide duties lease ([`DUTIES`]).
    duties: std::sync::atomic::AtomicBool,
    /// Woken when `duties` changes.
    duties_changed: tokio::sync::Notify,
}

/// The lease of the cluster-wide duties one node does at a time: the scheduler's
/// due-sources (timers, batch closes, schedules, expiries, wakes), the counter fold and
/// retention.
pub const DUTIES: &str = "duties";

impl NodeLease {
    fn new(node_id: String, lease: Duration) -> NodeLease {
        NodeLease {
            node_id,
            lease,
            duties: std::sync::atomic::AtomicBool::new(false),
            duties_changed: tokio::sync::Notify::new(),
        }
    }
}

/// The default lease: a dead node's work resumes elsewhere within about this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

impl Default for NodeLease {
    fn default() -> Self {
        NodeLease::new(crate::config::default_node_id(), DEFAULT_LEASE)
    }
}

impl Store {
    /// Names this node and its lease length (PostgreSQL; ignored on SQLite).
    pub fn with_node(mut self, node_id: String, lease: Duration) -> Store {
        if self.node.is_some() {
            self.node = Some(std::sync::Arc::new(NodeLease::new(node_id, lease)));
        }
        self
    }

    /// Whether several nodes may share this database (PostgreSQL), so work is claimed
    /// under leases.
    pub fn is_shared(&self) -> bool {
        self.node.is_some()
    }

    /// This node's lease settings, on a shared database.
    pub fn node(&self) -> Option<&NodeLease> {
        self.node.as_deref()
    }

    /// Whether this node does the cluster-wide duties now: always on SQLite; on a shared
    /// database while it holds the [`DUTIES`] lease.
    pub fn holds_duties(&self) -> bool {
        self.node
            .as_ref()
            .is_none_or(|n| n.duties.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Returns when [`Store::holds_duties`] may have changed (never on SQLite).
    pub async fn duties_changed(&self) {
        match &self.node {
            Some(n) => n.duties_changed.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Records whether this node holds the duties lease; whether that changed.
    pub(crate) fn set_duties_held(&self, held: bool) -> bool {
        let Some(n) = &self.node else { return false };
        let was = n.duties.swap(held, std::sync::atomic::Ordering::SeqCst);
        if was != held {
            n.duties_changed.notify_waiters();
        }
        was != held
    }

    fn lease_times(&self, lease: Duration) -> (String, String) {
        lease_times_at(self.readers.clock().now_utc(), lease)
    }

    /// Takes or renews the cluster-wide lease `name`; whether this node holds it.
    pub(crate) async fn hold_lease(&self, name: &'static str) -> StoreResult<bool> {
        let Some(node) = self.node.clone() else {
            return Ok(true);
        };
        self.write(move |db| {
            let (until, now) = lease_times_at(db.now_utc(), node.lease);
            leases::hold(db, name, &node.node_id, &until, &now)
        })
        .await
    }

    /// Gives lease `name` back (graceful shutdown).
    pub(crate) async fn release_lease(&self, name: &'static str) -> StoreResult<()> {
        let Some(node) = self.node.clone() else {
            return Ok(());
        };
        self.write(move |db| leases::release(db, name, &node.node_id))
            .await
    }

    /// Renews this node's leases on the queued runs it holds; returns those another node
    /// holds (to let go of).
    pub(crate) async fn renew_run_leases(&self, runs: Vec<String>) -> StoreResult<Vec<String>> {
        let Some(node) = self.node.clone() else {
            return Ok(Vec::new());
        };
        self.write(move |db| {
            let (until, now) = lease_times_at(db.now_utc(), node.lease);
            leases::renew_runs(db, &node.node_id, &runs, &until, &now)
        })
        .await
    }

    /// Gives back every run lease of this node (graceful shutdown).
    pub(crate) async fn release_run_leases(&self) -> StoreResult<()> {
        let Some(node) = self.node.clone() else {
            return Ok(());
        };
        self.write(move |db| leases::release_runs(db, &node.node_id))
            .await
    }

    /// Of `ids` (runs handed to the runner in memory), those still queued that this node
    /// may run: on a shared database each is leased to it in this write (its own,
    /// unleased or lapsed; another node's live lease keeps it there).
    pub(crate) async fn claim_queued_among(&self, ids: Vec<String>) -> StoreResult<Vec<QueuedRun>> {
        let Some(node) = self.node.clone() else {
            return self.queued_runs_among(ids).await;
        };
        let mine = self
            .write(move |db| {
                let (until, now) = lease_times_at(db.now_utc(), node.lease);
                leases::claim_among(db, &node.node_id, &ids, &until, &now)
            })
            .await?;
        self.queued_runs_among(mine).await
    }

    /// The lease a run accepted by this node gets with its insert: (owner, until), or
    /// `None` on SQLite.
    pub(crate) fn new_run_lease(&self) -> Option<(String, String)> {
        let node = self.node.as_ref()?;
        let (until, _) = self.lease_times(node.lease);
        Some((node.node_id.clone(), until))
    }

    /// The runner's rescan on a shared database: the next page of queued runs this node
    /// may take, leased to it in the same write; and where the page ended (0: start over).
    pub(crate) async fn claim_queued_runs(
        &self,
        after: i64,
        limit: usize,
    ) -> StoreResult<(Vec<(i64, QueuedRun)>, i64)> {
        let Some(node) = self.node.clone() else {
            let page = self.queued_runs_after(after, limit).await?;
            let end = if page.len() == limit {
                page.last().map_or(0, |r| r.0)
            } else {
                0
            };
            return Ok((page, end));
        };
        self.write(move |db| {
            let (until, now) = lease_times_at(db.now_utc(), node.lease);
            leases::claim_queued(db, &node.node_id, after, limit, &until, &now)
        })
        .await
    }
}

/// A lease of `lease` taken at `now`: (until, now) as stored. Lease writes compute it
/// inside the write, when it runs, not when it was queued: a renewal waiting behind
/// fan-out pages in the writer's queue would otherwise store an `until` already partly
/// spent, and a busy node could let its own leases lapse.
fn lease_times_at(now: chrono::DateTime<chrono::Utc>, lease: Duration) -> (String, String) {
    let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    (crate::clock::format(until), crate::clock::format(now))
}
