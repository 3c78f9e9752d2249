//! Workflow definitions in Knock's management-API shape (`Workflow`/`WorkflowStep`),
//! parsed into typed steps.
//!
//! Invariant: a [`WorkflowDef`] only ever holds what Tidings can execute. A definition that
//! uses a step type or feature not implemented (e.g. `http_fetch`, non-in-app channels,
//! an unknown condition operator) is refused with a field error that says so —
//! never silently ignored, because ignoring a delay or a condition would send messages
//! the author did not intend.

mod batch;
mod duration;
mod lifecycle;
mod steps;

pub use batch::{
    BatchOrder, BatchStep, ExecutionMode, MAX_KEY_LEN as MAX_BATCH_KEY_LEN, WindowType,
};
pub use duration::{Duration, MAX_DAYS, Unit};
pub use lifecycle::{Expiry, ItemLifecycle};

use serde_json::{Map, Value};

use crate::model::conditions::ConditionGroup;
use crate::model::field_error::FieldError;
use steps::parse_steps;

/// Knock's longest workflow description.
const MAX_DESCRIPTION: usize = 280;
/// Fields Knock marks read-only: accepted on input (knock-cli pulls include them) but
/// recomputed by Tidings on output.
const READ_ONLY: &[&str] = &[
    "__readonly",
    "active",
    "valid",
    "environment",
    "created_at",
    "updated_at",
    "deleted_at",
    "sha",
];

/// A workflow key: 3–255 characters of `[a-z0-9_-]` (spec §1.2).
pub fn parse_key(raw: &str) -> Result<String, String> {
    if !(3..=255).contains(&raw.len()) {
        return Err("must be 3 to 255 characters".into());
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err("may only contain lowercase letters, digits, `_` and `-`".into());
    }
    Ok(raw.to_owned())
}

/// A parsed, executable workflow definition.
#[derive(Debug, Clone)]
pub struct WorkflowDef {
    pub key: String,
    pub name: String,
    pub categories: Vec<String>,
    pub trigger_data_json_schema: Option<Value>,
    pub override_preferences: bool,
    pub is_commercial: bool,
    /// Workflow (trigger) conditions: when they do not hold, the recipient's run halts.
    pub conditions: Option<ConditionGroup>,
    pub trigger_frequency: TriggerFrequency,
    pub steps: Vec<Step>,
    /// The definition as stored and shown (`@` references resolved, read-only fields
    /// removed, `key` set).
    pub definition: Value,
}

/// One step: its `ref`, and what it does.
#[derive(Debug, Clone)]
pub struct Step {
    pub step_ref: String,
    /// Step conditions: when they do not hold, the step is skipped.
    pub conditions: Option<ConditionGroup>,
    pub kind: StepKind,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    InAppFeed(InAppFeedStep),
    Delay(DelayStep),
    Batch(BatchStep),
    Throttle(ThrottleStep),
    Branch(Vec<Branch>),
}

/// A `throttle` step: at most `limit` runs per recipient (and key value) pass within a
/// window that opens with the first passing run; the others stop here.
#[derive(Debug, Clone)]
pub struct ThrottleStep {
    /// A data path whose value partitions the gate (`data.project_id`).
    pub key: Option<String>,
    pub limit: u32,
    pub window: Duration,
}

/// One branch of a `branch` step; the first whose conditions hold runs (the last one,
/// without conditions, is the default).
#[derive(Debug, Clone)]
pub struct Branch {
    pub name: String,
    pub conditions: Option<ConditionGroup>,
    pub steps: Vec<Step>,
    /// Ends the recipient's run after this branch's steps.
    pub terminates: bool,
}

/// `trigger_frequency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerFrequency {
    EveryTrigger,
    OncePerRecipient,
    OncePerRecipientPerTenant,
}

/// Roots a workflow or step condition's `variable` may start with (`refs` = earlier
/// steps' results).
pub const CONDITION_ROOTS: &[&str] = &[
    "data",
    "recipient",
    "actor",
    "tenant",
    "vars",
    "refs",
    "workflow",
];

impl Step {
    pub fn step_ref(&self) -> &str {
        &self.step_ref
    }
}

/// Roots a path in a workflow (a condition variable, `delay_until_field_path`, …) may
/// start with.
pub const PATH_ROOTS: &[&str] = &["data", "recipient", "actor", "tenant", "vars", "workflow"];

/// A `delay` step: wait `delay_for`, or until the timestamp at `delay_until_field_path`
/// (plus `delay_for` when both are set).
#[derive(Debug, Clone)]
pub struct DelayStep {
    pub delay_for: Option<Duration>,
    pub delay_until_field_path: Option<String>,
}

