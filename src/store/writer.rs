//! The single writer thread and its group commit.
//!
//! Commands queue on a bounded channel. The thread takes every queued command, runs them
//! in one `BEGIN IMMEDIATE` transaction with a savepoint each (a failing command rolls
//! back alone), commits once, and only then replies to each caller. With
//! `synchronous=FULL` a whole batch costs one fsync, so durability does not cost
//! throughput.
//!
//! Two lanes keep one tenant's fan-out from holding up everyone's small commits (issue
//! 10, item 2). A command carries a weight (the items it writes); light commands (trigger
//! accepts, status changes, a fan-out page of a few recipients) go in the *quick* lane,
//! heavy ones (fan-out pages) in the *bulk* lane. Transactions alternate: all waiting
//! quick commands commit together, then bulk commands for at most [`BULK_TIME`] (or
//! [`MAX_BULK_WEIGHT`] items), then quick again. So a quick command waits for at most one bounded bulk
//! transaction plus its own, and neither lane can starve the other.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::sql::Conn;
use tokio::sync::{mpsc, oneshot};

use super::feed_key_cache::FeedKeyCache;
use super::{Db, StoreError, StoreResult, WriterMetrics};
use crate::clock::Clock;

/// How many commands may wait before callers are made to wait (back-pressure).
const QUEUE_DEPTH: usize = 4096;
/// The most commands folded into one transaction, so one commit never grows unbounded.
const MAX_BATCH: usize = 512;
/// Commands weighing at most this many items take the quick lane.
pub const QUICK_WEIGHT: usize = 16;
/// Items of bulk commands per transaction (at least one command, whatever it weighs).
const MAX_BULK_WEIGHT: usize = 2000;
/// A bulk transaction takes no further command once it has run this long: what a quick
/// command may have to wait for, on a fast machine or a slow one.
const BULK_TIME: Duration = Duration::from_millis(15);

/// A queued command: runs against the connection, reports whether it succeeded, and hands
/// back a reply to send once the transaction's fate is known.
type Job = Box<dyn FnOnce(&Db<'_>) -> (bool, Reply) + Send>;
type Reply = Box<dyn FnOnce(StoreResult<()>) + Send>;

enum Command {
    Run(Job, usize),
    Shutdown(oneshot::Sender<()>),
}

/// Cheap to clone; every clone feeds the same writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Command>,
}

pub(super) fn spawn(
    conn: Conn,
    reopen: Option<Reopen>,
    metrics: WriterMetrics,
    clock: Clock,
) -> WriterHandle {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    std::thread::Builder::new()
        .name("tidings-writer".into())
        .spawn(move || run(conn, reopen, rx, metrics, clock))
        .expect("the OS refused to start the writer thread");
    WriterHandle { tx }
}

impl WriterHandle {
    /// Queues `f` weighing `weight` items (see the lanes in the module docs).
    pub(super) async fn submit<T, F>(&self, weight: usize, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |db| {
            let outcome = f(db);
            let ok = outcome.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = reply_tx.send(commit.and(outcome));
            });
            (ok, reply)
        });
        self.tx
            .send(Command::Run(job, weight))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        reply_rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Asks the writer to stop after what is queued, without waiting (a full queue keeps
    /// it running until its handles are gone).
    pub(super) fn stop_soon(&self) {
        let (done_tx, _) = oneshot::channel();
        let _ = self.tx.try_send(Command::Shutdown(done_tx));
    }

    /// Waits until every command queued before this call has committed, then stops.
    pub(super) async fn shutdown(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(done_tx)).await.is_ok() {
            let _ = done_rx.await;
        }
    }
}

/// Commands taken off the channel, by lane.
#[derive(Default)]
struct Lanes {
    quick: VecDeque<Job>,
    bulk: VecDeque<(Job, usize)>,
    /// Whether the last transaction served the quick lane (the next prefers bulk).
    quick_last: bool,
}

/// The transaction being filled: which lane, and how much it holds so far.
struct Turn {
    bulk: bool,
    started: Instant,
    weight: usize,
    commands: usize,
}

impl Lanes {
    fn len(&self) -> usize {
        self.quick.len() + self.bulk.len()
    }

    fn add(&mut self, job: Job, weight: usize) {
        if weight <= QUICK_WEIGHT {
            self.quick.push_back(job);
        } else {
            self.bulk.push_back((job, weight));
        }
    }

