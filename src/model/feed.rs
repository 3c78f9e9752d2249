//! Feed filters and queries (spec §6.1, §7.2, §7.3): the one definition of "which messages
//! belong to this view of a feed", shared by the HTTP feed, badge counts, bulk updates and
//! the socket's new-message matching.
//!
//! Invariants: a `FeedFilters` value is always valid (timestamps normalized, `trigger_data`
//! flat); [`FeedFilters::matches`] decides exactly what the SQL in `store::feeds` selects.
//! Parsing from the wire lives in `feed_params`.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::message::MessageRow;

/// Largest and default `page_size` (spec §1.3).
pub const MAX_PAGE_SIZE: u32 = 50;

/// The `status` filter. `All` is no filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    #[default]
    All,
    Unread,
    Read,
    Unseen,
    Seen,
    /// Only snoozed items (Tidings' extension): every other view hides them.
    Snoozed,
}

impl StatusFilter {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "all" => StatusFilter::All,
            "unread" => StatusFilter::Unread,
            "read" => StatusFilter::Read,
            "unseen" => StatusFilter::Unseen,
            "seen" => StatusFilter::Seen,
            "snoozed" => StatusFilter::Snoozed,
            _ => return None,
        })
    }

    /// Whether a message with these timestamps passes (`Snoozed` is decided by the
    /// snooze alone: see [`FeedFilters::admits_lifecycle`]).
    pub fn admits(self, read: bool, seen: bool) -> bool {
        match self {
            StatusFilter::All | StatusFilter::Snoozed => true,
            StatusFilter::Unread => !read,
            StatusFilter::Read => read,
            StatusFilter::Unseen => !seen,
            StatusFilter::Seen => seen,
        }
    }
}

/// The `archived` filter. Archived items are excluded unless asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchivedFilter {
    #[default]
    Exclude,
    Include,
    Only,
}

impl ArchivedFilter {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "exclude" => ArchivedFilter::Exclude,
            "include" => ArchivedFilter::Include,
            "only" => ArchivedFilter::Only,
            _ => return None,
        })
    }

    pub fn admits(self, archived: bool) -> bool {
        match self {
            ArchivedFilter::Exclude => !archived,
            ArchivedFilter::Include => true,
            ArchivedFilter::Only => archived,
        }
    }
}

/// An `inserted_at` range; bounds are normalized timestamps (`clock::normalize`), so they
/// compare lexically with stored ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimeRange {
    pub gt: Option<String>,
    pub gte: Option<String>,
    pub lt: Option<String>,
    pub lte: Option<String>,
}

impl TimeRange {
    pub fn is_empty(&self) -> bool {
        self.gt.is_none() && self.gte.is_none() && self.lt.is_none() && self.lte.is_none()
    }

    pub fn admits(&self, t: &str) -> bool {
        self.gt.as_deref().is_none_or(|b| t > b)
            && self.gte.as_deref().is_none_or(|b| t >= b)
            && self.lt.as_deref().is_none_or(|b| t < b)
            && self.lte.as_deref().is_none_or(|b| t <= b)
    }
}

/// Which messages of one feed a view shows (spec §6.1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeedFilters {
    pub status: StatusFilter,
    pub archived: ArchivedFilter,
    /// Items with this tenant, plus items with no tenant unless `has_tenant` says otherwise.
    pub tenant: Option<String>,
    /// `true`: only items with a tenant; `false`: only items without one.
    pub has_tenant: Option<bool>,
    /// A workflow key.
    pub source: Option<String>,
    /// Matches when the item's workflow categories overlap these.
    pub workflow_categories: Vec<String>,
    /// Exact match on top-level keys of the message data; values are scalars.
    pub trigger_data: Option<Map<String, Value>>,
    pub inserted_at: TimeRange,
    /// `true`: only pinned items; `false`: only items not pinned (Tidings' extension).
    pub pinned: Option<bool>,
}

/// `compact` (what the browser client sends) or `rich` (the API default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedMode {
    Compact,
    #[default]
    Rich,
}

