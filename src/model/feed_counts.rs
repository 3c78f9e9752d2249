//! The badge counts of one feed view.

use serde::Serialize;

/// The badge counts of one feed view, as `meta` and socket metadata carry them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FeedCounts {
    pub total_count: i64,
    pub unread_count: i64,
    pub unseen_count: i64,
}
