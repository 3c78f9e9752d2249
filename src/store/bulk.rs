//! Bulk operations. Tidings applies a bulk call synchronously inside one write
//! transaction, then records the finished `BulkOperation` (spec §4.5) so that
//! `GET /v1/bulk_operations/{id}` can return it later. Bodies stored before this shape
//! (the wire shape) hold the same fields and read back the same.
//!
//! Invariant: a stored operation is always `completed`, with
//! `success_count + error_count == processed_rows == estimated_total_rows`.

use crate::store::sql::{OptionalExtension, params};

use super::{Db, StoreResult};
use crate::ids;
use crate::model::bulk::{BulkErrorItem, BulkOperation};

/// Records a finished operation (the stored body is the serialized [`BulkOperation`]).
pub fn record_completed(
    db: &Db<'_>,
    name: &str,
    success_count: usize,
    error_items: Vec<BulkErrorItem>,
) -> StoreResult<BulkOperation> {
    let id = ids::uuid();
    let now = db.now();
    let operation = BulkOperation {
        id: id.clone(),
        name: name.to_owned(),
        success_count,
        error_items,
        completed_at: now.clone(),
    };
    db.0.prepare_cached("INSERT INTO bulk_operations(id, body, inserted_at) VALUES (?1, ?2, ?3)")?
        .execute(params![id, serde_json::to_string(&operation)?, now])?;
    Ok(operation)
}

/// The stored operation, or `None`.
pub fn get(db: &Db<'_>, id: &str) -> StoreResult<Option<BulkOperation>> {
    let body: Option<String> =
        db.0.prepare_cached("SELECT body FROM bulk_operations WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
    Ok(match body {
        Some(text) => Some(serde_json::from_str(&text)?),
        None => None,
    })
}
