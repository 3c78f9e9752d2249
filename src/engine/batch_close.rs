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
use super::walk::RunContext;
use crate::clock;
use crate::store::ops::{BatchClose, DueBatch, OpenedRun};
use crate::store::recipients::minimal;
use crate::store::{StoreError, StoreResult};

/// Batches closed per scheduler pass (one write each pass).
const CLOSE_SLICE: usize = 64;

/// The scheduler due-source that closes batches.
pub struct BatchSource(pub Arc<Waits>);

impl DueSource for BatchSource {
    fn name(&self) -> &'static str {
        "batches"
    }

    fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
        Box::pin(async move {
            let earliest = self.0.store.next_batch_close().await?;
            Ok(earliest.and_then(|t| clock::parse(&t)))
        })
    }

    fn fire_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        Box::pin(fire(self.0.clone(), now))
    }
}

/// How a batch renders, from its stored settings (`{render_limit, order}`, see
/// `batch::settings`): `(newest_first, render_limit)`; 10 items oldest first by default.
fn render_order(settings: &Value) -> (bool, usize) {
    let render_limit = settings["render_limit"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(10);
    (settings["order"] == "desc", render_limit)
}

async fn fire(w: Arc<Waits>, now: DateTime<Utc>) -> StoreResult<usize> {
    let due = w
        .store
        .due_batches(clock::format(now), CLOSE_SLICE, render_order, MAX_ACTORS)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let fired = due.len();
    let registry = w.registry.clone();
    let clock = w.clock.clone();
    let at = w.clock.now();
    let closing: Vec<BatchClose<RecipientPlan>> = tokio::task::spawn_blocking(move || {
        due.into_iter()
            .map(|d| closing(d, &clock, &at, waits::resume_context(&registry, &clock)))
            .collect()
    })
    .await
    .map_err(|e| StoreError::Blocking(e.to_string()))?;
    let now_s = clock::format(now);
    // A batch changed since the read is skipped: the next pass renders it afresh.
    let rows = w
        .store
        .close_batches(closing, move |checks, plan| {
            waits::decide_resumed(checks, plan, &now_s)
        })
        .await?;
    w.bus.publish(&rows);
    Ok(fired)
}

/// Decides the close of due batch `due` (pure: no I/O): the first waiting run continues
/// past the batch carrying it (rendered: its activities, actors and the people in them),
/// or fails as its resume must; the others complete with a `batch_closed` event (`at`:
/// the close's clock reading). A batch whose runs were all cancelled just closes.
/// `context` makes the continuing run's context (see `waits::resume_work`).
fn closing(
    due: DueBatch,
    clock: &clock::Clock,
    at: &str,
    context: impl FnOnce(&str, Option<&OpenedRun>) -> Option<Arc<RunContext>>,
) -> BatchClose<RecipientPlan> {
    let others_event = json!({"event": "batch_closed", "status": "ok",
                              "data": {"batch_id": due.batch_id, "at": at}});
    let Some((first, rest)) = due.runs.split_first() else {
        return BatchClose {
            batch_id: due.batch_id,
            fingerprint: due.fingerprint,
            continuing: None,
            others: Vec::new(),
            others_event,
        };
    };
    let mut work = due
        .continuing
        .map(|p| waits::resume_work(p, clock, &mut HashMap::new(), context));
    if let Some(ResumeWork::Walk(resume)) = &mut work {
        let recipient = resume
            .recipient
            .entity
            .clone()
            .unwrap_or_else(|| minimal(&resume.recipient.reference));
        let closed: ClosedBatch = batch::close(
            &due.batch_id,
            &due.rendered,
            due.fingerprint.0,
            due.actors,
            due.total_actors,
            &due.people,
            &recipient,
        );
        resume.recipient.batch = Some(Arc::new(closed));
    }
    BatchClose {
        batch_id: due.batch_id,
        fingerprint: due.fingerprint,
        continuing: Some((first.clone(), work.map(ResumeWork::plan))),
        others: rest.to_vec(),
        others_event,
    }
}

#[cfg(test)]
#[path = "batch_close_tests.rs"]
mod tests;
