//! Schedules (recurring triggers): create/update/delete against the workflow registry, and
//! firing due occurrences.
//!
//! Firing is a due-source of the engine's scheduler ([`ScheduleSource`]), so schedules
//! run on the same injectable clock as delays.
//!
//! Invariants:
//! - Each occurrence triggers the workflow exactly once: [`fire_due`] claims it (advances
//!   `next_occurrence_at` from the value it read) in the SAME transaction that inserts the
//!   queued workflow run, the same durable run `accept` writes. A crash before the commit
//!   leaves the occurrence due; after it, the runner owns a committed run.
//! - Occurrences missed while the server was down fire ONCE when it is back (at start or
//!   at the next wake), then the schedule moves to its first occurrence after now: a
//!   daily digest down for three days sends one digest, not three.
//! - A rejected request changes nothing: parsing and recurrence checks run before the
//!   write, and the write's own checks run before its first statement.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::accept::parse_inline;
use super::refusal::Refusal;
use super::registry::{CompiledWorkflow, Registry};
use crate::clock;
use crate::error::FieldError;
use crate::ids;
use crate::model::properties::RecipientProperties;
use crate::model::recurrence::{Recurrence, RepeatRule};
use crate::model::schedules::MAX_RESPONSE_DATA_BYTES;
use crate::model::schedules::{Change, CreateSchedules, ScheduleFields, UpdateSchedules};
use crate::model::{PageQuery, RecipientRef};
use crate::store::ops::ScheduleTx;
use crate::store::schedules::{self, NewSchedule, ScheduleRow};
use crate::store::{Store, StoreError, StoreResult};

mod firing;

pub(super) use firing::ScheduleSource;
pub use firing::{fire_due, next_due_at};

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The stored rules of a schedule (written by us, so they parse).
fn stored_rules(repeats: &Value) -> Vec<RepeatRule> {
    let mut errors = Vec::new();
    crate::model::recurrence::parse_repeats(Some(repeats), &mut errors)
}

/// A stored schedule's timing, its rules read on the wall clock of `zone`.
fn recurrence_of(s: &NewSchedule, zone: Tz) -> Recurrence {
    let scheduled = s.scheduled_at.as_deref().and_then(parse_time);
    Recurrence {
        rules: stored_rules(&s.repeats),
        // `inserted_at` is always stored in our own format (the store's clock); were it
        // not, the epoch stands in rather than a second clock.
        start: scheduled
            .or_else(|| parse_time(&s.inserted_at))
            .unwrap_or(DateTime::UNIX_EPOCH),
        explicit_start: scheduled.is_some(),
        ending_at: s.ending_at.as_deref().and_then(parse_time),
        zone,
    }
}

/// The zone a schedule's rules are read in: its recipient's `timezone` (Knock documents
/// the property as "used for recurring schedules"), else UTC. Read whenever the next
/// occurrence is computed, so a changed `timezone` applies from the following occurrence.
/// A stored name that is no tz database zone (identify refuses those) reads as UTC.
fn recipient_zone(tx: &dyn ScheduleTx, recipient: &RecipientRef) -> StoreResult<Tz> {
    Ok(tx
        .recipient_timezone(recipient)?
        .and_then(|name| name.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC))
}

fn never_occurs(ending_at: bool) -> FieldError {
    if ending_at {
        FieldError::new(
            "ending_at",
            "is before the schedule's first occurrence: it would never run",
        )
    } else {
        FieldError::new(
            "repeats",
            "never match a time (e.g. an interval of 7 days limited to a different weekday)",
        )
    }
}

/// Parses the inline actor and tenant properties the way identify/set calls do, keeping
/// the normalized form (what gets stored).
fn normalize_fields(fields: &mut ScheduleFields, errors: &mut Vec<FieldError>) {
    if let Change::Set(actor) = &mut fields.actor {
        parse_inline(actor, "actor", errors);
    }
    if let Change::Set(tenant) = &mut fields.tenant
        && let Some(props) = tenant.inline.take()
    {
        match RecipientProperties::parse_tenant(props) {
            Ok(parsed) => tenant.inline = Some(parsed.into_map()),
            Err(problems) => errors.extend(
                problems
                    .into_iter()
                    .map(|p| FieldError::new(format!("tenant.{}", p.field), p.message)),
            ),
        }
    }
}

