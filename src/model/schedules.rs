//! Schedule requests (`POST`/`PUT`/`DELETE /v1/schedules`, `POST /v1/schedules/bulk/create`)
//! parsed into types that are valid by construction, every bad field reported at once.
//!
//! Limits (spec §9): 100 recipients per create, 100 `schedule_ids` per update/delete,
//! 1,000 schedules per bulk create.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::recurrence::{RepeatRule, parse_repeats};
use super::trigger::{RecipientInput, TenantInput, parse_recipient, parse_tenant};
use crate::model::field_error::FieldError;

pub const MAX_RECIPIENTS: usize = 100;
pub const MAX_SCHEDULE_IDS: usize = 100;
/// The `data` one schedules response may carry in all, in bytes of JSON (the request
/// body limit's 10 MiB): every `Schedule` answers with its data, so a create for 100
/// recipients with 9 MB of data would answer 900 MB (issue 17 item 8). A create, update
/// or delete past it is refused (422); a list page stops short of it.
pub const MAX_RESPONSE_DATA_BYTES: usize = 10 * 1024 * 1024;
pub const MAX_BULK_SCHEDULES: usize = 1000;

/// A field that may be absent (keep), null (clear) or set.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Change<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T> Change<T> {
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Change::Keep => current,
            Change::Clear => None,
            Change::Set(v) => Some(v),
        }
    }
}

/// The timing and payload fields shared by create, update and bulk create.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScheduleFields {
    pub actor: Change<RecipientInput>,
    pub tenant: Change<TenantInput>,
    pub data: Change<Map<String, Value>>,
    /// `None` = not given; `Some(empty)` = no rules (a one-off).
    pub repeats: Option<Vec<RepeatRule>>,
    pub scheduled_at: Change<DateTime<Utc>>,
    pub ending_at: Change<DateTime<Utc>>,
}

fn time(
    obj: &Map<String, Value>,
    key: &str,
    errors: &mut Vec<FieldError>,
) -> Change<DateTime<Utc>> {
    match obj.get(key) {
        None => Change::Keep,
        Some(Value::Null) => Change::Clear,
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Change::Set(t.with_timezone(&Utc)),
            Err(_) => {
                errors.push(FieldError::new(
                    key,
                    "must be an ISO-8601 datetime with an offset",
                ));
                Change::Keep
            }
        },
        Some(_) => {
            errors.push(FieldError::new(
                key,
                "must be an ISO-8601 datetime string or null",
            ));
            Change::Keep
        }
    }
}

impl ScheduleFields {
    fn parse(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> ScheduleFields {
        let actor = match obj.get("actor") {
            None => Change::Keep,
            Some(Value::Null) => Change::Clear,
            Some(a) => parse_recipient(a, "actor", errors).map_or(Change::Keep, Change::Set),
        };
        if let Change::Set(a) = &actor
            && a.trigger_data.is_some()
        {
            errors.push(FieldError::new(
                "actor.$trigger_data",
                "is only allowed on recipients",
            ));
        }
        let tenant = match obj.get("tenant") {
            None => Change::Keep,
            Some(Value::Null) => Change::Clear,
            Some(t) => parse_tenant(t, errors).map_or(Change::Keep, Change::Set),
        };
        let data = match obj.get("data") {
            None => Change::Keep,
            Some(Value::Null) => Change::Clear,
            Some(Value::Object(d)) => Change::Set(d.clone()),
            Some(_) => {
                errors.push(FieldError::new("data", "must be an object or null"));
                Change::Keep
            }
        };
        let repeats = obj.get("repeats").map(|r| parse_repeats(Some(r), errors));
        ScheduleFields {
            actor,
            tenant,
            data,
            repeats,
            scheduled_at: time(obj, "scheduled_at", errors),
            ending_at: time(obj, "ending_at", errors),
        }
    }
}

fn object<'a>(body: &'a Value, errors: &mut Vec<FieldError>) -> Option<&'a Map<String, Value>> {
    let obj = body.as_object();
    if obj.is_none() {
        errors.push(FieldError::new("body", "must be a JSON object"));
    }
    obj
}

fn workflow_key(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> String {
    match obj.get("workflow") {
        Some(Value::String(k)) => match super::workflow::parse_key(k) {
            Ok(k) => k,
            Err(m) => {
                errors.push(FieldError::new("workflow", m));
                String::new()
            }
        },
        None | Some(Value::Null) => {
            errors.push(FieldError::new("workflow", "is required"));
            String::new()
        }
        Some(_) => {
            errors.push(FieldError::new("workflow", "must be a workflow key string"));
            String::new()
        }
    }
}

/// `POST /v1/schedules`: one schedule per recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSchedules {
    pub workflow: String,
    pub recipients: Vec<RecipientInput>,
    pub fields: ScheduleFields,
}

