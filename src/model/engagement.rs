//! Engagement changes (spec §6.4): what `seen`, `read`, `archived`, `interacted` and their
//! "un-" forms do to a message's timestamps. Pure: the store applies the result and moves
//! the counters by the difference.
//!
//! Rules: setting a status stamps it with the time of the most recent action (Knock's
//! docs); `interacted` also marks the message read and seen when they were not (§6.4
//! recommendation, and what the browser client assumes optimistically).

use serde_json::{Map, Value};

use super::message::MessageRow;

/// Most keys an `interacted` metadata object may carry (spec §9).
pub const MAX_INTERACTED_METADATA_KEYS: usize = 5;

/// One status change.
#[derive(Debug, Clone, PartialEq)]
pub enum EngagementChange {
    Seen,
    Unseen,
    Read,
    Unread,
    Archived,
    Unarchived,
    Interacted(Option<Map<String, Value>>),
}

impl EngagementChange {
    /// The path segment of `PUT`/`DELETE /v1/messages/{id}/{status}` (`delete` = the
    /// `DELETE` method). `DELETE …/unseen` etc. are aliases of `DELETE …/seen`.
    pub fn from_status_path(segment: &str, delete: bool) -> Option<Self> {
        use EngagementChange::*;
        Some(match (segment, delete) {
            ("seen", false) => Seen,
            ("seen" | "unseen", true) => Unseen,
            ("read", false) => Read,
            ("read" | "unread", true) => Unread,
            ("archived", false) => Archived,
            ("archived" | "unarchived", true) => Unarchived,
            ("interacted", false) => Interacted(None),
            _ => return None,
        })
    }

    /// The `{status}` of `POST /v1/messages/batch/{status}` and the `{action}` of the bulk
    /// channel endpoint (`archive`/`unarchive` are the bulk spellings).
    pub fn from_action(action: &str) -> Option<Self> {
        use EngagementChange::*;
        Some(match action {
            "seen" => Seen,
            "unseen" => Unseen,
            "read" => Read,
            "unread" => Unread,
            "archived" | "archive" => Archived,
            "unarchived" | "unarchive" => Unarchived,
            "interacted" => Interacted(None),
            _ => return None,
        })
    }

    /// The message after this change at `now`; `updated_at` moves only when something did.
    pub fn apply(&self, m: &MessageRow, now: &str) -> MessageRow {
        let mut after = m.clone();
        let stamp = || Some(now.to_owned());
        match self {
            EngagementChange::Seen => after.seen_at = stamp(),
            EngagementChange::Unseen => after.seen_at = None,
            EngagementChange::Read => after.read_at = stamp(),
            EngagementChange::Unread => after.read_at = None,
            EngagementChange::Archived => after.archived_at = stamp(),
            EngagementChange::Unarchived => after.archived_at = None,
            EngagementChange::Interacted(metadata) => {
                after.interacted_at = stamp();
                after.read_at = after.read_at.or_else(stamp);
                after.seen_at = after.seen_at.or_else(stamp);
                if let Some(extra) = metadata {
                    let mut merged = after.metadata.as_object().cloned().unwrap_or_default();
                    merged.extend(extra.clone());
                    after.metadata = Value::Object(merged);
                }
            }
        }
        if !same_engagement(m, &after) {
            after.updated_at = now.to_owned();
        }
        after
    }

    /// Whether applying this to `m` changes its state (not just a timestamp's value):
    /// bulk updates skip messages already in the target state.
    pub fn changes_state(&self, m: &MessageRow) -> bool {
        match self {
            EngagementChange::Seen => m.seen_at.is_none(),
            EngagementChange::Unseen => m.seen_at.is_some(),
            EngagementChange::Read => m.read_at.is_none(),
            EngagementChange::Unread => m.read_at.is_some(),
            EngagementChange::Archived => m.archived_at.is_none(),
            EngagementChange::Unarchived => m.archived_at.is_some(),
            EngagementChange::Interacted(metadata) => {
                m.interacted_at.is_none() || metadata.as_ref().is_some_and(|x| !x.is_empty())
            }
        }
    }
}

fn same_engagement(a: &MessageRow, b: &MessageRow) -> bool {
    a.seen_at == b.seen_at
        && a.read_at == b.read_at
        && a.archived_at == b.archived_at
        && a.interacted_at == b.interacted_at
        && a.link_clicked_at == b.link_clicked_at
        && a.metadata == b.metadata
}

