//! The single writer thread and its group commit.
//!
//! Commands queue on a bounded channel. The thread takes every queued command, runs them
//! in one `BEGIN IMMEDIATE` transaction with a savepoint each (a failing command rolls
//! back alone), commits once, and only then replies to each caller. With
//! `synchronous=FULL` a whole batch costs one fsync, so durability does not cost
//! throughput.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{Db, StoreError, StoreResult};

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

pub(super) fn spawn(conn: Connection) -> WriterHandle {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    std::thread::Builder::new()
        .name("tidings-writer".into())
        .spawn(move || run(conn, rx))
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

fn run(conn: Connection, mut rx: mpsc::Receiver<Command>) {
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
            commit_batch(&conn, &mut batch);
        }
        if let Some(done) = shutdown {
            let _ = done.send(());
            return;
        }
    }
}

fn commit_batch(conn: &Connection, batch: &mut Vec<Job>) {
    let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let message = e.to_string();
        for job in batch.drain(..) {
            // Never ran: tell the caller the write did not happen.
            let reply = job_failed_reply(job);
            reply(Err(StoreError::Conflict(format!(
                "could not begin transaction: {message}"
            ))));
        }
        return;
    }
    for job in batch.drain(..) {
        let savepoint = conn.execute_batch("SAVEPOINT cmd");
        if savepoint.is_err() {
            let reply = job_failed_reply(job);
            reply(Err(StoreError::Conflict("could not open savepoint".into())));
            continue;
        }
        let (ok, reply) = job(conn);
        let end = if ok {
            "RELEASE cmd"
        } else {
            "ROLLBACK TO cmd; RELEASE cmd"
        };
        if let Err(e) = conn.execute_batch(end) {
            tracing::error!(error = %e, "savepoint end failed");
        }
        replies.push(reply);
    }
    let commit = conn.execute_batch("COMMIT").map_err(StoreError::from);
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    match commit {
        Ok(()) => replies.into_iter().for_each(|reply| reply(Ok(()))),
        Err(e) => {
            let message = e.to_string();
            tracing::error!(error = %message, "group commit failed; every command in it is rolled back");
            replies.into_iter().for_each(|reply| {
                reply(Err(StoreError::Conflict(format!(
                    "commit failed: {message}"
                ))))
            });
        }
    }
}

/// A job that could not run still owns its caller's reply channel; dropping it makes the
/// caller see `WriterGone`, which maps to a 5xx. That is the honest answer: nothing was written.
fn job_failed_reply(job: Job) -> Reply {
    drop(job);
    Box::new(|_| {})
}
