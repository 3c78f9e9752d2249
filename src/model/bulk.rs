//! Bulk operations (spec §4.5): the tally of one being applied ([`BulkRun`]) and the
//! recorded, finished [`BulkOperation`] with its wire shape. Tidings applies a bulk call
//! synchronously in one write transaction, so every recorded operation is `completed`,
//! with `success_count + error_count == processed_rows == estimated_total_rows`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::EntityId;

/// One item of a bulk call that was not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkErrorItem {
    pub id: String,
    pub message: String,
    /// Objects' error items also name their collection, so a client can tell them apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
}

/// A finished bulk operation as recorded. Serialized as the stored body; the fields are
/// also those of the wire shape, so bodies stored in that shape read back the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkOperation {
    pub id: String,
    pub name: String,
    pub success_count: usize,
    pub error_items: Vec<BulkErrorItem>,
    /// When it ran (it started, completed and was recorded in the same transaction).
    pub completed_at: String,
}

impl BulkOperation {
    /// The `BulkOperation` wire shape.
    pub fn to_wire(&self) -> Value {
        let total = self.success_count + self.error_items.len();
        let at = &self.completed_at;
        json!({
            "__typename": "BulkOperation",
            "id": self.id,
            "name": self.name,
            "status": "completed",
            "estimated_total_rows": total,
            "processed_rows": total,
            "success_count": self.success_count,
            "error_count": self.error_items.len(),
            "error_items": self.error_items,
            "progress_path": format!("/v1/bulk_operations/{}", self.id),
            "inserted_at": at,
            "updated_at": at,
            "started_at": at,
            "completed_at": at,
            "failed_at": null,
        })
    }
}

/// The tallies of a bulk operation in progress: how many items were applied and which
/// were not. Pure data; the store applies the items and records the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkRun {
    pub name: String,
    /// Objects' error items also name their collection.
    pub collection: Option<String>,
    pub applied: usize,
    pub errors: Vec<BulkErrorItem>,
}

impl BulkRun {
    /// A run recorded as `name` (e.g. `users.bulk_identify`).
    pub fn new(name: impl Into<String>) -> Self {
        BulkRun {
            name: name.into(),
            collection: None,
            applied: 0,
            errors: Vec::new(),
        }
    }

    /// A run over the objects of `collection`.
    pub fn in_collection(name: impl Into<String>, collection: &str) -> Self {
        BulkRun {
            collection: Some(collection.to_owned()),
            ..Self::new(name)
        }
    }

    /// Records that `id` was not applied, and why.
    pub fn fail(&mut self, id: impl Into<String>, message: impl Into<String>) {
        self.errors.push(BulkErrorItem {
            id: id.into(),
            message: message.into(),
            collection: self.collection.clone(),
        });
    }

    /// Whether `id` is a valid recipient id; records the error item when it is not.
    pub fn valid_id(&mut self, id: &str) -> bool {
        match EntityId::parse(id) {
            Ok(_) => true,
            Err(message) => {
                self.fail(id, format!("`id` {message}"));
                false
            }
        }
    }

    /// Counts one item applied.
    pub fn applied(&mut self) {
        self.applied += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shape_counts_errors_into_the_totals() {
        let mut run = BulkRun::in_collection("objects.bulk_set", "projects");
        run.applied();
        assert!(!run.valid_id(""));
        let op = BulkOperation {
            id: "b1".into(),
            name: run.name.clone(),
            success_count: run.applied,
            error_items: run.errors,
            completed_at: "t".into(),
        };
        let wire = op.to_wire();
        assert_eq!(wire["processed_rows"], 2);
        assert_eq!(wire["error_count"], 1);
        assert_eq!(wire["error_items"][0]["collection"], "projects");
        assert_eq!(wire["progress_path"], "/v1/bulk_operations/b1");
    }

    #[test]
    fn a_body_stored_in_the_wire_shape_reads_back_the_same() {
        let op = BulkOperation {
            id: "b1".into(),
            name: "users.bulk_delete".into(),
            success_count: 1,
            error_items: vec![BulkErrorItem {
                id: "x".into(),
                message: "the user does not exist".into(),
                collection: None,
            }],
            completed_at: "t".into(),
        };
        let wire = op.to_wire();
        let back: BulkOperation = serde_json::from_value(wire.clone()).expect("reads");
        assert_eq!(back, op);
        assert_eq!(back.to_wire(), wire);
    }
}
