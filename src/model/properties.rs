//! The body of an identify/set call for a user, object or tenant, parsed (spec §4.1, §4.2,
//! §4.4): typed standard fields, `created_at` normalized, `preferences` and
//! `channel_data` shaped as maps, custom properties within the 256 kB limit.
//!
//! Invariant: a [`RecipientProperties`] holds only keys a client may set. Server-owned keys
//! (`id`, `__typename`, `updated_at`) are dropped, so a client may send back what it read.

use serde_json::{Map, Value};

use super::{EntityId, preferences};
use crate::clock;

/// Custom properties may take at most this many bytes as JSON (spec §9).
pub const MAX_CUSTOM_PROPERTIES_BYTES: usize = 256 * 1024;

/// One channel's data may take at most this many bytes as JSON: the custom-properties
/// rule, so no single end-user write stores more than a recipient's own properties.
pub const MAX_CHANNEL_DATA_BYTES: usize = 256 * 1024;

/// One preference set may take at most this many bytes as JSON (same rule).
pub const MAX_PREFERENCE_SET_BYTES: usize = 256 * 1024;

/// Preference sets one recipient may hold: `default` plus one per tenant the recipient
/// has its own settings in. Bounds what one user token can store (issue 17).
pub const MAX_PREFERENCE_SETS_PER_RECIPIENT: usize = 100;

/// Channels one recipient may hold channel data for. Channel data is accepted only for
/// channels that exist, so this bounds rows per recipient even if channels multiply.
pub const MAX_CHANNEL_DATA_PER_RECIPIENT: usize = 50;

/// The size of `value` as JSON text (what the store keeps).
pub fn json_size(value: &Value) -> usize {
    serde_json::to_string(value).map_or(usize::MAX / 2, |s| s.len())
}

/// Keys the server owns; a body may carry them (e.g. a round-tripped User) but they are ignored.
const SERVER_OWNED: &[&str] = &["id", "__typename", "updated_at"];

/// Which kind of recipient a body describes; each has its own standard fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientKind {
    User,
    Object,
    Tenant,
}

impl RecipientKind {
    fn string_fields(self) -> &'static [&'static str] {
        match self {
            RecipientKind::User => &[
                "name",
                "email",
                "phone_number",
                "avatar",
                "timezone",
                "locale",
            ],
            RecipientKind::Object => &["name", "locale", "timezone"],
            RecipientKind::Tenant => &["name"],
        }
    }
}

/// A field that failed to parse: `field` is a dotted path within the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> PropertyError {
    PropertyError {
        field: field.into(),
        message: message.into(),
    }
}

/// Validated properties, ready for `store::recipients::upsert_*`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecipientProperties(Map<String, Value>);

impl RecipientProperties {
    pub fn parse_user(raw: Map<String, Value>) -> Result<Self, Vec<PropertyError>> {
        Self::parse(RecipientKind::User, raw)
    }

    pub fn parse_object(raw: Map<String, Value>) -> Result<Self, Vec<PropertyError>> {
        Self::parse(RecipientKind::Object, raw)
    }

    pub fn parse_tenant(raw: Map<String, Value>) -> Result<Self, Vec<PropertyError>> {
        Self::parse(RecipientKind::Tenant, raw)
    }

