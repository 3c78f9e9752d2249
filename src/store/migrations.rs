//! Embedded, numbered, forward-only migrations tracked by `PRAGMA user_version`.

use rusqlite::Connection;

use super::StoreResult;

/// Migration `i` (0-based) moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_channel_data.sql"),
    include_str!("migrations/0003_subscriptions.sql"),
    include_str!("migrations/0004_run_records.sql"),
    include_str!("migrations/0005_engine.sql"),
    include_str!("migrations/0006_audience_cursor.sql"),
    include_str!("migrations/0007_schedules.sql"),
];

/// Applies every migration newer than the database, all in one transaction.
pub(super) fn apply(conn: &mut Connection) -> StoreResult<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let tx = conn.transaction()?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}
