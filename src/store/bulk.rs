//! Bulk operations. Tidings applies a bulk call synchronously inside one write
//! transaction, then records the finished `BulkOperation` (spec §4.5) so that
//! `GET /v1/bulk_operations/{id}` can return it later.
//!
//! Invariant: a stored operation is always `completed`, with
//! `success_count + error_count == processed_rows == estimated_total_rows`.

use crate::store::sql::{OptionalExtension, params};
use serde_json::{Value, json};

use super::{Db, StoreResult};
use crate::ids;

/// Records a finished operation and returns its wire shape. `error_items` are
/// `{id, collection?, message?}` for items that were not applied.
pub fn record_completed(
    db: &Db<'_>,
    name: &str,
    success_count: usize,
    error_items: Vec<Value>,
) -> StoreResult<Value> {
    let id = ids::uuid();
    let now = db.now();
    let total = success_count + error_items.len();
    let body = json!({
        "__typename": "BulkOperation",
        "id": id,
        "name": name,
        "status": "completed",
        "estimated_total_rows": total,
        "processed_rows": total,
        "success_count": success_count,
        "error_count": error_items.len(),
        "error_items": error_items,
        "progress_path": format!("/v1/bulk_operations/{id}"),
        "inserted_at": now,
        "updated_at": now,
        "started_at": now,
        "completed_at": now,
        "failed_at": null,
    });
    db.0.prepare_cached("INSERT INTO bulk_operations(id, body, inserted_at) VALUES (?1, ?2, ?3)")?
        .execute(params![id, serde_json::to_string(&body)?, now])?;
    Ok(body)
}

/// The stored `BulkOperation`, or `None`.
pub fn get(db: &Db<'_>, id: &str) -> StoreResult<Option<Value>> {
    let body: Option<String> =
        db.0.prepare_cached("SELECT body FROM bulk_operations WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
    Ok(match body {
        Some(text) => Some(serde_json::from_str(&text)?),
        None => None,
    })
}
