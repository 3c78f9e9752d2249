//! Stored users, objects and tenants as the store returns them ([`Entity`]), and their
//! Knock wire shapes (spec §4.1, §4.2, §4.4). The store keeps only client-settable
//! properties; the wire shape (`__typename`, `id`, `updated_at`, standard fields) is
//! rebuilt here on every read, so `store/` never speaks Knock's JSON.

use serde_json::{Map, Value, json};

use super::recipient::RecipientRef;

/// Which stored thing an [`Entity`] is, with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityKey {
    User(String),
    Object { collection: String, id: String },
    Tenant(String),
}

/// A stored user, object or tenant: its merged custom properties and when they last
/// changed; with its preference sets when a listing asked for them.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub key: EntityKey,
    /// Client-settable properties as stored (see `model::properties`).
    pub properties: Map<String, Value>,
    pub updated_at: String,
    /// `(set_id, body)` of each preference set, when `include_preferences` asked for them.
    pub preferences: Option<Vec<(String, Map<String, Value>)>>,
}

/// Standard fields every `User` shows, `null` when unset.
const USER_STANDARD: &[&str] = &[
    "name",
    "email",
    "phone_number",
    "avatar",
    "timezone",
    "created_at",
];

impl Entity {
    /// An entity without preference sets.
    pub fn new(key: EntityKey, properties: Map<String, Value>, updated_at: String) -> Self {
        Entity {
            key,
            properties,
            updated_at,
            preferences: None,
        }
    }

    /// The Knock wire shape: `User`, `Object` or `Tenant`, plus `preferences:
    /// {set_id: PreferenceSet}` when the sets were loaded.
    pub fn into_wire(self) -> Value {
        let mut out = match self.key {
            EntityKey::User(id) => user_wire(&id, self.properties, self.updated_at),
            EntityKey::Object { collection, id } => {
                object_wire(&collection, &id, self.properties, self.updated_at)
            }
            EntityKey::Tenant(id) => tenant_wire(&id, self.properties, self.updated_at),
        };
        if let Some(sets) = self.preferences {
            out["preferences"] = preference_map(sets);
        }
        out
    }
}

/// `{set_id: PreferenceSet}` of a recipient's preference sets.
pub fn preference_map(sets: Vec<(String, Map<String, Value>)>) -> Value {
    Value::Object(
        sets.into_iter()
            .map(|(set_id, body)| {
                let wire = super::preferences::to_wire(&set_id, &Value::Object(body));
                (set_id, wire)
            })
            .collect(),
    )
}

/// The wire shape of a recipient that may not exist (any more): the full one when it
/// does, else [`minimal`].
pub fn recipient_or_minimal(r: &RecipientRef, found: Option<Entity>) -> Value {
    found.map(Entity::into_wire).unwrap_or_else(|| minimal(r))
}

/// The stand-in for a recipient that does not exist (any more): `{__typename, id[,
/// collection]}`, so an item never loses an actor because it was deleted.
pub fn minimal(r: &RecipientRef) -> Value {
    match r {
        RecipientRef::User(id) => json!({"__typename": "User", "id": id}),
        RecipientRef::Object { id, collection } => {
            json!({"__typename": "Object", "id": id, "collection": collection})
        }
    }
}

/// An object named by `(collection, id)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub collection: String,
    pub id: String,
}

impl ObjectKey {
    pub fn new(collection: impl Into<String>, id: impl Into<String>) -> Self {
        ObjectKey {
            collection: collection.into(),
            id: id.into(),
        }
    }

    /// The object as a recipient reference.
    pub fn as_ref(&self) -> RecipientRef {
        RecipientRef::Object {
            id: self.id.clone(),
            collection: self.collection.clone(),
        }
    }
}

/// Which side of the subscriptions a listing shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Listed {
    /// The subscribers of this object (`mode=object`), optionally only these recipients.
    SubscribersOf(ObjectKey, Vec<RecipientRef>),
    /// What this recipient follows (`mode=recipient`, and `/v1/users/{id}/subscriptions`),
    /// optionally only these objects.
    FollowedBy(RecipientRef, Vec<ObjectKey>),
}

/// Optional exact-match filters of `GET /v1/tenants`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantFilter {
    pub tenant_id: Option<String>,
    pub name: Option<String>,
}

/// One subscription (spec §4.3) as stored, with the object and recipient it joins (each
/// `None` when deleted meanwhile: it then shows minimally).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub object_ref: RecipientRef,
    pub object: Option<Entity>,
    pub recipient_ref: RecipientRef,
    pub recipient: Option<Entity>,
    /// The recipient's preference sets, when a listing asked for them.
    pub recipient_preferences: Option<Vec<(String, Map<String, Value>)>>,
    /// The subscription's own custom properties (`null` when none were given).
    pub properties: Value,
    pub inserted_at: String,
    pub updated_at: String,
}

