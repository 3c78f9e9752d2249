//! WAL checkpoints on a thread of their own, so that the writer's commits never wait
//! for one.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses
//! `wal_autocheckpoint` pages: it copies the WAL into the database file and fsyncs that,
//! on the writer thread, delaying the replies of the whole group (8% of the writer's time
//! in a fan-out, BENCHMARKS.md). The writer connection turns it off and this thread runs
//! a PASSIVE checkpoint (which never blocks the writer or readers) every [`INTERVAL`].
//!
//! Invariants: durability is unchanged — a commit is durable once its WAL frames are
//! fsynced (`synchronous=FULL`); a checkpoint only copies committed pages into the main
//! file. The thread ends when [`Checkpointer::stop`] is called or the store is dropped.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use rusqlite::Connection;

use super::StoreResult;

/// Time between checkpoints: at fan-out rates about 1,000 WAL pages, SQLite's own default.
const INTERVAL: Duration = Duration::from_millis(100);

/// Handle to the checkpoint thread; dropping the last clone of the store stops it.
pub(super) struct Checkpointer {
    stop: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts the thread with its own connection to `path`.
    pub(super) fn spawn(path: &Path, synchronous_full: bool) -> StoreResult<Checkpointer> {
        let conn = super::connection::open_checkpointer(path, synchronous_full)?;
        let (tx, rx) = mpsc::channel::<()>();
        let path: PathBuf = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("tidings-checkpoint".into())
            .spawn(move || {
                // A stop (or the store dropped) ends the wait early; a timeout checkpoints.
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(INTERVAL) {
                    checkpoint(&conn, &path);
                }
            })?;
        Ok(Checkpointer {
            stop: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Ends the thread and waits for it (after at most the checkpoint in progress).
    pub(super) fn stop(&self) {
        if let Ok(mut stop) = self.stop.lock() {
            stop.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn checkpoint(conn: &Connection, path: &Path) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(db = %path.display(), error = %e, "WAL checkpoint failed; retrying next pass");
    }
}
