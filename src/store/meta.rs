//! Installation facts kept in the `meta` table (generated API keys, dev signing key).

use crate::store::sql::{OptionalExtension, params};

use super::{Db, StoreResult};

pub fn get(db: &Db<'_>, key: &str) -> StoreResult<Option<String>> {
    Ok(db
        .0
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?)
}

/// Stores `value` under `key` unless a value is already there; returns the value that won.
/// Two processes racing to generate keys therefore agree on one.
pub fn get_or_insert(db: &Db<'_>, key: &str, value: &str) -> StoreResult<String> {
    db.0.prepare_cached("INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING")?
        .execute(params![key, value])?;
    Ok(get(db, key)?.unwrap_or_else(|| value.to_owned()))
}
