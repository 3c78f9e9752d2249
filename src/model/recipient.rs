//! Recipient references: a user id or an `{id, collection}` object reference.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{CollectionName, EntityId};

/// Who a message is for, or who acted. Serialized the way Knock's messages API shows a
/// recipient: a bare string for a user, `{id, collection}` for an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecipientRef {
    User(String),
    Object { id: String, collection: String },
}

impl RecipientRef {
    /// Parses a reference (string or `{id, collection}`), validating ids.
    pub fn parse(value: &Value) -> Result<Self, String> {
        match value {
            Value::String(id) => Ok(RecipientRef::User(EntityId::parse(id)?.into_string())),
            Value::Object(map) => {
                let id = match map.get("id") {
                    Some(Value::String(id)) => EntityId::parse(id)?.into_string(),
                    Some(_) => return Err("`id` must be a string".into()),
                    None => return Err("`id` is required".into()),
                };
                match map.get("collection") {
                    None | Some(Value::Null) => Ok(RecipientRef::User(id)),
                    Some(Value::String(c)) => Ok(RecipientRef::Object {
                        id: EntityId::parse_safe(&id)?.into_string(),
                        collection: CollectionName::parse(c)?.as_str().to_owned(),
                    }),
                    Some(_) => Err("`collection` must be a string".into()),
                }
            }
            _ => Err("must be a user id string or an object with `id`".into()),
        }
    }

    /// `'user'` or `'object'`, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            RecipientRef::User(_) => "user",
            RecipientRef::Object { .. } => "object",
        }
    }

    /// The collection, `""` for users (the stored form).
    pub fn collection(&self) -> &str {
        match self {
            RecipientRef::User(_) => "",
            RecipientRef::Object { collection, .. } => collection,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            RecipientRef::User(id) | RecipientRef::Object { id, .. } => id,
        }
    }

    /// Rebuilds a reference from its stored columns.
    pub fn from_stored(kind: &str, collection: &str, id: &str) -> Self {
        if kind == "object" {
            RecipientRef::Object {
                id: id.to_owned(),
                collection: collection.to_owned(),
            }
        } else {
            RecipientRef::User(id.to_owned())
        }
    }

    /// The wire form used in messages (`"id"` or `{id, collection}`).
    pub fn to_wire(&self) -> Value {
        match self {
            RecipientRef::User(id) => json!(id),
            RecipientRef::Object { id, collection } => json!({"id": id, "collection": collection}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_users_and_collections_make_objects() {
        assert_eq!(
            RecipientRef::parse(&json!("u1")),
            Ok(RecipientRef::User("u1".into()))
        );
        assert_eq!(
            RecipientRef::parse(&json!({"id": "p1", "collection": "projects"})),
            Ok(RecipientRef::Object {
                id: "p1".into(),
                collection: "projects".into()
            })
        );
        assert_eq!(
            RecipientRef::parse(&json!({"id": "u2", "name": "x"})),
            Ok(RecipientRef::User("u2".into()))
        );
        assert!(RecipientRef::parse(&json!(5)).is_err());
        assert!(RecipientRef::parse(&json!({"id": 5})).is_err());
        assert!(RecipientRef::parse(&json!("a/b")).is_err());
    }
}
