//! A small pool of read-only connections used from tokio's blocking pool.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::{Db, StoreError, StoreResult, connection};

/// Idle connections are kept for reuse; a burst opens more, and extras beyond
/// `MAX_IDLE` are closed on return.
const MAX_IDLE: usize = 16;

#[derive(Clone)]
pub(super) struct ReaderPool {
    path: PathBuf,
    // A std Mutex, not tokio's: it is held only to push/pop, never across an await.
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl ReaderPool {
    pub(super) fn new(path: PathBuf) -> Self {
        ReaderPool {
            path,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub(super) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match pool.idle.lock().map(|mut idle| idle.pop()) {
                Ok(Some(conn)) => conn,
                _ => connection::open_read_only(&pool.path)?,
            };
            let result = f(&Db(&conn));
            if let Ok(mut idle) = pool.idle.lock()
                && idle.len() < MAX_IDLE
            {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Blocking(e.to_string()))?
    }
}