impl Subscription {
    /// The `Subscription` wire shape.
    pub fn into_wire(self) -> Value {
        let object = recipient_or_minimal(&self.object_ref, self.object);
        let mut recipient = recipient_or_minimal(&self.recipient_ref, self.recipient);
        if let Some(sets) = self.recipient_preferences {
            recipient["preferences"] = preference_map(sets);
        }
        json!({
            "__typename": "Subscription",
            "object": object,
            "recipient": recipient,
            "properties": self.properties,
            "inserted_at": self.inserted_at,
            "updated_at": self.updated_at,
        })
    }
}

/// Users: stored properties are flattened into the `User` shape (spec §4.1).
fn user_wire(id: &str, props: Map<String, Value>, updated_at: String) -> Value {
    let mut out = Map::new();
    for field in USER_STANDARD {
        out.insert((*field).to_owned(), Value::Null);
    }
    out.extend(props);
    out.insert("__typename".into(), json!("User"));
    out.insert("id".into(), json!(id));
    out.insert("updated_at".into(), json!(updated_at));
    Value::Object(out)
}

/// Objects: custom properties nest under `properties` (spec §4.2); `created_at`, when the
/// client set it, is shown at the top level.
fn object_wire(
    collection: &str,
    id: &str,
    mut props: Map<String, Value>,
    updated_at: String,
) -> Value {
    let created_at = props.remove("created_at").unwrap_or(Value::Null);
    json!({
        "__typename": "Object",
        "id": id,
        "collection": collection,
        "properties": props,
        "created_at": created_at,
        "updated_at": updated_at,
    })
}

/// Tenants (spec §4.4): `name`, `settings: {branding, preference_set}` and flattened
/// custom properties.
fn tenant_wire(id: &str, mut props: Map<String, Value>, updated_at: String) -> Value {
    let mut settings = match props.remove("settings") {
        Some(Value::Object(s)) => s,
        _ => Map::new(),
    };
    let branding = settings.remove("branding").unwrap_or(Value::Null);
    let preference_set = match settings.remove("preference_set") {
        Some(Value::Object(mut set)) => {
            set.insert("id".into(), json!("default"));
            Value::Object(set)
        }
        _ => Value::Null,
    };
    settings.insert("branding".into(), branding);
    settings.insert("preference_set".into(), preference_set);
    let mut out = Map::new();
    out.insert("name".into(), Value::Null);
    out.insert("created_at".into(), Value::Null);
    out.extend(props);
    out.insert("__typename".into(), json!("Tenant"));
    out.insert("id".into(), json!(id));
    out.insert("settings".into(), Value::Object(settings));
    out.insert("updated_at".into(), json!(updated_at));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_shows_every_standard_field_and_its_own_keys() {
        let props = Map::from_iter([("name".to_owned(), json!("Ada"))]);
        let wire = Entity::new(EntityKey::User("u1".into()), props, "t".into()).into_wire();
        assert_eq!(wire["__typename"], "User");
        assert_eq!(wire["name"], "Ada");
        assert_eq!(wire["email"], Value::Null);
        assert_eq!(wire["updated_at"], "t");
    }

    #[test]
    fn an_object_nests_its_properties_but_shows_created_at_on_top() {
        let props = Map::from_iter([
            ("created_at".to_owned(), json!("c")),
            ("name".to_owned(), json!("P")),
        ]);
        let key = EntityKey::Object {
            collection: "projects".into(),
            id: "p1".into(),
        };
        let wire = Entity::new(key, props, "t".into()).into_wire();
        assert_eq!(wire["created_at"], "c");
        assert_eq!(wire["properties"], json!({"name": "P"}));
    }

    #[test]
    fn a_tenant_always_has_branding_and_preference_set_in_settings() {
        let wire = Entity::new(EntityKey::Tenant("t1".into()), Map::new(), "t".into()).into_wire();
        assert_eq!(
            wire["settings"],
            json!({"branding": null, "preference_set": null})
        );
    }

    #[test]
    fn a_missing_recipient_stands_in_minimally() {
        let r = RecipientRef::Object {
            id: "gone".into(),
            collection: "projects".into(),
        };
        assert_eq!(
            recipient_or_minimal(&r, None),
            json!({"__typename": "Object", "id": "gone", "collection": "projects"})
        );
    }
}