    /// Starts the next transaction's turn, alternating lanes while both have work.
    fn turn(&mut self) -> Turn {
        let bulk = !self.bulk.is_empty() && (self.quick.is_empty() || self.quick_last);
        self.quick_last = !bulk;
        Turn {
            bulk,
            started: Instant::now(),
            weight: 0,
            commands: 0,
        }
    }

    /// The turn's next command, or `None` once it is full: a bulk turn ends after
    /// [`MAX_BULK_WEIGHT`] items or [`BULK_TIME`] (it always takes one command).
    fn next_job(&mut self, turn: &mut Turn) -> Option<Job> {
        if turn.commands >= MAX_BATCH {
            return None;
        }
        let job = if turn.bulk {
            let (_, weight) = self.bulk.front()?;
            let full =
                turn.weight + weight > MAX_BULK_WEIGHT || turn.started.elapsed() >= BULK_TIME;
            if turn.commands > 0 && full {
                return None;
            }
            let (job, weight) = self.bulk.pop_front()?;
            turn.weight += weight;
            job
        } else {
            self.quick.pop_front()?
        };
        turn.commands += 1;
        Some(job)
    }
}

/// Opens a fresh connection for the writer when its own broke (PostgreSQL restarted or the
/// network dropped). SQLite has none: its connection is a file.
pub(super) type Reopen = Box<dyn Fn() -> StoreResult<Conn> + Send>;

fn run(
    mut conn: Conn,
    reopen: Option<Reopen>,
    mut rx: mpsc::Receiver<Command>,
    metrics: WriterMetrics,
    clock: Clock,
) {
    let mut lanes = Lanes::default();
    let mut shutdown = None;
    let feed_keys = FeedKeyCache::new();
    loop {
        if lanes.len() == 0 && shutdown.is_none() {
            match rx.blocking_recv() {
                Some(Command::Run(job, weight)) => lanes.add(job, weight),
                Some(Command::Shutdown(done)) => shutdown = Some(done),
                None => return,
            }
        }
        // Everything already waiting, up to the queue depth (back-pressure stays bounded).
        while shutdown.is_none() && lanes.len() < QUEUE_DEPTH {
            match rx.try_recv() {
                Ok(Command::Run(job, weight)) => lanes.add(job, weight),
                Ok(Command::Shutdown(done)) => shutdown = Some(done),
                Err(_) => break,
            }
        }
        if lanes.len() > 0
            && conn.is_broken()
            && let Some(reopen) = &reopen
        {
            // While the database is unreachable each batch fails at `BEGIN` and its
            // callers answer 503 with `Retry-After`; the first batch after it is back
            // reconnects here, so the server recovers without a restart.
            match reopen() {
                Ok(fresh) => {
                    tracing::info!("the writer reconnected to the database");
                    conn = fresh;
                }
                Err(e) => tracing::warn!(error = %e, "the database is still unreachable"),
            }
        }
        if lanes.len() > 0 {
            let mut turn = lanes.turn();
            let started = Instant::now();
            commit_batch(&Db(&conn, &clock, Some(&feed_keys)), || {
                lanes.next_job(&mut turn)
            });
            metrics.batch_size.observe(turn.commands as f64);
            metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        if lanes.len() == 0
            && let Some(done) = shutdown.take()
        {
            let _ = done.send(());
            return;
        }
    }
}

/// One transaction of the commands `next` yields (until it yields `None`).
fn commit_batch(db: &Db<'_>, mut next: impl FnMut() -> Option<Job>) {
    let conn = db.0;
    if let Err(e) = conn.begin() {
        tracing::error!(error = %e, "could not begin a write transaction; the batch is refused");
        // Dropping a job drops its caller's reply channel: the caller sees `WriterGone`
        // (a 503 the SDKs retry), which is true — nothing was written.
        while next().is_some() {}
        return;
    }
    let mut replies: Vec<Reply> = Vec::new();
    while let Some(job) = next() {
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
        let staged = db.2.map(FeedKeyCache::mark);
        let (ok, reply) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(db))) {
            Ok((ok, reply)) => (ok, Some(reply)),
            Err(_) => {
                tracing::error!("a write command panicked; it was rolled back");
                (false, None)
            }
        };
        let end = if ok {
            "RELEASE cmd"
        } else {
            if let (Some(cache), Some(mark)) = (db.2, staged) {
                cache.discard_from(mark);
            }
            "ROLLBACK TO cmd; RELEASE cmd"
        };
        if let Err(e) = conn.execute_batch(end) {
            tracing::error!(error = %e, "savepoint end failed");
        }
        replies.extend(reply);
    }
    if conn.is_autocommit() {
        forget_staged_feed_keys(db);
        tracing::error!(
            "the write transaction ended before its commit (the database rolled it back, or \
             the connection was lost); every command in it fails"
        );
        for reply in replies {
            reply(Err(StoreError::CommitFailed(
                "the transaction was rolled back before its commit (disk full, an I/O error \
                 or a lost database connection)"
                    .into(),
            )));
        }
        return;
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            if let Some(cache) = db.2 {
                cache.commit();
            }
            replies.into_iter().for_each(|reply| reply(Ok(())))
        }
        Err(e) => {
            forget_staged_feed_keys(db);
            let _ = conn.execute_batch("ROLLBACK");
            let message = e.to_string();
            tracing::error!(error = %message, "group commit failed; every command in it is rolled back");
            for reply in replies {
                reply(Err(StoreError::CommitFailed(message.clone())));
            }
        }
    }
}

