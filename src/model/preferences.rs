//! Preference sets (spec §5): their validation, wire shape, merge across levels
//! (environment → tenant default → the recipient's own set) and evaluation for one channel
//! step. Pure: no I/O.
//!
//! Evaluation is Knock's conjunction, not a precedence chain: every applicable setting must
//! allow the message; the only override is `channels[id]` over `channel_types[type]` at the
//! same level. Anything unset counts as allowed.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::conditions;
use crate::model::field_error::FieldError;

/// The keys a preference set may hold.
const SECTIONS: &[&str] = &["channel_types", "channels", "categories", "workflows"];
/// Channel types Knock knows (§5.1).
pub const CHANNEL_TYPES: &[&str] = &["email", "in_app_feed", "sms", "push", "chat", "http"];

/// What a channel step is about to send, and to whom.
pub struct PreferenceContext<'a> {
    pub workflow_key: &'a str,
    pub categories: &'a [String],
    pub channel_id: &'a str,
    pub channel_type: &'a str,
    pub commercial: bool,
    /// The run scope (`recipient`, `actor`, `data`, `tenant`) for settings with conditions.
    pub scope: &'a Value,
    /// The engine clock's now, for `*_now` conditions (one clock for the whole run).
    pub now: DateTime<Utc>,
}

/// The outcome for one step: send, or skip with the setting that said no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Send,
    Skip(String),
}

/// Validates a `PUT …/preferences/{set}` body (or an inline `preferences.{set}` value).
pub fn validate(body: &Value) -> Result<(), Vec<FieldError>> {
    let Some(map) = body.as_object() else {
        return Err(vec![FieldError::new("preferences", "must be an object")]);
    };
    let mut errors = Vec::new();
    for (key, value) in map {
        match key.as_str() {
            "__persistence_strategy__" => {
                if !matches!(value.as_str(), Some("merge" | "replace")) {
                    errors.push(FieldError::new(key, "must be `merge` or `replace`"));
                }
            }
            "commercial_subscribed" => {
                if !value.is_boolean() && !value.is_null() {
                    errors.push(FieldError::new(key, "must be a boolean"));
                }
            }
            "channel_types" | "channels" => validate_channel_settings(key, value, &mut errors),
            "categories" | "workflows" => validate_scoped_settings(key, value, &mut errors),
            "id" | "__typename" => {}
            other => errors.push(FieldError::new(other, "is not a preference set field")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn validate_setting_value(field: &str, value: &Value, errors: &mut Vec<FieldError>) {
    match value {
        Value::Bool(_) | Value::Null => {}
        Value::Object(map) => {
            for (key, inner) in map {
                match key.as_str() {
                    "conditions" => {
                        validate_conditions(&format!("{field}.conditions"), inner, errors)
                    }
                    "__strategy__" => {}
                    other => errors.push(FieldError::new(
                        format!("{field}.{other}"),
                        "is not allowed here",
                    )),
                }
            }
        }
        _ => errors.push(FieldError::new(
            field,
            "must be a boolean or `{conditions: [...]}`",
        )),
    }
}

fn validate_conditions(field: &str, value: &Value, errors: &mut Vec<FieldError>) {
    match value.as_array() {
        Some(list) => {
            for (i, c) in list.iter().enumerate() {
                if let Err(message) = conditions::validate(c) {
                    errors.push(FieldError::new(format!("{field}[{i}]"), message));
                }
            }
        }
        None => errors.push(FieldError::new(field, "must be a list of conditions")),
    }
}

fn validate_channel_settings(section: &str, value: &Value, errors: &mut Vec<FieldError>) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, setting) in map {
                if section == "channel_types" && !CHANNEL_TYPES.contains(&key.as_str()) {
                    errors.push(FieldError::new(
                        format!("{section}.{key}"),
                        "is not a channel type",
                    ));
                }
                validate_setting_value(&format!("{section}.{key}"), setting, errors);
            }
        }
        _ => errors.push(FieldError::new(section, "must be an object")),
    }
}

