//! WAL checkpoints on a thread of their own, so that the writer's commits never wait
//! for one, and a WAL that stays bounded under continuous readers.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses
//! `wal_autocheckpoint` pages: it copies the WAL into the database file and fsyncs that,
//! on the writer thread, delaying the replies of the whole group (8% of the writer's time
//! in a fan-out, BENCHMARKS.md). The writer connection turns it off and this thread runs
//! a PASSIVE checkpoint (which never blocks the writer or readers) every [`INTERVAL`].
//!
//! A PASSIVE checkpoint cannot restart the WAL while a reader still uses frames of it:
//! with readers overlapping without pause (feed reads, socket counts) the writer keeps
//! appending and the file grows without bound. So the strategy escalates: once the WAL
//! file is past [`WAL_LIMIT_BYTES`], at most every [`ESCALATE_EVERY`], a TRUNCATE
//! checkpoint waits up to [`ESCALATION_WAIT`] for the readers of old frames to finish
//! (new ones then read the database file), restarts the WAL and cuts the file to zero.
//! When it cannot (a reader kept going), it tries again later; meanwhile
//! `journal_size_limit` cuts the file back to the limit whenever the writer restarts the
//! WAL on its own. The WAL's size is kept for `/metrics` (`tidings_wal_bytes`).
//!
//! Invariants: durability is unchanged — a commit is durable once its WAL frames are
//! fsynced (`synchronous=FULL`); a checkpoint only copies committed pages into the main
//! file. An escalation holds up the writer for at most [`ESCALATION_WAIT`] plus its copy.
//! The thread ends when [`Checkpointer::stop`] is called or the store is dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::StoreResult;

/// Time between checkpoints: at fan-out rates about 1,000 WAL pages, SQLite's own default.
const INTERVAL: Duration = Duration::from_millis(100);

/// The WAL size past which checkpoints escalate, and the size `journal_size_limit` cuts
/// the file back to when the WAL restarts (64 MiB: a few seconds of fan-out writes).
pub const WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// How long an escalated checkpoint waits for the writer and old readers.
pub const ESCALATION_WAIT: Duration = Duration::from_millis(200);

/// Least time between two escalations (one that failed holds up the writer for nothing).
const ESCALATE_EVERY: Duration = Duration::from_secs(1);

/// Handle to the checkpoint thread; dropping the last clone of the store stops it.
pub(super) struct Checkpointer {
    stop: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    wal_bytes: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Starts the thread with its own connection to `path`.
    pub(super) fn spawn(path: &Path, synchronous_full: bool) -> StoreResult<Checkpointer> {
        let conn = super::connection::open_checkpointer(path, synchronous_full)?;
        let (tx, rx) = mpsc::channel::<()>();
        let wal_bytes = Arc::new(AtomicU64::new(0));
        let mut state = State {
            conn,
            path: path.to_path_buf(),
            wal: wal_path(path),
            wal_bytes: wal_bytes.clone(),
            last_escalation: None,
        };
        let thread = std::thread::Builder::new()
            .name("tidings-checkpoint".into())
            .spawn(move || {
                // A stop (or the store dropped) ends the wait early; a timeout checkpoints.
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(INTERVAL) {
                    state.checkpoint();
                }
            })?;
        Ok(Checkpointer {
            stop: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            wal_bytes,
        })
    }

    /// The WAL file's size after the last checkpoint, in bytes.
    pub(super) fn wal_bytes(&self) -> u64 {
        self.wal_bytes.load(Ordering::Relaxed)
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

/// `{database}-wal`, where SQLite keeps the WAL.
fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// How a checkpoint went: SQLite's `(busy, wal frames, frames checkpointed)`.
type Outcome = (i64, i64, i64);

struct State {
    conn: Connection,
    path: PathBuf,
    wal: PathBuf,
    wal_bytes: Arc<AtomicU64>,
    last_escalation: Option<Instant>,
}

impl State {
    fn checkpoint(&mut self) {
        if let Err(e) = run(&self.conn, "PASSIVE") {
            tracing::warn!(db = %self.path.display(), error = %e, "WAL checkpoint failed; retrying next pass");
        }
        let size = self.size();
        if size > WAL_LIMIT_BYTES as u64 && self.may_escalate() {
            self.last_escalation = Some(Instant::now());
            match run(&self.conn, "TRUNCATE") {
                Ok((0, _, _)) => {
                    tracing::debug!(wal_bytes = size, "WAL past its limit: truncated")
                }
                Ok(_) => tracing::debug!(
                    wal_bytes = size,
                    "WAL past its limit: readers kept it busy; trying again later"
                ),
                Err(e) => tracing::warn!(
                    db = %self.path.display(), error = %e,
                    "escalated WAL checkpoint failed; trying again later"
                ),
            }
            self.size();
        }
    }

    fn may_escalate(&self) -> bool {
        self.last_escalation
            .is_none_or(|at| at.elapsed() >= ESCALATE_EVERY)
    }

    /// Reads the WAL file's size into the gauge (0 when there is none).
    fn size(&self) -> u64 {
        let size = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        self.wal_bytes.store(size, Ordering::Relaxed);
        size
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)`. A busy answer (`SQLITE_BUSY` from the busy
/// handler) is a row with `busy = 1` or an error; both mean "not this time".
fn run(conn: &Connection, mode: &str) -> rusqlite::Result<Outcome> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wal_past_the_limit_is_truncated_once_old_readers_finish() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wal.db");
        let writer = super::super::connection::open_read_write(&path, false).expect("writer");
        writer
            .execute_batch("CREATE TABLE t(x BLOB); INSERT INTO t VALUES (zeroblob(1000));")
            .expect("table");
        // A reader holding a snapshot: PASSIVE can copy nothing after it, and the writer
        // cannot restart the WAL.
        let reader = super::super::connection::open_read_only(&path).expect("reader");
        reader.execute_batch("BEGIN").expect("begin");
        let _: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("read");
        let chunk = 1024 * 1024;
        for _ in 0..(WAL_LIMIT_BYTES as usize / chunk + 2) {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(?1))", [chunk as i64])
                .expect("insert");
        }
        let mut state = State {
            conn: super::super::connection::open_checkpointer(&path, false).expect("conn"),
            path: path.clone(),
            wal: wal_path(&path),
            wal_bytes: Arc::new(AtomicU64::new(0)),
            last_escalation: None,
        };
        state.checkpoint();
        let grown = state.wal_bytes.load(Ordering::Relaxed);
        assert!(grown > WAL_LIMIT_BYTES as u64, "{grown}");
        assert!(state.last_escalation.is_some(), "escalated");
        // The old reader finishes: the next escalation (not before ESCALATE_EVERY) cuts it.
        reader.execute_batch("COMMIT").expect("end read");
        // (An escalation "just now", whatever the time this slow machine took so far.)
        state.last_escalation = Some(Instant::now() + Duration::from_secs(3600));
        state.checkpoint();
        assert_eq!(
            state.wal_bytes.load(Ordering::Relaxed),
            grown,
            "waits its turn"
        );
        state.last_escalation = Some(Instant::now() - ESCALATE_EVERY);
        state.checkpoint();
        assert_eq!(state.wal_bytes.load(Ordering::Relaxed), 0, "truncated");
        let n: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(
            n as usize,
            WAL_LIMIT_BYTES as usize / chunk + 3,
            "nothing lost"
        );
    }
}
