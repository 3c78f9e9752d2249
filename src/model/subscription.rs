//! Subscription requests (spec §4.3) parsed at the edge: who subscribes to an object (inline
//! identification allowed), with which `properties`, and the bulk variants.
//!
//! Invariants: at most [`MAX_SUBSCRIBERS_PER_CALL`] subscribers per object per call,
//! deduplicated by reference (inline properties of repeats merge, as sequential identify
//! calls would); inline properties passed the identify rules; every id is valid. Rules that
//! need the database (the object exists, a subscriber is not the object itself, no cycle)
//! are checked by `store::recipients::subscriptions` inside the write.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::properties::RecipientKind;
use super::trigger::parse_recipient;
use super::{EntityId, RecipientProperties, RecipientRef};
use crate::model::field_error::FieldError;

/// Knock's limit on recipients per add/remove call (spec §9).
pub const MAX_SUBSCRIBERS_PER_CALL: usize = 100;
/// Most objects one bulk add/delete call may name.
pub const MAX_BULK_GROUPS: usize = 1000;
/// Most subscriptions one bulk call may add or delete in total (one write transaction).
pub const MAX_BULK_SUBSCRIPTIONS: usize = 10_000;

/// One subscriber: a reference, plus validated properties when it was given inline.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscriber {
    pub reference: RecipientRef,
    /// Properties to upsert before subscribing (inline identification).
    pub inline: Option<Map<String, Value>>,
}

/// `POST /v1/objects/{c}/{id}/subscriptions`, or one group of a bulk add.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeRequest {
    pub subscribers: Vec<Subscriber>,
    /// The subscription's custom properties (`recipient.subscription` in templates).
    pub properties: Option<Map<String, Value>>,
}

/// One group of a bulk call: the object id (in the path's collection) and its request.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkGroup<T> {
    pub object_id: String,
    pub request: T,
}

fn object_of<'a>(body: &'a Value, at: &str) -> Result<&'a Map<String, Value>, Vec<FieldError>> {
    body.as_object().ok_or_else(|| {
        vec![FieldError::new(
            if at.is_empty() { "body" } else { at },
            "must be a JSON object",
        )]
    })
}

fn field(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

/// The `recipients` array of a body: present, an array, within the per-call limit.
fn recipients_array<'a>(
    obj: &'a Map<String, Value>,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a Vec<Value>> {
    let name = field(at, "recipients");
    match obj.get("recipients") {
        Some(Value::Array(list)) if list.is_empty() => {
            errors.push(FieldError::new(name, "must name at least one recipient"));
            None
        }
        Some(Value::Array(list)) if list.len() > MAX_SUBSCRIBERS_PER_CALL => {
            errors.push(FieldError::new(
                name,
                format!(
                    "may hold at most {MAX_SUBSCRIBERS_PER_CALL} recipients per call (got {})",
                    list.len()
                ),
            ));
            None
        }
        Some(Value::Array(list)) => Some(list),
        None | Some(Value::Null) => {
            errors.push(FieldError::new(name, "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(
                name,
                "must be an array of user ids, object references or inline recipients",
            ));
            None
        }
    }
}

impl SubscribeRequest {
    /// Parses `{recipients, properties?}`; `at` prefixes field names (bulk groups).
    pub fn parse(body: &Value, at: &str) -> Result<Self, Vec<FieldError>> {
        let obj = object_of(body, at)?;
        let mut errors = Vec::new();
        let mut subscribers: Vec<Subscriber> = Vec::new();
        if let Some(list) = recipients_array(obj, at, &mut errors) {
            let mut seen: HashMap<RecipientRef, usize> = HashMap::new();
            for (i, item) in list.iter().enumerate() {
                let here = format!("{}[{i}]", field(at, "recipients"));
                let Some(input) = parse_recipient(item, &here, &mut errors) else {
                    continue;
                };
                let inline = match input.inline {
                    None => None,
                    Some(props) => match parse_inline(&input.reference, props) {
                        Ok(p) => Some(p),
                        Err(problems) => {
                            errors.extend(problems.into_iter().map(|p| {
                                FieldError::new(format!("{here}.{}", p.field), p.message)
                            }));
                            continue;
                        }
                    },
                };
                match seen.get(&input.reference) {
                    Some(&at) => {
                        if let Some(props) = inline {
                            subscribers[at]
                                .inline
                                .get_or_insert_with(Map::new)
                                .extend(props);
                        }
                    }
                    None => {
                        seen.insert(input.reference.clone(), subscribers.len());
                        subscribers.push(Subscriber {
                            reference: input.reference,
                            inline,
                        });
                    }
                }
            }
        }
        let properties = match obj.get("properties") {
            None | Some(Value::Null) => None,
            Some(Value::Object(p)) => Some(p.clone()),
            Some(_) => {
                errors.push(FieldError::new(
                    field(at, "properties"),
                    "must be an object or null",
                ));
                None
            }
        };
        if errors.is_empty() {
            Ok(SubscribeRequest {
                subscribers,
                properties,
            })
        } else {
            Err(errors)
        }
    }
}

fn parse_inline(
    reference: &RecipientRef,
    props: Map<String, Value>,
) -> Result<Map<String, Value>, Vec<super::PropertyError>> {
    let kind = match reference {
        RecipientRef::User(_) => RecipientKind::User,
        RecipientRef::Object { .. } => RecipientKind::Object,
    };
    RecipientProperties::parse(kind, props).map(RecipientProperties::into_map)
}