fn validate_scoped_settings(section: &str, value: &Value, errors: &mut Vec<FieldError>) {
    let Some(map) = value.as_object() else {
        if !value.is_null() {
            errors.push(FieldError::new(section, "must be an object"));
        }
        return;
    };
    for (key, setting) in map {
        let field = format!("{section}.{key}");
        match setting {
            Value::Bool(_) | Value::Null => {}
            Value::Object(inner) => {
                for (k, v) in inner {
                    match k.as_str() {
                        "channel_types" | "channels" => {
                            let mut nested = Vec::new();
                            validate_channel_settings(k, v, &mut nested);
                            errors.extend(nested.into_iter().map(|e| FieldError {
                                field: format!("{field}.{}", e.field),
                                ..e
                            }));
                        }
                        "conditions" => {
                            validate_conditions(&format!("{field}.conditions"), v, errors)
                        }
                        "__strategy__" => {}
                        other => errors.push(FieldError::new(
                            format!("{field}.{other}"),
                            "is not allowed here",
                        )),
                    }
                }
            }
            _ => errors.push(FieldError::new(field, "must be a boolean or an object")),
        }
    }
}

/// Deep merge where `higher` wins, except that a `lower` object marked
/// `"__strategy__": "replace"` (a tenant default that must win) replaces `higher`.
pub fn merge(lower: &Value, higher: &Value) -> Value {
    match (lower, higher) {
        (Value::Object(l), _)
            if l.get("__strategy__").and_then(Value::as_str) == Some("replace") =>
        {
            lower.clone()
        }
        (Value::Object(l), Value::Object(h)) => {
            let mut out = l.clone();
            for (key, value) in h {
                let merged = match l.get(key) {
                    Some(existing) => merge(existing, value),
                    None => value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (_, Value::Null) => lower.clone(),
        (_, other) => other.clone(),
    }
}

/// The effective set for a run: levels from lowest (environment default) to highest (the
/// recipient's own set), `None` where a level has nothing.
pub fn effective(levels: &[Option<&Value>]) -> Value {
    levels
        .iter()
        .flatten()
        .fold(json!({}), |acc, level| merge(&acc, level))
}

/// A setting's value: `true`/`false`, `{conditions}`; `None` when unset.
fn setting_allows(value: Option<&Value>, ctx: &PreferenceContext<'_>) -> Option<bool> {
    match value? {
        Value::Bool(b) => Some(*b),
        Value::Object(map) => Some(
            map.get("conditions")
                .and_then(Value::as_array)
                .is_none_or(|c| conditions::all_hold(c, ctx.scope, ctx.now)),
        ),
        _ => None,
    }
}

/// At one level: `channels[id]` if set, else `channel_types[type]`, else allowed.
fn channel_allows(level: &Map<String, Value>, ctx: &PreferenceContext<'_>) -> bool {
    let by_channel = level.get("channels").and_then(|c| c.get(ctx.channel_id));
    let by_type = level
        .get("channel_types")
        .and_then(|c| c.get(ctx.channel_type));
    setting_allows(by_channel, ctx)
        .or_else(|| setting_allows(by_type, ctx))
        .unwrap_or(true)
}

/// A workflow or category setting: a bool, or an object scoped to channels with conditions.
fn scoped_allows(value: &Value, ctx: &PreferenceContext<'_>) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Object(map) => {
            let conditions_hold = map
                .get("conditions")
                .and_then(Value::as_array)
                .is_none_or(|c| conditions::all_hold(c, ctx.scope, ctx.now));
            conditions_hold && channel_allows(map, ctx)
        }
        _ => true,
    }
}

/// Decides whether the step may send under the effective set `set`.
pub fn evaluate(set: &Value, ctx: &PreferenceContext<'_>) -> Verdict {
    let Some(map) = set.as_object() else {
        return Verdict::Send;
    };
    if ctx.commercial && map.get("commercial_subscribed") == Some(&Value::Bool(false)) {
        return Verdict::Skip("commercial_subscribed is false".into());
    }
    if let Some(setting) = map.get("workflows").and_then(|w| w.get(ctx.workflow_key))
        && !scoped_allows(setting, ctx)
    {
        return Verdict::Skip(format!("workflows.{}", ctx.workflow_key));
    }
    for category in ctx.categories {
        if let Some(setting) = map.get("categories").and_then(|c| c.get(category))
            && !scoped_allows(setting, ctx)
        {
            return Verdict::Skip(format!("categories.{category}"));
        }
    }
    if !channel_allows(map, ctx) {
        return Verdict::Skip(format!(
            "channel_types.{} / channels.{}",
            ctx.channel_type, ctx.channel_id
        ));
    }
    Verdict::Send
}

/// The `PreferenceSet` wire shape; unset sections are `null`.
pub fn to_wire(set_id: &str, body: &Value) -> Value {
    let mut out = json!({"__typename": "PreferenceSet", "id": set_id});
    for section in SECTIONS {
        out[*section] = body.get(*section).cloned().unwrap_or(Value::Null);
    }
    if set_id == "default" {
        out["commercial_subscribed"] = body
            .get("commercial_subscribed")
            .cloned()
            .unwrap_or(Value::Null);
    }
    out
}

/// What is stored for a PUT: `replace` (default) keeps only the body; `merge` deep-merges
/// it over `existing`. Control keys are never stored.
pub fn apply_put(existing: Option<&Value>, body: &Value) -> Value {
    let strategy = body
        .get("__persistence_strategy__")
        .and_then(Value::as_str)
        .unwrap_or("replace");
    let mut clean = body.clone();
    if let Some(map) = clean.as_object_mut() {
        map.remove("__persistence_strategy__");
        map.remove("__typename");
        map.remove("id");
    }
    match (strategy, existing) {
        ("merge", Some(existing)) => merge(existing, &clean),
        _ => clean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(categories: &'a [String], scope: &'a Value) -> PreferenceContext<'a> {
        PreferenceContext {
            workflow_key: "new-comment",
            categories,
            channel_id: "chan-1",
            channel_type: "in_app_feed",
            commercial: false,
            scope,
            now: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn unset_preferences_allow_everything() {
        let scope = json!({});
        assert_eq!(evaluate(&json!({}), &ctx(&[], &scope)), Verdict::Send);
    }

    #[test]
    fn every_applicable_setting_must_allow() {
        let scope = json!({});
        let cats = vec!["collaboration".to_owned()];
        let set =
            json!({"channel_types": {"in_app_feed": true}, "categories": {"collaboration": false}});
        assert!(
            matches!(evaluate(&set, &ctx(&cats, &scope)), Verdict::Skip(r) if r == "categories.collaboration")
        );
        let set = json!({"workflows": {"new-comment": {"channel_types": {"in_app_feed": false}}}});
        assert!(matches!(
            evaluate(&set, &ctx(&cats, &scope)),
            Verdict::Skip(_)
        ));
    }

    #[test]
    fn channel_setting_beats_channel_type_at_the_same_level() {
        let scope = json!({});
        let set = json!({"channel_types": {"in_app_feed": false}, "channels": {"chan-1": true}});
        assert_eq!(evaluate(&set, &ctx(&[], &scope)), Verdict::Send);
    }

    #[test]
    fn conditions_gate_a_setting() {
        let scope = json!({"recipient": {"country": "US"}});
        let set = json!({"channel_types": {"in_app_feed": {"conditions": [{"variable": "recipient.country", "operator": "equal_to", "argument": "FR"}]}}});
        assert!(matches!(
            evaluate(&set, &ctx(&[], &scope)),
            Verdict::Skip(_)
        ));
    }

    #[test]
    fn recipient_set_beats_tenant_default_unless_tenant_replaces() {
        let tenant = json!({"categories": {"marketing": false, "billing": {"__strategy__": "replace", "channel_types": {"in_app_feed": false}}}});
        let user = json!({"categories": {"marketing": true, "billing": true}});
        let set = effective(&[None, Some(&tenant), Some(&user)]);
        assert_eq!(set["categories"]["marketing"], json!(true));
        let scope = json!({});
        let billing = vec!["billing".to_owned()];
        assert!(matches!(
            evaluate(&set, &ctx(&billing, &scope)),
            Verdict::Skip(_)
        ));
    }

    #[test]
    fn put_replaces_unless_asked_to_merge() {
        let existing = json!({"categories": {"a": false}});
        let replaced = apply_put(Some(&existing), &json!({"channel_types": {"email": false}}));
        assert_eq!(replaced, json!({"channel_types": {"email": false}}));
        let merged = apply_put(
            Some(&existing),
            &json!({"__persistence_strategy__": "merge", "channel_types": {"email": false}}),
        );
        assert_eq!(
            merged,
            json!({"categories": {"a": false}, "channel_types": {"email": false}})
        );
    }

    #[test]
    fn validation_names_bad_fields() {
        let errors = validate(
            &json!({"channel_types": {"pigeon": true}, "categories": {"x": 3}, "bogus": 1}),
        )
        .err()
        .unwrap_or_default();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"channel_types.pigeon"));
        assert!(fields.contains(&"categories.x"));
        assert!(fields.contains(&"bogus"));
    }
}
