//! Whose turn it is: the runner's work queued per tenant, taken in bounded slices.
//!
//! Every piece of work belongs to a [`FairKey`]: its tenant, or, without a tenant, its
//! workflow. Each key has its own FIFO; [`FairQueue::pop`] serves the key with the fewest
//! slices running right now, ties broken round-robin. So a tenant with a 1,000,000-item
//! fan-out and one with a single notify alternate slice by slice: the single notify
//! waits for at most one slice to end, never for the fan-out. Work that continues after
//! its slice goes back to the *front* of its key's queue, so within a key a run finishes
//! before the next one starts (what is open per key is bounded by the slices it runs).
//!
//! How large a slice is adapts too ([`PageSizer`]): while one key has had the runner to
//! itself for [`SHARED_FOR`], its fan-out pages are large (fewer commits per item); as soon
//! as another key has work, pages are small again, so the others wait for a short page.
//!
//! Pure data structures (no I/O), so the policy is unit-tested here.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Whose work it is, for fairness.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FairKey {
    Tenant(String),
    /// Work without a tenant, one queue per workflow.
    Workflow(String),
}

impl FairKey {
    /// The key of a run of `workflow` triggered with `tenant`.
    pub fn of(workflow: &str, tenant: Option<&str>) -> FairKey {
        match tenant {
            Some(t) => FairKey::Tenant(t.to_owned()),
            None => FairKey::Workflow(workflow.to_owned()),
        }
    }
}

/// Per-key FIFOs served least-running-first, round-robin among equals, each key running
/// at most `per_key` slices at once.
pub struct FairQueue<T> {
    per_key: usize,
    queues: HashMap<FairKey, VecDeque<T>>,
    running: HashMap<FairKey, usize>,
    /// Keys with queued work, in turn order.
    ring: VecDeque<FairKey>,
}

impl<T> FairQueue<T> {
    /// A queue letting each key run at most `per_key` slices at once (at least one).
    pub fn new(per_key: usize) -> Self {
        FairQueue {
            per_key: per_key.max(1),
            queues: HashMap::new(),
            running: HashMap::new(),
            ring: VecDeque::new(),
        }
    }

    /// Queues new work behind the key's other work.
    pub fn push_back(&mut self, key: FairKey, item: T) {
        self.queue(key).push_back(item);
    }

    /// Queues work that continues after a slice ahead of the key's other work.
    pub fn push_front(&mut self, key: FairKey, item: T) {
        self.queue(key).push_front(item);
    }

    fn queue(&mut self, key: FairKey) -> &mut VecDeque<T> {
        if !self.queues.contains_key(&key) {
            self.ring.push_back(key.clone());
        }
        self.queues.entry(key).or_default()
    }

    /// The next work to run and its key, counted as running until [`FairQueue::done`].
    pub fn pop(&mut self) -> Option<(FairKey, T)> {
        let running = |k: &FairKey| self.running.get(k).copied().unwrap_or(0);
        let (index, _) = self
            .ring
            .iter()
            .enumerate()
            .filter(|(_, k)| running(k) < self.per_key)
            .min_by_key(|(i, k)| (running(k), *i))?;
        let key = self.ring.remove(index)?;
        let queue = self.queues.get_mut(&key)?;
        let item = queue.pop_front()?;
        if queue.is_empty() {
            self.queues.remove(&key);
        } else {
            self.ring.push_back(key.clone());
        }
        *self.running.entry(key.clone()).or_default() += 1;
        Some((key, item))
    }

    /// A slice of `key`'s work ended (its continuation, if any, was pushed already).
    pub fn done(&mut self, key: &FairKey) {
        if let Some(n) = self.running.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.running.remove(key);
            }
        }
    }

    /// Takes every queued item out (shutdown).
    pub fn drain(&mut self) -> Vec<T> {
        self.ring.clear();
        self.queues.drain().flat_map(|(_, q)| q).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Whether any key other than `key` has work queued or running.
    pub fn others_than(&self, key: &FairKey) -> bool {
        self.queues
            .keys()
            .chain(self.running.keys())
            .any(|k| k != key)
    }
}

/// How long after another key last had work pages stay at the shared size.
pub const SHARED_FOR: Duration = Duration::from_secs(1);

/// Recipients for the next fan-out page: `solo` while one key has had the runner to itself
/// for [`SHARED_FOR`], `shared` otherwise. The first slice of a newcomer still waits for
/// the (at most [`crate::engine::runner::MAX_SLICES_PER_KEY`]) solo pages in flight; every
/// later one only for shared pages.
#[derive(Debug)]
pub struct PageSizer {
    shared: usize,
    solo: usize,
    /// When a slice last started while another key had work.
    shared_at: Option<Instant>,
}