#[derive(Debug, Clone)]
pub struct InAppFeedStep {
    pub step_ref: String,
    pub channel_key: String,
    pub template: InAppTemplateSource,
    /// Expiry and pinning of the items the step creates (Tidings' extension).
    pub lifecycle: ItemLifecycle,
}

/// Knock's `InAppFeedTemplate`: Liquid sources, compiled by the engine.
#[derive(Debug, Clone, Default)]
pub struct InAppTemplateSource {
    pub markdown_body: String,
    pub action_url: Option<String>,
    pub action_buttons: Vec<ButtonSource>,
}

#[derive(Debug, Clone)]
pub struct ButtonSource {
    pub label: String,
    pub action: String,
}

/// Collects field errors under a path prefix (`workflow`, or empty for files).
pub(super) struct Errors {
    prefix: String,
    pub(super) list: Vec<FieldError>,
}

impl Errors {
    fn path(&self, field: &str) -> String {
        if self.prefix.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.prefix)
        }
    }

    pub(super) fn push(&mut self, field: &str, message: impl Into<String>) {
        let path = self.path(field);
        self.list.push(FieldError::new(path, message));
    }
}

pub(super) fn is_absent(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

fn string_list(v: Option<&Value>, field: &str, errors: &mut Errors) -> Vec<String> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) if !s.is_empty() => out.push(s.to_owned()),
                    _ => errors.push(&format!("{field}[{i}]"), "must be a non-empty string"),
                }
            }
            out
        }
        Some(_) => {
            errors.push(field, "must be an array of strings");
            Vec::new()
        }
    }
}

