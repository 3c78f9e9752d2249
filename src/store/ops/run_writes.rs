//! Writing what walks decided: a page of a run's first passes (one transaction with the
//! run's audience cursor), resumed passes of paused recipient runs (with the claim of
//! their timers), and the close of due batches (with the pass of the run that continues).
//!
//! The engine's decisions that only the write can make (gates, batch joins, a cancel
//! covering a pause) run inside these writes as a closure over [`Checkpoints`] that turns
//! the engine's plan into a [`RecipientWrite`]: plain data this module stores as it is.

use std::sync::Arc;

use serde_json::Value;

use super::Checkpoints;
use crate::model::RecipientRef;
use crate::model::message::MessageRow;
use crate::model::run_state::{RecipientRunStatus, WorkflowRunStatus};
use crate::store::batches::{self, NewBatch};
use crate::store::messages::{self, NewMessage, PreparedMessage};
use crate::store::timers::{self, RESUME};
use crate::store::{Db, Store, StoreResult, runs};

/// One recipient run's pass, decided: everything its write stores.
#[derive(Debug, Clone)]
pub struct RecipientWrite {
    pub reference: RecipientRef,
    pub status: RecipientRunStatus,
    /// The pass's events (appended to a resumed run's).
    pub events: Vec<Value>,
    pub messages: Vec<NewMessage>,
    /// A paused run's resume state (JSON), stored with it.
    pub resume: Option<Value>,
    /// A delay: the run's timer fires at this time (`clock::format`).
    pub resume_at: Option<String>,
    /// Batches to open or join, in plan order.
    pub joins: Vec<JoinWrite>,
    /// The run was cancelled as it paused: it leaves the batch it just joined.
    pub leave_batches: bool,
}

/// A batch join, decided.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinWrite {
    /// Opens batch `id` (and adds `activity` to it, unless its opener is not an activity).
    Open {
        id: String,
        identity: String,
        opened_at: String,
        closes_at: String,
        extend_until: Option<String>,
        settings: Value,
        activity: Option<ActivityWrite>,
    },
    /// Adds `activity` to open batch `batch_id`, moving its close to `closes_at` if set.
    Append {
        batch_id: String,
        activity: ActivityWrite,
        closes_at: Option<String>,
    },
}

/// One activity of a batch, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityWrite {
    pub id: String,
    pub actor: Option<RecipientRef>,
    pub data: Arc<Value>,
    pub inserted_at: String,
}

/// One entry of a fan-out page, in page order: a plain delivery (messages serialized
/// and stamped with their recipient run beforehand, no recipient run row), or a plan
/// the write decides with the caller's closure.
pub enum PageEntry<P> {
    Plain(Vec<PreparedMessage>),
    Decided(P),
}

/// A resumed recipient run: its plan, or the event to fail it with.
pub type Resumed<P> = Result<P, Value>;

/// One due batch to close, as read: the write re-checks `fingerprint` (activities
/// appended or cancelled since the read make the next pass render it afresh).
pub struct BatchClose<P> {
    pub batch_id: String,
    pub fingerprint: (i64, i64),
    /// The run that continues past the batch and its resumed pass (`None`: nothing runs).
    pub continuing: Option<(String, Option<Resumed<P>>)>,
    /// The batch's other waiting runs: completed with `others_event`.
    pub others: Vec<String>,
    pub others_event: Value,
}

/// How a page moves its run's audience cursor: from the stored text it was read at
/// (`None` before the first page) to the next position's; the cursor is the page's
/// fencing token (`runs::advance_audience_cursor`).
#[derive(Debug, Clone)]
pub struct PageCursor {
    pub from: Option<String>,
    pub to: String,
    /// The run's last page: the run completes with it.
    pub last: bool,
}