    /// Checks every field and reports all problems at once.
    pub fn parse(
        kind: RecipientKind,
        mut raw: Map<String, Value>,
    ) -> Result<Self, Vec<PropertyError>> {
        for key in SERVER_OWNED {
            raw.remove(*key);
        }
        if kind == RecipientKind::Object {
            // Inline object refs carry their collection; it addresses, it is not a property.
            raw.remove("collection");
        }
        let mut errors = Vec::new();
        for field in kind.string_fields() {
            if let Some(v) = raw.get(*field)
                && !(v.is_string() || v.is_null())
            {
                errors.push(err(*field, "must be a string or null"));
            }
        }
        // Recurring schedules read their hours in this zone, so a name chrono-tz does not
        // know is refused here rather than silently read as UTC later.
        if let Some(Value::String(zone)) = raw.get("timezone")
            && zone.parse::<chrono_tz::Tz>().is_err()
        {
            errors.push(err(
                "timezone",
                "must be a tz database time zone name, e.g. \"America/New_York\"",
            ));
        }
        if kind != RecipientKind::Tenant
            && let Some(v) = raw.get_mut("created_at")
        {
            match v {
                Value::Null => {}
                Value::String(s) => match clock::normalize(s) {
                    Some(normal) => *v = Value::String(normal),
                    None => errors.push(err("created_at", "must be an ISO-8601 date-time")),
                },
                _ => errors.push(err("created_at", "must be an ISO-8601 date-time or null")),
            }
        }
        if let Some(prefs) = raw.get("preferences") {
            check_keyed_objects("preferences", prefs, true, &mut errors);
        }
        if let Some(data) = raw.get("channel_data") {
            check_keyed_objects("channel_data", data, false, &mut errors);
        }
        if kind == RecipientKind::Tenant {
            check_tenant_settings(raw.get("settings"), &mut errors);
        }
        let custom_size = raw
            .iter()
            .filter(|(k, _)| k.as_str() != "preferences" && k.as_str() != "channel_data")
            .map(|(k, v)| k.len() + serde_json::to_string(v).map_or(usize::MAX / 2, |s| s.len()))
            .sum::<usize>();
        if custom_size > MAX_CUSTOM_PROPERTIES_BYTES {
            errors.push(err(
                "properties",
                format!("custom properties must total at most {MAX_CUSTOM_PROPERTIES_BYTES} bytes"),
            ));
        }
        if errors.is_empty() {
            Ok(RecipientProperties(raw))
        } else {
            Err(errors)
        }
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

/// `preferences` and `channel_data` are maps from a set id / channel id to an object
/// (or `null`, which removes that entry). Preference sets must also be valid sets.
fn check_keyed_objects(field: &str, value: &Value, ids: bool, errors: &mut Vec<PropertyError>) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, entry) in map {
                if ids {
                    if let Err(m) = EntityId::parse(key) {
                        errors.push(err(format!("{field}.{key}"), format!("set id {m}")));
                    }
                } else if key.is_empty() || key.len() > 256 {
                    errors.push(err(
                        format!("{field}.{key}"),
                        "channel id must be 1 to 256 characters",
                    ));
                }
                let limit = if ids {
                    MAX_PREFERENCE_SET_BYTES
                } else {
                    MAX_CHANNEL_DATA_BYTES
                };
                if !(entry.is_object() || entry.is_null()) {
                    errors.push(err(format!("{field}.{key}"), "must be an object or null"));
                } else if json_size(entry) > limit {
                    errors.push(err(
                        format!("{field}.{key}"),
                        format!("must take at most {limit} bytes as JSON"),
                    ));
                } else if ids && entry.is_object() {
                    check_preference_set(&format!("{field}.{key}"), entry, errors);
                }
            }
        }
        _ => errors.push(err(field, "must be an object keyed by id, or null")),
    }
}

/// Runs the preference-set validator and prefixes its field paths with `prefix`.
fn check_preference_set(prefix: &str, set: &Value, errors: &mut Vec<PropertyError>) {
    if let Err(found) = preferences::validate(set) {
        errors.extend(
            found
                .into_iter()
                .map(|e| err(format!("{prefix}.{}", e.field), e.message)),
        );
    }
}

