//! Accepting a trigger: validate everything first, then ONE write transaction that
//! upserts the inline actor/recipients/tenant, inserts the queued run and remembers the
//! `Idempotency-Key`; the caller answers only after it committed.
//!
//! Invariants:
//! - A 200 means the run row is durable; the runner will complete it exactly once.
//! - A rejected trigger (4xx) changes nothing: validation happens before the write, and
//!   the write's own checks run before its first statement.
//! - An `Idempotency-Key` maps to one run for 24 h: the same body replays that run id,
//!   a different body is refused. Only accepted triggers are remembered.

use chrono::Duration;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::refusal::Refusal;
use super::registry::Registry;
use crate::error::FieldError;
use crate::ids;
use crate::model::RecipientRef;
use crate::model::properties::RecipientProperties;
use crate::model::stored_trigger::StoredTrigger;
use crate::model::trigger::{RecipientInput, Trigger};
use crate::store::Store;
use crate::store::ops::{AcceptTrigger, Accepting};
use crate::store::runs::{IdempotencyRow, NewRun};

/// The request header that makes a trigger idempotent (spec §3.3).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// How long a key is remembered.
pub const IDEMPOTENCY_WINDOW_HOURS: i64 = 24;

/// What an accepted trigger answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    New {
        run_id: String,
    },
    /// A repeat of an earlier trigger with the same `Idempotency-Key` and body.
    Replayed {
        run_id: String,
        original_request_id: String,
    },
}

impl Accepted {
    pub fn run_id(&self) -> &str {
        match self {
            Accepted::New { run_id } | Accepted::Replayed { run_id, .. } => run_id,
        }
    }
}

/// How long a key is remembered, as a duration.
fn window() -> Duration {
    Duration::hours(IDEMPOTENCY_WINDOW_HOURS)
}

/// Identifies "the same request": workflow key plus the body's JSON.
fn request_hash(key: &str, body: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update(b"\n");
    hasher.update(body.to_string().as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn replay(row: IdempotencyRow) -> Accepted {
    Accepted::Replayed {
        run_id: row.workflow_run_id,
        original_request_id: row.request_id,
    }
}

fn mismatch() -> Refusal {
    Refusal::IdempotencyMismatch(
        "This Idempotency-Key was already used with different request parameters; use a new key for a new trigger.".into(),
    )
}

/// Parses inline properties with the same rules as identify/set calls and keeps what the
/// parser returns (normalized `created_at`, read-only fields dropped): the trigger stores
/// exactly what `PUT /v1/users/{id}` would.
pub(super) fn parse_inline(input: &mut RecipientInput, at: &str, errors: &mut Vec<FieldError>) {
    let Some(props) = input.inline.take() else {
        return;
    };
    let parsed = match input.reference {
        RecipientRef::User(_) => RecipientProperties::parse_user(props),
        RecipientRef::Object { .. } => RecipientProperties::parse_object(props),
    };
    match parsed {
        Ok(parsed) => input.inline = Some(parsed.into_map()),
        Err(problems) => errors.extend(
            problems
                .into_iter()
                .map(|p| FieldError::new(format!("{at}.{}", p.field), p.message)),
        ),
    }
}

/// Accepts a trigger of workflow `key` (see the module invariants).
pub(super) async fn accept(
    store: &Store,
    registry: &Registry,
    key: &str,
    body: &Value,
    idempotency_key: Option<&str>,
    request_id: &str,
) -> Result<Accepted, Refusal> {
    let workflow = registry
        .get_fresh(key)
        .await
        .ok_or_else(|| Refusal::WorkflowMissing(key.to_owned()))?;
    let idempotency_key = match idempotency_key.map(str::trim) {
        None => None,
        Some(k) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => Some(k.to_owned()),
        Some(_) => {
            return Err(Refusal::invalid(
                "Idempotency-Key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
            ));
        }
    };
    let hash = request_hash(key, body);
    if let Some(k) = &idempotency_key
        && let Some(row) = store.remembered_trigger(k, window()).await?
    {
        return if row.request_hash == hash {
            Ok(replay(row))
        } else {
            Err(mismatch())
        };
    }

    let mut trigger = Trigger::parse(body).map_err(Refusal::Invalid)?;
    let mut errors = Vec::new();
    for (i, r) in trigger.recipients.iter_mut().enumerate() {
        parse_inline(r, &format!("recipients[{i}]"), &mut errors);
    }
    if let Some(actor) = &mut trigger.actor {
        parse_inline(actor, "actor", &mut errors);
    }
    if let Some(tenant) = &mut trigger.tenant
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
    if let Err(mut schema_errors) = workflow.validate_data(&Value::Object(trigger.data.clone())) {
        errors.append(&mut schema_errors);
    }
    if !errors.is_empty() {
        return Err(Refusal::Invalid(errors));
    }
    check_actor(store, &trigger).await?;

    let run_id = ids::uuid();
    let run = NewRun {
        id: run_id.clone(),
        workflow_key: workflow.def.key.clone(),
        request: StoredTrigger::of(&trigger).to_value(),
        cancellation_key: trigger.cancellation_key.clone(),
        tenant: trigger.tenant.as_ref().map(|t| t.id.clone()),
    };
    let idempotency = idempotency_key.map(|k| {
        (
            k,
            IdempotencyRow {
                request_hash: hash.clone(),
                workflow_run_id: run_id.clone(),
                request_id: request_id.to_owned(),
            },
        )
    });
    let written = store
        .accept_trigger(AcceptTrigger {
            run,
            idempotency,
            request_hash: hash,
            window: window(),
            tenant: trigger.tenant,
            actor: trigger.actor,
            recipients: trigger.recipients,
        })
        .await?;
    match written {
        Accepting::New => Ok(Accepted::New { run_id }),
        Accepting::Replay(row) => Ok(replay(row)),
        Accepting::Mismatch => Err(mismatch()),
    }
}

/// A user actor named only by id must have been identified (spec §3.1 `actor_missing`),
/// unless this very trigger identifies it inline.
async fn check_actor(store: &Store, trigger: &Trigger) -> Result<(), Refusal> {
    let Some(actor) = &trigger.actor else {
        return Ok(());
    };
    let RecipientRef::User(id) = &actor.reference else {
        return Ok(());
    };
    if actor.inline.is_some()
        || trigger
            .recipients
            .iter()
            .any(|r| r.reference == actor.reference && r.inline.is_some())
    {
        return Ok(());
    }
    if store.user_identified(id).await? {
        Ok(())
    } else {
        Err(Refusal::ActorMissing(id.clone()))
    }
}

/// Shallow-merges a recipient's `$trigger_data` over the trigger's `data`.
pub fn merged_data(data: &Map<String, Value>, trigger_data: Option<&Map<String, Value>>) -> Value {
    let mut merged = data.clone();
    if let Some(td) = trigger_data {
        merged.extend(td.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_hash_depends_on_workflow_and_body() {
        let a = request_hash("wf", &json!({"recipients": ["u1"]}));
        assert_eq!(a, request_hash("wf", &json!({"recipients": ["u1"]})));
        assert_ne!(a, request_hash("wf2", &json!({"recipients": ["u1"]})));
        assert_ne!(a, request_hash("wf", &json!({"recipients": ["u2"]})));
    }

    #[test]
    fn trigger_data_merges_over_data_for_one_recipient() {
        let data = json!({"a": 1, "b": 2})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let td = json!({"b": 3}).as_object().cloned();
        assert_eq!(merged_data(&data, td.as_ref()), json!({"a": 1, "b": 3}));
        assert_eq!(merged_data(&data, None), json!({"a": 1, "b": 2}));
    }
}
