//! Firing schedule occurrences: the schedules due-source of the engine's scheduler. See
//! the parent module's invariants (claim + run insert in one write; missed occurrences
//! fire once).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::Value;

use super::super::scheduler::DueSource;
use super::{format_opt, parse_time, recipient_zone, recurrence_of};
use crate::model::stored_trigger::{StoredRecipient, StoredSettings, StoredTrigger};
use crate::store::runs::NewRun;
use crate::store::schedules::NewSchedule;
use crate::store::{Store, StoreResult};
use crate::{clock, ids};

/// Occurrences claimed per write (one scheduler slice).
const FIRE_BATCH: u32 = 100;

/// The stored trigger of one occurrence: the schedule's recipient, actor, data and tenant,
/// plus the schedule it came from (run records show it as `trigger_source`).
fn occurrence_request(s: &NewSchedule, due: &str) -> Value {
    StoredTrigger {
        recipients: vec![StoredRecipient {
            reference: s.recipient.clone(),
            trigger_data: None,
        }],
        actor: s.actor.clone(),
        data: s
            .data
            .as_deref()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        tenant: s.tenant.clone(),
        settings: StoredSettings::default(),
        schedule_id: Some(s.id.clone()),
        schedule_occurrence_at: Some(due.to_owned()),
    }
    .to_value()
}

/// Fires up to [`FIRE_BATCH`] occurrences due at `now`, each exactly once (see the module
/// invariants), in one write; returns the ids of the runs it committed, for the runner.
/// The scheduler calls it again at once while it keeps firing.
pub async fn fire_due(store: &Store, now: DateTime<Utc>) -> StoreResult<Vec<String>> {
    store
        .change_schedules(move |tx| {
            let stamp = clock::format(now);
            let mut runs_made = Vec::new();
            for row in tx.due_schedules(&stamp, FIRE_BATCH)? {
                let s = &row.schedule;
                let Some(due_at) = s.next_occurrence_at.clone() else {
                    continue;
                };
                let due_time = parse_time(&due_at).unwrap_or(now);
                // Missed occurrences collapse into this one: the next is after now.
                let zone = recipient_zone(tx, &s.recipient)?;
                let next = recurrence_of(s, zone).next_after(due_time.max(now));
                if !tx.claim_occurrence(&s.id, &due_at, format_opt(next).as_deref(), &stamp)? {
                    continue;
                }
                let run_id = ids::uuid();
                tx.insert_run(&NewRun {
                    id: run_id.clone(),
                    workflow_key: s.workflow_key.clone(),
                    request: occurrence_request(s, &due_at),
                    cancellation_key: None,
                    tenant: s.tenant.clone(),
                })?;
                runs_made.push(run_id);
            }
            Ok(runs_made)
        })
        .await
}

/// When the next occurrence is due, if any.
pub async fn next_due_at(store: &Store) -> StoreResult<Option<DateTime<Utc>>> {
    Ok(store
        .next_schedule_due()
        .await?
        .as_deref()
        .and_then(parse_time))
}

/// Schedules as a due-source of the engine's scheduler: the due time is the earliest
/// `next_occurrence_at`, firing is [`fire_due`], and the runs it commits go to the runner.
pub(in crate::engine) struct ScheduleSource {
    pub(in crate::engine) store: Store,
    pub(in crate::engine) runner: Arc<crate::engine::runner::Runner>,
}

impl DueSource for ScheduleSource {
    fn name(&self) -> &'static str {
        "schedules"
    }

    fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
        Box::pin(next_due_at(&self.store))
    }

    fn fire_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        Box::pin(async move {
            let runs = fire_due(&self.store, now).await?;
            let count = runs.len();
            if count > 0 {
                tracing::info!(count, "schedule occurrences fired");
            }
            for run in runs {
                self.runner.enqueue(run);
            }
            Ok(count)
        })
    }
}