/// The workflow's `trigger_data_json_schema` over the data each occurrence will carry.
fn check_data(
    workflow: &CompiledWorkflow,
    data: Option<&Map<String, Value>>,
    errors: &mut Vec<FieldError>,
) {
    let data = Value::Object(data.cloned().unwrap_or_default());
    if let Err(mut schema_errors) = workflow.validate_data(&data) {
        errors.append(&mut schema_errors);
    }
}

/// Upserts what the fields carry inline (tenant, actor), inside the caller's write.
fn upsert_fields(tx: &dyn ScheduleTx, fields: &ScheduleFields) -> StoreResult<()> {
    if let Change::Set(tenant) = &fields.tenant {
        tx.upsert_tenant(tenant)?;
    }
    if let Change::Set(actor) = &fields.actor {
        tx.upsert_recipient(actor)?;
    }
    Ok(())
}

fn format_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(clock::format)
}

/// Creates one schedule per recipient (`POST /v1/schedules`, and each bulk entry).
async fn create(
    store: &Store,
    registry: &Registry,
    requests: Vec<CreateSchedules>,
    now: DateTime<Utc>,
) -> Result<Vec<ScheduleRow>, Refusal> {
    let many = requests.len() > 1;
    let mut errors = Vec::new();
    let mut planned = Vec::new();
    // The data the response will carry, over every request (bulk create answers one
    // operation, but stores the same).
    let mut answered_bytes = 0usize;
    for (i, mut req) in requests.into_iter().enumerate() {
        let at = |f: FieldError| {
            if many {
                FieldError::new(format!("schedules[{i}].{}", f.field), f.message)
            } else {
                f
            }
        };
        let Some(workflow) = registry.get(&req.workflow) else {
            if many {
                errors.push(at(FieldError::new(
                    "workflow",
                    format!("`{}` does not exist", req.workflow),
                )));
                continue;
            }
            return Err(Refusal::WorkflowMissing(req.workflow));
        };
        let mut problems = Vec::new();
        for (n, r) in req.recipients.iter_mut().enumerate() {
            parse_inline(r, &format!("recipients[{n}]"), &mut problems);
        }
        normalize_fields(&mut req.fields, &mut problems);
        let data = match &req.fields.data {
            Change::Set(d) => Some(d.clone()),
            _ => None,
        };
        check_data(&workflow, data.as_ref(), &mut problems);
        // One value shared by every schedule of the request (and stored once).
        let data: Option<Arc<Value>> = data.map(|d| Arc::new(Value::Object(d)));
        let data_bytes = data.as_deref().map_or(0, json_size);
        answered_bytes = answered_bytes.saturating_add(data_bytes * req.recipients.len());
        if answered_bytes > MAX_RESPONSE_DATA_BYTES {
            problems.push(over_budget("data", data_bytes, req.recipients.len()));
        }
        let scheduled_at = match req.fields.scheduled_at {
            Change::Set(t) => Some(t),
            _ => None,
        };
        let ending_at = match req.fields.ending_at {
            Change::Set(t) => Some(t),
            _ => None,
        };
        let rules = req.fields.repeats.clone().unwrap_or_default();
        let recurrence = Recurrence {
            rules: rules.clone(),
            start: scheduled_at.unwrap_or(now),
            explicit_start: scheduled_at.is_some(),
            ending_at,
            // A first check before the write; each row's occurrence is computed in its
            // recipient's zone inside the write (an inline `timezone` applies at once).
            zone: Tz::UTC,
        };
        let first = recurrence.first(now);
        if first.is_none() {
            problems.push(never_occurs(ending_at.is_some()));
        }
        errors.extend(problems.into_iter().map(at));
        let actor = match &req.fields.actor {
            Change::Set(a) => Some(a.reference.clone()),
            _ => None,
        };
        let tenant = match &req.fields.tenant {
            Change::Set(t) => Some(t.id.clone()),
            _ => None,
        };
        let repeats = Value::Array(rules.iter().map(RepeatRule::to_wire).collect());
        let rows: Vec<NewSchedule> = req
            .recipients
            .iter()
            .map(|r| NewSchedule {
                id: ids::uuid(),
                workflow_key: workflow.def.key.clone(),
                recipient: r.reference.clone(),
                actor: actor.clone(),
                tenant: tenant.clone(),
                data: data.clone(),
                payload_id: None,
                repeats: repeats.clone(),
                scheduled_at: format_opt(scheduled_at),
                ending_at: format_opt(ending_at),
                next_occurrence_at: format_opt(first),
                inserted_at: clock::format(now),
            })
            .collect();
        planned.push((req, rows));
    }
    if !errors.is_empty() {
        return Err(Refusal::Invalid(errors));
    }
    let stamp = clock::format(now);
    let written = store
        .change_schedules(move |tx| {
            let mut out = Vec::new();
            for (req, rows) in &planned {
                upsert_fields(tx, &req.fields)?;
                // The request's data, stored once for all its schedules.
                let payload = match rows.first().and_then(|r| r.data.as_deref()) {
                    Some(data) => Some(tx.put_payload(data)?),
                    None => None,
                };
                for r in &req.recipients {
                    tx.upsert_recipient(r)?;
                }
                for row in rows {
                    let mut row = row.clone();
                    row.payload_id = payload.clone();
                    let zone = recipient_zone(tx, &row.recipient)?;
                    let first = recurrence_of(&row, zone).first(now);
                    if first.is_none() {
                        let e = never_occurs(row.ending_at.is_some());
                        return Err(StoreError::Invalid {
                            field: e.field,
                            message: e.message,
                        });
                    }
                    row.next_occurrence_at = format_opt(first);
                    tx.put_schedule(&row, &stamp)?;
                    out.push(ScheduleRow {
                        schedule: row,
                        last_occurrence_at: None,
                        updated_at: stamp.clone(),
                    });
                }
            }
            Ok(out)
        })
        .await?;
    Ok(written)
}

