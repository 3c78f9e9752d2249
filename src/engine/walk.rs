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
//! - `step_skipped` — data `{"reason": ...}`: `"preferences"` (+ `setting`, the deciding
//!   setting), `"skip_delay"` (trigger `settings.skip_delay`), `"invalid_delay"` (+
//!   `field_path`, `error`: the dynamic value was missing or not a date; Knock skips),
//!   `"already_elapsed"` (+ `until`: the delay ended in the past),
//!   `"invalid_batch_window"` (+ `field_path`: no usable dynamic or static batch window),
//!   `"conditions"` (+ `conditions`: the step's condition group that did not hold).
//! - `run_halted` — data `{"reason": "conditions", "conditions"}` (the workflow's
//!   conditions did not hold) or `{"reason": "trigger_frequency", "trigger_frequency"}`
//!   (the recipient already ran this workflow); the recipient run ends `completed`.
//! - `branch_taken` (`step_type` `branch`) — data `{"branch": <name>, "index"}`.
//! - `throttled` (`step_type` `throttle`) — data `{"limit", "key"}`; the run stops there.
//! - `delayed` (`step_type` `delay`) — data `{"until"}`; the recipient run pauses.
//! - `batched` (`step_type` `batch`) — data `{"batch_key", "batch_id", "opened", "closes_at"}`
//!   (filled in by the write, `engine::batch_join`): the run joined (or opened) that batch
//!   and pauses until it closes; with `flush_leading` the opener has `"flushed": true`
//!   and runs on at once.
//! - `message_created` — data `{"message_id"}`.
//! - `step_failed` (status `error`) — data `{"error"}` (a template: also `"field"`); the
//!   walk halts, status `failed`. A template render error (Liquid, or over a render
//!   budget) fails only that recipient's step; it is logged once per run and step.
//! - `run_failed` (status `error`) — data `{"reason"}`: the walk of this recipient panicked
//!   ([`walk_isolated`]), or its run was given up (`engine::run_failure`); status `failed`.
//!
//! `engine::waits` appends `resumed` (data `{"at"}`, `step_ref` of the pausing step) and
//! `cancelled` (data `{"cancellation_key", "at"}`, also when a recorded cancel stops the
//! run at its first pause); `engine::batch_close` appends
//! `batch_closed` (data `{"batch_id", "at"}`) to the runs of a closed batch's other
//! activities, which end `completed`. Recipient run statuses: `completed`, `failed`,
//! `paused` (waiting on a timer or a batch), `cancelled`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::accept::merged_data;
use super::batch::{self, ClosedBatch};
use super::plan::{BatchJoin, Gate};
pub use super::plan::{RecipientPlan, StepPosition, Wait, WaitKind};
use super::preference_check;
use super::registry::{CompiledStep, CompiledWorkflow, ExecBranch, ExecKind, ExecStep};
use super::scope::{JsonNode, Node, Own, Scope, shared_entries};
use super::templates::{LazyScope, RECIPIENT_NAMES, TemplateMemo, with_translations};
use crate::clock::Clock;
use crate::model::RecipientRef;
use crate::model::conditions;
use crate::model::conditions::ConditionGroup;
use crate::model::run_state::RecipientRunStatus;
use crate::model::translations::TranslationSet;
use crate::model::workflow::{
    BatchStep, DelayStep, Duration, ExecutionMode, Expiry, ThrottleStep, TriggerFrequency,
};
use crate::store::messages::{MessageData, NewMessage};
use crate::store::{recipients, run_records};
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
    /// The engine's clock (message timestamps, delays).
    pub clock: Clock,
    /// The trigger's `settings.skip_delay`.
    pub skip_delay: bool,
    /// The translations `t` reads: the registry's snapshot when the run started.
    pub translations: Arc<TranslationSet>,
    /// Scope entries shared by every recipient's templates (`data`, `actor`, `tenant`,
    /// `vars`, `workflow`).
    shared: Arc<BTreeMap<String, Node>>,
    /// Template parts rendered once for the whole run (they read nothing of the
    /// recipient; see `templates`), per step template (keyed by its address: the
    /// workflow is held by this context, so it cannot move).
    renders: Mutex<HashMap<usize, TemplateMemo>>,
    /// Render failures so far: the first is logged as a warning, the rest at debug (a
    /// template failing for a million recipients is one problem, not a million lines).
    render_failures: AtomicUsize,
    /// Test hook: walking the recipient with this id panics.
    pub panic_recipient: Option<String>,
    /// When the run started (its `workflow_runs.inserted_at`, Unix ms): the time prefix
    /// of its recipient runs' ids (`ids::recipient_run_id`), read once with the run.
    pub started_ms: i64,
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
            clock: Clock::system(),
            skip_delay: false,
            translations: Arc::default(),
            tenant,
            actor,
            data: Arc::new(Value::Object(data)),
            actor_value,
            tenant_value,
            shared,
            workflow,
            renders: Mutex::new(HashMap::new()),
            render_failures: AtomicUsize::new(0),
            panic_recipient: None,
            started_ms: 0,
        }
    }
}

