//! One recipient's walk through a workflow's steps: pure CPU, no I/O (see RUNNER.md).
//!
//! The runner builds a [`RunContext`] ONCE per run (the workflow, the trigger `data` in an
//! `Arc`, the template scope entries every recipient shares), loads a
//! [`RecipientContext`] per recipient, and calls [`walk`] from a [`StepPosition`]
//! (the start, or where a paused recipient resumes). The resulting [`RecipientPlan`] is
//! what the runner writes: the recipient run's status and events, its messages, and
//! (when the walk pauses) the [`Wait`] to persist.
//!
//! Events recorded on a recipient run (the run-records API reads them back):
//! `{"event": <name>, "status": "ok"|"error", "step_ref"?, "step_type"?, "data": {...}}`
//! - `recipient_not_identified` — the recipient had no stored entity; data `{}`.
//! - `step_skipped` — data `{"reason": "preferences", "setting": <deciding setting>}`.
//! - `message_created` — data `{"message_id"}`.
//! - `step_failed` (status `error`) — data `{"error"}`; the walk halts, status `failed`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::accept::merged_data;
use super::preference_check;
use super::registry::CompiledWorkflow;
use super::scope::{Node, Scope, shared_entries};
use crate::model::RecipientRef;
use crate::store::messages::{MessageData, NewMessage};
use crate::store::recipients;
use crate::{clock, ids};

/// Everything about a run that is the same for every recipient: built ONCE per run and
/// shared by reference, never cloned per recipient.
pub struct RunContext {
    pub run_id: String,
    pub workflow: Arc<CompiledWorkflow>,
    pub tenant: Option<String>,
    pub actor: Option<RecipientRef>,
    /// The trigger's `data` (a JSON object). Every message of a recipient without
    /// `$trigger_data` shares this one allocation (issue 8 item 5).
    pub data: Arc<Value>,
    /// The actor and tenant as templates and conditions see them.
    pub actor_value: Option<Value>,
    pub tenant_value: Option<Value>,
    /// Scope entries shared by every recipient's templates (`data`, `actor`, `tenant`,
    /// `vars`, `workflow`).
    shared: Arc<BTreeMap<String, Node>>,
}

impl RunContext {
    /// Builds the per-run context; `actor_value`/`tenant_value` are the stored entities.
    pub fn new(
        run_id: String,
        workflow: Arc<CompiledWorkflow>,
        tenant: Option<String>,
        actor: Option<RecipientRef>,
        data: Map<String, Value>,
        actor_value: Option<Value>,
        tenant_value: Option<Value>,
    ) -> RunContext {
        let actor_value = actor_value.map(scope_entity);
        let tenant_value = tenant_value.map(scope_entity);
        let def = &workflow.def;
        let shared = shared_entries(&json!({
            "data": data,
            "actor": actor_value,
            "tenant": tenant_value,
            "vars": {},
            "workflow": {
                "id": workflow.stored.version_id,
                "key": def.key,
                "categories": def.categories,
                "commercial": def.is_commercial,
                "override_preferences": def.override_preferences,
            },
        }));
        RunContext {
            run_id,
            tenant,
            actor,
            data: Arc::new(Value::Object(data)),
            actor_value,
            tenant_value,
            shared,
            workflow,
        }
    }
}

/// One recipient entering (or resuming) the workflow.
pub struct RecipientContext {
    pub reference: RecipientRef,
    /// The stored recipient; `None` = not identified.
    pub entity: Option<Value>,
    /// The preference set that governs this recipient in the run's tenant.
    pub preferences: Value,
    /// Per-recipient data override from the trigger.
    pub trigger_data: Option<Map<String, Value>>,
    /// The subscription's properties + `object`, when reached through an object.
    pub subscription: Option<Value>,
}

/// Where a walk starts: the path to the next step to run (the index in the workflow's
/// steps; nested steps add the branch and the index inside it). Stored with a paused
/// recipient run as a JSON array.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepPosition(pub Vec<usize>);

impl StepPosition {
    /// The first step.
    pub fn start() -> StepPosition {
        StepPosition(Vec::new())
    }

    fn top(&self) -> usize {
        self.0.first().copied().unwrap_or(0)
    }
}

/// What the runner persists when a walk pauses, and where it resumes.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub resume_at: StepPosition,
}

