//! The bounded path from the writer's commits to the hub's publisher (issue 17 item
//! 12). `Hub::publish` runs right after a commit and must never block it; the publisher
//! may lag (counting feeds on the read pool, a burst of commits). An unbounded channel
//! between them grew with commit rate × lag; this outbox holds at most
//! [`PUBLISH_QUEUE`] items and folds the rest, so nothing is lost and nothing grows.
//!
//! Invariants:
//! - Only items of feeds some socket joined are kept (the others would reach no one).
//! - A feed's items are kept in commit order, at most [`PER_FEED`] of them and at most
//!   [`PUBLISH_QUEUE`] in all. Past either bound the feed is *folded*: its items are
//!   dropped and it is remembered once, so its subscribers still get one push, with
//!   counts read after the commit (what the client needs; a push is a nudge plus counts,
//!   DESIGN.md), reacting on every ref. So a socket always ends up with the right counts.
//! - Memory is bounded by [`PUBLISH_QUEUE`] items plus one entry per joined feed.
//! - `push` takes a mutex for the copy only; `take` swaps the whole state out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::hub::FeedId;
use crate::model::message::MessageRow;

/// Most committed items waiting for the publisher.
pub const PUBLISH_QUEUE: usize = 10_000;

/// Most items one feed keeps for filter matching; a burst for one feed becomes one push
/// anyway, and a few items tell which of its refs react.
pub const PER_FEED: usize = 64;

/// What waits for one feed.
#[derive(Debug)]
pub enum FeedBatch {
    /// The new items, in commit order.
    Items(Vec<MessageRow>),
    /// Too many to keep: push fresh counts to every subscriber of the feed.
    Folded,
}

/// Everything waiting, by feed.
#[derive(Debug, Default)]
pub struct Waiting {
    pub feeds: HashMap<FeedId, FeedBatch>,
    /// Items held in `feeds`.
    items: usize,
    /// Feeds folded.
    folded: usize,
}

impl Waiting {
    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }

    fn depth(&self) -> usize {
        self.items + self.folded
    }

    /// Marks `feed` folded: its subscribers get one push with fresh counts on every ref.
    fn fold(&mut self, feed: FeedId) {
        match self.feeds.insert(feed, FeedBatch::Folded) {
            Some(FeedBatch::Folded) => {}
            Some(FeedBatch::Items(items)) => {
                self.items -= items.len();
                self.folded += 1;
            }
            None => self.folded += 1,
        }
    }

    fn add(&mut self, feed: FeedId, message: &MessageRow) {
        let full = self.items >= PUBLISH_QUEUE;
        let batch = self
            .feeds
            .entry(feed)
            .or_insert_with(|| FeedBatch::Items(Vec::new()));
        match batch {
            FeedBatch::Folded => {}
            FeedBatch::Items(items) if full || items.len() >= PER_FEED => {
                self.items -= items.len();
                self.folded += 1;
                *batch = FeedBatch::Folded;
            }
            FeedBatch::Items(items) => {
                items.push(message.clone());
                self.items += 1;
            }
        }
    }
}

/// The outbox shared by the hub (which fills it) and its publisher task (which empties
/// it).
#[derive(Debug, Default)]
pub struct Outbox {
    pending: Mutex<Waiting>,
    depth: AtomicUsize,
    ready: Notify,
    closed: AtomicBool,
}

