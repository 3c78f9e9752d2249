//! Preferences during a run (spec §5.3): choose a recipient's effective preference set
//! for the run's tenant (the store reads the candidate sets), and judge one channel step
//! against it. A "no" skips the step — no message, nothing pushed — and the runner
//! records why; it is never an error.

use serde_json::{Map, Value};

use super::registry::{CompiledStep, CompiledWorkflow};
use crate::model::preferences::{self, PreferenceContext, Verdict};

/// The set that governs a recipient in a run for `tenant`, from the sets that may: with a
/// tenant that has tenant-level preferences (its default set, or the recipient's set named
/// after it), the recipient's tenant set beats the tenant default; otherwise the
/// recipient's `default` set applies. (There is no environment default yet: unset means
/// allowed.) Pure: the runner loads the sets of a whole page in one read.
pub fn effective(
    tenant: Option<&str>,
    tenant_default: Option<&Value>,
    default_set: Option<Map<String, Value>>,
    tenant_set: Option<Map<String, Value>>,
) -> Value {
    if tenant.is_some() {
        let recipient_tenant_set = tenant_set.map(Value::Object);
        if tenant_default.is_some() || recipient_tenant_set.is_some() {
            return preferences::effective(&[tenant_default, recipient_tenant_set.as_ref()]);
        }
    }
    Value::Object(default_set.unwrap_or_default())
}

/// Whether any setting in `set` has `conditions`, i.e. whether evaluating it needs the
/// run scope. Most sets have none, so the runner skips building that scope per recipient.
pub fn needs_scope(set: &Value) -> bool {
    match set {
        Value::Object(map) => map.iter().any(|(k, v)| k == "conditions" || needs_scope(v)),
        Value::Array(items) => items.iter().any(needs_scope),
        _ => false,
    }
}

/// `Some(reason)` when the recipient's preferences rule the step out.
pub fn skip_reason(
    workflow: &CompiledWorkflow,
    step: &CompiledStep,
    set: &Value,
    scope: &Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let def = &workflow.def;
    if def.override_preferences {
        return None;
    }
    let context = PreferenceContext {
        workflow_key: &def.key,
        categories: &def.categories,
        channel_id: &step.channel.id,
        channel_type: "in_app_feed",
        commercial: def.is_commercial,
        scope,
        now,
    };
    match preferences::evaluate(set, &context) {
        Verdict::Send => None,
        Verdict::Skip(reason) => Some(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::{effective, needs_scope};
    use serde_json::{Map, Value, json};

    fn set(v: Value) -> Option<Map<String, Value>> {
        v.as_object().cloned()
    }

    #[test]
    fn without_tenant_preferences_the_recipients_default_set_governs() {
        let own = set(json!({"channel_types": {"in_app_feed": false}}));
        assert_eq!(
            effective(None, None, own.clone(), None),
            json!({"channel_types": {"in_app_feed": false}})
        );
        // A tenant with no preferences of its own changes nothing.
        assert_eq!(
            effective(Some("acme"), None, own, None),
            json!({"channel_types": {"in_app_feed": false}})
        );
        assert_eq!(effective(None, None, None, None), json!({}));
    }

    #[test]
    fn the_recipients_tenant_set_beats_the_tenant_default_and_ignores_the_own_set() {
        let own = set(json!({"categories": {"a": true}}));
        let tenant_default = json!({"categories": {"a": false, "b": false}});
        let for_tenant = set(json!({"categories": {"b": true}}));
        let governing = effective(Some("acme"), Some(&tenant_default), own.clone(), for_tenant);
        assert_eq!(governing["categories"]["b"], true);
        assert_eq!(
            governing["categories"]["a"], false,
            "the own set does not apply"
        );
        let only_default = effective(Some("acme"), Some(&tenant_default), own, None);
        assert_eq!(only_default["categories"]["a"], false);
    }

    #[test]
    fn only_sets_with_conditions_need_the_run_scope() {
        assert!(!needs_scope(&json!({})));
        assert!(!needs_scope(
            &json!({"categories": {"a": false}, "channel_types": {"in_app_feed": true}})
        ));
        let with = json!({"workflows": {"w": {"conditions": [{"variable": "data.x", "operator": "exists"}]}}});
        assert!(needs_scope(&with));
    }
}
