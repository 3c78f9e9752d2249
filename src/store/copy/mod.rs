//! `tidings migrate-store`: copies a stopped single-node deployment (one SQLite file) into
//! an empty PostgreSQL database, every table and every row as SQLite holds it.
//!
//! Invariants:
//! - The source is never written: it is read in one read-only snapshot (an older schema is
//!   migrated on a temporary copy, see `source`).
//! - The whole copy is ONE PostgreSQL transaction: an interrupted copy (kill, network
//!   drop, a failed check) leaves the target without data, and running it again works.
//!   Only the schema (the migrations) is committed before it, and an empty schema is what
//!   a rerun expects.
//! - A target that already holds Tidings data is refused before anything is written.
//! - Nothing commits unless every table's row count is the same on both sides, and every
//!   identity sequence has been moved past the numbers the source used (new messages,
//!   timers and rows get larger numbers; cursors stay valid).

mod source;
mod tables;
#[cfg(test)]
mod test_target;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StoreError;
use super::sql::{self, Conn, PgConfig, params};

/// Why a copy did not happen. Every variant but [`CopyError::CommitFailed`] means nothing
/// was committed to the target.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("there is no SQLite database at {}", .0.display())]
    SourceMissing(PathBuf),
    #[error("{} is not a Tidings database: {reason}", path.display())]
    NotTidings { path: PathBuf, reason: String },
    #[error(
        "the SQLite database is schema version {found}, newer than this binary knows \
         ({known}): a newer Tidings wrote it; run migrate-store of that version"
    )]
    SourceTooNew { found: i64, known: i64 },
    #[error("reading the SQLite database: {0}")]
    Source(#[source] StoreError),
    #[error(
        "the SQLite database changed during the copy: a Tidings server (or another writer) \
         is still using it. Stop it and run migrate-store again; nothing was copied"
    )]
    SourceChanged,
    /// The message carries the causes ("connection refused"): the client's own says only
    /// "error connecting to server".
    #[error("cannot connect to the PostgreSQL target: {0}")]
    Connect(String),
    #[error("preparing the PostgreSQL target's schema: {0}")]
    TargetSchema(#[source] StoreError),
    #[error(
        "the PostgreSQL target is not empty: table `{table}` holds Tidings data (a server \
         may have started on it). migrate-store copies only into an empty database: use a \
         new database (or drop this one's tables). Nothing was written"
    )]
    TargetNotEmpty { table: String },
    #[error("the two schemas differ at table `{table}`: {detail}; nothing was copied")]
    SchemaMismatch { table: String, detail: String },
    #[error("copying table `{table}`: {source}; nothing was copied")]
    Copy {
        table: String,
        #[source]
        source: sql::Error,
    },
    #[error(
        "table `{table}` has {source_rows} row(s) in SQLite but {target_rows} in PostgreSQL; \
         the copy was rolled back, nothing was copied"
    )]
    CountMismatch {
        table: String,
        source_rows: u64,
        target_rows: u64,
    },
    #[error("PostgreSQL: {0}; nothing was copied, run migrate-store again")]
    Target(#[source] sql::Error),
    /// The one case where the outcome is not known: the connection may have dropped after
    /// PostgreSQL committed. A rerun settles it (it copies, or refuses a copied target).
    #[error(
        "COMMIT failed: {0}. If the connection dropped, PostgreSQL may or may not have \
         committed the copy: run migrate-store again (it copies, or refuses because the \
         copy is there)"
    )]
    CommitFailed(#[source] sql::Error),
}

/// What was copied, for the summary the command prints.
#[derive(Debug)]
pub struct CopyReport {
    /// The schema version the SQLite file was at (migrated on a temporary copy if older).
    pub source_version: i64,
    pub migrated_source: bool,
    pub tables: Vec<TableCount>,
    pub sequences: Vec<SequenceMove>,
    pub elapsed: Duration,
}

/// One table's rows on each side (they are equal when a report exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub source_rows: u64,
    pub target_rows: u64,
    /// Rows the copy adds beside the source's (`meta.installed_at`, see [`migrate_store`]).
    pub added: u64,
}

/// An identity sequence moved past the copied numbers.
#[derive(Debug, Clone)]
pub struct SequenceMove {
    pub table: &'static str,
    pub column: String,
    /// The number PostgreSQL gives the next row.
    pub next: i64,
}

