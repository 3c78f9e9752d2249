//! Opening connections with the PRAGMAs every connection needs.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreResult;

/// Page cache of the writer connection, in KiB. One group commit of a fan-out touches
/// thousands of pages across the feed, recipient-run and counter indexes; with SQLite's
/// default 2 MiB cache they spill to the WAL mid-transaction and are written again at
/// each later change (measured: ~8 pages per item instead of ~1). 64 MiB holds a whole
/// batch's working set.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// The one read-write connection, owned by the writer thread. `synchronous=FULL` makes
/// each commit durable against power loss: an acknowledged write is on disk.
pub(super) fn open_read_write(path: &Path, synchronous_full: bool) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    // The writer's savepoint per command keeps a sub-journal of every page a command
    // first changes; on a file that was one `pwrite` per page per command (profiled: a
    // third of the writer's time in a fan-out). In memory it costs a copy.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoints run on their own thread (`checkpointer`), not inside the writer's COMMIT.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // The writer restarts the WAL after a complete checkpoint; then the file is cut back
    // to this size instead of keeping its high-water mark.
    conn.pragma_update(
        None,
        "journal_size_limit",
        super::checkpointer::WAL_LIMIT_BYTES,
    )?;
    conn.pragma_update(
        None,
        "synchronous",
        if synchronous_full { "FULL" } else { "NORMAL" },
    )?;
    common_pragmas(&conn)?;
    Ok(conn)
}

/// The checkpoint thread's connection: it writes the main file (copying committed WAL
/// frames), so it syncs as the writer does.
pub(super) fn open_checkpointer(path: &Path, synchronous_full: bool) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(
        None,
        "synchronous",
        if synchronous_full { "FULL" } else { "NORMAL" },
    )?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(
        None,
        "journal_size_limit",
        super::checkpointer::WAL_LIMIT_BYTES,
    )?;
    common_pragmas(&conn)?;
    // Set after the common 5 s: how long an escalated checkpoint may wait for the writer
    // and the readers (it holds up the writer meanwhile), see `checkpointer`.
    conn.busy_timeout(super::checkpointer::ESCALATION_WAIT)?;
    Ok(conn)
}

/// Caps the database file at about `max_bytes` (never below its current size).
pub(super) fn limit_size(conn: &Connection, max_bytes: u64) -> StoreResult<()> {
    let page_size: u64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    conn.pragma_update(
        None,
        "max_page_count",
        (max_bytes / page_size.max(1)).max(1),
    )?;
    Ok(())
}

/// A read-only connection for queries; WAL lets it read while the writer commits.
pub(super) fn open_read_only(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    common_pragmas(&conn)?;
    Ok(conn)
}

fn common_pragmas(conn: &Connection) -> StoreResult<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}
