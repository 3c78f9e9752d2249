//! Workflow definitions, persisted so a restart (or a crash) can still run queued runs
//! of workflows that were upserted over HTTP.
//!
//! Invariant: `version_id` changes exactly when the stored definition changes, so
//! reloading an unchanged directory at start keeps every version id stable.

use crate::store::sql::{OptionalExtension, params};
use serde_json::Value;

use super::{Db, StoreResult};
use crate::ids;

/// A stored definition (management-API shape, `@` references resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWorkflow {
    pub key: String,
    pub definition: Value,
    pub version_id: String,
    pub inserted_at: String,
    pub updated_at: String,
}

fn from_row(row: &crate::store::sql::Row<'_>) -> crate::store::sql::Result<StoredWorkflow> {
    let text: String = row.get(1)?;
    let definition =
        serde_json::from_str(&text).map_err(|e| crate::store::sql::Error::conversion(1, e))?;
    Ok(StoredWorkflow {
        key: row.get(0)?,
        definition,
        version_id: row.get(2)?,
        inserted_at: row.get(3)?,
        updated_at: row.get(4)?,
    })
}

pub fn get(db: &Db<'_>, key: &str) -> StoreResult<Option<StoredWorkflow>> {
    Ok(db
        .0
        .prepare_cached(
            "SELECT key, definition, version_id, inserted_at, updated_at FROM workflows WHERE key = ?1",
        )?
        .query_row([key], from_row)
        .optional()?)
}

/// Every stored workflow, by key.
pub fn list(db: &Db<'_>) -> StoreResult<Vec<StoredWorkflow>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT key, definition, version_id, inserted_at, updated_at FROM workflows ORDER BY key",
    )?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stores `definition` under `key`. An identical definition keeps its version and
/// timestamps; a changed one gets a new `version_id`.
pub fn upsert(db: &Db<'_>, key: &str, definition: &Value) -> StoreResult<StoredWorkflow> {
    if let Some(existing) = get(db, key)? {
        if existing.definition == *definition {
            return Ok(existing);
        }
        let now = db.now();
        let version_id = ids::uuid();
        db.0.prepare_cached(
            "UPDATE workflows SET definition = ?2, version_id = ?3, updated_at = ?4 WHERE key = ?1",
        )?
        .execute(params![
            key,
            serde_json::to_string(definition)?,
            version_id,
            now
        ])?;
        return Ok(StoredWorkflow {
            key: key.to_owned(),
            definition: definition.clone(),
            version_id,
            inserted_at: existing.inserted_at,
            updated_at: now,
        });
    }
    let now = db.now();
    let stored = StoredWorkflow {
        key: key.to_owned(),
        definition: definition.clone(),
        version_id: ids::uuid(),
        inserted_at: now.clone(),
        updated_at: now,
    };
    db.0.prepare_cached(
        "INSERT INTO workflows(key, definition, version_id, inserted_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        stored.key,
        serde_json::to_string(definition)?,
        stored.version_id,
        stored.inserted_at,
        stored.updated_at
    ])?;
    Ok(stored)
}
