//! The trigger as stored with its run (`workflow_runs.request`): ONE serde type, written
//! by `accept` (from a parsed [`Trigger`]) and by schedule occurrences, read by the
//! runner and by resumes. References only: inline properties were upserted when the
//! trigger was accepted, so a run (or a resume days later) needs nothing but this.
//!
//! The stored JSON keeps the shape earlier versions wrote (`recipients[].ref`,
//! `trigger_data` only when given, `actor` always, `settings` only for `skip_delay`),
//! so runs queued before an upgrade read back the same.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::RecipientRef;
use super::trigger::Trigger;

/// A run's normalized trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTrigger {
    pub recipients: Vec<StoredRecipient>,
    /// Always written (`null` without an actor).
    #[serde(default)]
    pub actor: Option<RecipientRef>,
    /// The trigger's `data` (an object; anything else reads as empty).
    #[serde(default, deserialize_with = "object_or_empty")]
    pub data: Map<String, Value>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "StoredSettings::is_default")]
    pub settings: StoredSettings,
    /// The schedule an occurrence came from (run records show it as `trigger_source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    /// The occurrence's due time, for a scheduled run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_occurrence_at: Option<String>,
}

/// One recipient of a stored trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecipient {
    #[serde(rename = "ref")]
    pub reference: RecipientRef,
    /// `$trigger_data`: merged over `data` for this recipient only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_data: Option<Map<String, Value>>,
}

/// The trigger's `settings` that outlive the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSettings {
    /// Delay steps pass at once (a testing aid).
    #[serde(default)]
    pub skip_delay: bool,
}

impl StoredSettings {
    fn is_default(&self) -> bool {
        self == &StoredSettings::default()
    }
}

fn object_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(map) => map,
        _ => Map::new(),
    })
}

impl StoredTrigger {
    /// The stored form of an accepted trigger.
    pub fn of(trigger: &Trigger) -> StoredTrigger {
        StoredTrigger {
            recipients: trigger
                .recipients
                .iter()
                .map(|r| StoredRecipient {
                    reference: r.reference.clone(),
                    trigger_data: r.trigger_data.clone(),
                })
                .collect(),
            actor: trigger.actor.as_ref().map(|a| a.reference.clone()),
            data: trigger.data.clone(),
            tenant: trigger.tenant.as_ref().map(|t| t.id.clone()),
            settings: StoredSettings {
                skip_delay: trigger.skip_delay,
            },
            schedule_id: None,
            schedule_occurrence_at: None,
        }
    }

    /// Reads a stored request back; `Err` says why it is corrupt.
    pub fn from_stored(value: &Value) -> Result<StoredTrigger, String> {
        StoredTrigger::deserialize(value).map_err(|e| e.to_string())
    }

    /// The stored JSON.
    pub fn to_value(&self) -> Value {
        // A struct of strings, maps and references always serializes.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The direct recipients, in trigger order.
    pub fn references(&self) -> impl Iterator<Item = &RecipientRef> {
        self.recipients.iter().map(|r| &r.reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_accepted_trigger_is_stored_in_the_shape_earlier_versions_wrote() {
        let t = Trigger::parse(&json!({
            "recipients": ["u1", {"id": "u2", "$trigger_data": {"x": 1}},
                           {"id": "p1", "collection": "projects"}],
            "actor": "a1", "tenant": "acme", "data": {"k": "v"},
            "settings": {"skip_delay": true}
        }))
        .expect("parses");
        let stored = StoredTrigger::of(&t).to_value();
        assert_eq!(
            stored,
            json!({
                "recipients": [{"ref": "u1"}, {"ref": "u2", "trigger_data": {"x": 1}},
                               {"ref": {"id": "p1", "collection": "projects"}}],
                "actor": "a1", "data": {"k": "v"}, "tenant": "acme",
                "settings": {"skip_delay": true}
            })
        );
        assert_eq!(
            StoredTrigger::from_stored(&stored),
            Ok(StoredTrigger::of(&t))
        );
    }

    #[test]
    fn no_actor_is_stored_as_null_and_no_settings_are_left_out() {
        let t = Trigger::parse(&json!({"recipients": ["u1"]})).expect("parses");
        assert_eq!(
            StoredTrigger::of(&t).to_value(),
            json!({"recipients": [{"ref": "u1"}], "actor": null, "data": {}, "tenant": null})
        );
    }

    #[test]
    fn a_request_missing_its_recipients_or_with_a_bad_reference_is_corrupt() {
        assert!(StoredTrigger::from_stored(&json!({"data": {}})).is_err());
        assert!(StoredTrigger::from_stored(&json!({"recipients": [{"ref": 5}]})).is_err());
        let lenient = StoredTrigger::from_stored(&json!({"recipients": [], "data": [1]}))
            .expect("data that is not an object reads as empty");
        assert!(lenient.data.is_empty() && lenient.actor.is_none());
    }
}