/// Applies the same changes to every listed schedule (`PUT /v1/schedules`). Any unknown
/// id is a 404 and nothing changes.
async fn update(
    store: &Store,
    registry: &Registry,
    mut req: UpdateSchedules,
    now: DateTime<Utc>,
) -> Result<Vec<ScheduleRow>, Refusal> {
    let mut errors = Vec::new();
    normalize_fields(&mut req.fields, &mut errors);
    let ids = req.ids.clone();
    let current: Vec<Option<ScheduleRow>> = store.schedules_by_id(ids).await?;
    let mut workflows: HashMap<String, Arc<CompiledWorkflow>> = HashMap::new();
    // One value for every listed schedule when the update sets `data` (stored once).
    let set_data: Option<Arc<Value>> = match &req.fields.data {
        Change::Set(d) => Some(Arc::new(Value::Object(d.clone()))),
        _ => None,
    };
    let mut sizes = DataSizes::default();
    let mut answered_bytes = 0usize;
    for (id, row) in req.ids.iter().zip(&current) {
        let Some(row) = row else {
            return Err(schedule_missing(id));
        };
        let key = &row.schedule.workflow_key;
        let Some(workflow) = registry.get(key) else {
            return Err(Refusal::WorkflowMissing(key.clone()));
        };
        let data = merged(&req.fields, &row.schedule, set_data.as_ref()).data;
        answered_bytes = answered_bytes.saturating_add(sizes.of(data.as_ref()));
        check_data(
            &workflow,
            data.as_deref().and_then(Value::as_object),
            &mut errors,
        );
        workflows.insert(key.clone(), workflow);
    }
    if answered_bytes > MAX_RESPONSE_DATA_BYTES {
        errors.push(over_budget("schedule_ids", answered_bytes, 1));
    }
    dedup(&mut errors);
    if !errors.is_empty() {
        return Err(Refusal::Invalid(errors));
    }
    let stamp = clock::format(now);
    let fields = req.fields;
    let ids = req.ids;
    let updated = store
        .change_schedules(move |tx| {
            upsert_fields(tx, &fields)?;
            let payload = match set_data.as_deref() {
                Some(data) => Some(tx.put_payload(data)?),
                None => None,
            };
            let mut out = Vec::new();
            for id in &ids {
                // Re-read inside the write: a concurrent fire may have moved the claim.
                let Some(row) = tx.schedule(id)? else {
                    return Err(StoreError::NotFound);
                };
                let mut next = merged(&fields, &row.schedule, set_data.as_ref());
                if set_data.is_some() {
                    next.payload_id = payload.clone();
                }
                let recurrence = recurrence_of(&next, recipient_zone(tx, &next.recipient)?);
                let last = row.last_occurrence_at.as_deref().and_then(parse_time);
                next.next_occurrence_at = if recurrence.rules.is_empty() {
                    // A one-off fires once: again only if its time was changed.
                    match fields.scheduled_at {
                        Change::Set(_) => format_opt(recurrence.first(now)),
                        _ => row.schedule.next_occurrence_at.clone(),
                    }
                } else {
                    let after_last = last.and_then(|l| recurrence.next_after(l));
                    let from_now = recurrence.first(now);
                    format_opt(match (after_last, from_now) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (None, _) if last.is_some() => None,
                        (_, b) => b,
                    })
                };
                if recurrence.rules.is_empty() && next.scheduled_at.is_none() {
                    return Err(StoreError::Invalid {
                        field: "repeats".into(),
                        message: "is required unless `scheduled_at` is given (a one-off schedule)"
                            .into(),
                    });
                }
                if next.next_occurrence_at.is_none() && row.last_occurrence_at.is_none() {
                    let e = never_occurs(next.ending_at.is_some());
                    return Err(StoreError::Invalid {
                        field: e.field,
                        message: e.message,
                    });
                }
                tx.put_schedule(&next, &stamp)?;
                out.push(ScheduleRow {
                    schedule: next,
                    last_occurrence_at: row.last_occurrence_at,
                    updated_at: stamp.clone(),
                });
            }
            Ok(out)
        })
        .await;
    match updated {
        Err(StoreError::NotFound) => Err(Refusal::NotFound("A listed schedule".into())),
        other => Ok(other?),
    }
}

