//! The SQLite side of `migrate-store`: the file is checked (it exists, it is a Tidings
//! database, no newer Tidings wrote it), brought to the current schema without being
//! changed, and read in ONE read transaction, so the copy is one consistent snapshot.
//!
//! Invariant: the source file is never written. It is opened read-only; a file at an older
//! schema is first copied (SQLite's backup API) to a private temporary file beside it, the
//! server's migrations run on that copy, and the copy is removed afterwards.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::CopyError;
use crate::store::sql::Conn;
use crate::store::{SCHEMA_VERSION, StoreError, backup, connection, migrations};

/// The database being copied, held in one read transaction.
pub(super) struct Source {
    /// What the rows are read from: the file itself, or its migrated temporary copy.
    pub conn: Conn,
    /// The schema version the file was at.
    pub found_version: i64,
    /// Whether an older schema was migrated (on the temporary copy).
    pub migrated: bool,
    /// A read-only connection on the file itself, to notice another process committing
    /// to it during the copy (`PRAGMA data_version`).
    guard: Connection,
    data_version: i64,
    /// Dropped (removed) after `conn` closes: fields drop in declaration order.
    _snapshot: Option<TempCopy>,
}

impl Source {
    /// Whether another connection committed to the file since it was opened: a server (or
    /// any writer) is still using it, so the snapshot may already be stale.
    pub fn changed(&self) -> Result<bool, CopyError> {
        Ok(data_version(&self.guard)? != self.data_version)
    }
}

/// Opens `path` for the copy and starts the snapshot's read transaction.
pub(super) fn open(path: &Path) -> Result<Source, CopyError> {
    if !path.is_file() {
        return Err(CopyError::SourceMissing(path.to_path_buf()));
    }
    let not_tidings = |reason: &str| CopyError::NotTidings {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let guard = connection::open_read_only(path).map_err(CopyError::Source)?;
    let found_version: i64 = match guard.pragma_query_value(None, "user_version", |r| r.get(0)) {
        Ok(v) => v,
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
            return Err(not_tidings("it is not a SQLite database"));
        }
        Err(e) => return Err(CopyError::Source(e.into())),
    };
    if found_version > SCHEMA_VERSION {
        return Err(CopyError::SourceTooNew {
            found: found_version,
            known: SCHEMA_VERSION,
        });
    }
    let has_meta: i64 = guard
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| CopyError::Source(e.into()))?;
    if found_version < 1 || has_meta == 0 {
        return Err(not_tidings("it has no Tidings schema"));
    }
    let data_version = data_version(&guard)?;
    let (conn, snapshot) = if found_version < SCHEMA_VERSION {
        let snapshot = TempCopy::of(path)?;
        let mut conn = Connection::open(&snapshot.path).map_err(|e| CopyError::Source(e.into()))?;
        migrations::apply(&mut conn).map_err(CopyError::Source)?;
        (conn, Some(snapshot))
    } else {
        let conn = connection::open_read_only(path).map_err(CopyError::Source)?;
        (conn, None)
    };
    let conn = Conn::from(conn);
    // One read transaction for every table read and count: a consistent snapshot.
    conn.execute_batch("BEGIN")
        .map_err(|e| CopyError::Source(e.into()))?;
    Ok(Source {
        conn,
        found_version,
        migrated: snapshot.is_some(),
        guard,
        data_version,
        _snapshot: snapshot,
    })
}

fn data_version(conn: &Connection) -> Result<i64, CopyError> {
    conn.pragma_query_value(None, "data_version", |r| r.get(0))
        .map_err(|e| CopyError::Source(e.into()))
}

/// A private temporary copy of the source beside it (the same disk, which held the file
/// already; `/tmp` may be a small RAM disk), removed with its journal when dropped.
struct TempCopy {
    path: PathBuf,
}

impl TempCopy {
    fn of(source: &Path) -> Result<TempCopy, CopyError> {
        let mut name = source.as_os_str().to_owned();
        name.push(format!(
            ".migrate-store-{}.tmp",
            uuid::Uuid::new_v4().simple()
        ));
        let copy = TempCopy {
            path: PathBuf::from(name),
        };
        backup::online_backup(source, &copy.path).map_err(|e| match e {
            StoreError::Io(io) => CopyError::Source(StoreError::Io(std::io::Error::new(
                io.kind(),
                format!(
                    "writing a temporary copy to migrate its schema ({}): {io}",
                    copy.path.display()
                ),
            ))),
            other => CopyError::Source(other),
        })?;
        Ok(copy)
    }
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut name = self.path.as_os_str().to_owned();
            name.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(name));
        }
    }
}