impl Store {
    /// Writes one page of run `run_id`'s fan-out in ONE transaction: the run's audience
    /// cursor moved as `cursor` says, its entries in order (the decided ones through
    /// `decide`), and `completed` on its last page. `weight` picks the writer's lane. The inserted messages, or `None`
    /// (nothing written) when the cursor had moved on or the run was no longer queued:
    /// another runner wrote this page (`runs::advance_audience_cursor`).
    pub async fn write_run_page<P, D>(
        &self,
        weight: usize,
        run_id: String,
        entries: Vec<PageEntry<P>>,
        cursor: PageCursor,
        mut decide: D,
    ) -> StoreResult<Option<Vec<MessageRow>>>
    where
        P: Send + 'static,
        D: FnMut(&dyn Checkpoints, &str, P) -> StoreResult<RecipientWrite> + Send + 'static,
    {
        self.write_weighted(weight, move |db| {
            // First: a page that is not ours any more writes nothing at all.
            if !runs::advance_audience_cursor(db, &run_id, cursor.from.as_deref(), &cursor.to)? {
                return Ok(None);
            }
            let mut rows = Vec::new();
            write_page(db, &run_id, entries, &mut decide, &mut rows)?;
            if cursor.last {
                runs::set_run_status(db, &run_id, WorkflowRunStatus::Completed.as_str())?;
            }
            Ok(Some(rows))
        })
        .await
    }

    /// Fires resume timers in ONE transaction: each `(timer, recipient run, pass)` whose
    /// timer is still there (not cancelled or fired meanwhile) is claimed and its pass
    /// written (`None`: the timer only goes). The inserted messages.
    pub async fn write_resumes<P, D>(
        &self,
        fired: Vec<(i64, String, Option<Resumed<P>>)>,
        mut decide: D,
    ) -> StoreResult<Vec<MessageRow>>
    where
        P: Send + 'static,
        D: FnMut(&dyn Checkpoints, P) -> StoreResult<RecipientWrite> + Send + 'static,
    {
        self.write(move |db| {
            let mut rows = Vec::new();
            for (timer_id, rr, pass) in fired {
                if !timers::claim(db, timer_id)? {
                    continue;
                }
                if let Some(pass) = pass {
                    write_resumed(db, &rr, pass, &mut decide, &mut rows)?;
                }
            }
            Ok(rows)
        })
        .await
    }

    /// Closes due batches in ONE transaction: each still as read is closed, its
    /// continuing run's pass written and its other waiting runs completed. The
    /// inserted messages.
    pub async fn close_batches<P, D>(
        &self,
        closing: Vec<BatchClose<P>>,
        mut decide: D,
    ) -> StoreResult<Vec<MessageRow>>
    where
        P: Send + 'static,
        D: FnMut(&dyn Checkpoints, P) -> StoreResult<RecipientWrite> + Send + 'static,
    {
        self.write(move |db| {
            let mut rows = Vec::new();
            for c in closing {
                if batches::fingerprint(db, &c.batch_id)? != c.fingerprint {
                    continue;
                }
                if !batches::close(db, &c.batch_id)? {
                    continue;
                }
                if let Some((rr, Some(pass))) = c.continuing {
                    write_resumed(db, &rr, pass, &mut decide, &mut rows)?;
                }
                for rr in &c.others {
                    // Only runs still waiting (retention may have deleted an old run).
                    if timers::get_recipient_run(db, rr)?.is_some_and(|r| {
                        RecipientRunStatus::parse(&r.status) == Some(RecipientRunStatus::Paused)
                    }) {
                        timers::update_recipient_run(
                            db,
                            rr,
                            RecipientRunStatus::Completed.as_str(),
                            std::slice::from_ref(&c.others_event),
                            None,
                        )?;
                    }
                }
            }
            Ok(rows)
        })
        .await
    }
}