/// A whole feed request: the filters plus paging and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedQuery {
    pub filters: FeedFilters,
    pub page_size: u32,
    /// Older than this message sequence.
    pub after: Option<i64>,
    /// Newer than this message sequence.
    pub before: Option<i64>,
    pub mode: FeedMode,
    /// Response field paths to drop (`exclude=entries.archived_at,vars`).
    pub exclude: Vec<String>,
}

impl Default for FeedQuery {
    fn default() -> Self {
        FeedQuery {
            filters: FeedFilters::default(),
            page_size: MAX_PAGE_SIZE,
            after: None,
            before: None,
            mode: FeedMode::default(),
            exclude: Vec::new(),
        }
    }
}

impl FeedFilters {
    /// Whether the badge counters (`feed_counters`) can answer for this scope: only
    /// channel, recipient, tenant, `has_tenant` and `archived=exclude` are set. `status`
    /// does not matter (it is derived from the counters).
    pub fn counter_scope(&self) -> bool {
        self.archived == ArchivedFilter::Exclude
            && self.source.is_none()
            && self.workflow_categories.is_empty()
            && self.trigger_data.is_none()
            && self.inserted_at.is_empty()
            && self.pinned.is_none()
            && self.status != StatusFilter::Snoozed
    }

    /// Expiry, snooze and pin: an item past its expiry at `now` is in no view; a
    /// snoozed item only in `status=snoozed`, which shows nothing else.
    pub fn admits_lifecycle(&self, m: &MessageRow, now: &str) -> bool {
        !m.is_expired_at(now)
            && (m.snoozed_until.is_some() == (self.status == StatusFilter::Snoozed))
            && self.pinned.is_none_or(|p| p == m.pinned_at.is_some())
    }

    /// Whether a message's tenant passes the `tenant`/`has_tenant` rule.
    pub fn admits_tenant(&self, tenant: Option<&str>) -> bool {
        let has = tenant.is_some();
        match (self.has_tenant, self.tenant.as_deref()) {
            (Some(false), _) => !has,
            (Some(true), None) => has,
            (Some(true), Some(t)) => tenant == Some(t),
            (None, None) => true,
            (None, Some(t)) => tenant.is_none() || tenant == Some(t),
        }
    }

    /// Whether `data` matches `trigger_data` (top-level keys, exact scalar values).
    pub fn admits_data(&self, data: &Value) -> bool {
        let Some(wanted) = &self.trigger_data else {
            return true;
        };
        wanted
            .iter()
            .all(|(key, value)| data.get(key).is_some_and(|v| scalar_eq(v, value)))
    }

    /// Everything except `status` and `archived`: the scope of the feed.
    fn admits_scope(&self, m: &MessageRow) -> bool {
        self.admits_tenant(m.tenant.as_deref())
            && self.source.as_deref().is_none_or(|s| s == m.workflow_key)
            && (self.workflow_categories.is_empty()
                || m.workflow_categories
                    .iter()
                    .any(|c| self.workflow_categories.contains(c)))
            && self.admits_data(&m.data)
            && self.inserted_at.admits(&m.inserted_at)
    }

    /// Whether the message, in its current state, is in this view at `now`.
    pub fn matches(&self, m: &MessageRow, now: &str) -> bool {
        self.admits_scope(m)
            && self.admits_lifecycle(m, now)
            && self.archived.admits(m.archived_at.is_some())
            && self.status.admits(m.read_at.is_some(), m.seen_at.is_some())
    }

    /// The §7.3 rule for pushes: a brand-new (or just woken) message is unread, unseen,
    /// unarchived and not snoozed, whatever the row says; its pin is its own.
    pub fn matches_new_message(&self, m: &MessageRow) -> bool {
        self.admits_scope(m)
            && self.status != StatusFilter::Snoozed
            && self.pinned.is_none_or(|p| p == m.pinned_at.is_some())
            && self.archived.admits(false)
            && self.status.admits(false, false)
    }
}

/// Scalar equality as the SQL filter sees it: integers equal their float form, and a
/// stored string is compared on its first 256 characters (Knock's truncation).
fn scalar_eq(stored: &Value, wanted: &Value) -> bool {
    match (stored, wanted) {
        (Value::String(s), Value::String(w)) => s.chars().take(256).eq(w.chars()),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => stored == wanted,
    }
}

