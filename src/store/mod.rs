//! SQLite storage. Owns every SQL statement and every `rusqlite` type: nothing from
//! `rusqlite` leaves this module.
//!
//! Invariants:
//! - All writes go through the single [`Writer`] thread, which group-commits queued
//!   commands in one transaction and replies only after `COMMIT` returned.
//! - Reads use separate read-only connections on the blocking pool ([`Store::read`]).

mod checkpointer;
mod connection;
mod feed_key_cache;
mod feed_keys;
mod feed_sql;
mod files;
mod migrations;
mod pg;
mod readers;
pub mod sql;
#[cfg(test)]
pub(crate) mod test_engines;
mod writer;
mod writer_metrics;

pub(crate) mod backlog;
pub mod backup;
pub(crate) mod batches;
pub(crate) mod bulk;
pub(crate) mod cancellations;
pub mod channels;
pub mod copy;
pub(crate) mod feeds;
pub mod fold;
pub mod leases;
pub(crate) mod lifecycle;
pub(crate) mod message_queries;
pub(crate) mod message_status;
pub mod messages;
pub(crate) mod meta;
pub mod ops;
pub(crate) mod recipients;
pub mod retention;
pub(crate) mod run_records;
pub mod runs;
pub(crate) mod schedules;
pub(crate) mod statistics;
pub(crate) mod timers;
pub(crate) mod translations;
pub(crate) mod workflows;

use std::path::{Path, PathBuf};

pub use migrations::SCHEMA_VERSION;
pub(crate) use ops::{BulkTarget, CountJob, Expiry, FeedView, TranslationFilter};

use crate::clock::Clock;
pub use writer::WriterHandle;
pub use writer_metrics::WriterMetrics;

/// What can go wrong below the API. Mapped to HTTP once, in `crate::error`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Displayed without the SQL text: a statement can be ~100 KB, and logs must not
    /// carry whole statements (or the request data bound into them).
    #[error("database error: {0}")]
    Sql(#[from] sql::Error),
    /// The group `COMMIT` failed (disk full, I/O error): nothing in the group was stored.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    #[error("stored JSON is corrupt: {0}")]
    Json(#[from] serde_json::Error),
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the writer thread has stopped")]
    WriterGone,
    #[error("the blocking pool failed: {0}")]
    Blocking(String),
    #[error("{0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    /// The database was written by a newer Tidings (its schema version is higher than any
    /// this binary knows); reading it could misread data, so startup stops.
    #[error(
        "the database schema is version {found}, newer than this binary knows ({known}): \
         it was upgraded by a newer Tidings; run that version (or restore a backup taken \
         before the upgrade)"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// A named thing the request relies on does not exist (e.g. "The object `p1` in
    /// collection `projects`"). Maps to 404 with that name.
    #[error("{0} was not found")]
    Missing(String),
    /// The request was well-formed but the stored result would break a rule (e.g. the
    /// merged custom properties exceed 256 kB). Maps to 422.
    #[error("`{field}`: {message}")]
    Invalid { field: String, message: String },
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Whether the storage failed rather than the request (disk full, I/O error, database
    /// locked or unopenable): nothing was stored and the same request may succeed later,
    /// so the API answers 503 with `Retry-After`.
    pub fn is_storage_failure(&self) -> bool {
        match self {
            StoreError::CommitFailed(_) => true,
            StoreError::Sql(e) => e.is_storage_failure(),
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(e.into())
    }
}

/// Connection-level handle the query functions receive. Opaque outside `store/`. It
/// carries the server's clock: every timestamp a query writes or compares is [`Db::now`],
/// and on the writer its memory of committed feed keys (`feed_key_cache`): `Some` exactly
/// when the handle is the writer's, whose commands always run inside its transaction.
pub struct Db<'a>(
    &'a sql::Conn,
    &'a Clock,
    Option<&'a feed_key_cache::FeedKeyCache>,
);

impl Db<'_> {
    /// Now on the server's clock, formatted for storage.
    pub fn now(&self) -> String {
        self.1.now()
    }

    /// Now on the server's clock, for arithmetic (windows, cut-offs).
    pub fn now_utc(&self) -> chrono::DateTime<chrono::Utc> {
        self.1.now_utc()
    }

    /// Whether this is the writer's handle, inside its transaction (so a statement may
    /// be tried inside a savepoint and rolled back alone).
    fn in_write_transaction(&self) -> bool {
        self.2.is_some()
    }

    /// A handle on the system clock, for tests of the store's queries.
    #[cfg(test)]
    pub(crate) fn on(conn: &sql::Conn) -> Db<'_> {
        static SYSTEM: Clock = Clock::system();
        Db(conn, &SYSTEM, None)
    }
}

/// The store: one writer, a pool of readers, on one SQLite file or one PostgreSQL database.
#[derive(Clone)]
pub struct Store {
    writer: WriterHandle,
    writer_metrics: WriterMetrics,
    readers: readers::ReaderPool,
    /// SQLite only: PostgreSQL checkpoints by itself.
    checkpointer: Option<std::sync::Arc<checkpointer::Checkpointer>>,
    path: PathBuf,
    created: bool,
    /// PostgreSQL only: this node's name and lease length, for the leases several nodes
    /// share work by (`ops::leases`). `None` on SQLite: one process owns the file.
    node: Option<std::sync::Arc<ops::leases::NodeLease>>,
    /// PostgreSQL: what this node's fold remembers between chunks (`fold::Horizon`).
    fold_horizon: std::sync::Arc<std::sync::Mutex<fold::Horizon>>,
}

