//! The tables `migrate-store` copies, and the copy of one table: its rows streamed from the
//! SQLite snapshot and written to PostgreSQL in bounded multi-row `INSERT`s, through the
//! portable connection layer on both sides.
//!
//! Columns are not listed here: each table's columns are read from PostgreSQL's catalog and
//! selected by the same names from SQLite (`rowid` included where PostgreSQL keeps it as a
//! column: SQLite's hidden rowid is what run-record and list cursors carry). A column one
//! side has and the other lacks stops the copy before anything is written.

use super::CopyError;
use crate::store::sql::{Conn, OptionalExtension, Value, params, params_from_iter};

/// Every table of the schema, in the order they are copied: `batches` before
/// `batch_activities` (a foreign key), and recipient runs before their runs, so that
/// PostgreSQL's "copy the run's workflow and tenant" insert trigger finds no run and the
/// rows arrive exactly as SQLite holds them.
pub(super) const TABLES: &[&str] = &[
    "meta",
    "channels",
    "workflows",
    "users",
    "objects",
    "tenants",
    "preference_sets",
    "channel_data",
    "subscriptions",
    "feeds",
    "feed_counters",
    "feed_fold",
    "messages",
    "workflow_recipient_runs",
    "workflow_runs",
    "workflow_run_data",
    "workflow_run_data_values",
    "idempotency_keys",
    "timers",
    "batches",
    "batch_activities",
    "schedule_payloads",
    "schedules",
    "workflow_cancellations",
    "engine_gates",
    "bulk_operations",
    "translations",
];

/// Rows a fresh PostgreSQL schema is created with (the fold's watermark, the run-record
/// list's start, as SQLite's migrations seed them): they do not make a target "not empty",
/// and the copy replaces them with the source's. (table, the seed's condition)
pub(super) const SEEDED: &[(&str, &str)] = &[
    (
        "meta",
        "key = 'run_records_derived_after_seq' AND value = '0'",
    ),
    ("feed_fold", "id = 1 AND folded_through = 0"),
];

/// Rows per `INSERT`, at most: big enough that round trips do not dominate, small enough
/// that a batch of wide rows stays a few megabytes.
const BATCH_ROWS: usize = 500;

/// Bytes of values buffered before a batch is written early (rows with large JSON).
const BATCH_BYTES: usize = 4 << 20;

/// PostgreSQL binds at most 65,535 parameters per statement.
const MAX_PARAMS: usize = 65_535;

/// A table's columns on PostgreSQL, in their declared order, and its identity column
/// (the one a sequence numbers), if any.
pub(super) struct Columns {
    pub names: Vec<String>,
    pub identity: Option<String>,
}

/// Reads `table`'s columns from PostgreSQL and checks SQLite has the same ones.
pub(super) fn columns(source: &Conn, target: &Conn, table: &str) -> Result<Columns, CopyError> {
    let mismatch = |detail: String| CopyError::SchemaMismatch {
        table: table.to_owned(),
        detail,
    };
    let mut names = Vec::new();
    let mut identity = None;
    let mut stmt = target
        .prepare(
            "SELECT a.attname::text, CASE WHEN a.attidentity <> '' THEN 1 ELSE 0 END \
             FROM pg_attribute a WHERE a.attrelid = to_regclass(?1) \
             AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        )
        .map_err(CopyError::Target)?;
    let rows = stmt
        .query_map([table], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
        })
        .map_err(CopyError::Target)?;
    for row in rows {
        let (name, is_identity) = row.map_err(CopyError::Target)?;
        if is_identity {
            identity = Some(name.clone());
        }
        names.push(name);
    }
    if names.is_empty() {
        return Err(mismatch("PostgreSQL has no such table".into()));
    }
    let sqlite: Vec<String> = source
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .and_then(|mut s| s.query_map([table], |r| r.get(0))?.collect())
        .map_err(|e| CopyError::Source(e.into()))?;
    if sqlite.is_empty() {
        return Err(mismatch("the SQLite database has no such table".into()));
    }
    if let Some(missing) = sqlite.iter().find(|c| !names.contains(c)) {
        return Err(mismatch(format!("PostgreSQL has no column `{missing}`")));
    }
    // `rowid` is SQLite's hidden row number; every other column must exist on both sides.
    if let Some(missing) = names.iter().find(|c| *c != "rowid" && !sqlite.contains(c)) {
        return Err(mismatch(format!("SQLite has no column `{missing}`")));
    }
    Ok(Columns { names, identity })
}

