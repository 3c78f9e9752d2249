//! Closing due batches: the scheduler's `batches` due-source.
//!
//! A pass reads a slice of open batches whose `closes_at` has come, builds each one's
//! [`ClosedBatch`] and walks the continuing run from the batch step (the first live
//! activity's run: the opener unless it was cancelled), then writes in ONE transaction:
//! the claim (the batch row is deleted), the continuing run's results (its message carries the
//! batch), and `completed` + `batch_closed` on every other activity's run.
//!
//! Invariants:
//! - Exactly once: the claim and its effects commit together; a crash before the commit
//!   leaves the batch open and overdue, so the first pass after start closes it.
//! - A batch whose activities were all cancelled closes without any message.
//! - If anything joined or left the batch between the read and the write (its live count
//!   or newest activity changed), the write leaves it for the next pass instead of
//!   committing a stale rendering.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::batch::{self, ClosedBatch, MAX_ACTORS};
use super::plan::RecipientPlan;
use super::scheduler::DueSource;
use super::waits::{self, ResumeWork, Waits};
use crate::clock;
use crate::model::RecipientRef;
use crate::model::run_state::RecipientRunStatus;
use crate::store::batches;
use crate::store::messages::MessageRow;
use crate::store::{Db, StoreError, StoreResult, recipients, timers};

/// Batches closed per scheduler pass (one write each pass).
const CLOSE_SLICE: usize = 64;

/// A recipient run's stored `failed` status.
const FAILED: &str = RecipientRunStatus::Failed.as_str();

/// The scheduler due-source that closes batches.
pub struct BatchSource(pub Arc<Waits>);

impl DueSource for BatchSource {
    fn name(&self) -> &'static str {
        "batches"
    }

    fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
        Box::pin(async move {
            let earliest = self.0.store.read(batches::earliest_due).await?;
            Ok(earliest.and_then(|t| clock::parse(&t)))
        })
    }

    fn fire_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        Box::pin(fire(self.0.clone(), now))
    }
}

/// One due batch as read: what the write re-checks and what it writes.
struct Closing {
    batch_id: String,
    fingerprint: (i64, i64),
    /// The continuing run and its resume (`None`: nothing to run, e.g. all cancelled).
    continuing: Option<(String, Option<ResumeWork>)>,
    others: Vec<String>,
}

/// [`Closing`] after the walk.
struct Planned {
    batch_id: String,
    fingerprint: (i64, i64),
    continuing: Option<(String, Option<Result<RecipientPlan, Value>>)>,
    others: Vec<String>,
}

async fn fire(w: Arc<Waits>, now: DateTime<Utc>) -> StoreResult<usize> {
    let now_s = clock::format(now);
    let registry = w.registry.clone();
    let clock = w.clock.clone();
    let closing: Vec<Closing> = w
        .store
        .read(move |db| {
            let due = batches::due(db, &now_s, CLOSE_SLICE)?;
            due.into_iter()
                .map(|(id, settings)| load(db, id, &settings, &registry, &clock))
                .collect()
        })
        .await?;
    if closing.is_empty() {
        return Ok(0);
    }
    let fired = closing.len();
    let planned: Vec<Planned> = tokio::task::spawn_blocking(move || {
        closing
            .into_iter()
            .map(|c| Planned {
                batch_id: c.batch_id,
                fingerprint: c.fingerprint,
                continuing: c
                    .continuing
                    .map(|(rr, work)| (rr, work.map(ResumeWork::plan))),
                others: c.others,
            })
            .collect()
    })
    .await
    .map_err(|e| StoreError::Blocking(e.to_string()))?;
    let now_s = clock::format(now);
    let at = w.clock.now();
    let rows = w
        .store
        .write(move |db| {
            let mut rows: Vec<MessageRow> = Vec::new();
            for p in planned {
                if batches::fingerprint(db, &p.batch_id)? != p.fingerprint {
                    continue; // changed since the read: the next pass renders it afresh
                }
                if !batches::close(db, &p.batch_id)? {
                    continue;
                }
                match p.continuing {
                    Some((rr, Some(Ok(plan)))) => {
                        waits::write_resumed(db, &rr, plan, &now_s, &mut rows)?
                    }
                    Some((rr, Some(Err(event)))) => {
                        timers::update_recipient_run(db, &rr, FAILED, &[event], None)?
                    }
                    Some((_, None)) | None => {}
                }
                let event = json!({"event": "batch_closed", "status": "ok",
                                   "data": {"batch_id": p.batch_id, "at": at}});
                for rr in &p.others {
                    // Only runs still waiting (retention may have deleted an old run).
                    if timers::get_recipient_run(db, rr)?.is_some_and(|r| {
                        RecipientRunStatus::parse(&r.status) == Some(RecipientRunStatus::Paused)
                    }) {
                        timers::update_recipient_run(
                            db,
                            rr,
                            RecipientRunStatus::Completed.as_str(),
                            std::slice::from_ref(&event),
                            None,
                        )?;
                    }
                }
            }
            Ok(rows)
        })
        .await?;
    w.bus.publish(&rows);
    Ok(fired)
}

/// Reads what closing batch `id` needs.
fn load(
    db: &Db<'_>,
    id: String,
    settings: &Value,
    registry: &super::registry::Registry,
    clock: &clock::Clock,
) -> StoreResult<Closing> {
    let fingerprint = batches::fingerprint(db, &id)?;
    let runs = batches::live_runs(db, &id)?;
    let Some((first, rest)) = runs.split_first() else {
        return Ok(Closing {
            batch_id: id,
            fingerprint,
            continuing: None,
            others: Vec::new(),
        });
    };
    let render_limit = settings["render_limit"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(10);
    let newest_first = settings["order"] == "desc";
    let rendered = batches::activities(db, &id, newest_first, render_limit)?;
    let (actors, total_actors) = batches::actors(db, &id, MAX_ACTORS)?;
    let mut people: HashMap<RecipientRef, Value> = HashMap::new();
    for r in actors
        .iter()
        .chain(rendered.iter().filter_map(|a| a.actor.as_ref()))
    {
        if !people.contains_key(r) {
            let v = recipients::get_recipient(db, r)?.unwrap_or_else(|| recipients::minimal(r));
            people.insert(r.clone(), v);
        }
    }
    let mut work = waits::load_one(
        db,
        first,
        registry,
        clock,
        &mut HashMap::new(),
        &mut HashMap::new(),
    )?;
    if let Some(ResumeWork::Walk(resume)) = &mut work {
        let recipient = resume
            .recipient
            .entity
            .clone()
            .unwrap_or_else(|| recipients::minimal(&resume.recipient.reference));
        let closed: ClosedBatch = batch::close(
            &id,
            &rendered,
            fingerprint.0,
            actors,
            total_actors,
            &people,
            &recipient,
        );
        resume.recipient.batch = Some(Arc::new(closed));
    }
    Ok(Closing {
        batch_id: id,
        fingerprint,
        continuing: Some((first.clone(), work)),
        others: rest.to_vec(),
    })
}