fn check_tenant_settings(settings: Option<&Value>, errors: &mut Vec<PropertyError>) {
    match settings {
        None | Some(Value::Null) => {}
        Some(Value::Object(s)) => {
            for key in ["branding", "preference_set"] {
                if let Some(v) = s.get(key)
                    && !(v.is_object() || v.is_null())
                {
                    errors.push(err(format!("settings.{key}"), "must be an object or null"));
                }
            }
            if let Some(set @ Value::Object(_)) = s.get("preference_set") {
                check_preference_set("settings.preference_set", set, errors);
            }
            if let Some(Value::Object(branding)) = s.get("branding") {
                for (k, v) in branding {
                    if !(v.is_string() || v.is_null()) {
                        errors.push(err(
                            format!("settings.branding.{k}"),
                            "must be a string or null",
                        ));
                    }
                }
            }
        }
        Some(_) => errors.push(err("settings", "must be an object or null")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn server_owned_keys_are_dropped_and_created_at_is_normalized() {
        let parsed = RecipientProperties::parse_user(map(json!({
            "id": "x", "__typename": "User", "updated_at": "t",
            "name": "Ann", "created_at": "2026-01-01T02:00:00+02:00", "plan": {"tier": 1}
        })))
        .map(RecipientProperties::into_map);
        assert_eq!(
            parsed.map(Value::Object),
            Ok(
                json!({"name": "Ann", "created_at": "2026-01-01T00:00:00.000000Z", "plan": {"tier": 1}})
            )
        );
    }

    #[test]
    fn a_timezone_must_be_a_tz_database_name() {
        let fine = RecipientProperties::parse_user(map(json!({"timezone": "Europe/Paris"})));
        assert!(fine.is_ok(), "{fine:?}");
        assert!(RecipientProperties::parse_user(map(json!({"timezone": null}))).is_ok());
        let errors = RecipientProperties::parse_object(map(json!({"timezone": "Mars/Olympus"})))
            .err()
            .unwrap_or_default();
        assert_eq!(
            errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["timezone"]
        );
    }

    #[test]
    fn an_inline_objects_collection_is_not_a_property() {
        let parsed = RecipientProperties::parse_object(map(
            json!({"id": "p1", "collection": "projects", "name": "P"}),
        ))
        .map(RecipientProperties::into_map);
        assert_eq!(parsed.map(Value::Object), Ok(json!({"name": "P"})));
    }

    #[test]
    fn wrong_types_are_reported_per_field() {
        let errors = RecipientProperties::parse_user(map(json!({
            "email": 5, "created_at": "yesterday", "preferences": [], "channel_data": {"c": 1}
        })))
        .err()
        .unwrap_or_default();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["email", "created_at", "preferences", "channel_data.c"]
        );
    }

    #[test]
    fn custom_properties_over_256_kb_are_rejected() {
        let big = "x".repeat(MAX_CUSTOM_PROPERTIES_BYTES);
        assert!(RecipientProperties::parse_object(map(json!({"blob": big}))).is_err());
        let fits = "x".repeat(1000);
        assert!(RecipientProperties::parse_object(map(json!({"blob": fits}))).is_ok());
    }

    #[test]
    fn tenant_settings_must_be_objects() {
        assert!(RecipientProperties::parse_tenant(map(json!({"settings": 1}))).is_err());
        assert!(
            RecipientProperties::parse_tenant(map(json!({"settings": {"branding": 1}}))).is_err()
        );
        assert!(
            RecipientProperties::parse_tenant(map(
                json!({"settings": {"branding": {"primary_color": "#fff"}}})
            ))
            .is_ok()
        );
    }

    #[test]
    fn inline_preference_sets_must_be_valid_sets() {
        let errors = RecipientProperties::parse_user(map(
            json!({"preferences": {"default": {"channel_types": 5}}}),
        ))
        .err()
        .unwrap_or_default();
        assert_eq!(
            errors.first().map(|e| e.field.as_str()),
            Some("preferences.default.channel_types")
        );
        assert!(
            RecipientProperties::parse_tenant(map(
                json!({"settings": {"preference_set": {"bogus": true}}})
            ))
            .is_err()
        );
    }

    #[test]
    fn preference_set_ids_follow_id_rules() {
        assert!(RecipientProperties::parse_user(map(json!({"preferences": {"a/b": {}}}))).is_err());
        assert!(
            RecipientProperties::parse_user(map(json!({"preferences": {"default": {}}}))).is_ok()
        );
    }
}
