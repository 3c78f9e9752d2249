//! The runner's operations on workflow runs: finding queued runs, counting and failing
//! attempts, opening a run (its row, its stored trigger and the entities every walk of
//! it reads) and loading a fan-out page's recipients for walking.
//!
//! Each op is one read or one write; what a caller decides from the result (retry, give
//! up, which preference set governs) stays in `engine/`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::super::runs::{self, QueuedRun};
use super::super::{Db, Store, StoreResult, recipients};
use crate::model::RecipientRef;
use crate::model::run_state::{RecipientRunStatus, WorkflowRunStatus};
use crate::model::stored_trigger::StoredTrigger;

/// The set id of a recipient's own, tenant-independent preference set.
const DEFAULT_SET: &str = "default";

/// A queued run opened for its first (or next) slice.
#[derive(Debug, Clone)]
pub struct OpenedRun {
    pub workflow_key: String,
    /// When the run was accepted, Unix ms (the time prefix of its recipient runs' ids).
    pub started_ms: i64,
    /// Where its fan-out stands (JSON), `None` before its first page committed.
    pub audience_cursor: Option<String>,
    /// Its trigger and the entities its walks read, or why its stored request is corrupt.
    pub request: Result<(StoredTrigger, RunEntities), String>,
}

/// What every walk of a run reads besides its recipient: read once per run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunEntities {
    /// The actor's entity (a minimal one when never identified).
    pub actor: Option<Value>,
    pub tenant: Option<Value>,
    /// The tenant's default preference set (`settings.preference_set`).
    pub tenant_default: Option<Value>,
}

/// One recipient of a fan-out page, loaded for its walk: the caller's item, the stored
/// entity (`None` = never identified) and the preference sets that may govern it.
#[derive(Debug, Clone)]
pub struct WalkInputs<T> {
    pub item: T,
    pub entity: Option<Value>,
    /// The recipient's own `default` set.
    pub default_set: Option<Map<String, Value>>,
    /// The recipient's set named after the run's tenant (with a tenant).
    pub tenant_set: Option<Map<String, Value>>,
}

/// Reads a run's [`RunEntities`] (inside the caller's read).
pub(in crate::store) fn run_entities(
    db: &Db<'_>,
    trigger: &StoredTrigger,
) -> StoreResult<RunEntities> {
    let tenant = trigger.tenant.as_deref();
    Ok(RunEntities {
        tenant_default: match tenant {
            Some(t) => recipients::tenant_preference_set(db, t)?.map(Value::Object),
            None => None,
        },
        actor: match &trigger.actor {
            Some(a) => {
                Some(recipients::get_recipient(db, a)?.unwrap_or_else(|| recipients::minimal(a)))
            }
            None => None,
        },
        tenant: match tenant {
            Some(t) => recipients::get_tenant(db, t)?,
            None => None,
        },
    })
}

/// Run `run` as a walk of it reads it (inside the caller's read): its stored trigger
/// parsed and the entities every walk of it reads.
pub(in crate::store) fn opened(db: &Db<'_>, run: runs::RunRow) -> StoreResult<OpenedRun> {
    let request = match StoredTrigger::from_stored(&run.request) {
        Ok(trigger) => {
            let entities = run_entities(db, &trigger)?;
            Ok((trigger, entities))
        }
        Err(e) => Err(e),
    };
    Ok(OpenedRun {
        workflow_key: run.workflow_key,
        started_ms: runs::started_ms(&run.inserted_at),
        audience_cursor: run.audience_cursor,
        request,
    })
}

impl Store {
    /// Of `ids`, the runs still queued (one read), with what the runner keys them by.
    pub async fn queued_runs_among(&self, ids: Vec<String>) -> StoreResult<Vec<QueuedRun>> {
        self.read(move |db| runs::queued_among(db, &ids)).await
    }

