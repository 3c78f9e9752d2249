//! A feed item as stored: the one shape every read path returns and every view,
//! filter and engagement rule reads. Plain data; `store` fills it, nothing here does I/O.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::RecipientRef;

/// A stored message row, as every read path sees it.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub seq: i64,
    pub id: String,
    pub channel_id: String,
    pub recipient: RecipientRef,
    pub tenant: Option<String>,
    pub workflow_key: String,
    pub workflow_version_id: String,
    pub workflow_categories: Vec<String>,
    pub workflow_run_id: String,
    pub workflow_recipient_run_id: String,
    pub step_ref: String,
    pub actors: Vec<RecipientRef>,
    /// Shared with every other message of the run that has the run's data.
    pub data: Arc<Value>,
    /// Shared with every message whose render was shared (see [`Blocks`]).
    pub blocks: Blocks,
    pub metadata: Value,
    pub inserted_at: String,
    pub updated_at: String,
    pub seen_at: Option<String>,
    pub read_at: Option<String>,
    pub archived_at: Option<String>,
    pub interacted_at: Option<String>,
    pub link_clicked_at: Option<String>,
    /// Set on a message produced after a batch step: `{activities, total_activities,
    /// total_actors}` as the batch closed (activities capped at the render limit).
    pub batch: Option<Arc<Value>>,
    /// From this instant the item is in no feed view or count (Tidings' extension).
    pub expires_at: Option<String>,
    /// The expiry has been taken out of the counters (the expiry due-source fired).
    pub expired: bool,
    /// While set, the item is snoozed: in no view but `status=snoozed`, in no count.
    pub snoozed_until: Option<String>,
    /// When the item was pinned (Tidings' extension); pinning moves no count.
    pub pinned_at: Option<String>,
}

impl MessageRow {
    /// Whether the item is past its expiry at `now` (a stored-form timestamp).
    pub fn is_expired_at(&self, now: &str) -> bool {
        self.expired || self.expires_at.as_deref().is_some_and(|e| e <= now)
    }
}

/// A message's rendered `blocks`: shared, not copied, by every message of a run whose
/// render was the same (one template render shared across recipients), together with
/// their JSON text. Made either from a value (its JSON serialized once on first use) or
/// from JSON text (`engine::templates` writes a render's blocks straight as the text
/// the write stores: its value is parsed only if something reads it, e.g. a socket
/// push). Cloning and dropping are a reference count.
#[derive(Debug, Clone)]
pub struct Blocks(Arc<BlocksInner>);

#[derive(Debug)]
struct BlocksInner {
    value: OnceLock<Value>,
    json: OnceLock<String>,
}

impl Blocks {
    pub fn new(value: Value) -> Self {
        Blocks(Arc::new(BlocksInner {
            value: OnceLock::from(value),
            json: OnceLock::new(),
        }))
    }

    /// Blocks from their JSON text, which must be what `serde_json::to_string` writes for
    /// their value (so [`Blocks::json`] is the same whichever way they were made). Text
    /// that does not parse reads as `null`.
    pub fn from_json(json: String) -> Self {
        Blocks(Arc::new(BlocksInner {
            value: OnceLock::new(),
            json: OnceLock::from(json),
        }))
    }

    pub fn value(&self) -> &Value {
        self.0.value.get_or_init(|| {
            self.0
                .json
                .get()
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or(Value::Null)
        })
    }

    /// The blocks as JSON (`serde_json::to_string` of the value), serialized on the first
    /// call by any clone and reused after that.
    pub fn json(&self) -> serde_json::Result<&str> {
        if let Some(json) = self.0.json.get() {
            return Ok(json);
        }
        let json = serde_json::to_string(self.value())?;
        Ok(self.0.json.get_or_init(|| json))
    }

    /// Whether `self` and `other` are one shared render (not just equal values).
    pub fn is_shared_with(&self, other: &Blocks) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for Blocks {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

impl From<Value> for Blocks {
    fn from(value: Value) -> Self {
        Blocks::new(value)
    }
}

impl PartialEq for Blocks {
    fn eq(&self, other: &Self) -> bool {
        self.is_shared_with(other) || self.value() == other.value()
    }
}

impl Serialize for Blocks {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn blocks_serialize_like_their_value_once_for_all_clones() {
        let value = json!([{"name": "body", "rendered": "<p>Hi \"you\" é</p>", "n": 1.5}]);
        let blocks = Blocks::new(value.clone());
        let clone = blocks.clone();
        assert!(clone.is_shared_with(&blocks));
        let json = clone.json().expect("serialize");
        assert_eq!(json, serde_json::to_string(&value).expect("serialize"));
        assert!(
            std::ptr::eq(blocks.json().expect("cached"), json),
            "serialized once"
        );
        assert_eq!(serde_json::to_value(&blocks).expect("value"), value);
        assert_eq!(json!({"blocks": blocks}), json!({"blocks": value}));
        assert_eq!(blocks[0]["name"], "body");
        let other = Blocks::new(value.clone());
        assert!(!other.is_shared_with(&blocks));
        assert_eq!(other, blocks);
        let text = Blocks::from_json(json.to_owned());
        assert_eq!(text.json().expect("as made"), json);
        assert_eq!(*text, value, "parsed on first read");
        assert_eq!(text, blocks);
    }
}
