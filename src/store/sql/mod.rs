//! The portable connection layer: the store's queries run unchanged on SQLite (the
//! embedded default) and on PostgreSQL (several nodes, one database).
//!
//! Its surface is shaped like `rusqlite`'s (`prepare_cached`, `execute`, `query_row`,
//! `query_map`, `optional()`, `params!`, `row.get(i)`), because every query in `store/`
//! was written against that; [`Conn`] dispatches each call to the engine it holds. What a
//! query may use so that it runs on both is listed in `DESIGN.md` ("Portable SQL"):
//! `?N` placeholders (rewritten to `$N` for PostgreSQL), `ON CONFLICT` rather than
//! `INSERT OR …`, and integer/text columns (the five SQLite storage classes, [`Value`]).
//!
//! Invariant: no `rusqlite` or `postgres` type appears in this module's public surface
//! except through [`Conn::sqlite`] (SQLite-only maintenance: backup, checkpoints).

mod error;
mod param_list;
mod pg;
mod pg_tls;
mod sqlite;
mod value;

pub use error::{Error, OptionalExtension, Result};
pub use param_list::{Params, ParamsFromIter, params_from_iter};
pub use pg::PgConfig;
pub use pg_tls::ca_certificates;
pub use value::{FromValue, ToValue, Value, ValueRef};

/// Which SQL engine a connection speaks, for the few statements that must differ
/// (transaction start, schema inspection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// `params![a, b, c]`: a parameter list of mixed types, bound in order.
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::store::sql::ToValue]
    };
    ($($param:expr),+ $(,)?) => {
        &[$(&$param as &dyn $crate::store::sql::ToValue),+] as &[&dyn $crate::store::sql::ToValue]
    };
}
pub(crate) use params;

/// A column's type in a binary COPY ([`Conn::copy_in`]): the binary format carries no
/// type, so the writer must encode each value as its column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyColumn {
    /// `TEXT`.
    Text,
    /// `BIGINT`.
    BigInt,
}

/// One open connection to either engine.
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<pg::PgConn>),
}

impl From<rusqlite::Connection> for Conn {
    fn from(conn: rusqlite::Connection) -> Self {
        Conn::Sqlite(conn)
    }
}

impl Conn {
    /// Opens a PostgreSQL connection (blocking; call from a blocking thread).
    pub fn connect_postgres(config: &PgConfig) -> Result<Conn> {
        pg::PgConn::connect(config).map(|c| Conn::Postgres(Box::new(c)))
    }

    /// SQLite's rowid of the last row this connection inserted (`None` on PostgreSQL,
    /// where inserts say what they made with `RETURNING`).
    pub fn last_insert_rowid(&self) -> Option<i64> {
        match self {
            Conn::Sqlite(c) => Some(c.last_insert_rowid()),
            Conn::Postgres(_) => None,
        }
    }

    /// The engine this connection speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (backup, WAL checkpoints, PRAGMAs).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }

    /// The SQLite connection, mutably (migrations run in a rusqlite transaction).
    pub fn sqlite_mut(&mut self) -> Option<&mut rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }

    /// A statement kept prepared on this connection for reuse (hot queries).
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        Ok(Statement(match self {
            Conn::Sqlite(c) => StatementInner::SqliteCached(c.prepare_cached(sql)?),
            Conn::Postgres(c) => StatementInner::Postgres(c.prepare(sql, true)?),
        }))
    }

    /// A statement prepared for this use only (queries built at run time).
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        Ok(Statement(match self {
            Conn::Sqlite(c) => StatementInner::Sqlite(c.prepare(sql)?),
            Conn::Postgres(c) => StatementInner::Postgres(c.prepare(sql, false)?),
        }))
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        self.prepare(sql)?.execute(params)
    }

    /// The first row of `sql`'s result, mapped by `f`; [`Error::NoRows`] when empty.
    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        self.prepare(sql)?.query_row(params, f)
    }

    /// Runs several `;`-separated statements without parameters (schema, transactions).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(c) => c.batch_execute(sql),
        }
    }

    /// Runs `lock_sql`, a statement that takes a transaction-scoped lock and returns one
    /// row, unless it already ran in the current command: nothing went through
    /// [`Conn::execute_batch`] since (transaction and savepoint statements all go there,
    /// and any of them forgets the lock, the ones that release it and the ones that do
    /// not alike). So a command that changes 1,000 messages takes the fold's shared lock
    /// once, not 1,000 times, and a lock released by a rollback to a savepoint is taken
    /// again. On SQLite it does nothing: its one writer holds the database's write lock
    /// for the whole transaction, which excludes everything such a lock would.
    pub fn hold_lock_once(&self, lock_sql: &'static str) -> Result<()> {
        let Conn::Postgres(c) = self else {
            return Ok(());
        };
        if !c.holds(lock_sql) {
            self.prepare_cached(lock_sql)?.query_row([], |_| Ok(()))?;
            c.mark_held(lock_sql);
        }
        Ok(())
    }

    /// PostgreSQL only: `copy_sql` (`COPY table(columns) FROM STDIN (FORMAT binary)`) fed
    /// `values`, `columns.len()` per row in the statement's column order; the rows
    /// written. Why: a page of rows sent as one COPY is written by PostgreSQL's bulk path
    /// (several rows per heap WAL record, no per-row expression evaluation), about half
    /// the cost of the same rows as a multi-row `INSERT` (BENCHMARKS.md, session 25).
    /// A row that breaks a constraint fails the whole COPY, as it would the INSERT.
    /// On SQLite it is an error: its in-process inserts have nothing to save.
    pub fn copy_in(
        &self,
        copy_sql: &str,
        columns: &[CopyColumn],
        values: &[&dyn ToValue],
    ) -> Result<u64> {
        match self {
            Conn::Postgres(c) => c.copy_in(copy_sql, columns, values),
            Conn::Sqlite(_) => Err(Error::Param("COPY is PostgreSQL's".into())),
        }
    }

    /// Whether no transaction is open: SQLite may roll one back by itself (disk full, I/O
    /// error); a PostgreSQL transaction ends when its connection breaks.
    pub fn is_autocommit(&self) -> bool {
        match self {
            Conn::Sqlite(c) => c.is_autocommit(),
            Conn::Postgres(c) => c.is_closed(),
        }
    }

    /// Starts a read-only transaction whose reads all see one snapshot (several queries
    /// that must agree, e.g. a feed page and its counts).
    pub fn begin_snapshot(&self) -> Result<()> {
        self.execute_batch(match self.dialect() {
            Dialect::Sqlite => "BEGIN DEFERRED",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })
    }

    /// Whether the connection can no longer be used (PostgreSQL closed it).
    pub fn is_broken(&self) -> bool {
        match self {
            Conn::Sqlite(_) => false,
            Conn::Postgres(c) => c.is_closed(),
        }
    }

    /// Starts the writer's transaction. SQLite takes the write lock at once
    /// (`IMMEDIATE`), so a busy database fails here and not halfway through. PostgreSQL's
    /// writers (one per node) run side by side; nothing they do waits for the counter
    /// fold. Each takes its transaction id at once (same round trip), before any message
    /// sequence number: the fold settles a number once every transaction older than its
    /// own has ended, which covers the number's holder only if its id came first
    /// (`store::fold`).
    pub fn begin(&self) -> Result<()> {
        self.execute_batch(match self.dialect() {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN; SELECT pg_current_xact_id()",
        })
    }
}