/// Copies every row of `table` in bounded batches (memory does not grow with the table).
pub(super) fn copy_rows(
    source: &Conn,
    target: &Conn,
    table: &str,
    columns: &Columns,
) -> Result<(), CopyError> {
    let failed = |e: crate::store::sql::Error| CopyError::Copy {
        table: table.to_owned(),
        source: e,
    };
    let width = columns.names.len();
    let list = columns
        .names
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let full = BATCH_ROWS.min(MAX_PARAMS / width).max(1);
    let mut select = source
        .prepare(&format!("SELECT {list} FROM \"{table}\""))
        .map_err(|e| CopyError::Source(e.into()))?;
    let mut rows = select.query([]).map_err(|e| CopyError::Source(e.into()))?;
    let mut buffer: Vec<Value> = Vec::with_capacity(full * width);
    let mut bytes = 0usize;
    while let Some(row) = rows.next().map_err(|e| CopyError::Source(e.into()))? {
        for i in 0..width {
            let value: Value = row.get(i).map_err(|e| CopyError::Source(e.into()))?;
            bytes += match &value {
                Value::Text(s) => s.len(),
                Value::Blob(b) => b.len(),
                _ => 0,
            } + 8;
            buffer.push(value);
        }
        if buffer.len() == full * width || bytes >= BATCH_BYTES {
            insert(target, table, &list, width, &buffer, full).map_err(failed)?;
            buffer.clear();
            bytes = 0;
        }
    }
    if !buffer.is_empty() {
        insert(target, table, &list, width, &buffer, full).map_err(failed)?;
    }
    Ok(())
}

/// One multi-row `INSERT` of `values` (whole rows of `width` columns). A full batch's
/// statement is kept prepared; a shorter one (the last, or one cut early by size) is not.
fn insert(
    target: &Conn,
    table: &str,
    list: &str,
    width: usize,
    values: &[Value],
    full: usize,
) -> crate::store::sql::Result<()> {
    let rows = values.len() / width;
    let tuples = (0..rows)
        .map(|r| {
            let marks = (1..=width)
                .map(|c| format!("?{}", r * width + c))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({marks})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("INSERT INTO \"{table}\" ({list}) VALUES {tuples}");
    let mut stmt = if rows == full {
        target.prepare_cached(&sql)?
    } else {
        target.prepare(&sql)?
    };
    stmt.execute(params_from_iter(values.iter()))?;
    Ok(())
}

/// `SELECT count(*)` of `table` on one side.
pub(super) fn count(conn: &Conn, table: &str) -> crate::store::sql::Result<u64> {
    conn.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
        r.get(0)
    })
}

/// Moves `table`'s identity sequence past every number the source used: the largest
/// copied, or SQLite's `sqlite_sequence` high-water mark where it is larger (an
/// `AUTOINCREMENT` number is never reused, even after its row was deleted). The next row
/// PostgreSQL numbers gets the value after it; returns that value.
pub(super) fn move_sequence(
    source: &Conn,
    target: &Conn,
    table: &str,
    column: &str,
) -> Result<i64, CopyError> {
    let copied: i64 = target
        .query_row(
            &format!("SELECT CAST(COALESCE(MAX(\"{column}\"), 0) AS BIGINT) FROM \"{table}\""),
            [],
            |r| r.get(0),
        )
        .map_err(CopyError::Target)?;
    let has_sequence_table: bool = source
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| CopyError::Source(e.into()))?;
    let high_water: i64 = if has_sequence_table {
        source
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                [table],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| CopyError::Source(e.into()))?
            .unwrap_or(0)
    } else {
        0
    };
    let last = copied.max(high_water);
    target
        .query_row(
            "SELECT setval(pg_get_serial_sequence(?1, ?2), ?3, ?4)",
            params![table, column, last.max(1), last > 0],
            |_| Ok(()),
        )
        .map_err(CopyError::Target)?;
    Ok(last + 1)
}
