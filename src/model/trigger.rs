//! The trigger request (`POST /v1/workflows/{key}/trigger`, spec §3.1) parsed into a
//! [`Trigger`], reporting every invalid field at once.
//!
//! Invariants: at most [`MAX_RECIPIENTS`] recipients, deduplicated by reference (first
//! occurrence keeps its place); every id is valid (§1.2); `data` is an object.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{EntityId, RecipientRef};
use crate::model::field_error::FieldError;

/// Knock's limit per trigger (spec §9).
pub const MAX_RECIPIENTS: usize = 1000;
/// Longest accepted `cancellation_key`.
pub const MAX_CANCELLATION_KEY: usize = 255;

/// A recipient or actor as the trigger named it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipientInput {
    pub reference: RecipientRef,
    /// Properties to upsert before the run (inline identify), if given inline.
    pub inline: Option<Map<String, Value>>,
    /// `$trigger_data`: merged over `data` for this recipient only.
    pub trigger_data: Option<Map<String, Value>>,
}

/// The trigger's tenant: an id, plus properties to upsert when given inline.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantInput {
    pub id: String,
    pub inline: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub recipients: Vec<RecipientInput>,
    pub actor: Option<RecipientInput>,
    pub data: Map<String, Value>,
    pub tenant: Option<TenantInput>,
    pub cancellation_key: Option<String>,
    /// `settings.skip_delay`: delay steps pass at once (a testing aid).
    pub skip_delay: bool,
}

impl Trigger {
    /// Parses a trigger body.
    pub fn parse(body: &Value) -> Result<Trigger, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError::new("body", "must be a JSON object")]);
        };
        let recipients = match obj.get("recipients") {
            Some(Value::Array(list)) if list.len() > MAX_RECIPIENTS => {
                errors.push(FieldError::new(
                    "recipients",
                    format!(
                        "may hold at most {MAX_RECIPIENTS} recipients (got {}); use object subscriptions for more",
                        list.len()
                    ),
                ));
                Vec::new()
            }
            Some(Value::Array(list)) => {
                let mut out: Vec<RecipientInput> = Vec::with_capacity(list.len());
                let mut seen: HashMap<RecipientRef, usize> = HashMap::with_capacity(list.len());
                for (i, item) in list.iter().enumerate() {
                    let Some(r) = parse_recipient(item, &format!("recipients[{i}]"), &mut errors)
                    else {
                        continue;
                    };
                    match seen.get(&r.reference) {
                        Some(&at) => merge_duplicate(&mut out[at], r),
                        None => {
                            seen.insert(r.reference.clone(), out.len());
                            out.push(r);
                        }
                    }
                }
                out
            }
            None | Some(Value::Null) => {
                errors.push(FieldError::new("recipients", "is required"));
                Vec::new()
            }
            Some(_) => {
                errors.push(FieldError::new(
                    "recipients",
                    "must be an array of user ids, object references or inline recipients",
                ));
                Vec::new()
            }
        };
        let actor = match obj.get("actor") {
            None | Some(Value::Null) => None,
            Some(a) => parse_recipient(a, "actor", &mut errors),
        };
        if actor.as_ref().is_some_and(|a| a.trigger_data.is_some()) {
            errors.push(FieldError::new(
                "actor.$trigger_data",
                "is only allowed on recipients",
            ));
        }
        let data = match obj.get("data") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(d)) => d.clone(),
            Some(_) => {
                errors.push(FieldError::new("data", "must be an object"));
                Map::new()
            }
        };
        let tenant = match obj.get("tenant") {
            None | Some(Value::Null) => None,
            Some(t) => parse_tenant(t, &mut errors),
        };
        let cancellation_key = match obj.get("cancellation_key") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_CANCELLATION_KEY => {
                Some(k.clone())
            }
            Some(_) => {
                errors.push(FieldError::new(
                    "cancellation_key",
                    format!("must be a string of 1 to {MAX_CANCELLATION_KEY} characters"),
                ));
                None
            }
        };
        let skip_delay = match obj.get("settings") {
            None | Some(Value::Null) => false,
            Some(Value::Object(s)) => match s.get("skip_delay") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    errors.push(FieldError::new("settings.skip_delay", "must be a boolean"));
                    false
                }
            },
            Some(_) => {
                errors.push(FieldError::new("settings", "must be an object"));
                false
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Trigger {
            recipients,
            actor,
            data,
            tenant,
            cancellation_key,
            skip_delay,
        })
    }
}

/// The same recipient listed twice: later inline properties and trigger data merge over
/// earlier ones (what sequential identify calls would do).
fn merge_duplicate(existing: &mut RecipientInput, later: RecipientInput) {
    if let Some(props) = later.inline {
        existing.inline.get_or_insert_with(Map::new).extend(props);
    }
    if let Some(td) = later.trigger_data {
        existing
            .trigger_data
            .get_or_insert_with(Map::new)
            .extend(td);
    }
}

fn parse_id(v: Option<&Value>, at: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match v {
        Some(Value::String(id)) => match EntityId::parse(id) {
            Ok(id) => Some(id.into_string()),
            Err(m) => {
                errors.push(FieldError::new(format!("{at}.id"), m));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(format!("{at}.id"), "must be a string"));
            None
        }
        None => {
            errors.push(FieldError::new(format!("{at}.id"), "is required"));
            None
        }
    }
}

