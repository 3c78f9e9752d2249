//! Paused recipient runs: what resuming one reads (its row, its run, its recipient), the
//! due resume timers, and the cancel of paused runs. The walk that follows and every
//! decision about it (is the paused step still there, which preference set governs) are
//! the engine's (`engine::waits`).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::runs::{OpenedRun, opened};
use crate::model::RecipientRef;
use crate::model::run_state::RecipientRunStatus;
use crate::store::recipients::{self, ChannelDataOwner};
use crate::store::timers::{self, RESUME};
use crate::store::{Db, Store, StoreResult, batches, cancellations, runs};

/// The set id of a recipient's own, tenant-independent preference set.
const DEFAULT_SET: &str = "default";

/// A recipient run that waits to be resumed, with what its resume reads.
#[derive(Debug, Clone)]
pub struct PausedRun {
    pub workflow_run_id: String,
    pub recipient: RecipientRef,
    /// Its stored resume state (JSON), if any.
    pub resume: Option<Value>,
    /// Its run (`None`: gone), shared by the paused runs of one run.
    pub run: Option<Arc<OpenedRun>>,
    /// The recipient's entity (`None` = never identified).
    pub entity: Option<Value>,
    /// The recipient's own `default` preference set.
    pub default_set: Option<Map<String, Value>>,
    /// The recipient's set named after the run's tenant (with a tenant).
    pub tenant_set: Option<Map<String, Value>>,
}

/// A due resume timer and its recipient run (`None`: it no longer waits, or is gone).
pub struct DueResume {
    pub timer_id: i64,
    pub recipient_run: String,
    pub paused: Option<PausedRun>,
}

fn owner(recipient: &RecipientRef) -> ChannelDataOwner<'_> {
    match recipient {
        RecipientRef::User(id) => ChannelDataOwner::user(id),
        RecipientRef::Object { id, collection } => ChannelDataOwner::object(collection, id),
    }
}

/// Reads paused recipient run `rr` for its resume (inside the caller's read); each run
/// is read once per `runs_seen`.
pub(in crate::store) fn load_paused(
    db: &Db<'_>,
    rr: &str,
    runs_seen: &mut HashMap<String, Option<Arc<OpenedRun>>>,
) -> StoreResult<Option<PausedRun>> {
    let Some(row) = timers::get_recipient_run(db, rr)? else {
        return Ok(None);
    };
    if RecipientRunStatus::parse(&row.status) != Some(RecipientRunStatus::Paused) {
        return Ok(None);
    }
    if !runs_seen.contains_key(&row.workflow_run_id) {
        let run = match runs::get_run(db, &row.workflow_run_id)? {
            Some(run) => Some(Arc::new(opened(db, run)?)),
            None => None,
        };
        runs_seen.insert(row.workflow_run_id.clone(), run);
    }
    let run = runs_seen.get(&row.workflow_run_id).cloned().flatten();
    let tenant = run
        .as_ref()
        .and_then(|r| r.request.as_ref().ok())
        .and_then(|(trigger, _)| trigger.tenant.clone());
    let owner = owner(&row.recipient);
    let tenant_set = match &tenant {
        Some(t) => recipients::get_preference_set(db, owner, t)?,
        None => None,
    };
    let default_set = recipients::get_preference_set(db, owner, DEFAULT_SET)?;
    let entity = recipients::get_recipient(db, &row.recipient)?;
    Ok(Some(PausedRun {
        workflow_run_id: row.workflow_run_id,
        recipient: row.recipient,
        resume: row.resume,
        run,
        entity,
        default_set,
        tenant_set,
    }))
}

impl Store {
    /// When the earliest resume timer is due.
    pub(crate) async fn next_resume_due(&self) -> StoreResult<Option<String>> {
        self.read(timers::earliest).await
    }

    /// Up to `limit` resume timers due at `now`, each with its paused recipient run as
    /// its resume reads it (each run read once), in one read.
    pub(crate) async fn due_resumes(
        &self,
        now: String,
        limit: usize,
    ) -> StoreResult<Vec<DueResume>> {
        self.read(move |db| {
            let due = timers::due(db, &now, limit)?;
            let mut runs_seen = HashMap::new();
            due.into_iter()
                .map(|timer| {
                    Ok(DueResume {
                        timer_id: timer.id,
                        paused: load_paused(db, &timer.target, &mut runs_seen)?,
                        recipient_run: timer.target,
                    })
                })
                .collect()
        })
        .await
    }

    /// Cancels, in ONE transaction, the paused recipient runs of `workflow_key`
    /// triggered with `cancellation_key` (only those of `recipients` when given): each
    /// loses its timer, leaves the batch it waits in (the window stays open) and ends
    /// `cancelled` with `event`. The cancel is also recorded for runs not paused yet, which
    /// end when they pause. How many paused runs it cancelled.
    pub(crate) async fn cancel_paused(
        &self,
        workflow_key: String,
        cancellation_key: String,
        recipients: Option<Vec<RecipientRef>>,
        event: Value,
    ) -> StoreResult<usize> {
        self.write(move |db| {
            let (key, ck) = (&workflow_key, &cancellation_key);
            cancellations::record(db, key, ck, recipients.as_deref())?;
            let ids = timers::paused_by_cancellation_key(db, key, ck, recipients.as_deref())?;
            for id in &ids {
                timers::remove(db, RESUME, id)?;
                batches::cancel_activity(db, id)?;
                timers::update_recipient_run(
                    db,
                    id,
                    RecipientRunStatus::Cancelled.as_str(),
                    std::slice::from_ref(&event),
                    None,
                )?;
            }
            Ok(ids.len())
        })
        .await
    }
}
