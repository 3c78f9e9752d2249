//! The workflow registry: every known workflow, parsed and compiled once per version.
//!
//! Invariants:
//! - The `workflows` table is the source of truth; the in-memory map mirrors it. A
//!   definition enters the map only after its row committed.
//! - Liquid templates and the trigger-data JSON Schema are compiled when a version is
//!   stored, never per trigger.
//! - Upserts are serialized (one at a time), so the map never ends up holding an older
//!   version than the table.

use std::sync::Arc;

use dashmap::DashMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::templates::InAppTemplate;
use super::translations::Translations;
use crate::error::FieldError;
use crate::model::channel::Channel;
use crate::model::conditions::ConditionGroup;
use crate::model::workflow::{
    BatchStep, DelayStep, InAppFeedStep, Step, StepKind, ThrottleStep, WorkflowDef,
};
use crate::store::workflows::StoredWorkflow;
use crate::store::{Store, StoreError};

/// One executable channel step.
pub struct CompiledStep {
    pub step_ref: String,
    pub channel: Channel,
    pub template: InAppTemplate,
    /// Expiry and pinning of the step's items.
    pub lifecycle: crate::model::workflow::ItemLifecycle,
}

/// One executable step of any type, with its step conditions.
pub struct ExecStep {
    pub step_ref: String,
    pub conditions: Option<ConditionGroup>,
    pub kind: ExecKind,
}

pub enum ExecKind {
    Channel(Box<CompiledStep>),
    Delay(DelayStep),
    Batch(BatchStep),
    Throttle(ThrottleStep),
    Branch(Vec<ExecBranch>),
}

/// A branch of a `branch` step, ready to run.
pub struct ExecBranch {
    pub name: String,
    pub conditions: Option<ConditionGroup>,
    pub steps: Vec<ExecStep>,
    pub terminates: bool,
}

impl ExecStep {
    pub fn step_ref(&self) -> &str {
        &self.step_ref
    }

    /// Knock's `step_type` in run events.
    pub fn step_type(&self) -> &'static str {
        match self.kind {
            ExecKind::Channel(_) => "channel",
            ExecKind::Delay(_) => "delay",
            ExecKind::Batch(_) => "batch",
            ExecKind::Throttle(_) => "throttle",
            ExecKind::Branch(_) => "branch",
        }
    }
}

/// The channel steps of `steps` (branches included), depth first: the order templates
/// are compiled in and [`exec_steps`] consumes them.
fn channel_steps<'a>(steps: &'a [Step], out: &mut Vec<(String, &'a InAppFeedStep)>, at: &str) {
    for (i, step) in steps.iter().enumerate() {
        match &step.kind {
            StepKind::InAppFeed(s) => out.push((format!("{at}[{i}]"), s)),
            StepKind::Branch(branches) => {
                for (b, branch) in branches.iter().enumerate() {
                    channel_steps(
                        &branch.steps,
                        out,
                        &format!("{at}[{i}].branches[{b}].steps"),
                    );
                }
            }
            StepKind::Delay(_) | StepKind::Batch(_) | StepKind::Throttle(_) => {}
        }
    }
}

/// A workflow version ready to run.
pub struct CompiledWorkflow {
    pub def: WorkflowDef,
    pub stored: StoredWorkflow,
    pub steps: Vec<ExecStep>,
    schema: Option<jsonschema::Validator>,
}

