//! The registry: which sessions are joined to which feed. A [`Registration`] (one per
//! socket) adds its topics' entries and removes them when it is dropped, so the map
//! holds exactly the open sockets' joins.
//!
//! No `.await` while a DashMap guard is held: subscribers are cloned out first.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use super::Hub;
use super::link::{SHUTDOWN, SessionLink, Stopped, Wake};
use crate::model::RecipientRef;
use crate::realtime::join::JoinParams;

/// A feed: (channel UUID, recipient).
pub type FeedId = (String, RecipientRef);

/// A feed as the hub keys it: channel UUID and recipient in one string (see
/// [`feed_key`]), one allocation shared by the map and every joined socket's
/// registration.
pub(super) type FeedKey = Arc<str>;

/// `{channel}\0u{user id}` or `{channel}\0o{collection}\0{object id}`: one string per
/// feed instead of three. Unambiguous: channel UUIDs and collection names hold no NUL.
pub(super) fn feed_key(channel: &str, recipient: &RecipientRef) -> String {
    match recipient {
        RecipientRef::User(id) => format!("{channel}\0u{id}"),
        RecipientRef::Object { id, collection } => format!("{channel}\0o{collection}\0{id}"),
    }
}

/// The feed a [`feed_key`] names (its inverse).
pub(super) fn feed_of_key(key: &str) -> Option<FeedId> {
    let (channel, rest) = key.split_once('\0')?;
    let recipient = if let Some(user) = rest.strip_prefix('u') {
        RecipientRef::User(user.to_owned())
    } else {
        let (collection, id) = rest.strip_prefix('o')?.split_once('\0')?;
        RecipientRef::Object {
            id: id.to_owned(),
            collection: collection.to_owned(),
        }
    };
    Some((channel.to_owned(), recipient))
}

/// One joined topic of one session.
#[derive(Clone)]
pub(super) struct Subscriber {
    pub(super) link: Arc<SessionLink>,
    pub(super) topic: Arc<str>,
    pub(super) join_ref: Option<Arc<str>>,
    pub(super) params: Arc<JoinParams>,
    pub(super) restriction: Option<Arc<[String]>>,
}

impl Hub {
    /// Registers a new socket, to be stopped after `idle` without a frame from its
    /// client ([`Registration::touch`]) and once `expires_in` has passed (its user
    /// token's expiry, if any); dropping the registration unregisters it.
    pub fn register(&self, idle: Duration, expires_in: Option<Duration>) -> Registration {
        let link = Arc::new(SessionLink::new(
            self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            self.inner.deadline(idle),
            expires_in.map_or(u64::MAX, |e| self.inner.deadline(e)),
        ));
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

    /// Takes `session`'s `topic` out of feed `key`, and the feed out once it is empty.
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
    pub(super) link: Arc<SessionLink>,
    /// Joined topics (at most `TIDINGS_WS_MAX_TOPICS`, usually one or two): a `Vec`
    /// sized to fit costs a tenth of a `HashMap` per idle socket; the topic string is
    /// shared with the hub's subscriber entry.
    pub(super) topics: Vec<(Arc<str>, FeedKey)>,
}

impl Registration {
    /// The session's id in the hub (for logs and tests).
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

    /// Whether `topic` is joined (a second join replaces the first).
    pub fn is_joined(&self, topic: &str) -> bool {
        self.topics.iter().any(|(t, _)| &**t == topic)
    }

    /// Topics joined (bounded by `--ws-max-topics`).
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
        self.link.close();
        for (topic, key) in std::mem::take(&mut self.topics) {
            self.hub.remove(&key, self.link.id, &topic);
        }
        self.hub.inner.sessions.remove(&self.link.id);
    }
}
#[cfg(test)]
mod tests {
    use super::*;

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
        for key in &keys {
            let (channel, recipient) = feed_of_key(key).expect("a feed key");
            assert_eq!(&feed_key(&channel, &recipient), key);
        }
        assert_eq!(feed_of_key("no-separator"), None);
        assert_eq!(keys[0], feed_key("c1", &user("u1")));
    }
}