/// [`walk`], with a panic confined to this recipient: its recipient run ends `failed`
/// with a `run_failed` event naming the panic, and the page's other recipients go on.
pub fn walk_isolated(
    run: &RunContext,
    recipient: &RecipientContext,
    from: &StepPosition,
) -> RecipientPlan {
    let walked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if run.panic_recipient.as_deref() == Some(recipient.reference.id()) {
            panic!("test hook: walking `{}` panics", recipient.reference.id());
        }
        walk(run, recipient, from)
    }));
    walked.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        let reason = format!("walking this recipient panicked: {message}");
        tracing::error!(run = %run.run_id, reason, "a recipient's walk panicked");
        RecipientPlan {
            reference: recipient.reference.clone(),
            status: RecipientRunStatus::Failed,
            events: vec![json!({"event": "run_failed", "status": "error",
                                "data": {"reason": reason}})],
            messages: Vec::new(),
            wait: None,
            gates: Vec::new(),
            batches: Vec::new(),
        }
    })
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
    /// The closed batch this run continues from (templates see its variables).
    pub batch: Option<Arc<ClosedBatch>>,
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
    let reference = &recipient.reference;
    // The stored entity is used as it is unless the template view differs from it (an
    // object's properties also at the top level, a subscriber's `subscription`): no
    // copy per recipient for a plain user.
    let entity = match (&recipient.entity, &recipient.subscription) {
        (Some(stored), None) if stored.get("properties").is_none_or(|p| !p.is_object()) => {
            Cow::Borrowed(stored)
        }
        _ => {
            let mut entity = scope_entity(
                recipient
                    .entity
                    .clone()
                    .unwrap_or_else(|| recipients::minimal(reference)),
            );
            // A subscriber reached through an object sees `recipient.subscription` (issue 7).
            if let (Some(subscription), Value::Object(map)) = (&recipient.subscription, &mut entity)
            {
                map.insert("subscription".into(), subscription.clone());
            }
            Cow::Owned(entity)
        }
    };
    let mut w = Walker {
        run,
        recipient,
        actors: match &recipient.batch {
            Some(b) => b.actors.clone(),
            None => run.actor.iter().cloned().collect(),
        },
        entity,
        // The run's data is shared, never copied per recipient; only `$trigger_data` makes
        // a recipient's own.
        data: match recipient.trigger_data.as_ref() {
            // After a batch, `data` is the batch's merged data (Knock §3.5).
            _ if recipient.batch.is_some() => MessageData::Own(
                recipient
                    .batch
                    .as_ref()
                    .map(|b| b.data.clone())
                    .unwrap_or_default(),
            ),
            None => MessageData::Run(run.data.clone()),
            Some(td) => {
                let empty = Map::new();
                let base = run.data.as_object().unwrap_or(&empty);
                MessageData::Own(Arc::new(merged_data(base, Some(td))))
            }
        },
        condition_scope: None,
        events: Vec::new(),
        messages: Vec::new(),
        status: RecipientRunStatus::Completed,
        wait: None,
        refs: Vec::new(),
        gates: Vec::new(),
        batches: Vec::new(),
    };
    if recipient.entity.is_none() && from.is_start() {
        w.events
            .push(json!({"event": "recipient_not_identified", "status": "ok", "data": {}}));
    }
    if !from.is_start() || matches!(w.enter(), Flow::Continue) {
        w.walk_from(&run.workflow.steps, &[], &from.0);
    }
    RecipientPlan {
        reference: reference.clone(),
        status: w.status,
        events: w.events,
        messages: w.messages,
        wait: w.wait,
        gates: w.gates,
        batches: w.batches,
    }
}