/// A page's entries; the run's facts are read once, at the first decided entry.
fn write_page<P, D>(
    db: &Db<'_>,
    run_id: &str,
    mut entries: Vec<PageEntry<P>>,
    decide: &mut D,
    rows: &mut Vec<MessageRow>,
) -> StoreResult<()>
where
    D: FnMut(&dyn Checkpoints, &str, P) -> StoreResult<RecipientWrite>,
{
    let mut facts = None;
    // The page's feed keys in one lookup, not one per message.
    messages::resolve_feeds(
        db,
        entries.iter_mut().flat_map(|entry| match entry {
            PageEntry::Plain(messages) => messages.as_mut_slice(),
            PageEntry::Decided(_) => &mut [],
        }),
    )?;
    // Plain messages wait here until a decided entry or the page's end, to be written
    // together in page order (one statement per run of them on PostgreSQL).
    let mut plain: Vec<PreparedMessage> = Vec::new();
    for entry in entries {
        match entry {
            PageEntry::Decided(plan) => {
                if !plain.is_empty() {
                    messages::insert_page(db, std::mem::take(&mut plain), rows)?;
                }
                let facts = match &facts {
                    Some(facts) => facts,
                    None => facts.insert(runs::run_facts(db, run_id)?),
                };
                let write = decide(db, run_id, plan)?;
                write_new(db, run_id, facts, write, rows)?;
            }
            PageEntry::Plain(messages) => plain.extend(messages),
        }
    }
    messages::insert_page(db, plain, rows)
}

/// A first pass: the recipient run (with its events and resume state), its batch joins,
/// its wait and its messages.
fn write_new(
    db: &Db<'_>,
    run_id: &str,
    facts: &runs::RunFacts,
    write: RecipientWrite,
    rows: &mut Vec<MessageRow>,
) -> StoreResult<()> {
    let events = serde_json::to_string(&write.events)?;
    let rr = runs::ensure_recipient_run_as(
        db,
        runs::NewRecipientRun {
            run_id,
            facts,
            id: runs::recipient_run_id(run_id, facts, &write.reference),
            recipient: &write.reference,
            status: write.status.as_str(),
            events: &events,
        },
    )?;
    if let Some(resume) = &write.resume {
        timers::update_recipient_run(db, &rr, write.status.as_str(), &[], Some(resume))?;
    }
    write_rest(db, &rr, write, rows)
}

/// A resumed pass over recipient run `rr` (or its failure).
fn write_resumed<P, D>(
    db: &Db<'_>,
    rr: &str,
    pass: Resumed<P>,
    decide: &mut D,
    rows: &mut Vec<MessageRow>,
) -> StoreResult<()>
where
    D: FnMut(&dyn Checkpoints, P) -> StoreResult<RecipientWrite>,
{
    match pass {
        Ok(plan) => {
            let write = decide(db, plan)?;
            let status = write.status.as_str();
            timers::update_recipient_run(db, rr, status, &write.events, write.resume.as_ref())?;
            write_rest(db, rr, write, rows)
        }
        Err(event) => {
            let failed = RecipientRunStatus::Failed.as_str();
            timers::update_recipient_run(db, rr, failed, &[event], None)
        }
    }
}

/// What follows the recipient run's row: batch joins, leaving batches (a cancel), the
/// delay's timer, the messages.
fn write_rest(
    db: &Db<'_>,
    rr: &str,
    write: RecipientWrite,
    rows: &mut Vec<MessageRow>,
) -> StoreResult<()> {
    for join in &write.joins {
        record_join(db, rr, join)?;
    }
    if write.leave_batches {
        batches::cancel_activity(db, rr)?;
    }
    if let Some(at) = &write.resume_at {
        timers::set(db, RESUME, rr, at)?;
    }
    for mut message in write.messages {
        message.workflow_recipient_run_id = rr.to_owned();
        if let Some(row) = messages::insert(db, &message)? {
            rows.push(row);
        }
    }
    Ok(())
}

fn record_join(db: &Db<'_>, rr: &str, join: &JoinWrite) -> StoreResult<()> {
    match join {
        JoinWrite::Open {
            id,
            identity,
            opened_at,
            closes_at,
            extend_until,
            settings,
            activity,
        } => {
            batches::open(
                db,
                &NewBatch {
                    id,
                    identity,
                    opened_at,
                    closes_at,
                    extend_until: extend_until.as_deref(),
                    settings,
                },
            )?;
            if let Some(activity) = activity {
                add(db, id, rr, activity)?;
            }
        }
        JoinWrite::Append {
            batch_id,
            activity,
            closes_at,
        } => {
            add(db, batch_id, rr, activity)?;
            if let Some(closes_at) = closes_at {
                batches::set_closes_at(db, batch_id, closes_at)?;
            }
        }
    }
    Ok(())
}