impl Outbox {
    /// Adds committed `messages` whose feed `joined` says has subscribers; wakes the
    /// publisher. Never blocks on the publisher.
    pub fn push(
        &self,
        messages: &[MessageRow],
        joined: impl Fn(&str, &crate::model::RecipientRef) -> bool,
    ) {
        let mut added = false;
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for m in messages {
                if joined(&m.channel_id, &m.recipient) {
                    pending.add((m.channel_id.clone(), m.recipient.clone()), m);
                    added = true;
                }
            }
            self.depth.store(pending.depth(), Ordering::Relaxed);
        }
        if added {
            self.ready.notify_one();
        }
    }

    /// Folds `feeds` whose counts changed without a new item (an expiry, a snooze) and
    /// that `joined` says have subscribers: each gets one push with fresh counts on every
    /// ref, as a folded feed does. Never blocks on the publisher.
    pub fn push_counts(
        &self,
        feeds: &[FeedId],
        joined: impl Fn(&str, &crate::model::RecipientRef) -> bool,
    ) {
        let mut added = false;
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for feed in feeds {
                if joined(&feed.0, &feed.1) {
                    pending.fold(feed.clone());
                    added = true;
                }
            }
            self.depth.store(pending.depth(), Ordering::Relaxed);
        }
        if added {
            self.ready.notify_one();
        }
    }

    /// Everything waiting, leaving the outbox empty.
    pub fn take(&self) -> Waiting {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.depth.store(0, Ordering::Relaxed);
        std::mem::take(&mut *pending)
    }

    /// Waits until something was pushed since the last `take` (or the outbox closed).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Ends the publisher's wait for good (the hub is gone).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.ready.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Items plus folded feeds waiting (`tidings_realtime_publish_queue`).
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::RecipientRef;

    fn message(user: &str, seq: i64) -> MessageRow {
        MessageRow {
            seq,
            id: format!("m{seq}"),
            channel_id: "c".into(),
            recipient: RecipientRef::User(user.into()),
            tenant: None,
            workflow_key: "w".into(),
            workflow_version_id: String::new(),
            workflow_categories: Vec::new(),
            workflow_run_id: String::new(),
            workflow_recipient_run_id: String::new(),
            step_ref: String::new(),
            actors: Vec::new(),
            data: Arc::new(serde_json::Value::Null),
            blocks: crate::model::message::Blocks::new(serde_json::Value::Null),
            metadata: serde_json::Value::Null,
            inserted_at: String::new(),
            updated_at: String::new(),
            seen_at: None,
            read_at: None,
            archived_at: None,
            interacted_at: None,
            link_clicked_at: None,
            batch: None,
            expires_at: None,
            expired: false,
            snoozed_until: None,
            pinned_at: None,
        }
    }

    #[test]
    fn the_outbox_holds_at_most_its_bound_and_folds_every_feed_past_it() {
        let outbox = Outbox::default();
        // 1,000 feeds × 100 items: ten times the bound, and past each feed's bound.
        for round in 0..100 {
            let batch: Vec<MessageRow> = (0..1000)
                .map(|u| message(&format!("u{u}"), round * 1000 + u))
                .collect();
            outbox.push(&batch, |_, _| true);
            assert!(outbox.depth() <= PUBLISH_QUEUE + 1000, "{}", outbox.depth());
        }
        let pending = outbox.take();
        assert!(pending.items <= PUBLISH_QUEUE);
        assert_eq!(pending.feeds.len(), 1000, "every feed still gets its push");
        assert!(
            pending
                .feeds
                .values()
                .all(|b| matches!(b, FeedBatch::Folded)),
            "100 items each is past the per-feed bound"
        );
        assert_eq!(outbox.depth(), 0);
        assert!(outbox.take().is_empty());
    }

    #[test]
    fn items_are_kept_in_commit_order_until_a_bound_and_unjoined_feeds_are_skipped() {
        let outbox = Outbox::default();
        let batch: Vec<MessageRow> = (0..PER_FEED as i64)
            .flat_map(|i| [message("joined", i), message("nobody", i)])
            .collect();
        outbox.push(&batch, |_, r| *r == RecipientRef::User("joined".into()));
        assert_eq!(outbox.depth(), PER_FEED);
        let mut pending = outbox.take();
        assert_eq!(pending.feeds.len(), 1);
        let key = ("c".to_owned(), RecipientRef::User("joined".into()));
        match pending.feeds.remove(&key) {
            Some(FeedBatch::Items(items)) => {
                let seqs: Vec<i64> = items.iter().map(|m| m.seq).collect();
                assert_eq!(seqs, (0..PER_FEED as i64).collect::<Vec<_>>());
            }
            other => panic!("expected the items, got {other:?}"),
        }
        // One more than the per-feed bound folds the feed, once.
        let batch: Vec<MessageRow> = (0..=PER_FEED as i64)
            .map(|i| message("joined", i))
            .collect();
        outbox.push(&batch, |_, _| true);
        assert_eq!(outbox.depth(), 1);
        assert!(matches!(
            outbox.take().feeds.get(&key),
            Some(FeedBatch::Folded)
        ));
    }

    #[tokio::test]
    async fn a_push_wakes_the_publisher_even_before_it_waits_and_close_ends_it() {
        let outbox = Outbox::default();
        outbox.push(&[message("u", 1)], |_, _| true);
        outbox.ready().await;
        assert!(!outbox.take().is_empty());
        outbox.close();
        outbox.ready().await;
        assert!(outbox.is_closed());
    }
}