impl Store {
    /// Opens (creating if needed) the database, applies migrations and starts the writer.
    pub fn open(path: &Path, synchronous_full: bool) -> StoreResult<Self> {
        Self::open_limited(path, synchronous_full, None, Clock::system())
    }

    /// [`Store::open`], with the database file capped at about `max_bytes` (SQLite's
    /// `max_page_count`): a write that would grow it further fails as "disk full", which
    /// the API answers with 503 — the same as a full disk. Queries read `clock` for every
    /// timestamp they write or compare.
    pub fn open_limited(
        path: &Path,
        synchronous_full: bool,
        max_bytes: Option<u64>,
        clock: Clock,
    ) -> StoreResult<Self> {
        let created = files::create_private(path)?;
        let mut conn = connection::open_read_write(path, synchronous_full)?;
        migrations::apply(&mut conn)?;
        if let Some(max_bytes) = max_bytes {
            connection::limit_size(&conn, max_bytes)?;
        }
        let conn = sql::Conn::from(conn);
        channels::ensure_default(&Db(&conn, &clock, None))?;
        let writer_metrics = WriterMetrics::new();
        let writer = writer::spawn(conn, None, writer_metrics.clone(), clock.clone());
        let readers =
            readers::ReaderPool::new(readers::Source::SqliteFile(path.to_path_buf()), clock);
        let checkpointer = Some(std::sync::Arc::new(checkpointer::Checkpointer::spawn(
            path,
            synchronous_full,
        )?));
        Ok(Store {
            writer,
            writer_metrics,
            readers,
            checkpointer,
            path: path.to_path_buf(),
            created,
            node: None,
            fold_horizon: Default::default(),
        })
    }

    /// Connects to PostgreSQL at `config`, applies the migrations it lacks and starts the
    /// writer. Blocking: call it before the server starts (or on a blocking thread).
    pub fn open_postgres(config: &sql::PgConfig, clock: Clock) -> StoreResult<Self> {
        let conn = pg::open_writer(config)?;
        pg::apply(&conn)?;
        let db = Db(&conn, &clock, None);
        let created = meta::get(&db, "installed_at")?.is_none();
        channels::ensure_default(&db)?;
        meta::get_or_insert(&db, "installed_at", &clock.now())?;
        let writer_metrics = WriterMetrics::new();
        let reconnect = config.clone();
        let writer = writer::spawn(
            conn,
            Some(Box::new(move || pg::open_writer(&reconnect))),
            writer_metrics.clone(),
            clock.clone(),
        );
        let readers = readers::ReaderPool::new(readers::Source::Postgres(config.clone()), clock);
        Ok(Store {
            writer,
            writer_metrics,
            readers,
            checkpointer: None,
            path: PathBuf::new(),
            created,
            node: Some(std::sync::Arc::new(ops::leases::NodeLease::default())),
            fold_horizon: Default::default(),
        })
    }

    /// Whether this store is on PostgreSQL (several writers may share it).
    pub(crate) fn is_postgres(&self) -> bool {
        self.node.is_some()
    }

    /// Whether this open created the database file (a new installation), e.g. for demo
    /// mode, which only runs on a database it created.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The writer's group-commit histograms, for the `/metrics` registry.
    /// The WAL file's size after the last checkpoint (`tidings_wal_bytes`).
    pub fn wal_bytes(&self) -> u64 {
        self.checkpointer.as_ref().map_or(0, |c| c.wal_bytes())
    }

    pub fn writer_metrics(&self) -> &WriterMetrics {
        &self.writer_metrics
    }

    /// Runs `f` inside the writer's transaction (its own savepoint) and returns its result
    /// once the whole group has committed. An `Err` from `f` rolls back only `f`'s work.
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.submit(1, f).await
    }

    /// [`Store::write`] for a command writing about `items` items (a fan-out page): heavy
    /// commands share bounded transactions of their own, so they never hold up the small
    /// commits (trigger acknowledgements) queued behind them (see `writer`).
    pub async fn write_weighted<T, F>(&self, items: usize, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.submit(items, f).await
    }

    /// Runs `f` on a read-only connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.readers.run(f).await
    }

    /// Stops the writer after it has drained and committed every queued command.
    pub async fn shutdown(&self) {
        if let Some(checkpointer) = self.checkpointer.clone() {
            let _ = tokio::task::spawn_blocking(move || checkpointer.stop()).await;
        }
        self.writer.shutdown().await;
    }

    /// Lets go of the database without waiting: the writer stops after its queue and the
    /// idle read connections close. For an embedding that cannot await
    /// [`Store::shutdown`] (a test server dropped at the end of its test): on PostgreSQL
    /// its connections return to the server at once instead of when the process exits.
    pub fn close_now(&self) {
        self.writer.stop_soon();
        self.readers.close_idle();
    }

    /// Where the database lives (shown at start).
    pub fn path(&self) -> &Path {
        &self.path
    }
}
