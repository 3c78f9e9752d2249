//! Knock's property merge: a deep merge where objects merge key by key and every other
//! value (including `null` and arrays) replaces what was there; plus the size check on
//! the merged result and splitting a body into its parts. Pure functions, no I/O.

use serde_json::{Map, Value};

use crate::model::properties::MAX_CUSTOM_PROPERTIES_BYTES;
use crate::store::{StoreError, StoreResult};

/// Merges `patch` into `target` in place. Nested objects merge recursively; anything else
/// in `patch` (scalars, arrays, `null`) overwrites. Keys absent from `patch` are kept, so a
/// key can never be removed, only set to `null` (Knock's identify semantics).
pub fn deep_merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match (target.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(incoming)) => {
                deep_merge(existing, incoming);
            }
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Bytes `map` takes as JSON: what the 256 kB custom-property limit measures.
pub fn json_size(map: &Map<String, Value>) -> usize {
    serde_json::to_string(map).map_or(usize::MAX, |s| s.len())
}

/// Splits a body into (custom properties, preferences, channel_data).
pub(super) fn split(
    props: &Map<String, Value>,
) -> (Map<String, Value>, Option<&Value>, Option<&Value>) {
    let custom = props
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "preferences" | "channel_data"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (custom, props.get("preferences"), props.get("channel_data"))
}

/// Merges `patch` into `stored`, refusing a result over the size limit.
pub(super) fn merged(
    stored: Option<Map<String, Value>>,
    patch: &Map<String, Value>,
) -> StoreResult<Map<String, Value>> {
    let mut merged = stored.unwrap_or_default();
    deep_merge(&mut merged, patch);
    if json_size(&merged) > MAX_CUSTOM_PROPERTIES_BYTES {
        return Err(StoreError::Invalid {
            field: "properties".into(),
            message: format!(
                "custom properties would total more than {MAX_CUSTOM_PROPERTIES_BYTES} bytes after merging"
            ),
        });
    }
    Ok(merged)
}

/// Parses a stored `properties` column.
pub(super) fn parse_props(text: &str) -> StoreResult<Map<String, Value>> {
    Ok(serde_json::from_str(text)?)
}

/// A stored `(properties, updated_at)` row with its properties parsed.
pub(super) fn parse_stored(
    (props, updated_at): (String, String),
) -> StoreResult<(Map<String, Value>, String)> {
    Ok((parse_props(&props)?, updated_at))
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
    fn nested_objects_merge_key_by_key() {
        let mut target = map(json!({"a": 1, "nested": {"x": 1, "y": {"deep": true}}}));
        deep_merge(
            &mut target,
            &map(json!({"nested": {"y": {"other": 2}, "z": 3}})),
        );
        assert_eq!(
            Value::Object(target),
            json!({"a": 1, "nested": {"x": 1, "y": {"deep": true, "other": 2}, "z": 3}})
        );
    }

    #[test]
    fn null_sets_null_and_never_removes_the_key() {
        let mut target = map(json!({"name": "Ann", "plan": {"tier": "pro"}}));
        deep_merge(&mut target, &map(json!({"name": null, "plan": null})));
        assert_eq!(Value::Object(target), json!({"name": null, "plan": null}));
    }

    #[test]
    fn arrays_and_scalars_replace_rather_than_merge() {
        let mut target = map(json!({"tags": [1, 2], "n": {"a": 1}}));
        deep_merge(&mut target, &map(json!({"tags": [3], "n": 5})));
        assert_eq!(Value::Object(target), json!({"tags": [3], "n": 5}));
    }

    #[test]
    fn an_object_replaces_a_scalar() {
        let mut target = map(json!({"n": 5}));
        deep_merge(&mut target, &map(json!({"n": {"a": 1}})));
        assert_eq!(Value::Object(target), json!({"n": {"a": 1}}));
    }

    #[test]
    fn an_empty_patch_changes_nothing() {
        let mut target = map(json!({"a": {"b": 1}}));
        deep_merge(&mut target, &Map::new());
        assert_eq!(Value::Object(target), json!({"a": {"b": 1}}));
    }

    #[test]
    fn json_size_counts_serialized_bytes() {
        assert_eq!(json_size(&map(json!({"a": 1}))), r#"{"a":1}"#.len());
    }
}
