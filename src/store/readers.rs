//! A small pool of read-only connections used from tokio's blocking pool.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::sql::Conn;
use tokio::sync::Semaphore;

use super::{Db, StoreError, StoreResult, connection};
use crate::clock::Clock;

/// Idle connections are kept for reuse; a burst opens more, and extras beyond
/// `MAX_IDLE` are closed on return.
const MAX_IDLE: usize = 16;

/// Reads running at once. A burst of reads beyond this waits for a permit instead of
/// taking a blocking thread and opening a connection each (both unbounded otherwise).
pub(super) const MAX_CONCURRENT_READS: usize = 32;

/// Where reader connections come from.
#[derive(Clone)]
pub(super) enum Source {
    SqliteFile(PathBuf),
    Postgres(super::sql::PgConfig),
}

impl Source {
    fn open(&self) -> StoreResult<Conn> {
        match self {
            Source::SqliteFile(path) => Ok(Conn::from(connection::open_read_only(path)?)),
            Source::Postgres(config) => super::pg::open_reader(config),
        }
    }
}

#[derive(Clone)]
pub(super) struct ReaderPool {
    source: Source,
    /// The server's clock, for the queries' `Db::now`.
    clock: Clock,
    // A std Mutex, not tokio's: it is held only to push/pop, never across an await.
    idle: Arc<Mutex<Vec<Conn>>>,
    /// Idle connections kept (SQLite: `MAX_IDLE`; PostgreSQL: the pool size, so a node
    /// holds at most that many server connections for reads).
    max_idle: usize,
    permits: Arc<Semaphore>,
    /// Set by [`ReaderPool::close_idle`]: from then on a connection is closed after its
    /// read instead of kept (a read in flight must not refill a closed pool).
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl ReaderPool {
    pub(super) fn new(source: Source, clock: Clock) -> Self {
        let (max_idle, concurrent) = match &source {
            Source::SqliteFile(_) => (MAX_IDLE, MAX_CONCURRENT_READS),
            Source::Postgres(config) => (config.pool_size.max(1), config.pool_size.max(1)),
        };
        ReaderPool {
            source,
            clock,
            idle: Arc::new(Mutex::new(Vec::new())),
            max_idle,
            permits: Arc::new(Semaphore::new(concurrent)),
            closed: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// The server's clock the queries read.
    pub(super) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Closes the idle connections, and each later one after its read.
    pub(super) fn close_idle(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    pub(super) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.clone();
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Blocking(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match pool.idle.lock().map(|mut idle| idle.pop()) {
                Ok(Some(conn)) => conn,
                _ => pool.source.open()?,
            };
            let result = f(&Db(&conn, &pool.clock, None));
            // A connection PostgreSQL closed (a restart) is dropped, not pooled: the next
            // read opens a fresh one.
            if !conn.is_broken()
                && !pool.closed.load(std::sync::atomic::Ordering::SeqCst)
                && let Ok(mut idle) = pool.idle.lock()
                && idle.len() < pool.max_idle
            {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Blocking(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    /// A burst of reads larger than the bound: at most `MAX_CONCURRENT_READS` hold a
    /// connection at once, the rest queue for a permit, and every read still completes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_reads_queues_beyond_the_bound_and_all_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("readers.db");
        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x);"))
            .expect("a database to read");
        let pool = ReaderPool::new(Source::SqliteFile(path), Clock::system());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let burst = MAX_CONCURRENT_READS + 8;
        let reads: Vec<_> = (0..burst)
            .map(|_| {
                let (pool, running, most, gate) =
                    (pool.clone(), running.clone(), most.clone(), gate.clone());
                tokio::spawn(async move {
                    pool.run(move |_db| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        let (open, opened) = &*gate;
                        let mut is_open = open.lock().expect("gate");
                        while !*is_open {
                            is_open = opened.wait(is_open).expect("gate");
                        }
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while running.load(Ordering::SeqCst) < MAX_CONCURRENT_READS {
            assert!(Instant::now() < deadline, "the first reads never started");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            pool.permits.available_permits(),
            0,
            "the rest wait for a permit"
        );
        {
            let (open, opened) = &*gate;
            *open.lock().expect("gate") = true;
            opened.notify_all();
        }
        for read in reads {
            read.await.expect("joined").expect("the read succeeded");
        }
        assert_eq!(most.load(Ordering::SeqCst), MAX_CONCURRENT_READS);
        assert_eq!(pool.permits.available_permits(), MAX_CONCURRENT_READS);
    }
}