impl WorkflowDef {
    /// Parses `body` as the definition of `key`. `prefix` names where the body sits in
    /// the request (`workflow` for `PUT /v1/workflows/{key}`) so errors point at it.
    pub fn parse(key: &str, body: &Value, prefix: &str) -> Result<WorkflowDef, Vec<FieldError>> {
        let mut errors = Errors {
            prefix: prefix.to_owned(),
            list: Vec::new(),
        };
        let key = match parse_key(key) {
            Ok(k) => k,
            Err(m) => return Err(vec![FieldError::new("key", m)]),
        };
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError::new(
                if prefix.is_empty() {
                    "workflow"
                } else {
                    prefix
                },
                "must be a JSON object",
            )]);
        };
        let mut definition: Map<String, Value> = obj
            .iter()
            .filter(|(k, _)| !READ_ONLY.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match obj.get("key") {
            None | Some(Value::Null) => {}
            Some(Value::String(k)) if *k == key => {}
            Some(_) => errors.push("key", format!("must be `{key}`, the key in the path")),
        }
        definition.insert("key".into(), Value::String(key.clone()));

        let name = match obj.get("name") {
            Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => n.clone(),
            Some(Value::String(_)) => {
                errors.push("name", "must be 1 to 255 characters");
                String::new()
            }
            None | Some(Value::Null) => {
                errors.push("name", "is required");
                String::new()
            }
            Some(_) => {
                errors.push("name", "must be a string");
                String::new()
            }
        };
        match obj.get("description") {
            None | Some(Value::Null) => {}
            Some(Value::String(d)) if d.chars().count() <= MAX_DESCRIPTION => {}
            Some(Value::String(_)) => errors.push(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ),
            Some(_) => errors.push("description", "must be a string"),
        }
        let categories = string_list(obj.get("categories"), "categories", &mut errors);
        string_list(obj.get("tags"), "tags", &mut errors);

        let conditions = steps::parse_conditions(obj.get("conditions"), "conditions", &mut errors);
        let trigger_frequency = match obj
            .get("trigger_frequency")
            .and_then(|v| if v.is_null() { None } else { Some(v.as_str()) })
        {
            None | Some(Some("every_trigger")) => TriggerFrequency::EveryTrigger,
            Some(Some("once_per_recipient")) => TriggerFrequency::OncePerRecipient,
            Some(Some("once_per_recipient_per_tenant")) => {
                TriggerFrequency::OncePerRecipientPerTenant
            }
            Some(_) => {
                errors.push(
                    "trigger_frequency",
                    "must be one of `every_trigger`, `once_per_recipient`, `once_per_recipient_per_tenant`",
                );
                TriggerFrequency::EveryTrigger
            }
        };
        let trigger_data_json_schema = match obj.get("trigger_data_json_schema") {
            None | Some(Value::Null) => None,
            Some(schema @ Value::Object(_)) => Some(schema.clone()),
            Some(_) => {
                errors.push("trigger_data_json_schema", "must be a JSON Schema object");
                None
            }
        };
        let (override_preferences, is_commercial) = match obj.get("settings") {
            None | Some(Value::Null) => (false, false),
            Some(Value::Object(s)) => {
                let flag = |name: &str, errors: &mut Errors| match s.get(name) {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        errors.push(&format!("settings.{name}"), "must be a boolean");
                        false
                    }
                };
                (
                    flag("override_preferences", &mut errors),
                    flag("is_commercial", &mut errors),
                )
            }
            Some(_) => {
                errors.push("settings", "must be an object");
                (false, false)
            }
        };

        let steps = match obj.get("steps") {
            Some(Value::Array(steps)) => parse_steps(steps, &mut errors),
            None | Some(Value::Null) => {
                errors.push("steps", "is required");
                Vec::new()
            }
            Some(_) => {
                errors.push("steps", "must be an array of steps");
                Vec::new()
            }
        };

        if !errors.list.is_empty() {
            return Err(errors.list);
        }
        Ok(WorkflowDef {
            key,
            name,
            categories,
            trigger_data_json_schema,
            override_preferences,
            is_commercial,
            conditions,
            trigger_frequency,
            steps,
            definition: Value::Object(definition),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn in_app_step() -> Value {
        json!({"ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed",
               "channel_type": "in_app_feed",
               "template": {"markdown_body": "Hi {{ recipient.name }}", "action_url": "{{ data.url }}",
                            "action_buttons": [{"label": "Open", "action": "{{ data.url }}"}]}})
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn workflow_keys_follow_knocks_rules() {
        assert!(parse_key("new-comment").is_ok());
        assert!(parse_key("a_b-1").is_ok());
        assert!(parse_key("ab").is_err());
        assert!(parse_key("New-Comment").is_err());
        assert!(parse_key("a b c").is_err());
        assert!(parse_key(&"x".repeat(256)).is_err());
    }

    #[test]
    fn an_in_app_workflow_parses_into_typed_steps() {
        let body = json!({"name": "New comment", "categories": ["collaboration"],
                          "active": true, "__readonly": {"key": "x"}, "steps": [in_app_step()]});
        let def = WorkflowDef::parse("new-comment", &body, "workflow").expect("parses");
        assert_eq!(def.categories, ["collaboration"]);
        assert_eq!(def.steps.len(), 1);
        let StepKind::InAppFeed(step) = &def.steps[0].kind else {
            panic!("an in-app step")
        };
        assert_eq!(step.channel_key, "in-app-feed");
        assert_eq!(step.template.action_buttons.len(), 1);
        assert_eq!(def.definition["key"], "new-comment");
        assert!(def.definition.get("active").is_none());
        assert!(def.definition.get("__readonly").is_none());
    }

    #[test]
    fn unimplemented_step_types_and_conditions_are_refused_by_name() {
        let body = json!({"name": "x", "conditions": {"all": []}, "steps": [
            {"ref": "d", "type": "batch", "settings": {}},
            {"ref": "b", "type": "random_cohort"},
            {"ref": "e", "type": "channel", "channel_type": "email", "channel_key": "postmark", "template": {}},
            {"ref": "f", "type": "http_fetch"},
            {"ref": "g", "type": "channel", "channel_key": "k", "template": {"markdown_body": "x"},
             "conditions": {"all": [{"variable": "a", "operator": "exists"}]}},
            {"ref": "h", "type": "channel", "channel_key": "k", "template": {"markdown_body": "x"},
             "conditions": {"all": [{"variable": "data.a", "operator": "is_audience_member", "argument": "x"}]}},
        ]});
        let errors = WorkflowDef::parse("abc", &body, "workflow").expect_err("refused");
        let f = fields(&errors);
        for expected in [
            "workflow.steps[0].settings.batch_window",
            "workflow.steps[1].type",
            "workflow.steps[2].channel_type",
            "workflow.steps[3].type",
            "workflow.conditions.all",
            "workflow.steps[4].conditions.all[0]",
            "workflow.steps[5].conditions.all[0]",
        ] {
            assert!(f.contains(&expected), "{expected} missing from {f:?}");
        }
        assert!(
            errors
                .iter()
                .any(|e| e.message.contains("`random_cohort` is not supported")),
            "{errors:?}"
        );
    }

    #[test]
    fn structural_errors_are_listed_together() {
        let body = json!({"steps": [in_app_step(), in_app_step(), {"type": "channel"}],
                          "key": "other", "categories": [1]});
        let errors = WorkflowDef::parse("abc", &body, "").expect_err("refused");
        let f = fields(&errors);
        for expected in [
            "key",
            "name",
            "categories[0]",
            "steps[1].ref",
            "steps[2].ref",
            "steps[2].channel_key",
            "steps[2].template",
        ] {
            assert!(f.contains(&expected), "{expected} missing from {f:?}");
        }
    }
}
