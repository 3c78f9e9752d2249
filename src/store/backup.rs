//! Online backup: a consistent copy of a live database through SQLite's backup API,
//! taken beside a serving instance (another process may be writing the same file).
//!
//! Invariants: the copy is ONE snapshot (every page is copied inside one read transaction,
//! so it holds exactly what was committed when the copy began); in WAL mode that read
//! never blocks the serving writer. The copy is written to `<file>.partial`, checked,
//! synced and only then renamed to `<file>`, so `<file>` is either absent or complete.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use super::{StoreError, StoreResult, connection};

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupReport {
    pub pages: i64,
    pub bytes: u64,
    pub schema_version: i64,
    pub elapsed: Duration,
}

/// Copies the database at `source` to `dest` (which must not exist yet).
pub fn online_backup(source: &Path, dest: &Path) -> StoreResult<BackupReport> {
    let started = Instant::now();
    if dest.exists() {
        return Err(StoreError::Conflict(format!(
            "{} already exists; choose a new file",
            dest.display()
        )));
    }
    if !source.is_file() {
        return Err(StoreError::Conflict(format!(
            "there is no database at {}",
            source.display()
        )));
    }
    let partial = partial_path(dest);
    let _ = std::fs::remove_file(&partial);
    // The copy holds the keys: private from its first byte (`.partial` and the copy).
    super::files::create_private(&partial).map_err(io)?;
    let result = copy(source, &partial).and_then(|(pages, schema_version)| {
        let file = std::fs::File::open(&partial).map_err(io)?;
        file.sync_all().map_err(io)?;
        let bytes = file.metadata().map_err(io)?.len();
        std::fs::rename(&partial, dest).map_err(io)?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename itself must survive a crash.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(BackupReport {
            pages,
            bytes,
            schema_version,
            elapsed: started.elapsed(),
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn copy(source: &Path, partial: &Path) -> StoreResult<(i64, i64)> {
    let src = connection::open_read_only(source)?;
    let mut dst = Connection::open(partial)?;
    {
        let backup = Backup::new(&src, &mut dst)?;
        // -1: every page in one step, i.e. one read transaction on the source: a single
        // consistent snapshot that never restarts however busy the server is (copying in
        // small steps would restart whenever another process commits).
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                // Another connection holds a lock the copy needs: wait and retry.
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    // A self-contained single file (no -wal beside it); Tidings switches it back to WAL
    // when it starts on the copy.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    let check: String = dst.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(StoreError::Conflict(format!(
            "the copy failed its integrity check: {check}"
        )));
    }
    let pages: i64 = dst.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let version: i64 = dst.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok((pages, version))
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Io(e)
}