/// What one recipient's pass through the steps produced.
pub struct RecipientPlan {
    pub reference: RecipientRef,
    pub status: &'static str,
    pub events: Vec<Value>,
    pub messages: Vec<NewMessage>,
    pub wait: Option<Wait>,
}

/// A recipient's template view: objects expose their properties at the top level too
/// (`{{ recipient.name }}` works for users and objects alike).
fn scope_entity(value: Value) -> Value {
    let Value::Object(mut map) = value else {
        return value;
    };
    if let Some(Value::Object(props)) = map.get("properties").cloned() {
        for (k, v) in props {
            map.entry(k).or_insert(v);
        }
    }
    Value::Object(map)
}

/// Walks `recipient` through the run's steps from `from`.
pub fn walk(run: &RunContext, recipient: &RecipientContext, from: &StepPosition) -> RecipientPlan {
    let workflow = &run.workflow;
    let def = &workflow.def;
    let reference = &recipient.reference;
    let trigger_data = recipient.trigger_data.as_ref();
    let actors: Vec<RecipientRef> = run.actor.iter().cloned().collect();
    let mut events = Vec::new();
    if recipient.entity.is_none() && from.top() == 0 {
        events.push(json!({"event": "recipient_not_identified", "status": "ok", "data": {}}));
    }
    let entity = scope_entity(
        recipient
            .entity
            .clone()
            .unwrap_or_else(|| recipients::minimal(reference)),
    );
    // The run's data is shared, never copied per recipient; only `$trigger_data` makes
    // a recipient's own.
    let data = match trigger_data {
        None => MessageData::Run(run.data.clone()),
        Some(td) => {
            let empty = Map::new();
            let base = run.data.as_object().unwrap_or(&empty);
            MessageData::Own(Arc::new(merged_data(base, Some(td))))
        }
    };
    let mut messages = Vec::new();
    let mut status = "completed";
    let preferences = &recipient.preferences;
    let condition_scope = if preference_check::needs_scope(preferences) {
        json!({"recipient": entity, "data": &**data.value(), "actor": run.actor_value, "tenant": run.tenant_value})
    } else {
        Value::Null
    };
    for step in workflow.steps.iter().skip(from.top()) {
        if let Some(reason) =
            preference_check::skip_reason(workflow, step, preferences, &condition_scope)
        {
            // Knock: a preference opt-out skips the step (no message) and the run goes on.
            events.push(json!({"event": "step_skipped", "status": "ok", "step_ref": step.step_ref,
                               "step_type": "channel", "data": {"reason": "preferences", "setting": reason}}));
            continue;
        }
        let id = ids::message_id();
        let now = clock::now();
        let mut own = json!({
            "recipient": entity,
            "timestamp": now,
            "current_message": {"id": id, "inserted_at": now, "updated_at": now},
        });
        if let MessageData::Own(own_data) = &data {
            own["data"] = (**own_data).clone();
        }
        let scope = Scope::with_shared(run.shared.clone(), &own);
        match step.template.render(&scope) {
            Ok(blocks) => {
                events.push(
                    json!({"event": "message_created", "status": "ok", "step_ref": step.step_ref,
                                   "step_type": "channel", "data": {"message_id": id}}),
                );
                messages.push(NewMessage {
                    id,
                    channel_id: step.channel.id.clone(),
                    recipient: reference.clone(),
                    tenant: run.tenant.clone(),
                    workflow_key: def.key.clone(),
                    workflow_version_id: workflow.stored.version_id.clone(),
                    workflow_categories: def.categories.clone(),
                    workflow_run_id: run.run_id.clone(),
                    workflow_recipient_run_id: String::new(),
                    step_ref: step.step_ref.clone(),
                    actors: actors.clone(),
                    data: data.clone(),
                    blocks,
                    inserted_at: now,
                });
            }
            Err(e) => {
                // Rendering is deterministic: retrying cannot help, so the step
                // fails and (as in Knock) the recipient's run halts here.
                tracing::warn!(run = %run.run_id, step = %step.step_ref, error = %e, "template render failed");
                events.push(
                    json!({"event": "step_failed", "status": "error", "step_ref": step.step_ref,
                                   "step_type": "channel", "data": {"error": e.to_string()}}),
                );
                status = "failed";
                break;
            }
        }
    }
    RecipientPlan {
        reference: reference.clone(),
        status,
        events,
        messages,
        wait: None,
    }
}