/// Copies the SQLite database at `from` into the PostgreSQL database at `to` (a
/// `postgres://` URL), which must hold no Tidings data. Applies the PostgreSQL migrations
/// first. Blocking: run it on a thread that may block (the `postgres` client runs its own
/// runtime).
///
/// Beside the source's rows it writes one: `meta.installed_at` when the source has none,
/// because on PostgreSQL that row is how a server tells an existing installation from a
/// new one (and demo mode must never take a production database for a new one).
/// `on_table` is called as each table is copied (before the commit), for progress.
pub fn migrate_store(
    from: &Path,
    to: &str,
    mut on_table: impl FnMut(&TableCount),
) -> Result<CopyReport, CopyError> {
    let started = Instant::now();
    let source = source::open(from)?;
    let target = Conn::connect_postgres(&PgConfig::at(to))
        .map_err(|e| CopyError::Connect(with_causes(&e)))?;
    super::pg::apply(&target).map_err(CopyError::TargetSchema)?;
    target.execute_batch("BEGIN").map_err(CopyError::Target)?;
    let copied = copy_all(&source, &target, &mut on_table);
    match copied {
        Ok((tables, sequences)) => {
            target
                .execute_batch("COMMIT")
                .map_err(CopyError::CommitFailed)?;
            Ok(CopyReport {
                source_version: source.found_version,
                migrated_source: source.migrated,
                tables,
                sequences,
                elapsed: started.elapsed(),
            })
        }
        Err(e) => {
            // Best effort: a broken connection has rolled back already.
            let _ = target.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// `e` and each error that caused it, as one line.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        cause = c.source();
    }
    line
}

/// Everything inside the target's transaction: the checks, the rows, the sequences.
fn copy_all(
    source: &source::Source,
    target: &Conn,
    on_table: &mut dyn FnMut(&TableCount),
) -> Result<(Vec<TableCount>, Vec<SequenceMove>), CopyError> {
    let src = &source.conn;
    check_table_lists(src, target)?;
    // Two copies (or a server starting) at once: the second waits here, then finds data.
    let all = tables::TABLES.join(", ");
    target
        .execute_batch(&format!("LOCK TABLE {all} IN EXCLUSIVE MODE"))
        .map_err(CopyError::Target)?;
    refuse_non_empty(target)?;
    for (table, seed) in tables::SEEDED {
        target
            .execute(&format!("DELETE FROM {table} WHERE {seed}"), [])
            .map_err(CopyError::Target)?;
    }
    let mut counts = Vec::with_capacity(tables::TABLES.len());
    let mut sequences = Vec::new();
    for table in tables::TABLES {
        let columns = tables::columns(src, target, table)?;
        tables::copy_rows(src, target, table, &columns)?;
        if let Some(column) = &columns.identity {
            let next = tables::move_sequence(src, target, table, column)?;
            sequences.push(SequenceMove {
                table,
                column: column.clone(),
                next,
            });
        }
        let added = if *table == "meta" {
            mark_installed(target)?
        } else {
            0
        };
        let source_rows = tables::count(src, table).map_err(|e| CopyError::Source(e.into()))?;
        let target_rows = tables::count(target, table).map_err(CopyError::Target)?;
        let count = TableCount {
            table,
            source_rows,
            target_rows,
            added,
        };
        on_table(&count);
        counts.push(count);
    }
    verify(&counts)?;
    if source.changed()? {
        return Err(CopyError::SourceChanged);
    }
    Ok((counts, sequences))
}

/// Refuses when the two schemas do not have the same tables as [`tables::TABLES`]: a table
/// the copy does not know would be left behind silently.
fn check_table_lists(source: &Conn, target: &Conn) -> Result<(), CopyError> {
    let sqlite: Vec<String> = source
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| CopyError::Source(e.into()))?;
    let postgres: Vec<String> = target
        .prepare(
            // Its migrations and the leases of several nodes (PostgreSQL only: a stopped
            // single node holds none) are not copied.
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename NOT IN ('tidings_migrations', 'run_leases', 'leases')",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(CopyError::Target)?;
    for (side, names) in [("SQLite", &sqlite), ("PostgreSQL", &postgres)] {
        if let Some(unknown) = names.iter().find(|n| !tables::TABLES.contains(&n.as_str())) {
            return Err(CopyError::SchemaMismatch {
                table: unknown.clone(),
                detail: format!("{side} has it, and this copy does not know it"),
            });
        }
        if let Some(missing) = tables::TABLES
            .iter()
            .find(|t| !names.iter().any(|n| n == *t))
        {
            return Err(CopyError::SchemaMismatch {
                table: (*missing).to_owned(),
                detail: format!("{side} does not have it"),
            });
        }
    }
    Ok(())
}

/// [`CopyError::TargetNotEmpty`] when any table holds a row other than the schema's seeds.
fn refuse_non_empty(target: &Conn) -> Result<(), CopyError> {
    for table in tables::TABLES {
        let seed = tables::SEEDED
            .iter()
            .find(|(t, _)| t == table)
            .map_or("1=0".to_owned(), |(_, seed)| format!("({seed})"));
        let any: bool = target
            .query_row(
                &format!(
                    "SELECT CASE WHEN EXISTS (SELECT 1 FROM {table} WHERE NOT {seed}) \
                     THEN 1 ELSE 0 END"
                ),
                [],
                |r| r.get(0),
            )
            .map_err(CopyError::Target)?;
        if any {
            return Err(CopyError::TargetNotEmpty {
                table: (*table).to_owned(),
            });
        }
    }
    Ok(())
}

/// Adds `meta.installed_at` when the source had none; the rows added (0 or 1).
fn mark_installed(target: &Conn) -> Result<u64, CopyError> {
    let now = crate::clock::Clock::system().now();
    let added = target
        .execute(
            "INSERT INTO meta(key, value) VALUES ('installed_at', ?1) ON CONFLICT DO NOTHING",
            params![now],
        )
        .map_err(CopyError::Target)?;
    Ok(added as u64)
}

/// Every table's count on PostgreSQL must be the source's plus what the copy added.
fn verify(counts: &[TableCount]) -> Result<(), CopyError> {
    match counts
        .iter()
        .find(|c| c.target_rows != c.source_rows + c.added)
    {
        Some(c) => Err(CopyError::CountMismatch {
            table: c.table.to_owned(),
            source_rows: c.source_rows,
            target_rows: c.target_rows,
        }),
        None => Ok(()),
    }
}
