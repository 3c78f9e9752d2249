//! The writer's memory of feed keys (`feeds.id`) it has seen committed, so a fan-out page
//! to recipients who had items before skips the feed lookup (on PostgreSQL the lookup was
//! the second most expensive statement of a fan-out after the messages' insert: ~11 µs per
//! item at 1,000,000 items, BENCHMARKS.md issue 19).
//!
//! Why it can never be wrong: a `feeds` row is never deleted or renamed (`feed_keys`), so a
//! committed key names the same feed forever, on every node. A key is only *staged* while
//! the transaction that read or created it is open, and becomes known when that transaction
//! commits ([`FeedKeyCache::commit`]); a command rolled back to its savepoint or a failed
//! commit drops what it staged ([`FeedKeyCache::discard_from`]). Keys are held by a 128-bit
//! hash of the name under two random per-process keys, so memory stays small (about 40 bytes
//! an entry) and no input can be chosen to collide. Bounded by [`CAPACITY`]: when full it
//! starts over empty, which only costs lookups.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use crate::model::RecipientRef;

/// Feed keys remembered at most (about 4 MB); past it the memory starts over.
pub const CAPACITY: usize = 100_000;

/// See the module documentation. Owned by the writer thread; the mutex is never contended.
pub struct FeedKeyCache {
    hashers: (RandomState, RandomState),
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    known: HashMap<u128, i64>,
    /// Keys read or created by the open transaction, in the order seen.
    staged: Vec<(u128, i64)>,
}

/// A feed's name as the cache holds it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NameHash(u128);

impl Default for FeedKeyCache {
    fn default() -> Self {
        Self::new()
    }
}

impl FeedKeyCache {
    /// An empty cache with fresh random hash keys.
    pub fn new() -> Self {
        Self {
            hashers: (RandomState::new(), RandomState::new()),
            state: Mutex::new(State::default()),
        }
    }

    /// The name of channel `channel`'s feed for `recipient`, hashed.
    pub fn name(&self, channel: &str, recipient: &RecipientRef) -> NameHash {
        let name = (
            channel,
            recipient.kind(),
            recipient.collection(),
            recipient.id(),
        );
        let half = |state: &RandomState| state.hash_one(name);
        NameHash(u128::from(half(&self.hashers.0)) << 64 | u128::from(half(&self.hashers.1)))
    }

    /// The committed key of `name`, if known.
    pub fn get(&self, name: NameHash) -> Option<i64> {
        self.lock().known.get(&name.0).copied()
    }

    /// Remembers `key` for `name` once the open transaction commits.
    pub fn stage(&self, name: NameHash, key: i64) {
        self.lock().staged.push((name.0, key));
    }

    /// Where the staged keys stand now (before a command runs).
    pub fn mark(&self) -> usize {
        self.lock().staged.len()
    }

    /// Forgets what was staged since `mark` (a command rolled back to its savepoint).
    pub fn discard_from(&self, mark: usize) {
        self.lock().staged.truncate(mark);
    }

    /// The open transaction committed: its staged keys are known from now on.
    pub fn commit(&self) {
        let mut state = self.lock();
        let staged = std::mem::take(&mut state.staged);
        if state.known.len() + staged.len() > CAPACITY {
            state.known.clear();
        }
        state.known.extend(staged);
    }

    /// How many keys are known.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().known.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it leaves at worst a partial `staged` list of true keys.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> RecipientRef {
        RecipientRef::User(id.to_owned())
    }

    #[test]
    fn a_key_is_known_only_after_its_transaction_commits() {
        let cache = FeedKeyCache::new();
        let name = cache.name("in-app", &user("u1"));
        cache.stage(name, 7);
        assert_eq!(cache.get(name), None);
        cache.commit();
        assert_eq!(cache.get(name), Some(7));
    }

    #[test]
    fn a_rolled_back_command_forgets_what_it_staged_and_keeps_its_neighbours() {
        let cache = FeedKeyCache::new();
        let (a, b) = (
            cache.name("in-app", &user("a")),
            cache.name("in-app", &user("b")),
        );
        cache.stage(a, 1);
        let mark = cache.mark();
        cache.stage(b, 2);
        cache.discard_from(mark);
        cache.commit();
        assert_eq!((cache.get(a), cache.get(b)), (Some(1), None));
    }

    #[test]
    fn names_differ_by_every_part() {
        let cache = FeedKeyCache::new();
        let names = [
            cache.name("in-app", &user("a")),
            cache.name("other", &user("a")),
            cache.name("in-app", &user("b")),
            cache.name(
                "in-app",
                &RecipientRef::Object {
                    id: "a".into(),
                    collection: "projects".into(),
                },
            ),
            cache.name(
                "in-app",
                &RecipientRef::Object {
                    id: "a".into(),
                    collection: "teams".into(),
                },
            ),
        ];
        for (i, x) in names.iter().enumerate() {
            for y in &names[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(names[0], cache.name("in-app", &user("a")));
    }

    #[test]
    fn past_its_capacity_it_starts_over() {
        let cache = FeedKeyCache::new();
        for i in 0..CAPACITY {
            cache.stage(cache.name("c", &user(&i.to_string())), 1);
        }
        cache.commit();
        assert_eq!(cache.len(), CAPACITY);
        let late = cache.name("c", &user("late"));
        cache.stage(late, 2);
        cache.commit();
        assert_eq!((cache.len(), cache.get(late)), (1, Some(2)));
    }
}