/// Whether the walk goes on after a step.
enum Flow {
    Continue,
    Stop,
}

struct Walker<'a> {
    run: &'a RunContext,
    recipient: &'a RecipientContext,
    actors: Vec<RecipientRef>,
    /// The recipient as templates see it.
    entity: Cow<'a, Value>,
    /// The trigger data merged with this recipient's `trigger_data`.
    data: MessageData,
    /// `{recipient, data, actor, tenant, vars, workflow}` for conditions and data paths,
    /// built on first need (most walks never need it).
    condition_scope: Option<Value>,
    events: Vec<Value>,
    messages: Vec<NewMessage>,
    status: RecipientRunStatus,
    wait: Option<Wait>,
    /// Earlier steps' results, in walk order (`refs.<step_ref>` in conditions; their JSON
    /// is built only when a condition reads the scope, which most walks never do).
    refs: Vec<(String, StepRef)>,
    gates: Vec<Gate>,
    batches: Vec<BatchJoin>,
}

/// An earlier step's result as `refs.<step_ref>` shows it.
enum StepRef {
    /// `{"status": <status>}` (`skipped`, `batched`).
    Status(&'static str),
    /// `{"status": "sent", "message_id"}`: the id of the walk's message at this index.
    Sent(usize),
    /// `{"branch": <name>, "index"}`.
    Branch(String, usize),
}

/// A throttle key's value must be shorter than this (Knock).
const MAX_THROTTLE_KEY: usize = 64;

/// How a recipient appears in gate keys.
fn gate_recipient(r: &RecipientRef) -> String {
    format!("{}:{}:{}", r.kind(), r.collection(), r.id())
}

impl Walker<'_> {
    fn scope(&mut self) -> &Value {
        let run = self.run;
        let def = &run.workflow.def;
        let (entity, data) = (&self.entity, &self.data);
        let scope = self.condition_scope.get_or_insert_with(|| {
            json!({
                "recipient": entity, "data": &**data.value(), "actor": run.actor_value,
                "tenant": run.tenant_value, "vars": {},
                "workflow": {"id": run.workflow.stored.version_id, "key": def.key,
                             "categories": def.categories},
            })
        });
        let mut refs = Map::new();
        for (step_ref, result) in &self.refs {
            let value = match result {
                StepRef::Status(status) => json!({"status": status}),
                StepRef::Sent(at) => json!({"status": "sent",
                                            "message_id": self.messages.get(*at).map(|m| &m.id)}),
                StepRef::Branch(name, index) => json!({"branch": name, "index": index}),
            };
            refs.insert(step_ref.clone(), value);
        }
        scope["refs"] = Value::Object(refs);
        scope
    }

    /// Whether `conditions` (none = true) hold for this recipient now.
    fn holds(&mut self, conditions: Option<&ConditionGroup>) -> bool {
        let Some(group) = conditions else {
            return true;
        };
        let now = self.run.clock.now_utc();
        group.holds(self.scope(), now)
    }