/// The transaction did not commit: the feed keys it read or created mean nothing yet.
fn forget_staged_feed_keys(db: &Db<'_>) {
    if let Some(cache) = db.2 {
        cache.discard_from(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> WriterHandle {
        let conn = rusqlite::Connection::open_in_memory().expect("in-memory db");
        conn.execute_batch("CREATE TABLE t(v INTEGER NOT NULL)")
            .expect("schema");
        spawn(conn.into(), None, WriterMetrics::new(), Clock::system())
    }

    fn count(db: &Db<'_>) -> StoreResult<i64> {
        Ok(db.0.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?)
    }

    #[tokio::test]
    async fn a_failing_command_rolls_back_alone_and_its_neighbours_commit() {
        let w = writer();
        let (a, b, c) = tokio::join!(
            w.submit(1, |db| Ok(db.0.execute("INSERT INTO t VALUES (1)", [])?)),
            w.submit(1, |db| {
                db.0.execute("INSERT INTO t VALUES (2)", [])?;
                Err::<(), _>(StoreError::Conflict("no".into()))
            }),
            w.submit(1, |db| Ok(db.0.execute("INSERT INTO t VALUES (3)", [])?)),
        );
        assert!(a.is_ok() && c.is_ok());
        assert!(matches!(b, Err(StoreError::Conflict(_))));
        assert_eq!(w.submit(1, count).await.ok(), Some(2));
    }

    /// A writer on an in-memory database with a `feeds` table (`feed_keys` reads it).
    fn writer_with_feeds() -> WriterHandle {
        let conn = rusqlite::Connection::open_in_memory().expect("in-memory db");
        conn.execute_batch(
            "CREATE TABLE feeds (id INTEGER PRIMARY KEY, channel_id TEXT NOT NULL, \
             recipient_kind TEXT NOT NULL, recipient_collection TEXT NOT NULL DEFAULT '', \
             recipient_id TEXT NOT NULL, \
             UNIQUE (channel_id, recipient_kind, recipient_collection, recipient_id))",
        )
        .expect("schema");
        spawn(conn.into(), None, WriterMetrics::new(), Clock::system())
    }

    fn feed_key(db: &Db<'_>, user: &str) -> StoreResult<i64> {
        let user = crate::model::RecipientRef::User(user.to_owned());
        Ok(super::super::feed_keys::resolve(db, &[("chan", &user)])?[0])
    }

    fn feed_owner(db: &Db<'_>, key: i64) -> StoreResult<Option<String>> {
        use crate::store::sql::OptionalExtension;
        Ok(db
            .0
            .query_row("SELECT recipient_id FROM feeds WHERE id = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    #[tokio::test]
    async fn a_feed_key_from_a_rolled_back_command_is_not_remembered() {
        let w = writer_with_feeds();
        // `a`'s feed is created, then its command fails: the row is gone.
        let failed = w
            .submit(1, |db| {
                feed_key(db, "a")?;
                Err::<(), _>(StoreError::Conflict("no".into()))
            })
            .await;
        assert!(failed.is_err());
        // `b` takes the key `a`'s feed had for a moment.
        let b = w.submit(1, |db| feed_key(db, "b")).await.expect("b");
        // `a` gets a feed of its own, not the key it held before the rollback.
        let a = w.submit(1, |db| feed_key(db, "a")).await.expect("a");
        assert_ne!(a, b);
        let owners = w
            .submit(1, move |db| Ok((feed_owner(db, a)?, feed_owner(db, b)?)))
            .await
            .expect("owners");
        assert_eq!(owners, (Some("a".into()), Some("b".into())));
    }

    #[tokio::test]
    async fn a_committed_feed_key_is_remembered_without_a_lookup() {
        let w = writer_with_feeds();
        let a = w.submit(1, |db| feed_key(db, "a")).await.expect("a");
        // Behind the writer's back (feeds are never deleted by Tidings): a lookup would
        // now create a new feed with another key; the memory answers the first one.
        w.submit(1, |db| Ok(db.0.execute("DELETE FROM feeds", [])?))
            .await
            .expect("delete");
        w.submit(1, |db| feed_key(db, "z")).await.expect("z");
        assert_eq!(w.submit(1, |db| feed_key(db, "a")).await.ok(), Some(a));
    }

    #[tokio::test]
    async fn a_panicking_command_is_rolled_back_and_the_writer_keeps_working() {
        let w = writer();
        let panicked = w
            .submit(1, |db| -> StoreResult<()> {
                db.0.execute("INSERT INTO t VALUES (1)", [])?;
                panic!("bug in a command")
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::WriterGone)));
        assert!(
            w.submit(1, |db| Ok(db.0.execute("INSERT INTO t VALUES (2)", [])?))
                .await
                .is_ok()
        );
        assert_eq!(w.submit(1, count).await.ok(), Some(1));
    }

    /// A job that records `tag` when it runs.
    fn tagged(
        order: &std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>,
        tag: &'static str,
    ) -> Job {
        let order = order.clone();
        Box::new(move |_| {
            order.lock().map(|mut o| o.push(tag)).ok();
            (true, Box::new(|_| {}) as Reply)
        })
    }

    /// Runs `batches` turns; how many commands each took.
    fn run_batches(lanes: &mut Lanes, batches: usize) -> Vec<usize> {
        let conn = Conn::from(rusqlite::Connection::open_in_memory().expect("in-memory db"));
        (0..batches)
            .map(|_| {
                let mut turn = lanes.turn();
                let mut n = 0;
                while let Some(job) = lanes.next_job(&mut turn) {
                    drop(job(&Db::on(&conn)));
                    n += 1;
                }
                n
            })
            .collect()
    }

    #[test]
    fn a_quick_command_goes_before_bulk_queued_earlier_and_bulk_batches_stay_bounded() {
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut lanes = Lanes::default();
        lanes.add(tagged(&order, "page1"), 1500);
        lanes.add(tagged(&order, "page2"), 1500);
        lanes.add(tagged(&order, "accept"), 1);
        assert_eq!(run_batches(&mut lanes, 3), vec![1, 1, 1]);
        assert_eq!(
            *order.lock().expect("lock"),
            vec!["accept", "page1", "page2"]
        );
    }

    #[test]
    fn the_lanes_alternate_so_neither_starves() {
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut lanes = Lanes::default();
        lanes.add(tagged(&order, "q1"), 1);
        lanes.add(tagged(&order, "page"), 1800);
        lanes.add(tagged(&order, "small page"), 300);
        run_batches(&mut lanes, 1);
        lanes.add(tagged(&order, "q2"), 1);
        lanes.add(tagged(&order, "q3"), 1);
        assert_eq!(run_batches(&mut lanes, 3), vec![1, 2, 1]);
        assert_eq!(
            *order.lock().expect("lock"),
            vec!["q1", "page", "q2", "q3", "small page"]
        );
    }

    #[test]
    fn a_bulk_transaction_takes_no_more_commands_once_its_time_is_up() {
        let mut lanes = Lanes::default();
        let slow: Job = Box::new(|_| {
            std::thread::sleep(BULK_TIME + Duration::from_millis(5));
            (true, Box::new(|_| {}) as Reply)
        });
        lanes.add(slow, 100);
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        lanes.add(tagged(&order, "next page"), 100);
        assert_eq!(run_batches(&mut lanes, 2), vec![1, 1]);
    }

    #[tokio::test]
    async fn shutdown_commits_everything_queued_before_it() {
        let w = writer();
        let pending = w.submit(1, |db| Ok(db.0.execute("INSERT INTO t VALUES (1)", [])?));
        let (written, ()) = tokio::join!(pending, w.shutdown());
        assert!(written.is_ok());
    }
}