/// A string (user id), `{id, collection}` (object reference), or an inline user/object.
pub(crate) fn parse_recipient(
    v: &Value,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Option<RecipientInput> {
    match v {
        Value::String(id) => match EntityId::parse(id) {
            Ok(id) => Some(RecipientInput {
                reference: RecipientRef::User(id.into_string()),
                inline: None,
                trigger_data: None,
            }),
            Err(m) => {
                errors.push(FieldError::new(at, m));
                None
            }
        },
        Value::Object(map) => {
            let before = errors.len();
            let id = parse_id(map.get("id"), at, errors);
            let trigger_data = match map.get("$trigger_data") {
                None | Some(Value::Null) => None,
                Some(Value::Object(td)) => Some(td.clone()),
                Some(_) => {
                    errors.push(FieldError::new(
                        format!("{at}.$trigger_data"),
                        "must be an object",
                    ));
                    None
                }
            };
            let mut props: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "id" | "collection" | "$trigger_data"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let reference = match map.get("collection") {
                None | Some(Value::Null) => id.map(RecipientRef::User),
                Some(Value::String(c)) => match super::CollectionName::parse(c) {
                    Ok(c) => id.and_then(|id| match EntityId::parse_safe(&id) {
                        Ok(_) => Some(RecipientRef::Object {
                            id,
                            collection: c.as_str().to_owned(),
                        }),
                        Err(m) => {
                            errors.push(FieldError::new(format!("{at}.id"), m));
                            None
                        }
                    }),
                    Err(m) => {
                        errors.push(FieldError::new(format!("{at}.collection"), m));
                        None
                    }
                },
                Some(_) => {
                    errors.push(FieldError::new(
                        format!("{at}.collection"),
                        "must be a string",
                    ));
                    None
                }
            };
            if errors.len() > before {
                return None;
            }
            let reference = reference?;
            // `{id, collection}` alone is a plain reference; an object without a
            // collection is always an inline user (identify with what it carries).
            let inline = match &reference {
                RecipientRef::Object { .. } if props.is_empty() => None,
                _ => Some(std::mem::take(&mut props)),
            };
            Some(RecipientInput {
                reference,
                inline,
                trigger_data,
            })
        }
        _ => {
            errors.push(FieldError::new(
                at,
                "must be a user id string, an `{id, collection}` reference or an inline recipient object",
            ));
            None
        }
    }
}

pub(crate) fn parse_tenant(v: &Value, errors: &mut Vec<FieldError>) -> Option<TenantInput> {
    match v {
        Value::String(id) => match EntityId::parse_safe(id) {
            Ok(id) => Some(TenantInput {
                id: id.into_string(),
                inline: None,
            }),
            Err(m) => {
                errors.push(FieldError::new("tenant", m));
                None
            }
        },
        Value::Object(map) => {
            let id = parse_id(map.get("id"), "tenant", errors)?;
            if let Err(m) = EntityId::parse_safe(&id) {
                errors.push(FieldError::new("tenant.id", m));
                return None;
            }
            let props = map
                .iter()
                .filter(|(k, _)| k.as_str() != "id")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Some(TenantInput {
                id,
                inline: Some(props),
            })
        }
        _ => {
            errors.push(FieldError::new(
                "tenant",
                "must be a tenant id string or a tenant object with `id`",
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn all_three_recipient_forms_parse_and_duplicates_merge() {
        let t = Trigger::parse(&json!({
            "recipients": ["u1", {"id": "u2", "name": "Ann", "$trigger_data": {"x": 1}},
                           {"id": "p1", "collection": "projects"},
                           {"id": "p2", "collection": "projects", "name": "P2"}, "u1"],
            "actor": {"id": "a1", "name": "Al"},
            "tenant": "acme",
            "data": {"k": "v"},
            "cancellation_key": "c1"
        }))
        .expect("parses");
        assert_eq!(t.recipients.len(), 4);
        assert_eq!(t.recipients[0].inline, None);
        assert_eq!(
            t.recipients[1].inline.as_ref().and_then(|m| m.get("name")),
            Some(&json!("Ann"))
        );
        assert_eq!(
            t.recipients[1].trigger_data,
            json!({"x": 1}).as_object().cloned()
        );
        assert_eq!(t.recipients[2].inline, None);
        assert!(t.recipients[3].inline.is_some());
        assert_eq!(t.actor.as_ref().map(|a| a.reference.id()), Some("a1"));
        assert_eq!(t.tenant.as_ref().map(|t| t.id.as_str()), Some("acme"));
    }

    #[test]
    fn invalid_fields_are_all_reported() {
        let errors = Trigger::parse(&json!({
            "recipients": ["ok", 5, {"name": "no id"}, "bad/id", {"id": "x", "collection": "bad name"}],
            "data": [1], "tenant": 3, "cancellation_key": "", "actor": true
        }))
        .expect_err("invalid");
        assert_eq!(
            fields(&errors),
            [
                "recipients[1]",
                "recipients[2].id",
                "recipients[3]",
                "recipients[4].collection",
                "actor",
                "data",
                "tenant",
                "cancellation_key"
            ]
        );
    }

    #[test]
    fn recipients_are_required_and_capped() {
        let errors = Trigger::parse(&json!({})).expect_err("missing");
        assert_eq!(fields(&errors), ["recipients"]);
        let many: Vec<String> = (0..=MAX_RECIPIENTS).map(|i| format!("u{i}")).collect();
        let errors = Trigger::parse(&json!({"recipients": many})).expect_err("too many");
        assert_eq!(fields(&errors), ["recipients"]);
        let ok: Vec<String> = (0..MAX_RECIPIENTS).map(|i| format!("u{i}")).collect();
        assert!(Trigger::parse(&json!({"recipients": ok})).is_ok());
    }
}