impl PageSizer {
    /// `solo` below `shared` is raised to it; both are at least 1.
    pub fn new(shared: usize, solo: usize) -> Self {
        let shared = shared.max(1);
        PageSizer {
            shared,
            solo: solo.max(shared),
            shared_at: None,
        }
    }

    /// The page size for a slice starting `now`; `others` = another key has work.
    pub fn next(&mut self, others: bool, now: Instant) -> usize {
        if others {
            self.shared_at = Some(now);
        }
        match self.shared_at {
            Some(at) if now.saturating_duration_since(at) < SHARED_FOR => self.shared,
            _ => self.solo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(t: &str) -> FairKey {
        FairKey::Tenant(t.into())
    }

    #[test]
    fn a_key_with_nothing_running_goes_before_a_busy_one_whatever_was_queued_first() {
        let mut q = FairQueue::new(16);
        for i in 0..100 {
            q.push_back(tenant("a"), i);
        }
        for _ in 0..16 {
            assert_eq!(q.pop().map(|(k, _)| k), Some(tenant("a")));
        }
        q.push_back(tenant("b"), 1000);
        assert_eq!(q.pop(), Some((tenant("b"), 1000)));
    }

    #[test]
    fn equal_keys_take_turns_and_continuations_resume_first() {
        let mut q = FairQueue::new(16);
        q.push_back(tenant("a"), 1);
        q.push_back(tenant("a"), 2);
        q.push_back(FairKey::Workflow("w".into()), 10);
        let (k, first) = q.pop().expect("work");
        assert_eq!((k.clone(), first), (tenant("a"), 1));
        // `a` now runs one slice, so the no-tenant workflow goes next.
        assert_eq!(q.pop(), Some((FairKey::Workflow("w".into()), 10)));
        q.push_front(k.clone(), first);
        q.done(&k);
        assert_eq!(q.pop(), Some((tenant("a"), 1)));
        assert_eq!(q.pop(), Some((tenant("a"), 2)));
        assert!(q.pop().is_none() && q.is_empty());
    }

    #[test]
    fn a_key_runs_at_most_its_share_of_slices() {
        let mut q = FairQueue::new(2);
        (0..5).for_each(|i| q.push_back(tenant("a"), i));
        assert!(q.pop().is_some() && q.pop().is_some());
        assert!(q.pop().is_none(), "a third slice of `a` waits");
        q.done(&tenant("a"));
        assert_eq!(q.pop(), Some((tenant("a"), 2)));
    }

    #[test]
    fn drain_returns_everything_queued() {
        let mut q = FairQueue::new(16);
        q.push_back(tenant("a"), 1);
        q.push_back(tenant("b"), 2);
        let mut all = q.drain();
        all.sort();
        assert_eq!(all, vec![1, 2]);
        assert!(q.is_empty() && q.pop().is_none());
    }

    #[test]
    fn others_than_sees_queued_and_running_work_of_other_keys() {
        let mut q = FairQueue::new(4);
        q.push_back(tenant("a"), 1);
        assert!(!q.others_than(&tenant("a")));
        assert!(q.others_than(&tenant("b")), "a is queued");
        let (a, _) = q.pop().expect("work");
        assert!(q.others_than(&tenant("b")), "a is running");
        q.push_back(tenant("b"), 2);
        assert!(q.others_than(&a));
        assert_eq!(q.pop().map(|(k, _)| k), Some(tenant("b")));
        q.done(&tenant("b"));
        assert!(!q.others_than(&a), "b finished");
    }

    #[test]
    fn pages_are_solo_sized_only_after_one_key_had_the_runner_alone_for_a_while() {
        let start = Instant::now();
        let mut sizer = PageSizer::new(100, 500);
        assert_eq!(sizer.next(false, start), 500, "nobody else ever had work");
        assert_eq!(sizer.next(true, start), 100);
        let soon = start + SHARED_FOR / 2;
        assert_eq!(
            sizer.next(false, soon),
            100,
            "another key had work just now"
        );
        assert_eq!(sizer.next(false, start + SHARED_FOR), 500);
        assert_eq!(sizer.next(true, start + SHARED_FOR * 3), 100);
        // A solo size below the shared one is raised to it.
        assert_eq!(PageSizer::new(100, 10).next(false, start), 100);
        assert_eq!(PageSizer::new(0, 0).next(true, start), 1);
    }
}
