//! The single writer thread and its group commit.
//!
//! Commands queue on a bounded channel. The thread takes every queued command, runs them
//! in one `BEGIN IMMEDIATE` transaction with a savepoint each (a failing command rolls
//! back alone), commits once, and only then replies to each caller. With
//! `synchronous=FULL` a whole batch costs one fsync, so durability does not cost
//! throughput.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{Db, StoreError, StoreResult, WriterMetrics};

/// How many commands may wait before callers are made to wait (back-pressure).
const QUEUE_DEPTH: usize = 4096;
/// The most commands folded into one transaction, so one commit never grows unbounded.
const MAX_BATCH: usize = 512;

/// A queued command: runs against the connection, reports whether it succeeded, and hands
/// back a reply to send once the transaction's fate is known.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;
type Reply = Box<dyn FnOnce(StoreResult<()>) + Send>;

enum Command {
    Run(Job),
    Shutdown(oneshot::Sender<()>),
}

/// Cheap to clone; every clone feeds the same writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Command>,
}

pub(super) fn spawn(conn: Connection, metrics: WriterMetrics) -> WriterHandle {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    std::thread::Builder::new()
        .name("tidings-writer".into())
        .spawn(move || run(conn, rx, metrics))
        .expect("the OS refused to start the writer thread");
    WriterHandle { tx }
}

impl WriterHandle {
    pub(super) async fn submit<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn| {
            let outcome = f(&Db(conn));
            let ok = outcome.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = reply_tx.send(commit.and(outcome));
            });
            (ok, reply)
        });
        self.tx
            .send(Command::Run(job))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        reply_rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Waits until every command queued before this call has committed, then stops.
    pub(super) async fn shutdown(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(done_tx)).await.is_ok() {
            let _ = done_rx.await;
        }
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Command>, metrics: WriterMetrics) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        let mut shutdown = None;
        match first {
            Command::Run(job) => batch.push(job),
            Command::Shutdown(done) => shutdown = Some(done),
        }
        while shutdown.is_none() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Command::Run(job)) => batch.push(job),
                Ok(Command::Shutdown(done)) => shutdown = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let started = std::time::Instant::now();
            metrics.batch_size.observe(batch.len() as f64);
            commit_batch(&conn, &mut batch);
            metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        if let Some(done) = shutdown {
            let _ = done.send(());
            return;
        }
    }
}

fn commit_batch(conn: &Connection, batch: &mut Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "could not begin a write transaction; the batch is refused");
        // Dropping a job drops its caller's reply channel: the caller sees `WriterGone`
        // (a 503 the SDKs retry), which is true — nothing was written.
        batch.clear();
        return;
    }
    let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
    for job in batch.drain(..) {
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back itself (it may on SQLITE_FULL or
            // an I/O error): what the earlier commands wrote is gone, and a command run
            // now would commit on its own. Refuse the rest; the earlier replies fail below.
            drop(job);
            continue;
        }
        if let Err(e) = conn.execute_batch("SAVEPOINT cmd") {
            tracing::error!(error = %e, "could not open a savepoint; the command is refused");
            continue;
        }
        // A panicking command must not take the writer (and every later write) down: its
        // savepoint is rolled back and its caller sees `WriterGone`.
        let (ok, reply) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn)))
        {
            Ok((ok, reply)) => (ok, Some(reply)),
            Err(_) => {
                tracing::error!("a write command panicked; it was rolled back");
                (false, None)
            }
        };
        let end = if ok {
            "RELEASE cmd"
        } else {
            "ROLLBACK TO cmd; RELEASE cmd"
        };
        if let Err(e) = conn.execute_batch(end) {
            tracing::error!(error = %e, "savepoint end failed");
        }
        replies.extend(reply);
    }
    if conn.is_autocommit() {
        tracing::error!(
            "the write transaction was rolled back by SQLite; every command in it fails"
        );
        for reply in replies {
            reply(Err(StoreError::CommitFailed(
                "the transaction was rolled back (disk full or I/O error)".into(),
            )));
        }
        return;
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => replies.into_iter().for_each(|reply| reply(Ok(()))),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            let message = e.to_string();
            tracing::error!(error = %message, "group commit failed; every command in it is rolled back");
            for reply in replies {
                reply(Err(StoreError::CommitFailed(message.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> WriterHandle {
        let conn = Connection::open_in_memory().expect("in-memory db");
        conn.execute_batch("CREATE TABLE t(v INTEGER NOT NULL)")
            .expect("schema");
        spawn(conn, WriterMetrics::new())
    }

    fn count(db: &Db<'_>) -> StoreResult<i64> {
        Ok(db.0.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?)
    }

    #[tokio::test]
    async fn a_failing_command_rolls_back_alone_and_its_neighbours_commit() {
        let w = writer();
        let (a, b, c) = tokio::join!(
            w.submit(|db| Ok(db.0.execute("INSERT INTO t VALUES (1)", [])?)),
            w.submit(|db| {
                db.0.execute("INSERT INTO t VALUES (2)", [])?;
                Err::<(), _>(StoreError::Conflict("no".into()))
            }),
            w.submit(|db| Ok(db.0.execute("INSERT INTO t VALUES (3)", [])?)),
        );
        assert!(a.is_ok() && c.is_ok());
        assert!(matches!(b, Err(StoreError::Conflict(_))));
        assert_eq!(w.submit(count).await.ok(), Some(2));
    }

    #[tokio::test]
    async fn a_panicking_command_is_rolled_back_and_the_writer_keeps_working() {
        let w = writer();
        let panicked = w
            .submit(|db| -> StoreResult<()> {
                db.0.execute("INSERT INTO t VALUES (1)", [])?;
                panic!("bug in a command")
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::WriterGone)));
        assert!(
            w.submit(|db| Ok(db.0.execute("INSERT INTO t VALUES (2)", [])?))
                .await
                .is_ok()
        );
        assert_eq!(w.submit(count).await.ok(), Some(1));
    }

    #[tokio::test]
    async fn shutdown_commits_everything_queued_before_it() {
        let w = writer();
        let pending = w.submit(|db| Ok(db.0.execute("INSERT INTO t VALUES (1)", [])?));
        let (written, ()) = tokio::join!(pending, w.shutdown());
        assert!(written.is_ok());
    }
}