fn add(db: &Db<'_>, batch_id: &str, rr: &str, a: &ActivityWrite) -> StoreResult<()> {
    batches::add_activity(
        db,
        batch_id,
        rr,
        &a.id,
        a.actor.as_ref(),
        &a.data,
        &a.inserted_at,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{PageCursor, PageEntry, RecipientWrite};
    use crate::model::RecipientRef;
    use crate::store::messages::NewMessage;
    use crate::store::runs::{self, NewRun};
    use crate::store::{Store, StoreError, StoreResult};

    /// A page of one plain message to `user` in run `r`.
    fn page(user: &str) -> StoreResult<Vec<PageEntry<()>>> {
        let recipient = RecipientRef::User(user.into());
        let message = NewMessage {
            id: crate::ids::message_id(),
            channel_id: "in-app".into(),
            workflow_recipient_run_id: crate::ids::recipient_run_id("r", 0, &recipient),
            recipient,
            tenant: None,
            workflow_key: "wf".into(),
            workflow_version_id: "v1".into(),
            workflow_categories: Vec::new(),
            workflow_run_id: "r".into(),
            step_ref: "in_app_feed_1".into(),
            actors: Vec::new(),
            data: json!({}).into(),
            blocks: json!([]).into(),
            inserted_at: crate::clock::Clock::system().now(),
            batch: None,
            expires_at: None,
            pinned_at: None,
        };
        Ok(vec![PageEntry::Plain(vec![message.prepare()?])])
    }

    /// Writes `page` of run `r`, moving its cursor from `from` to `to`; decided entries
    /// cannot occur (the pages above are plain).
    async fn write(
        store: &Store,
        entries: Vec<PageEntry<()>>,
        from: Option<&str>,
        to: &str,
    ) -> StoreResult<Option<usize>> {
        let cursor = PageCursor {
            from: from.map(str::to_owned),
            to: to.to_owned(),
            last: false,
        };
        let written = store
            .write_run_page(1, "r".into(), entries, cursor, |_, _, ()| {
                Err::<RecipientWrite, _>(StoreError::Conflict(
                    "a plain page decides nothing".into(),
                ))
            })
            .await?;
        Ok(written.map(|rows| rows.len()))
    }

    /// A page whose run's cursor moved on since it was read (another runner wrote it)
    /// writes nothing at all: not its messages, not the cursor; the page read at the
    /// stored cursor is written.
    #[tokio::test]
    async fn a_page_read_at_a_cursor_that_moved_on_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("t.db"), false).expect("store");
        store
            .write(|db| {
                runs::insert_run(
                    db,
                    &NewRun {
                        id: "r".into(),
                        workflow_key: "wf".into(),
                        request: json!({"recipients": []}),
                        cancellation_key: None,
                        tenant: None,
                    },
                )
            })
            .await
            .expect("run");
        let messages = || {
            store.read(|db| {
                Ok(db
                    .0
                    .query_row("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0))?)
            })
        };
        assert_eq!(
            write(&store, page("u1").expect("page"), None, "p1")
                .await
                .expect("write"),
            Some(1)
        );
        // A second runner's first page (read before the first was written), then a page
        // read at a cursor that never was: neither writes its message.
        for (from, to) in [(None, "p1b"), (Some("p0"), "p2")] {
            let stale = write(&store, page("u2").expect("page"), from, to).await;
            assert_eq!(stale.expect("no error"), None, "from {from:?}");
        }
        assert_eq!(messages().await.expect("count"), 1);
        let stored = store
            .read(|db| runs::get_run(db, "r"))
            .await
            .expect("read")
            .and_then(|run| run.audience_cursor);
        assert_eq!(stored.as_deref(), Some("p1"));
        assert_eq!(
            write(&store, page("u3").expect("page"), Some("p1"), "p2")
                .await
                .expect("write"),
            Some(1)
        );
        assert_eq!(messages().await.expect("count"), 2);
    }
}