    /// Runs the workflow-level rules that apply when a recipient enters the run:
    /// `trigger_frequency` (a gate the write enforces) and the workflow conditions.
    fn enter(&mut self) -> Flow {
        let run = self.run;
        let def = &run.workflow.def;
        if def.trigger_frequency != TriggerFrequency::EveryTrigger {
            let tenant = match def.trigger_frequency {
                TriggerFrequency::OncePerRecipientPerTenant => {
                    run.tenant.clone().unwrap_or_default()
                }
                _ => String::new(),
            };
            let name = match def.trigger_frequency {
                TriggerFrequency::OncePerRecipient => "once_per_recipient",
                _ => "once_per_recipient_per_tenant",
            };
            self.gates.push(Gate {
                key: format!("once\u{1f}{}\u{1f}{}\u{1f}{tenant}", def.key, gate_recipient(&self.recipient.reference)),
                limit: 1,
                closes_at: None,
                events_at: self.events.len(),
                messages_at: self.messages.len(),
                blocked: json!({"event": "run_halted", "status": "ok",
                                "data": {"reason": "trigger_frequency", "trigger_frequency": name}}),
            });
        }
        if !self.holds(def.conditions.as_ref()) {
            let conditions = def.conditions.as_ref().map(|c| c.0.clone());
            self.events
                .push(json!({"event": "run_halted", "status": "ok",
                                    "data": {"reason": "conditions", "conditions": conditions}}));
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// Runs `steps` (at `prefix`) from the position `from` (relative to `prefix`; a
    /// longer `from` resumes inside the branch step at `from[0]`).
    fn walk_from(&mut self, steps: &[ExecStep], prefix: &[usize], from: &[usize]) -> Flow {
        let first = from.first().copied().unwrap_or(0);
        for (i, step) in steps.iter().enumerate().skip(first) {
            let mut at = prefix.to_vec();
            at.push(i);
            let flow = match (&step.kind, from) {
                (ExecKind::Branch(branches), [f, b, rest @ ..]) if i == *f => {
                    match branches.get(*b) {
                        Some(branch) => {
                            at.push(*b);
                            self.run_branch(branch, &at, rest)
                        }
                        None => self.fail(&step.step_ref, "branch", "the paused branch is gone"),
                    }
                }
                _ => self.step(step, at),
            };
            if let Flow::Stop = flow {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn run_branch(&mut self, branch: &ExecBranch, at: &[usize], from: &[usize]) -> Flow {
        if let Flow::Stop = self.walk_from(&branch.steps, at, from) {
            return Flow::Stop;
        }
        if branch.terminates {
            return Flow::Stop;
        }
        Flow::Continue
    }

    fn fail(&mut self, step_ref: &str, step_type: &str, why: &str) -> Flow {
        self.events.push(
            json!({"event": "step_failed", "status": "error", "step_ref": step_ref,
                                "step_type": step_type, "data": {"error": why}}),
        );
        self.status = RecipientRunStatus::Failed;
        Flow::Stop
    }

    fn step(&mut self, step: &ExecStep, at: Vec<usize>) -> Flow {
        if !self.holds(step.conditions.as_ref()) {
            let conditions = step.conditions.as_ref().map(|c| c.0.clone());
            self.skipped(
                &step.step_ref,
                step.step_type(),
                json!({"reason": "conditions", "conditions": conditions}),
            );
            self.refs
                .push((step.step_ref.clone(), StepRef::Status("skipped")));
            return Flow::Continue;
        }
        match &step.kind {
            ExecKind::Channel(channel) => self.channel(channel),
            ExecKind::Delay(delay) => self.delay(&step.step_ref, delay, at),
            ExecKind::Batch(b) => self.batch(&step.step_ref, b, at),
            ExecKind::Throttle(throttle) => self.throttle(&step.step_ref, throttle),
            ExecKind::Branch(branches) => {
                let Some(b) = branches
                    .iter()
                    .position(|b| self.holds(b.conditions.as_ref()))
                else {
                    // Unreachable for a loaded workflow (the last branch has no conditions).
                    return self.fail(&step.step_ref, "branch", "no branch matched");
                };
                let branch = &branches[b];
                self.events.push(json!({"event": "branch_taken", "status": "ok", "step_ref": step.step_ref,
                                        "step_type": "branch", "data": {"branch": branch.name, "index": b}}));
                self.refs.push((
                    step.step_ref.clone(),
                    StepRef::Branch(branch.name.clone(), b),
                ));
                let mut at = at;
                at.push(b);
                self.run_branch(branch, &at, &[])
            }
        }
    }

    /// A throttle: the walk goes on assuming the gate passes; the write checks it (in
    /// the same transaction as everything else) and, if it is closed, drops what came
    /// after it and records `throttled`.
    fn throttle(&mut self, step_ref: &str, throttle: &ThrottleStep) -> Flow {
        let key_value = self.key_value(throttle.key.as_deref());
        if key_value.chars().count() >= MAX_THROTTLE_KEY {
            return self.fail(
                step_ref,
                "throttle",
                &format!("the throttle key's value must be under {MAX_THROTTLE_KEY} characters"),
            );
        }
        let run = self.run;
        let now = run.clock.now_utc();
        self.gates.push(Gate {
            key: format!("throttle\u{1f}{}\u{1f}{step_ref}\u{1f}{}\u{1f}{key_value}",
                         run.workflow.def.key, gate_recipient(&self.recipient.reference)),
            limit: throttle.limit,
            closes_at: Some(throttle.window.after(now)),
            events_at: self.events.len(),
            messages_at: self.messages.len(),
            blocked: json!({"event": "throttled", "status": "ok", "step_ref": step_ref, "step_type": "throttle",
                            "data": {"limit": throttle.limit, "key": key_value}}),
        });
        Flow::Continue
    }

    fn skipped(&mut self, step_ref: &str, step_type: &str, data: Value) {
        self.events.push(
            json!({"event": "step_skipped", "status": "ok", "step_ref": step_ref,
                                "step_type": step_type, "data": data}),
        );
    }

    /// A throttle or batch key: the value at `path` as a string (missing/null = `""`).
    fn key_value(&mut self, path: Option<&str>) -> String {
        let Some(path) = path else {
            return String::new();
        };
        match conditions::lookup(self.scope(), path) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }
    }

    /// The wait a pause at `at` stores (what the resume rebuilds the recipient from).
    fn wait_at(&self, step_ref: &str, at: Vec<usize>, kind: WaitKind) -> Wait {
        Wait {
            paused_at: StepPosition(at),
            step_ref: step_ref.to_owned(),
            kind,
            trigger_data: self.recipient.trigger_data.clone(),
            subscription: self.recipient.subscription.clone(),
            batch: self.recipient.batch.clone(),
        }
    }

    fn pause(&mut self, step_ref: &str, at: Vec<usize>, kind: WaitKind) -> Flow {
        self.status = RecipientRunStatus::Paused;
        self.wait = Some(self.wait_at(step_ref, at, kind));
        Flow::Stop
    }

    /// A batch step: the walk records a [`BatchJoin`] that the write decides (open or
    /// join; only it sees open batches exactly). `accumulate` pauses here either way;
    /// `flush_leading` runs on, and the write cuts the plan back here if a batch was
    /// already open (then the run is an activity and pauses).
    fn batch(&mut self, step_ref: &str, step: &BatchStep, at: Vec<usize>) -> Flow {
        let key_value = self.key_value(step.key.as_deref());
        if key_value.chars().count() > crate::model::workflow::MAX_BATCH_KEY_LEN {
            return self.fail(
                step_ref,
                "batch",
                &format!(
                    "the batch key's value must be at most {} characters",
                    crate::model::workflow::MAX_BATCH_KEY_LEN
                ),
            );
        }
        let now = self.run.clock.now_utc();
        let dynamic = match &step.until_field_path {
            None => None,
            Some(path) => {
                let value = conditions::lookup(self.scope(), path).cloned();
                resolve_delay_until(value.as_ref(), now).ok()
            }
        };
        let Some(window) = batch::window(step, now, dynamic) else {
            // Knock: an invalid dynamic window (and no static one to fall back on) skips.
            let path = step.until_field_path.clone();
            self.skipped(
                step_ref,
                "batch",
                json!({"reason": "invalid_batch_window", "field_path": path}),
            );
            return Flow::Continue;
        };
        let run = self.run;
        let event_index = self.events.len();
        self.events.push(
            json!({"event": "batched", "status": "ok", "step_ref": step_ref,
                                "step_type": "batch", "data": {"batch_key": key_value}}),
        );
        let wait = self.wait_at(step_ref, at, WaitKind::Batch);
        self.batches.push(BatchJoin {
            identity: batch::identity(
                &run.workflow.def.key,
                step_ref,
                &self.recipient.reference,
                run.tenant.as_deref(),
                &key_value,
            ),
            key_value,
            closes_at: window.closes_at,
            extend_until: window.extend_until,
            slide_to: window.slide_to,
            max_items: step.max_items,
            settings: batch::settings(step),
            activity_id: ids::message_id(),
            actor: run.actor.clone(),
            data: self.data.value().clone(),
            inserted_at: clock::format(now),
            mode: step.mode,
            event_index,
            messages_at: self.messages.len(),
            gates_at: self.gates.len(),
            wait: wait.clone(),
        });
        self.refs
            .push((step_ref.to_owned(), StepRef::Status("batched")));
        match step.mode {
            ExecutionMode::FlushLeading => Flow::Continue,
            ExecutionMode::Accumulate => {
                self.status = RecipientRunStatus::Paused;
                self.wait = Some(wait);
                Flow::Stop
            }
        }
    }

    fn delay(&mut self, step_ref: &str, delay: &DelayStep, at: Vec<usize>) -> Flow {
        if self.run.skip_delay {
            self.skipped(step_ref, "delay", json!({"reason": "skip_delay"}));
            return Flow::Continue;
        }
        let now = self.run.clock.now_utc();
        let until = match &delay.delay_until_field_path {
            None => Ok(now),
            Some(path) => {
                let value = conditions::lookup(self.scope(), path).cloned();
                resolve_delay_until(value.as_ref(), now).map_err(|why| (path.clone(), why))
            }
        };
        let until = match until {
            Ok(t) => delay.delay_for.map_or(t, |d| d.after(t)),
            Err((path, why)) => {
                // Knock: a missing or invalid dynamic value skips the step.
                self.skipped(
                    step_ref,
                    "delay",
                    json!({"reason": "invalid_delay", "field_path": path, "error": why}),
                );
                return Flow::Continue;
            }
        };
        if until <= now {
            self.skipped(
                step_ref,
                "delay",
                json!({"reason": "already_elapsed", "until": clock::format(until)}),
            );
            return Flow::Continue;
        }
        self.events.push(
            json!({"event": "delayed", "status": "ok", "step_ref": step_ref,
                                "step_type": "delay", "data": {"until": clock::format(until)}}),
        );
        self.pause(step_ref, at, WaitKind::Until(until))
    }

    fn channel(&mut self, step: &CompiledStep) -> Flow {
        let run = self.run;
        let workflow = &run.workflow;
        let def = &workflow.def;
        let preferences = &self.recipient.preferences;
        let needs = preference_check::needs_scope(preferences);
        let null = Value::Null;
        let scope = if needs { self.scope().clone() } else { null };
        let now = run.clock.now_utc();
        if let Some(reason) =
            preference_check::skip_reason(workflow, step, preferences, &scope, now)
        {
            // Knock: a preference opt-out skips the step (no message) and the run goes on.
            self.skipped(
                &step.step_ref,
                "channel",
                json!({"reason": "preferences", "setting": reason}),
            );
            self.refs
                .push((step.step_ref.clone(), StepRef::Status("skipped")));
            return Flow::Continue;
        }
        // One reading for the item's `inserted_at` and its expiry.
        let now_utc = run.clock.now_utc();
        let Some(expires_at) = self.expiry(step, now_utc) else {
            return Flow::Continue;
        };
        let id = ids::message_id();
        let now = clock::format(now_utc);
        let (entity, data, batch) = (&self.entity, &self.data, &self.recipient.batch);
        // The names this recipient's scope holds itself (over the run's shared ones).
        let own_data = matches!(data, MessageData::Own(_));
        let is_own = |name: &str| {
            RECIPIENT_NAMES.contains(&name)
                || (own_data && name == "data")
                || batch.as_ref().is_some_and(|b| b.scope.contains_key(name))
        };
        // The recipient's own entries: its entity and own data read in place (no copy),
        // the message's few values converted.
        let build = || {
            let mut own = BTreeMap::new();
            own.insert(
                "recipient".to_owned(),
                Own::Json(JsonNode::new(entity.as_ref())),
            );
            own.insert("timestamp".to_owned(), Own::Node(Node::text(&now)));
            let message = [("id", &id), ("inserted_at", &now), ("updated_at", &now)];
            own.insert(
                "current_message".to_owned(),
                Own::Node(Node::Map(
                    message
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), Node::text(v)))
                        .collect(),
                )),
            );
            if let MessageData::Own(own_data) = data {
                own.insert("data".to_owned(), Own::Json(JsonNode::new(own_data)));
            }
            if let Some(closed) = batch {
                for (k, v) in &closed.scope {
                    own.insert(k.clone(), Own::Json(JsonNode::new(v)));
                }
            }
            Scope::from_nodes(run.shared.clone(), own)
        };
        let rendered = {
            let mut memos = run.renders.lock().unwrap_or_else(PoisonError::into_inner);
            let memo = memos
                .entry(std::ptr::from_ref(&step.template) as usize)
                .or_default();
            let (rendered, missing) = with_translations(run.translations.clone(), || {
                step.template
                    .render_memo(&LazyScope::new(build, is_own), memo)
                    .map(|(blocks, _)| blocks)
            });
            if !missing.is_empty() {
                self.events.push(
                    json!({"event": "translation_missing", "status": "ok", "step_ref": step.step_ref,
                           "step_type": "channel", "data": {"keys": missing}}),
                );
            }
            rendered
        };
        match rendered {
            Ok(blocks) => {
                self.events.push(run_records::message_created(
                    &id,
                    &step.step_ref,
                    expires_at.as_deref(),
                ));
                self.refs
                    .push((step.step_ref.clone(), StepRef::Sent(self.messages.len())));
                self.messages.push(NewMessage {
                    id,
                    channel_id: step.channel.id.clone(),
                    recipient: self.recipient.reference.clone(),
                    tenant: run.tenant.clone(),
                    workflow_key: def.key.clone(),
                    workflow_version_id: workflow.stored.version_id.clone(),
                    workflow_categories: def.categories.clone(),
                    workflow_run_id: run.run_id.clone(),
                    workflow_recipient_run_id: String::new(),
                    step_ref: step.step_ref.clone(),
                    actors: self.actors.clone(),
                    data: self.data.clone(),
                    blocks,
                    pinned_at: step.lifecycle.pinned.then(|| now.clone()),
                    inserted_at: now,
                    batch: self.recipient.batch.as_ref().map(|b| b.message.clone()),
                    expires_at,
                });
                Flow::Continue
            }
            Err(e) => {
                // Rendering is deterministic: retrying cannot help, so the step
                // fails and (as in Knock) the recipient's run halts here.
                if run.render_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(run = %run.run_id, step = %step.step_ref, error = %e,
                        "template render failed (further failures of this run are logged at debug)");
                } else {
                    tracing::debug!(run = %run.run_id, step = %step.step_ref, error = %e, "template render failed");
                }
                self.events.push(
                    json!({"event": "step_failed", "status": "error", "step_ref": step.step_ref,
                           "step_type": "channel",
                           "data": {"error": e.to_string(), "field": e.field}}),
                );
                self.status = RecipientRunStatus::Failed;
                Flow::Stop
            }
        }
    }
}

