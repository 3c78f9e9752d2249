//! The channel registry: in-app feed channels by `key` and UUID. SDKs address feeds by
//! UUID; workflow steps name a `channel_key`.

use crate::store::sql::{OptionalExtension, params};

use super::{Db, StoreResult};
use crate::ids;

pub use crate::model::channel::DEFAULT_CHANNEL_KEY;

pub use crate::model::channel::Channel;

pub(super) fn ensure_default(db: &Db<'_>) -> StoreResult<()> {
    db.0.execute(
        "INSERT INTO channels(id, key, type, inserted_at) VALUES (?1, ?2, 'in_app_feed', ?3) \
         ON CONFLICT DO NOTHING",
        params![ids::uuid(), DEFAULT_CHANNEL_KEY, db.now()],
    )?;
    Ok(())
}

fn from_row(row: &crate::store::sql::Row<'_>) -> crate::store::sql::Result<Channel> {
    Ok(Channel {
        id: row.get(0)?,
        key: row.get(1)?,
        kind: row.get(2)?,
        inserted_at: row.get(3)?,
    })
}

pub fn list(db: &Db<'_>) -> StoreResult<Vec<Channel>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT id, key, type, inserted_at FROM channels ORDER BY inserted_at, key",
    )?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Finds a channel by UUID or by key (feed paths accept either).
pub fn find(db: &Db<'_>, id_or_key: &str) -> StoreResult<Option<Channel>> {
    Ok(db
        .0
        .prepare_cached(
            "SELECT id, key, type, inserted_at FROM channels WHERE id = ?1 OR key = ?1 LIMIT 1",
        )?
        .query_row([id_or_key], from_row)
        .optional()?)
}

/// Returns the channel with `key`, creating an in-app feed channel for it if new.
pub fn ensure(db: &Db<'_>, key: &str) -> StoreResult<Channel> {
    db.0.prepare_cached(
        "INSERT INTO channels(id, key, type, inserted_at) VALUES (?1, ?2, 'in_app_feed', ?3) \
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![ids::uuid(), key, db.now()])?;
    Ok(db
        .0
        .prepare_cached("SELECT id, key, type, inserted_at FROM channels WHERE key = ?1")?
        .query_row([key], from_row)?)
}