fn dedup(errors: &mut Vec<FieldError>) {
    let mut seen = Vec::new();
    errors.retain(|e| {
        let key = (e.field.clone(), e.message.clone());
        if seen.contains(&key) {
            false
        } else {
            seen.push(key);
            true
        }
    });
}

/// A schedule with `fields` applied (the claim is recomputed by the caller). `set_data`
/// is the fields' `data` when they set it, shared by every schedule of the update; its
/// payload is stored by the caller.
fn merged(fields: &ScheduleFields, s: &NewSchedule, set_data: Option<&Arc<Value>>) -> NewSchedule {
    let mut next = s.clone();
    next.actor = match &fields.actor {
        Change::Keep => s.actor.clone(),
        Change::Clear => None,
        Change::Set(a) => Some(a.reference.clone()),
    };
    next.tenant = match &fields.tenant {
        Change::Keep => s.tenant.clone(),
        Change::Clear => None,
        Change::Set(t) => Some(t.id.clone()),
    };
    match &fields.data {
        Change::Keep => {}
        Change::Clear => {
            next.data = None;
            next.payload_id = None;
        }
        Change::Set(_) => {
            next.data = set_data.cloned();
            next.payload_id = None;
        }
    }
    if let Some(rules) = &fields.repeats {
        next.repeats = Value::Array(rules.iter().map(RepeatRule::to_wire).collect());
    }
    next.scheduled_at = fields
        .scheduled_at
        .clone()
        .apply(s.scheduled_at.as_deref().and_then(parse_time))
        .map(clock::format);
    next.ending_at = fields
        .ending_at
        .clone()
        .apply(s.ending_at.as_deref().and_then(parse_time))
        .map(clock::format);
    next
}