/// Validates `interacted` metadata: an object of at most five flat (scalar) keys.
pub fn parse_interacted_metadata(value: &Value) -> Result<Option<Map<String, Value>>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Object(map) => {
            if map.len() > MAX_INTERACTED_METADATA_KEYS {
                return Err(format!(
                    "may have at most {MAX_INTERACTED_METADATA_KEYS} keys"
                ));
            }
            if let Some((key, _)) = map.iter().find(|(_, v)| v.is_object() || v.is_array()) {
                return Err(format!(
                    "`{key}` must be a flat value, not an object or list"
                ));
            }
            Ok(Some(map.clone()))
        }
        _ => Err("must be an object".into()),
    }
}

/// An engagement-status filter (`engagement_status` on lists and bulk updates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngagementStatus {
    Seen,
    Unseen,
    Read,
    Unread,
    Archived,
    Unarchived,
    Interacted,
    LinkClicked,
}

impl EngagementStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        use EngagementStatus::*;
        Some(match raw {
            "seen" => Seen,
            "unseen" => Unseen,
            "read" => Read,
            "unread" => Unread,
            "archived" => Archived,
            "unarchived" => Unarchived,
            "interacted" => Interacted,
            "link_clicked" => LinkClicked,
            _ => return None,
        })
    }

    /// The SQL predicate over `messages` (a fixed string: no user input).
    pub fn sql(self) -> &'static str {
        use EngagementStatus::*;
        match self {
            Seen => "seen_at IS NOT NULL",
            Unseen => "seen_at IS NULL",
            Read => "read_at IS NOT NULL",
            Unread => "read_at IS NULL",
            Archived => "archived_at IS NOT NULL",
            Unarchived => "archived_at IS NULL",
            Interacted => "interacted_at IS NOT NULL",
            LinkClicked => "link_clicked_at IS NOT NULL",
        }
    }
}

/// The wire list of a message's engagement statuses.
pub fn engagement_statuses(m: &MessageRow) -> Vec<&'static str> {
    [
        (m.seen_at.is_some(), "seen"),
        (m.read_at.is_some(), "read"),
        (m.interacted_at.is_some(), "interacted"),
        (m.link_clicked_at.is_some(), "link_clicked"),
        (m.archived_at.is_some(), "archived"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fresh() -> MessageRow {
        crate::model::feed::tests::row(None)
    }

    #[test]
    fn interacted_marks_read_and_seen_and_merges_metadata() {
        let m = fresh();
        let change =
            EngagementChange::Interacted(json!({"type": "cell_click"}).as_object().cloned());
        let after = change.apply(&m, "2026-03-01T00:00:00.000000Z");
        assert!(
            after.interacted_at.is_some() && after.read_at.is_some() && after.seen_at.is_some()
        );
        assert_eq!(after.metadata, json!({"type": "cell_click"}));
        assert_eq!(after.updated_at, "2026-03-01T00:00:00.000000Z");
        assert_eq!(
            engagement_statuses(&after),
            vec!["seen", "read", "interacted"]
        );
    }

    #[test]
    fn status_paths_and_aliases_map_to_changes() {
        assert_eq!(
            EngagementChange::from_status_path("unseen", true),
            Some(EngagementChange::Unseen)
        );
        assert_eq!(EngagementChange::from_status_path("unseen", false), None);
        assert_eq!(EngagementChange::from_status_path("interacted", true), None);
        assert_eq!(
            EngagementChange::from_action("archive"),
            Some(EngagementChange::Archived)
        );
        assert_eq!(EngagementChange::from_action("delete"), None);
    }

    #[test]
    fn interacted_metadata_must_be_five_flat_keys() {
        assert!(parse_interacted_metadata(&json!({"a": 1, "b": "x"})).is_ok());
        assert!(
            parse_interacted_metadata(&json!({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}))
                .is_err()
        );
        assert!(parse_interacted_metadata(&json!({"a": {"b": 1}})).is_err());
        assert!(parse_interacted_metadata(&json!([1])).is_err());
        assert_eq!(parse_interacted_metadata(&json!(null)), Ok(None));
    }
}