impl CreateSchedules {
    pub fn parse(body: &Value) -> Result<CreateSchedules, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(obj) = object(body, &mut errors) else {
            return Err(errors);
        };
        let workflow = workflow_key(obj, &mut errors);
        let recipients = match obj.get("recipients") {
            Some(Value::Array(list)) if list.len() > MAX_RECIPIENTS => {
                errors.push(FieldError::new(
                    "recipients",
                    format!(
                        "may hold at most {MAX_RECIPIENTS} recipients (got {})",
                        list.len()
                    ),
                ));
                Vec::new()
            }
            Some(Value::Array(list)) if list.is_empty() => {
                errors.push(FieldError::new(
                    "recipients",
                    "must name at least one recipient",
                ));
                Vec::new()
            }
            Some(Value::Array(list)) => {
                let mut out: Vec<RecipientInput> = Vec::new();
                for (i, item) in list.iter().enumerate() {
                    if let Some(r) = parse_recipient(item, &format!("recipients[{i}]"), &mut errors)
                        && !out.iter().any(|o| o.reference == r.reference)
                    {
                        out.push(r);
                    }
                }
                out
            }
            None | Some(Value::Null) => {
                errors.push(FieldError::new("recipients", "is required"));
                Vec::new()
            }
            Some(_) => {
                errors.push(FieldError::new(
                    "recipients",
                    "must be an array of recipients",
                ));
                Vec::new()
            }
        };
        let fields = ScheduleFields::parse(obj, &mut errors);
        let no_rules = fields.repeats.as_ref().is_none_or(Vec::is_empty);
        let bad_rules = errors.iter().any(|e| e.field.starts_with("repeats"));
        if no_rules && !bad_rules && !matches!(fields.scheduled_at, Change::Set(_)) {
            errors.push(FieldError::new(
                "repeats",
                "is required unless `scheduled_at` is given (a one-off schedule)",
            ));
        }
        if errors.is_empty() {
            Ok(CreateSchedules {
                workflow,
                recipients,
                fields,
            })
        } else {
            Err(errors)
        }
    }
}

/// A list of schedule ids (`schedule_ids`), at most [`MAX_SCHEDULE_IDS`].
fn schedule_ids(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Vec<String> {
    match obj.get("schedule_ids") {
        Some(Value::Array(ids)) if ids.len() > MAX_SCHEDULE_IDS => {
            errors.push(FieldError::new(
                "schedule_ids",
                format!(
                    "may hold at most {MAX_SCHEDULE_IDS} ids (got {})",
                    ids.len()
                ),
            ));
            Vec::new()
        }
        Some(Value::Array(ids)) if !ids.is_empty() => {
            let mut out: Vec<String> = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                match id.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()) {
                    Some(u) => {
                        let id = u.hyphenated().to_string();
                        if !out.contains(&id) {
                            out.push(id);
                        }
                    }
                    None => errors.push(FieldError::new(
                        format!("schedule_ids[{i}]"),
                        "must be a schedule id (a UUID)",
                    )),
                }
            }
            out
        }
        _ => {
            errors.push(FieldError::new(
                "schedule_ids",
                "is required: a non-empty list of schedule ids",
            ));
            Vec::new()
        }
    }
}

/// `PUT /v1/schedules`: the same changes to every listed schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateSchedules {
    pub ids: Vec<String>,
    pub fields: ScheduleFields,
}

impl UpdateSchedules {
    pub fn parse(body: &Value) -> Result<UpdateSchedules, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(obj) = object(body, &mut errors) else {
            return Err(errors);
        };
        let ids = schedule_ids(obj, &mut errors);
        let fields = ScheduleFields::parse(obj, &mut errors);
        if errors.is_empty() {
            Ok(UpdateSchedules { ids, fields })
        } else {
            Err(errors)
        }
    }
}

/// `DELETE /v1/schedules`.
pub fn parse_delete(body: &Value) -> Result<Vec<String>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = object(body, &mut errors) else {
        return Err(errors);
    };
    let ids = schedule_ids(obj, &mut errors);
    if errors.is_empty() {
        Ok(ids)
    } else {
        Err(errors)
    }
}

/// `POST /v1/schedules/bulk/create`: `{schedules: [{workflow, recipient, ...}]}`, each
/// entry one schedule. Errors are reported as `schedules[i].<field>`.
pub fn parse_bulk(body: &Value) -> Result<Vec<CreateSchedules>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = object(body, &mut errors) else {
        return Err(errors);
    };
    let list = match obj.get("schedules") {
        Some(Value::Array(list)) if list.len() > MAX_BULK_SCHEDULES => {
            return Err(vec![FieldError::new(
                "schedules",
                format!(
                    "may hold at most {MAX_BULK_SCHEDULES} schedules (got {})",
                    list.len()
                ),
            )]);
        }
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => {
            return Err(vec![FieldError::new(
                "schedules",
                "is required: a non-empty list of schedules",
            )]);
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        // One entry is a create with a single `recipient`.
        let as_create = match item {
            Value::Object(entry) => {
                let mut entry = entry.clone();
                match entry.remove("recipient") {
                    Some(r) => {
                        entry.insert("recipients".into(), Value::Array(vec![r]));
                    }
                    None => {
                        errors.push(FieldError::new(
                            format!("schedules[{i}].recipient"),
                            "is required",
                        ));
                        continue;
                    }
                }
                Value::Object(entry)
            }
            _ => Value::Null,
        };
        match CreateSchedules::parse(&as_create) {
            Ok(c) => out.push(c),
            Err(errs) => errors.extend(errs.into_iter().map(|e| {
                let field = match e.field.as_str() {
                    "body" => format!("schedules[{i}]"),
                    f => format!(
                        "schedules[{i}].{}",
                        f.replacen("recipients[0]", "recipient", 1)
                    ),
                };
                FieldError::new(field, e.message)
            })),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
#[path = "schedules_tests.rs"]
mod tests;