/// `DELETE /v1/objects/{c}/{id}/subscriptions` (or one bulk-delete group): the references
/// to unsubscribe, deduplicated.
pub fn parse_references(body: &Value, at: &str) -> Result<Vec<RecipientRef>, Vec<FieldError>> {
    let obj = object_of(body, at)?;
    let mut errors = Vec::new();
    let mut refs: Vec<RecipientRef> = Vec::new();
    if let Some(list) = recipients_array(obj, at, &mut errors) {
        for (i, item) in list.iter().enumerate() {
            match RecipientRef::parse(item) {
                Ok(r) if !refs.contains(&r) => refs.push(r),
                Ok(_) => {}
                Err(m) => errors.push(FieldError::new(
                    format!("{}[{i}]", field(at, "recipients")),
                    m,
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(refs)
    } else {
        Err(errors)
    }
}

/// A bulk body `{subscriptions: [{id, recipients, properties?}]}`, each group parsed by
/// `group`; enforces the group and total limits before anything else.
pub fn parse_bulk<T>(
    body: &Value,
    group: impl Fn(&Value, &str) -> Result<T, Vec<FieldError>>,
    size: impl Fn(&T) -> usize,
) -> Result<Vec<BulkGroup<T>>, Vec<FieldError>> {
    let obj = object_of(body, "")?;
    let list = match obj.get("subscriptions") {
        Some(Value::Array(list)) if list.len() > MAX_BULK_GROUPS => {
            return Err(vec![FieldError::new(
                "subscriptions",
                format!(
                    "may hold at most {MAX_BULK_GROUPS} objects per call (got {})",
                    list.len()
                ),
            )]);
        }
        Some(Value::Array(list)) => list,
        None | Some(Value::Null) => {
            return Err(vec![FieldError::new("subscriptions", "is required")]);
        }
        Some(_) => {
            return Err(vec![FieldError::new(
                "subscriptions",
                "must be an array of {id, recipients} groups",
            )]);
        }
    };
    let mut errors = Vec::new();
    let mut groups = Vec::with_capacity(list.len());
    let mut total = 0usize;
    for (i, item) in list.iter().enumerate() {
        let at = format!("subscriptions[{i}]");
        let object_id = match item.get("id") {
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
        };
        match group(item, &at) {
            Ok(request) => {
                total += size(&request);
                if let Some(object_id) = object_id {
                    groups.push(BulkGroup { object_id, request });
                }
            }
            Err(problems) => errors.extend(problems),
        }
    }
    if total > MAX_BULK_SUBSCRIPTIONS {
        errors.push(FieldError::new(
            "subscriptions",
            format!(
                "may hold at most {MAX_BULK_SUBSCRIPTIONS} recipients in total per call (got {total})"
            ),
        ));
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn subscribers_are_user_ids_references_or_inline_and_repeats_merge() {
        let body = json!({
            "recipients": ["u1", {"id": "p2", "collection": "projects"},
                           {"id": "u1", "name": "Ann"}, {"id": "u3", "email": "c@x.io"}],
            "properties": {"role": "admin"}
        });
        let request = SubscribeRequest::parse(&body, "").unwrap();
        let refs: Vec<_> = request
            .subscribers
            .iter()
            .map(|s| s.reference.clone())
            .collect();
        assert_eq!(
            refs,
            vec![
                RecipientRef::User("u1".into()),
                RecipientRef::Object {
                    id: "p2".into(),
                    collection: "projects".into()
                },
                RecipientRef::User("u3".into()),
            ]
        );
        assert_eq!(
            request.subscribers[0].inline,
            Some(json!({"name": "Ann"}).as_object().unwrap().clone())
        );
        assert_eq!(request.subscribers[1].inline, None);
        assert_eq!(request.properties.unwrap()["role"], "admin");
    }

    #[test]
    fn over_100_recipients_or_bad_items_name_their_field() {
        let many: Vec<Value> = (0..101).map(|i| json!(format!("u{i}"))).collect();
        let err = SubscribeRequest::parse(&json!({"recipients": many}), "").unwrap_err();
        assert_eq!(fields(err), vec!["recipients"]);
        let err = SubscribeRequest::parse(
            &json!({"recipients": ["ok", "a/b", {"id": 3}, {"id": "u", "email": 5}], "properties": 1}),
            "",
        )
        .unwrap_err();
        assert_eq!(
            fields(err),
            vec![
                "recipients[1]",
                "recipients[2].id",
                "recipients[3].email",
                "properties"
            ]
        );
        assert!(SubscribeRequest::parse(&json!({"recipients": []}), "").is_err());
        assert!(SubscribeRequest::parse(&json!({}), "").is_err());
        assert!(SubscribeRequest::parse(&json!([]), "").is_err());
    }

    #[test]
    fn bulk_groups_are_limited_and_errors_carry_the_group_index() {
        let body = json!({"subscriptions": [
            {"id": "p1", "recipients": ["u1"]},
            {"id": "p/2", "recipients": ["u1"]},
            {"id": "p3", "recipients": "u1"},
        ]});
        let err = parse_bulk(&body, SubscribeRequest::parse, |r| r.subscribers.len()).unwrap_err();
        assert_eq!(
            fields(err),
            vec!["subscriptions[1].id", "subscriptions[2].recipients"]
        );
        let groups: Vec<Value> = (0..101)
            .map(|g| {
                let rs: Vec<Value> = (0..100).map(|i| json!(format!("u{i}"))).collect();
                json!({"id": format!("p{g}"), "recipients": rs})
            })
            .collect();
        let err = parse_bulk(
            &json!({"subscriptions": groups}),
            SubscribeRequest::parse,
            |r| r.subscribers.len(),
        )
        .unwrap_err();
        assert_eq!(fields(err), vec!["subscriptions"]);
        let refs = parse_references(
            &json!({"recipients": ["u1", "u1", {"id": "p", "collection": "c"}]}),
            "",
        )
        .unwrap();
        assert_eq!(refs.len(), 2);
    }
}