    /// One bounded page of queued runs after position `after` (0: from the start), with
    /// their positions: the runner's periodic rescan.
    pub async fn queued_runs_after(
        &self,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<(i64, QueuedRun)>> {
        self.read(move |db| runs::queued_page(db, after, limit))
            .await
    }

    /// Counts an attempt at a still-queued run before it starts (so an attempt that kills
    /// the process still counts): the attempts so far and the last one's error, or `None`
    /// when the run no longer waits.
    pub async fn begin_run_attempt(&self, id: &str) -> StoreResult<Option<(u32, Option<String>)>> {
        let id = id.to_owned();
        self.write(move |db| runs::begin_attempt(db, &id)).await
    }

    /// Remembers why the latest attempt at a run failed (shown if it is given up).
    pub async fn note_run_failure(&self, id: &str, reason: &str) -> StoreResult<()> {
        let (id, reason) = (id.to_owned(), reason.to_owned());
        self.write(move |db| runs::note_failure(db, &id, &reason))
            .await
    }

    /// Ends a still-queued run `failed` with `reason` and, in the same transaction, gives
    /// each of `recipients` the run has not reached a `failed` recipient run with
    /// `events`; `false` (nothing written) when the run no longer waits.
    pub async fn give_up_run(
        &self,
        id: &str,
        reason: &str,
        recipients: Vec<RecipientRef>,
        events: Value,
    ) -> StoreResult<bool> {
        let (id, reason) = (id.to_owned(), reason.to_owned());
        self.write(move |db| {
            if !runs::fail_run(db, &id, &reason)? {
                return Ok(false);
            }
            let unreached = runs::without_recipient_runs(db, &id, recipients, |r| r, |_| true)?;
            for recipient in &unreached {
                let failed = RecipientRunStatus::Failed.as_str();
                runs::ensure_recipient_run(db, &id, recipient, failed, &events)?;
            }
            Ok(true)
        })
        .await
    }

    /// Opens run `id` in one read: `None` unless it is still queued; else its stored
    /// trigger parsed and the entities every walk of it reads.
    pub async fn open_run(&self, id: &str) -> StoreResult<Option<OpenedRun>> {
        let id = id.to_owned();
        self.read(move |db| {
            let Some(run) = runs::get_run(db, &id)? else {
                return Ok(None);
            };
            if WorkflowRunStatus::parse(&run.status) != Some(WorkflowRunStatus::Queued) {
                return Ok(None);
            }
            Ok(Some(opened(db, run)?))
        })
        .await
    }

    /// Loads a fan-out page of run `run_id` for walking, in one read: drops the items
    /// whose recipient (`key`) already has a recipient run in this run (looking up only
    /// the items `may_repeat` names, see `runs::without_recipient_runs`; repeats within
    /// the page go too: the first wins), then reads the rest's entities and their
    /// `default` and `tenant` preference sets, in page order.
    pub async fn load_walk_inputs<T>(
        &self,
        run_id: &str,
        items: Vec<T>,
        key: fn(&T) -> &RecipientRef,
        may_repeat: fn(&T) -> bool,
        tenant: Option<String>,
    ) -> StoreResult<Vec<WalkInputs<T>>>
    where
        T: Send + 'static,
    {
        let run_id = run_id.to_owned();
        self.read(move |db| {
            let fresh = runs::without_recipient_runs(db, &run_id, items, key, may_repeat)?;
            let refs: Vec<&RecipientRef> = fresh.iter().map(key).collect();
            let mut entities = recipients::get_recipients_by_ref(db, &refs)?;
            let mut set_ids = vec![DEFAULT_SET];
            set_ids.extend(tenant.as_deref());
            let sets: HashMap<(RecipientRef, String), Map<String, Value>> =
                recipients::get_preference_sets_by_ref(db, &refs, &set_ids)?;
            Ok(fresh
                .into_iter()
                .map(|item| {
                    let r = key(&item).clone();
                    WalkInputs {
                        entity: entities.remove(&r),
                        default_set: sets.get(&(r.clone(), DEFAULT_SET.to_owned())).cloned(),
                        tenant_set: tenant
                            .as_ref()
                            .and_then(|t| sets.get(&(r.clone(), t.clone())).cloned()),
                        item,
                    }
                })
                .collect())
        })
        .await
    }
}