/// What compiling a parsed definition produces before its channels are known.
struct Compiled {
    templates: Vec<InAppTemplate>,
    schema: Option<jsonschema::Validator>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpsertError {
    #[error("the workflow definition is invalid")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CompiledWorkflow {
    /// Validates trigger `data` against `trigger_data_json_schema`, listing every failure
    /// as a field under `data`.
    pub fn validate_data(&self, data: &Value) -> Result<(), Vec<FieldError>> {
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        let errors: Vec<FieldError> = schema
            .iter_errors(data)
            .map(|e| {
                let mut field = pointer_to_field("data", e.instance_path.as_str());
                if let jsonschema::error::ValidationErrorKind::Required { property } = &e.kind
                    && let Some(p) = property.as_str()
                {
                    field = format!("{field}.{p}");
                }
                FieldError::new(field, e.to_string())
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The step at `path` (see `walk::StepPosition`), if the workflow has one there.
    pub fn step_at(&self, path: &[usize]) -> Option<&ExecStep> {
        let (first, mut rest) = path.split_first()?;
        let mut step = self.steps.get(*first)?;
        while let [b, j, more @ ..] = rest {
            let ExecKind::Branch(branches) = &step.kind else {
                return None;
            };
            step = branches.get(*b)?.steps.get(*j)?;
            rest = more;
        }
        rest.is_empty().then_some(step)
    }

    /// The management-API `Workflow` object.
    pub fn to_wire(&self) -> Value {
        let mut wire = self.stored.definition.clone();
        let sha = hex(&Sha256::digest(
            self.stored.definition.to_string().as_bytes(),
        ));
        if let Some(obj) = wire.as_object_mut() {
            obj.entry("categories").or_insert_with(|| json!([]));
            obj.entry("conditions").or_insert(Value::Null);
            obj.entry("description").or_insert(Value::Null);
            obj.entry("settings").or_insert_with(|| json!({}));
            obj.entry("tags").or_insert_with(|| json!([]));
            obj.entry("trigger_data_json_schema").or_insert(Value::Null);
            obj.entry("trigger_frequency")
                .or_insert_with(|| json!("every_trigger"));
            obj.insert("active".into(), json!(true));
            obj.insert("valid".into(), json!(true));
            // Tidings has one environment; knock-cli's default is `development`.
            obj.insert("environment".into(), json!("development"));
            obj.insert("created_at".into(), json!(self.stored.inserted_at));
            obj.insert("updated_at".into(), json!(self.stored.updated_at));
            obj.insert("sha".into(), json!(sha));
        }
        wire
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `/a/0/b` under `data` → `data.a.0.b`.
fn pointer_to_field(root: &str, pointer: &str) -> String {
    let mut field = root.to_owned();
    for segment in pointer.split('/').filter(|s| !s.is_empty()) {
        field.push('.');
        field.push_str(&segment.replace("~1", "/").replace("~0", "~"));
    }
    field
}

/// Parses and compiles `body` as workflow `key`; errors are prefixed with `prefix`.
fn prepare(
    key: &str,
    body: &Value,
    prefix: &str,
) -> Result<(WorkflowDef, Compiled), Vec<FieldError>> {
    let def = WorkflowDef::parse(key, body, prefix)?;
    let at = |field: &str| {
        if prefix.is_empty() {
            field.to_owned()
        } else {
            format!("{prefix}.{field}")
        }
    };
    let mut errors = Vec::new();
    let mut templates = Vec::new();
    let mut channel = Vec::new();
    channel_steps(&def.steps, &mut channel, "steps");
    for (path, s) in channel {
        match InAppTemplate::compile(&s.template, &at(&format!("{path}.template"))) {
            Ok(t) => templates.push(t),
            Err(mut e) => errors.append(&mut e),
        }
    }
    let schema = match &def.trigger_data_json_schema {
        None => None,
        Some(schema) => match jsonschema::validator_for(schema) {
            Ok(v) => Some(v),
            Err(e) => {
                errors.push(FieldError::new(
                    at("trigger_data_json_schema"),
                    format!("is not a valid JSON Schema: {e}"),
                ));
                None
            }
        },
    };
    if errors.is_empty() {
        Ok((def, Compiled { templates, schema }))
    } else {
        Err(errors)
    }
}

/// Checks `body` as workflow `key` exactly as [`Registry::upsert`] would (parse and compile),
/// without storing it: every problem, with its field.
pub fn validate(key: &str, body: &Value) -> Result<(), Vec<FieldError>> {
    prepare(key, body, "").map(|_| ())
}

/// All workflows, by key.
pub struct Registry {
    store: Store,
    map: DashMap<String, Arc<CompiledWorkflow>>,
    upserts: tokio::sync::Mutex<()>,
    /// The translations templates render with (held here: every run reads its
    /// workflow and its translations from the registry).
    translations: Translations,
}

impl Registry {
    /// An empty registry over `store`.
    pub fn new(store: Store) -> Registry {
        Registry {
            translations: Translations::new(store.clone()),
            store,
            map: DashMap::new(),
            upserts: tokio::sync::Mutex::new(()),
        }
    }

    /// The translations renders read (a snapshot per run).
    pub fn translations(&self) -> &Translations {
        &self.translations
    }

    pub fn get(&self, key: &str) -> Option<Arc<CompiledWorkflow>> {
        self.map.get(key).map(|w| w.clone())
    }

    /// [`Registry::get`], and with several nodes, on a miss, the stored workflows read
    /// again first: another node may have just upserted it.
    pub async fn get_fresh(&self, key: &str) -> Option<Arc<CompiledWorkflow>> {
        if let Some(w) = self.get(key) {
            return Some(w);
        }
        if self.store.is_shared()
            && let Err(e) = self.load_stored().await
        {
            tracing::warn!(error = %e, "could not read the stored workflows");
        }
        self.get(key)
    }

    /// With several nodes, keeps this node's workflows (and translations) in step with
    /// what any node upserted: re-reads the stored versions every `every` (a changed or new one is
    /// compiled, the rest skipped) until the registry is dropped. Nothing on SQLite.
    pub fn follow_other_nodes(self: &Arc<Self>, every: std::time::Duration) {
        if !self.store.is_shared() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(registry) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = registry.load_stored().await {
                    tracing::warn!(error = %e, "could not refresh workflows from the store");
                }
                if let Err(e) = registry.translations().follow_store().await {
                    tracing::warn!(error = %e, "could not refresh translations from the store");
                }
            }
        });
    }

    /// Every workflow, sorted by key.
    pub fn list(&self) -> Vec<Arc<CompiledWorkflow>> {
        let mut all: Vec<_> = self.map.iter().map(|w| w.value().clone()).collect();
        all.sort_by(|a, b| a.def.key.cmp(&b.def.key));
        all
    }

    /// Loads every stored workflow into memory (what a restart needs to run queued runs).
    /// A stored definition that no longer compiles is logged and left out.
    pub async fn load_stored(&self) -> Result<(), StoreError> {
        let (stored, channels) = self.store.stored_workflows().await?;
        for row in stored {
            // Already live at this version (a refresh with several nodes): nothing to do.
            if self
                .map
                .get(&row.key)
                .is_some_and(|w| w.stored.version_id == row.version_id)
            {
                continue;
            }
            match prepare(&row.key, &row.definition, "") {
                Ok((def, compiled)) => {
                    let steps = attach_channels(&def, compiled.templates, |key| {
                        channels.iter().find(|c| c.key == key).cloned()
                    });
                    match steps {
                        Some(steps) => {
                            self.insert(def, row, steps, compiled.schema);
                        }
                        None => {
                            tracing::error!(workflow = %row.key, "stored workflow names an unknown channel; skipped")
                        }
                    }
                }
                Err(errors) => {
                    tracing::error!(workflow = %row.key, ?errors, "stored workflow no longer compiles; skipped")
                }
            }
        }
        Ok(())
    }

    /// Validates, compiles and stores a definition, then makes it live.
    pub async fn upsert(
        &self,
        key: &str,
        body: &Value,
        prefix: &str,
    ) -> Result<Arc<CompiledWorkflow>, UpsertError> {
        let (def, compiled) = prepare(key, body, prefix).map_err(UpsertError::Invalid)?;
        let _serial = self.upserts.lock().await;
        let mut channel = Vec::new();
        channel_steps(&def.steps, &mut channel, "steps");
        let channel_keys: Vec<String> = channel
            .into_iter()
            .map(|(_, s)| s.channel_key.clone())
            .collect();
        let key_owned = def.key.clone();
        let definition = def.definition.clone();
        let (stored, channels) = self
            .store
            .store_workflow(key_owned, definition, channel_keys)
            .await?;
        let steps = attach_channels(&def, compiled.templates, |key| {
            channels.iter().find(|c| c.key == key).cloned()
        })
        .ok_or_else(|| StoreError::Conflict("a step's channel vanished".into()))?;
        Ok(self.insert(def, stored, steps, compiled.schema))
    }

    fn insert(
        &self,
        def: WorkflowDef,
        stored: StoredWorkflow,
        steps: Vec<ExecStep>,
        schema: Option<jsonschema::Validator>,
    ) -> Arc<CompiledWorkflow> {
        let compiled = Arc::new(CompiledWorkflow {
            def,
            stored,
            steps,
            schema,
        });
        self.map.insert(compiled.def.key.clone(), compiled.clone());
        compiled
    }
}

/// Builds the executable steps, pairing each channel step with its channel and compiled
/// template (in [`channel_steps`] order); `None` if a channel is unknown.
fn attach_channels(
    def: &WorkflowDef,
    templates: Vec<InAppTemplate>,
    channel: impl Fn(&str) -> Option<Channel>,
) -> Option<Vec<ExecStep>> {
    let mut templates = templates.into_iter();
    exec_steps(&def.steps, &mut templates, &channel)
}

fn exec_steps(
    steps: &[Step],
    templates: &mut impl Iterator<Item = InAppTemplate>,
    channel: &impl Fn(&str) -> Option<Channel>,
) -> Option<Vec<ExecStep>> {
    steps
        .iter()
        .map(|step| {
            let kind = match &step.kind {
                StepKind::InAppFeed(s) => ExecKind::Channel(Box::new(CompiledStep {
                    step_ref: s.step_ref.clone(),
                    channel: channel(&s.channel_key)?,
                    template: templates.next()?,
                    lifecycle: s.lifecycle.clone(),
                })),
                StepKind::Delay(d) => ExecKind::Delay(d.clone()),
                StepKind::Batch(b) => ExecKind::Batch(b.clone()),
                StepKind::Throttle(t) => ExecKind::Throttle(t.clone()),
                StepKind::Branch(branches) => ExecKind::Branch(
                    branches
                        .iter()
                        .map(|b| {
                            Some(ExecBranch {
                                name: b.name.clone(),
                                conditions: b.conditions.clone(),
                                steps: exec_steps(&b.steps, templates, channel)?,
                                terminates: b.terminates,
                            })
                        })
                        .collect::<Option<Vec<_>>>()?,
                ),
            };
            Some(ExecStep {
                step_ref: step.step_ref.clone(),
                conditions: step.conditions.clone(),
                kind,
            })
        })
        .collect()
}

/// Compiles workflow `key` from `body` (`{"name", "steps"}`) without a store, each
/// channel step getting a made-up channel: for the engine's unit tests of the pure walk.
#[cfg(test)]
pub(crate) fn compile_for_test(key: &str, body: &Value) -> Arc<CompiledWorkflow> {
    let (def, compiled) = match prepare(key, body, "") {
        Ok(prepared) => prepared,
        Err(errors) => panic!("invalid test workflow: {errors:?}"),
    };
    let steps = attach_channels(&def, compiled.templates, |k| {
        Some(Channel {
            id: format!("channel-{k}"),
            key: k.to_owned(),
            kind: "in_app_feed".into(),
            inserted_at: String::new(),
        })
    })
    .unwrap_or_default();
    Arc::new(CompiledWorkflow {
        stored: StoredWorkflow {
            key: key.to_owned(),
            definition: def.definition.clone(),
            version_id: "version-1".into(),
            inserted_at: String::new(),
            updated_at: String::new(),
        },
        def,
        steps,
        schema: compiled.schema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pointers_become_dotted_fields() {
        assert_eq!(pointer_to_field("data", ""), "data");
        assert_eq!(pointer_to_field("data", "/a/0/b~1c"), "data.a.0.b/c");
    }

    #[test]
    fn invalid_schemas_and_liquid_are_refused_at_compile_time() {
        let body = json!({"name": "x", "trigger_data_json_schema": {"type": 12},
            "steps": [{"ref": "s", "type": "channel", "channel_key": "in-app-feed",
                       "template": {"markdown_body": "{% if %}"}}]});
        let errors = prepare("abc", &body, "workflow").err().unwrap_or_default();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "workflow.steps[0].template.markdown_body",
                "workflow.trigger_data_json_schema"
            ]
        );
    }
}