/// A prepared statement.
pub struct Statement<'c>(StatementInner<'c>);

enum StatementInner<'c> {
    SqliteCached(rusqlite::CachedStatement<'c>),
    Sqlite(rusqlite::Statement<'c>),
    Postgres(pg::PgStatement<'c>),
}

impl Statement<'_> {
    /// Runs the statement; the number of rows it changed.
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        match &mut self.0 {
            StatementInner::SqliteCached(s) => sqlite::execute(s, &params),
            StatementInner::Sqlite(s) => sqlite::execute(s, &params),
            StatementInner::Postgres(s) => s.execute(&params),
        }
    }

    /// The first row, mapped by `f`; [`Error::NoRows`] when there is none.
    pub fn query_row<T, P, F>(&mut self, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        let mut rows = self.query(params)?;
        match rows.next()? {
            Some(row) => f(&row),
            None => Err(Error::NoRows),
        }
    }

    /// Every row, mapped by `f` as the iterator is consumed.
    pub fn query_map<T, P, F>(&mut self, params: P, f: F) -> Result<MappedRows<'_, F>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        Ok(MappedRows {
            rows: self.query(params)?,
            map: f,
        })
    }

    /// The rows, to step through with [`Rows::next`].
    pub fn query<P: Params>(&mut self, params: P) -> Result<Rows<'_>> {
        Ok(Rows(match &mut self.0 {
            StatementInner::SqliteCached(s) => RowsInner::Sqlite(sqlite::query(s, &params)?),
            StatementInner::Sqlite(s) => RowsInner::Sqlite(sqlite::query(s, &params)?),
            StatementInner::Postgres(s) => RowsInner::Postgres(s.query(&params)?.into_iter(), None),
        }))
    }
}

/// A result set being read.
pub struct Rows<'s>(RowsInner<'s>);

enum RowsInner<'s> {
    Sqlite(rusqlite::Rows<'s>),
    /// PostgreSQL rows arrive whole; the current one is kept for the borrow.
    Postgres(std::vec::IntoIter<postgres::Row>, Option<postgres::Row>),
}

impl Rows<'_> {
    /// The next row, or `None` after the last.
    #[allow(clippy::should_implement_trait)] // lending: each row borrows the result set
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        match &mut self.0 {
            RowsInner::Sqlite(rows) => Ok(rows.next()?.map(|r| Row(RowInner::Sqlite(r)))),
            RowsInner::Postgres(rest, current) => {
                *current = rest.next();
                Ok(current.as_ref().map(|r| Row(RowInner::Postgres(r))))
            }
        }
    }
}

/// Rows mapped by a closure, read lazily.
pub struct MappedRows<'s, F> {
    rows: Rows<'s>,
    map: F,
}

impl<T, F> Iterator for MappedRows<'_, F>
where
    F: FnMut(&Row<'_>) -> Result<T>,
{
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        match self.rows.next() {
            Ok(Some(row)) => Some((self.map)(&row)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// One row of a result.
pub struct Row<'r>(RowInner<'r>);

enum RowInner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

impl Row<'_> {
    /// Column `idx` (0-based) read as `T`; an error when the stored type does not fit.
    pub fn get<I: ColumnIndex, T: FromValue>(&self, idx: I) -> Result<T> {
        let idx = idx.index();
        let converted = match &self.0 {
            RowInner::Sqlite(r) => T::from_value(sqlite::column(r, idx)?),
            RowInner::Postgres(r) => T::from_value(pg::column(r, idx)?),
        };
        converted.map_err(|message| Error::Conversion {
            column: idx,
            message,
        })
    }
}

/// A column position. Only `usize`: queries name their columns by position, and a single
/// integer type lets a literal `row.get(0)` infer it.
pub trait ColumnIndex {
    fn index(&self) -> usize;
}

impl ColumnIndex for usize {
    fn index(&self) -> usize {
        *self
    }
}