/// The size of `value` as JSON, counted without building the text.
fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX / 2,
    }
}

/// Sizes of shared data values, each counted once (schedules of one create share one).
#[derive(Default)]
struct DataSizes(HashMap<*const Value, usize>);

impl DataSizes {
    fn of(&mut self, data: Option<&Arc<Value>>) -> usize {
        data.map_or(0, |d| {
            *self.0.entry(Arc::as_ptr(d)).or_insert_with(|| json_size(d))
        })
    }
}

/// The 422 for a response that would carry more than [`MAX_RESPONSE_DATA_BYTES`] of data.
fn over_budget(field: &str, bytes: usize, times: usize) -> FieldError {
    let total = bytes.saturating_mul(times);
    FieldError::new(
        field,
        format!(
            "the schedules answered would carry {total} bytes of data in all, over the \
             {MAX_RESPONSE_DATA_BYTES}-byte limit (each schedule answers with its data): use \
             fewer recipients or schedules per call, or less data"
        ),
    )
}

fn schedule_missing(id: &str) -> Refusal {
    Refusal::NotFound(format!("The schedule `{id}`"))
}

/// Deletes the listed schedules and returns them. Any unknown id is a 404 and nothing is
/// deleted.
async fn delete(store: &Store, ids: Vec<String>) -> Result<Vec<ScheduleRow>, Refusal> {
    let deleted = store
        .change_schedules(move |tx| {
            let mut out = Vec::new();
            let mut sizes = DataSizes::default();
            let mut answered_bytes = 0usize;
            for id in &ids {
                match tx.schedule(id)? {
                    Some(row) => {
                        tx.delete_schedule(id)?;
                        answered_bytes =
                            answered_bytes.saturating_add(sizes.of(row.schedule.data.as_ref()));
                        out.push(row);
                    }
                    None => return Err(StoreError::Conflict(id.clone())),
                }
            }
            if answered_bytes > MAX_RESPONSE_DATA_BYTES {
                let e = over_budget("schedule_ids", answered_bytes, 1);
                return Err(StoreError::Invalid {
                    field: e.field,
                    message: e.message,
                });
            }
            Ok(out)
        })
        .await;
    match deleted {
        Err(StoreError::Conflict(id)) => Err(schedule_missing(&id)),
        other => Ok(other?),
    }
}

/// Lists schedules (shared by the three list endpoints).
async fn list(
    store: &Store,
    filter: schedules::ScheduleFilter,
    page: PageQuery,
) -> Result<crate::model::Page<ScheduleRow>, Refusal> {
    Ok(store
        .list_schedules(filter, page, MAX_RESPONSE_DATA_BYTES)
        .await?)
}

impl super::Engine {
    /// Creates schedules (one per recipient of each request) and wakes the scheduler.
    pub async fn create_schedules(
        &self,
        requests: Vec<CreateSchedules>,
    ) -> Result<Vec<ScheduleRow>, Refusal> {
        let now = self.scheduler.clock().now_utc();
        let rows = create(&self.store, &self.registry, requests, now).await?;
        self.scheduler.wake();
        Ok(rows)
    }

    /// Applies one update to the listed schedules and wakes the scheduler.
    pub async fn update_schedules(
        &self,
        request: UpdateSchedules,
    ) -> Result<Vec<ScheduleRow>, Refusal> {
        let now = self.scheduler.clock().now_utc();
        let rows = update(&self.store, &self.registry, request, now).await?;
        self.scheduler.wake();
        Ok(rows)
    }

    /// Deletes the listed schedules (all or none).
    pub async fn delete_schedules(&self, ids: Vec<String>) -> Result<Vec<ScheduleRow>, Refusal> {
        delete(&self.store, ids).await
    }

    /// One page of schedules.
    pub async fn list_schedules(
        &self,
        filter: schedules::ScheduleFilter,
        page: PageQuery,
    ) -> Result<crate::model::Page<ScheduleRow>, Refusal> {
        list(&self.store, filter, page).await
    }
}