const CURSOR_PREFIX: &str = "m1:";

/// The opaque `__cursor` of a message: its sequence number, encoded.
pub fn encode_cursor(seq: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{seq}"))
}

/// The sequence number inside a cursor, or `None` when it is not one of ours.
pub fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(CURSOR_PREFIX)?
        .parse()
        .ok()
        .filter(|s| *s >= 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::RecipientRef;
    use serde_json::json;

    const NOW: &str = "2026-01-05T00:00:00.000000Z";

    pub(crate) fn row(tenant: Option<&str>) -> MessageRow {
        MessageRow {
            seq: 1,
            id: "m".into(),
            channel_id: "c".into(),
            recipient: RecipientRef::User("u".into()),
            tenant: tenant.map(str::to_owned),
            workflow_key: "new-comment".into(),
            workflow_version_id: "v".into(),
            workflow_categories: vec!["collab".into()],
            workflow_run_id: "r".into(),
            workflow_recipient_run_id: "rr".into(),
            step_ref: "s".into(),
            actors: vec![],
            data: std::sync::Arc::new(json!({"page": "p1", "n": 3, "nested": {"a": 1}})),
            blocks: json!([]).into(),
            metadata: json!({}),
            inserted_at: "2026-01-02T00:00:00.000000Z".into(),
            updated_at: "2026-01-02T00:00:00.000000Z".into(),
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
    fn cursors_round_trip_and_reject_foreign_strings() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("42"), None);
        assert_eq!(decode_cursor("not base64!"), None);
    }

    #[test]
    fn tenant_filter_includes_no_tenant_items_unless_has_tenant() {
        let f = FeedFilters {
            tenant: Some("acme".into()),
            ..Default::default()
        };
        assert!(f.matches(&row(Some("acme")), NOW));
        assert!(f.matches(&row(None), NOW));
        assert!(!f.matches(&row(Some("other")), NOW));
        let strict = FeedFilters {
            has_tenant: Some(true),
            ..f.clone()
        };
        assert!(strict.matches(&row(Some("acme")), NOW));
        assert!(!strict.matches(&row(None), NOW));
        let none = FeedFilters {
            has_tenant: Some(false),
            ..Default::default()
        };
        assert!(none.matches(&row(None), NOW));
        assert!(!none.matches(&row(Some("acme")), NOW));
    }

    #[test]
    fn new_messages_match_unread_unseen_and_not_archived_only_views() {
        let mut read = row(None);
        read.read_at = Some("2026-01-03T00:00:00.000000Z".into());
        for (status, expected) in [
            (StatusFilter::All, true),
            (StatusFilter::Unread, true),
            (StatusFilter::Unseen, true),
            (StatusFilter::Read, false),
            (StatusFilter::Seen, false),
        ] {
            let f = FeedFilters {
                status,
                ..Default::default()
            };
            assert_eq!(f.matches_new_message(&read), expected, "{status:?}");
        }
        let only = FeedFilters {
            archived: ArchivedFilter::Only,
            ..Default::default()
        };
        assert!(!only.matches_new_message(&row(None)));
    }

    #[test]
    fn trigger_data_categories_source_and_time_narrow_the_scope() {
        let m = row(None);
        let mut f = FeedFilters {
            trigger_data: json!({"page": "p1", "n": 3.0}).as_object().cloned(),
            ..Default::default()
        };
        assert!(f.matches(&m, NOW));
        f.trigger_data = json!({"page": "p2"}).as_object().cloned();
        assert!(!f.matches(&m, NOW));
        let f = FeedFilters {
            workflow_categories: vec!["x".into(), "collab".into()],
            source: Some("new-comment".into()),
            inserted_at: TimeRange {
                gte: Some("2026-01-02T00:00:00.000000Z".into()),
                lt: Some("2026-01-03T00:00:00.000000Z".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(f.matches(&m, NOW));
        let f = FeedFilters {
            inserted_at: TimeRange {
                gt: Some("2026-01-02T00:00:00.000000Z".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(!f.matches(&m, NOW));
    }
}