impl Walker<'_> {
    /// The expiry of `step`'s item created at `now`: `Some(None)` for none, `Some(Some(at))` for one;
    /// `None` when the step is skipped instead (recorded): the field path holds no time,
    /// or the item would be born expired.
    fn expiry(&mut self, step: &CompiledStep, now: DateTime<Utc>) -> Option<Option<String>> {
        let at = match &step.lifecycle.expiry {
            None => return Some(None),
            Some(Expiry::After(d)) => d.after(now),
            Some(Expiry::AtFieldPath(path)) => {
                let value = conditions::lookup(self.scope(), path).cloned();
                match resolve_delay_until(value.as_ref(), now) {
                    Ok(at) => at,
                    Err(why) => {
                        // As a delay's `delay_until_field_path`: an unusable value skips.
                        self.skipped(
                            &step.step_ref,
                            "channel",
                            json!({"reason": "invalid_expiry", "field_path": path, "error": why}),
                        );
                        self.refs
                            .push((step.step_ref.clone(), StepRef::Status("skipped")));
                        return None;
                    }
                }
            }
        };
        if at <= now {
            self.skipped(
                &step.step_ref,
                "channel",
                json!({"reason": "already_expired", "expires_at": clock::format(at)}),
            );
            self.refs
                .push((step.step_ref.clone(), StepRef::Status("skipped")));
            return None;
        }
        Some(Some(clock::format(at)))
    }
}

/// The instant a `delay_until_field_path` value names: an RFC 3339 timestamp, or a
/// Knock duration `{unit, value}` from now. Anything else (missing, a window rule, a
/// non-date) is an error, and Knock skips the step.
fn resolve_delay_until(value: Option<&Value>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    match value {
        None | Some(Value::Null) => Err("the field is missing".into()),
        Some(Value::String(s)) => {
            clock::parse(s).ok_or_else(|| format!("`{s}` is not an ISO-8601 timestamp"))
        }
        Some(v @ Value::Object(_)) => Duration::parse(v).map(|d| d.after(now)),
        Some(other) => Err(format!("`{other}` is not a timestamp")),
    }
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
