//! Store-level tests on an in-memory database with the real migrations.

use serde_json::{Map, Value, json};

use super::*;
use crate::model::Page;
use crate::model::PageQuery;
use crate::model::entities::{Entity, recipient_or_minimal};
use crate::store::{Db, StoreError, StoreResult};

// The store returns entities; these tests check what a client sees of them, so each
// query below is read through `model::entities`' wire shape (shadowing the glob import).

fn upsert_user(db: &Db<'_>, id: &str, props: &Map<String, Value>) -> StoreResult<Value> {
    super::upsert_user(db, id, props).map(Entity::into_wire)
}

fn get_user(db: &Db<'_>, id: &str) -> StoreResult<Option<Value>> {
    Ok(super::get_user(db, id)?.map(Entity::into_wire))
}

fn upsert_object(
    db: &Db<'_>,
    collection: &str,
    id: &str,
    props: &Map<String, Value>,
) -> StoreResult<Value> {
    super::upsert_object(db, collection, id, props).map(Entity::into_wire)
}

fn get_object(db: &Db<'_>, collection: &str, id: &str) -> StoreResult<Option<Value>> {
    Ok(super::get_object(db, collection, id)?.map(Entity::into_wire))
}

fn upsert_tenant(db: &Db<'_>, id: &str, props: &Map<String, Value>) -> StoreResult<Value> {
    super::upsert_tenant(db, id, props).map(Entity::into_wire)
}

fn merge_users(db: &Db<'_>, into: &str, from: &str) -> StoreResult<Option<Value>> {
    Ok(super::merge_users(db, into, from)?.map(Entity::into_wire))
}

fn list_users(db: &Db<'_>, q: &PageQuery, include: bool) -> StoreResult<Page<Value>> {
    Ok(super::list_users(db, q, include)?.map(Entity::into_wire))
}

fn list_tenants(db: &Db<'_>, filter: &TenantFilter, q: &PageQuery) -> StoreResult<Page<Value>> {
    Ok(super::list_tenants(db, filter, q)?.map(Entity::into_wire))
}

fn get_recipients(db: &Db<'_>, refs: &[RecipientRef]) -> StoreResult<Vec<Value>> {
    let found = super::get_recipients(db, refs)?;
    Ok(refs
        .iter()
        .zip(found)
        .map(|(r, entity)| recipient_or_minimal(r, entity))
        .collect())
}

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[test]
fn identify_deep_merges_and_flattens_custom_properties() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        upsert_user(
            &db,
            "u1",
            &map(json!({"name": "Ann", "plan": {"tier": "pro", "seats": 3}})),
        )
        .expect("first");
        let user = upsert_user(
            &db,
            "u1",
            &map(json!({"plan": {"seats": 5}, "email": null})),
        )
        .expect("second");
        assert_eq!(user["__typename"], "User");
        assert_eq!(user["id"], "u1");
        assert_eq!(user["name"], "Ann");
        assert_eq!(user["email"], Value::Null);
        assert_eq!(user["phone_number"], Value::Null);
        assert_eq!(user["created_at"], Value::Null);
        assert_eq!(user["plan"], json!({"tier": "pro", "seats": 5}));
        assert_eq!(get_user(&db, "u1").expect("get"), Some(user));
    }
}

#[test]
fn preferences_and_channel_data_are_kept_out_of_the_user() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        crate::store::channels::ensure(&db, "chan").expect("channel");
        let user = upsert_user(
            &db,
            "u1",
            &map(json!({
                "preferences": {"default": {"channel_types": {"email": false}}},
                "channel_data": {"chan": {"tokens": ["t1"]}}
            })),
        )
        .expect("upsert");
        assert!(user.get("preferences").is_none());
        assert!(user.get("channel_data").is_none());
        upsert_user(
            &db,
            "u1",
            &map(json!({"preferences": {"default": {"channel_types": {"sms": true}}}})),
        )
        .expect("merge");
        let set = get_preference_set(&db, ChannelDataOwner::user("u1"), "default").expect("set");
        assert_eq!(
            set.map(Value::Object),
            Some(json!({"channel_types": {"email": false, "sms": true}}))
        );
        let data = get_channel_data(&db, ChannelDataOwner::user("u1"), "chan").expect("data");
        assert_eq!(data, Some(json!({"tokens": ["t1"]})));
    }
}

#[test]
fn merged_properties_over_the_limit_are_refused_and_nothing_changes() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        let half = "x".repeat(150 * 1024);
        upsert_user(&db, "u1", &map(json!({"a": half}))).expect("first half fits");
        let before = get_user(&db, "u1").expect("get");
        let err = upsert_user(&db, "u1", &map(json!({"b": half}))).err();
        assert!(matches!(err, Some(StoreError::Invalid { .. })));
        assert_eq!(get_user(&db, "u1").expect("get"), before);
    }
}

#[test]
fn objects_nest_properties_and_lift_created_at() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        let obj = upsert_object(
            &db,
            "projects",
            "p1",
            &map(json!({"name": "P", "created_at": "2026-01-01T00:00:00.000000Z"})),
        )
        .expect("set");
        assert_eq!(obj["__typename"], "Object");
        assert_eq!(obj["collection"], "projects");
        assert_eq!(obj["properties"], json!({"name": "P"}));
        assert_eq!(obj["created_at"], "2026-01-01T00:00:00.000000Z");
        assert!(delete_object(&db, "projects", "p1").expect("delete"));
        assert_eq!(get_object(&db, "projects", "p1").expect("get"), None);
        assert!(!delete_object(&db, "projects", "p1").expect("delete again"));
    }
}

#[test]
fn tenant_preference_set_merges_unless_replace_is_asked() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        upsert_tenant(
            &db,
            "acme",
            &map(json!({"name": "Acme", "settings": {"preference_set": {"channel_types": {"email": false}}}})),
        )
        .expect("set");
        let merged = upsert_tenant(
            &db,
            "acme",
            &map(json!({"settings": {"preference_set": {"workflows": {"w": true}}}})),
        )
        .expect("merge");
        assert_eq!(
            merged["settings"]["preference_set"],
            json!({"id": "default", "channel_types": {"email": false}, "workflows": {"w": true}})
        );
        assert_eq!(merged["settings"]["branding"], Value::Null);
        let replaced = upsert_tenant(
            &db,
            "acme",
            &map(json!({"settings": {"preference_set": {"__persistence_strategy__": "replace", "channel_types": {"sms": true}}}})),
        )
        .expect("replace");
        assert_eq!(
            replaced["settings"]["preference_set"],
            json!({"id": "default", "channel_types": {"sms": true}})
        );
        assert_eq!(replaced["name"], "Acme");
        assert_eq!(
            tenant_preference_set(&db, "acme")
                .expect("prefs")
                .map(Value::Object),
            Some(json!({"channel_types": {"sms": true}}))
        );
    }
}

#[test]
fn ensure_tenant_creates_a_stub_once_and_keeps_existing_data() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        ensure_tenant(&db, "t1").expect("ensure");
        assert_eq!(
            get_tenant(&db, "t1")
                .expect("get")
                .map(|t| t["name"].clone()),
            Some(Value::Null)
        );
        upsert_tenant(&db, "t1", &map(json!({"name": "T"}))).expect("set");
        ensure_tenant(&db, "t1").expect("ensure again");
        assert_eq!(
            get_tenant(&db, "t1")
                .expect("get")
                .map(|t| t["name"].clone()),
            Some(json!("T"))
        );
    }
}

#[test]
fn get_recipients_keeps_order_and_stands_in_for_missing_ones() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        upsert_user(&db, "u1", &map(json!({"name": "Ann"}))).expect("user");
        let refs = [
            RecipientRef::Object {
                id: "gone".into(),
                collection: "projects".into(),
            },
            RecipientRef::User("u1".into()),
            RecipientRef::User("ghost".into()),
        ];
        let got = get_recipients(&db, &refs).expect("batch");
        assert_eq!(
            got[0],
            json!({"__typename": "Object", "id": "gone", "collection": "projects"})
        );
        assert_eq!(got[1]["name"], "Ann");
        assert_eq!(got[2], json!({"__typename": "User", "id": "ghost"}));
    }
}

#[test]
fn lists_page_forward_and_back_with_stable_order() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        for i in 0..5 {
            upsert_user(&db, &format!("u{i}"), &Map::new()).expect("user");
        }
        let q = PageQuery {
            page_size: 2,
            ..PageQuery::default()
        };
        let first = list_users(&db, &q, false).expect("page 1");
        let ids = |p: &crate::model::Page<Value>| {
            p.entries
                .iter()
                .map(|u| u["id"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&first), [json!("u0"), json!("u1")]);
        assert_eq!(first.before, None);
        let second = list_users(
            &db,
            &PageQuery {
                after: first.after,
                ..q
            },
            false,
        )
        .expect("page 2");
        assert_eq!(ids(&second), [json!("u2"), json!("u3")]);
        let third = list_users(
            &db,
            &PageQuery {
                after: second.after,
                ..q
            },
            false,
        )
        .expect("page 3");
        assert_eq!(ids(&third), [json!("u4")]);
        assert_eq!(third.after, None);
        let back = list_users(
            &db,
            &PageQuery {
                before: second.before,
                ..q
            },
            false,
        )
        .expect("back");
        assert_eq!(ids(&back), [json!("u0"), json!("u1")]);
        // Re-identifying keeps a user's place.
        upsert_user(&db, "u0", &map(json!({"name": "again"}))).expect("again");
        assert_eq!(
            ids(&list_users(&db, &q, false).expect("page 1")),
            [json!("u0"), json!("u1")]
        );
    }
}

#[test]
fn tenant_lists_filter_by_id_and_name() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        upsert_tenant(&db, "a", &map(json!({"name": "Acme"}))).expect("a");
        upsert_tenant(&db, "b", &map(json!({"name": "Beta"}))).expect("b");
        let by_name = list_tenants(
            &db,
            &TenantFilter {
                name: Some("Beta".into()),
                tenant_id: None,
            },
            &PageQuery::default(),
        )
        .expect("list");
        assert_eq!(by_name.entries.len(), 1);
        assert_eq!(by_name.entries[0]["id"], "b");
        let by_id = list_tenants(
            &db,
            &TenantFilter {
                name: None,
                tenant_id: Some("a".into()),
            },
            &PageQuery::default(),
        )
        .expect("list");
        assert_eq!(by_id.entries.len(), 1);
        let all = list_tenants(&db, &TenantFilter::default(), &PageQuery::default()).expect("list");
        assert_eq!(all.entries.len(), 2);
    }
}

#[test]
fn deleting_a_user_removes_its_preferences_and_channel_data() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        crate::store::channels::ensure(&db, "c").expect("channel");
        upsert_user(
            &db,
            "u1",
            &map(json!({"preferences": {"default": {}}, "channel_data": {"c": {"x": 1}}})),
        )
        .expect("user");
        assert!(delete_user(&db, "u1").expect("delete"));
        assert_eq!(get_user(&db, "u1").expect("get"), None);
        assert!(
            list_preference_sets(&db, ChannelDataOwner::user("u1"))
                .expect("sets")
                .is_empty()
        );
        assert_eq!(
            get_channel_data(&db, ChannelDataOwner::user("u1"), "c").expect("data"),
            None
        );
    }
}

#[test]
fn merging_users_keeps_the_primary_on_conflicts_and_deletes_the_secondary() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        crate::store::channels::ensure(&db, "c1").expect("channel");
        crate::store::channels::ensure(&db, "c2").expect("channel");
        upsert_user(
            &db,
            "main",
            &map(json!({"name": "Main", "prefs": {"a": 1}, "preferences": {"default": {"channel_types": {"email": true}}},
                        "channel_data": {"c1": {"tokens": ["main"]}}})),
        )
        .expect("main");
        upsert_user(
            &db,
            "old",
            &map(json!({"name": "Old", "email": "old@x", "prefs": {"a": 2, "b": 3},
                        "preferences": {"default": {"channel_types": {"sms": false}}, "acme": {"workflows": {"w": false}}},
                        "channel_data": {"c1": {"tokens": ["old"]}, "c2": {"tokens": ["old2"]}}})),
        )
        .expect("old");
        let merged = merge_users(&db, "main", "old")
            .expect("merge")
            .expect("both exist");
        assert_eq!(merged["name"], "Main");
        assert_eq!(merged["email"], "old@x");
        assert_eq!(merged["prefs"], json!({"a": 1, "b": 3}));
        assert_eq!(get_user(&db, "old").expect("get"), None);
        let sets: Vec<String> = list_preference_sets(&db, ChannelDataOwner::user("main"))
            .expect("sets")
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(sets, ["acme", "default"]);
        assert_eq!(
            get_preference_set(&db, ChannelDataOwner::user("main"), "default")
                .expect("set")
                .map(Value::Object),
            Some(json!({"channel_types": {"email": true}}))
        );
        assert_eq!(
            get_channel_data(&db, ChannelDataOwner::user("main"), "c1").expect("c1"),
            Some(json!({"tokens": ["main"]}))
        );
        assert_eq!(
            get_channel_data(&db, ChannelDataOwner::user("main"), "c2").expect("c2"),
            Some(json!({"tokens": ["old2"]}))
        );
        assert_eq!(merge_users(&db, "main", "ghost").expect("merge"), None);
    }
}

#[test]
fn page_reads_return_what_the_single_reads_do() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        upsert_user(
            &db,
            "u1",
            &map(json!({"name": "Ann", "plan": {"tier": "pro"}})),
        )
        .expect("u1");
        upsert_user(&db, "u2", &map(json!({"email": "b@example.com"}))).expect("u2");
        upsert_object(&db, "projects", "p1", &map(json!({"name": "Apollo"}))).expect("p1");
        put_preference_set(
            &db,
            ChannelDataOwner::user("u1"),
            "default",
            &map(json!({"categories": {"marketing": false}})),
        )
        .expect("u1 default");
        put_preference_set(
            &db,
            ChannelDataOwner::user("u1"),
            "acme",
            &map(json!({"channel_types": {"in_app_feed": false}})),
        )
        .expect("u1 acme");
        put_preference_set(
            &db,
            ChannelDataOwner::object("projects", "p1"),
            "default",
            &map(json!({"workflows": {"w": false}})),
        )
        .expect("p1 default");
        put_preference_set(
            &db,
            ChannelDataOwner::user("u2"),
            "other",
            &map(json!({"workflows": {"w": true}})),
        )
        .expect("u2 other");
        let refs = [
            RecipientRef::User("u1".into()),
            RecipientRef::User("u2".into()),
            RecipientRef::User("never-identified".into()),
            RecipientRef::Object {
                id: "p1".into(),
                collection: "projects".into(),
            },
            RecipientRef::Object {
                id: "p2".into(),
                collection: "projects".into(),
            },
            // A user whose id equals an object's id: kinds never mix.
            RecipientRef::User("p1".into()),
        ];
        let by_ref: Vec<&RecipientRef> = refs.iter().collect();
        let entities = get_recipients_by_ref(&db, &by_ref).expect("entities");
        let sets = get_preference_sets_by_ref(&db, &by_ref, &["default", "acme"]).expect("sets");
        for r in &refs {
            assert_eq!(
                entities.get(r),
                get_recipient(&db, r).expect("one").as_ref(),
                "{r:?}"
            );
            let owner = match r {
                RecipientRef::User(id) => ChannelDataOwner::user(id),
                RecipientRef::Object { id, collection } => ChannelDataOwner::object(collection, id),
            };
            for set_id in ["default", "acme"] {
                assert_eq!(
                    sets.get(&(r.clone(), set_id.to_owned())),
                    get_preference_set(&db, owner, set_id)
                        .expect("set")
                        .as_ref(),
                    "{r:?} {set_id}"
                );
            }
        }
        assert_eq!(entities.len(), 3);
        assert_eq!(sets.len(), 3, "only the sets asked for");
    }
}

/// Bulk identify in one call ([`super::upsert_users`]) leaves every user exactly as the
/// same items identified one by one do: new and existing users, an id given twice (both
/// bodies merge, in order), an item refused for size between two good ones for the same
/// id (refused alone, the next merges into what was stored before it), and inline
/// preferences.
#[test]
fn identify_in_bulk_equals_identify_one_by_one() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        let big = "x".repeat(150 * 1024);
        let items = [
            ("new", json!({"name": "Ann", "address": {"city": "Oslo"}})),
            ("old", json!({"plan": "pro", "address": {"zip": "0150"}})),
            ("new", json!({"address": {"zip": "0151"}, "name": null})),
            ("old", json!({"blob": big})),
            ("old", json!({"blob2": big})),
            ("old", json!({"seen": 2})),
            (
                "prefs",
                json!({"preferences": {"default": {"categories": {"c": false}}}}),
            ),
        ]
        .map(|(id, body)| (id, map(body)));
        let mut one_by_one = Vec::new();
        for prefix in ["a-", "b-"] {
            upsert_user(
                &db,
                &format!("{prefix}old"),
                &map(json!({"plan": "free", "k": 1})),
            )
            .expect("seed");
        }
        for (id, props) in &items {
            let outcome = upsert_user(&db, &format!("a-{id}"), props);
            one_by_one.push(match outcome {
                Ok(_) => None,
                Err(StoreError::Invalid { message, .. }) => Some(message),
                Err(other) => panic!("unexpected {other}"),
            });
        }
        let ids: Vec<String> = items.iter().map(|(id, _)| format!("b-{id}")).collect();
        let bulk: Vec<(&str, &Map<String, Value>)> = ids
            .iter()
            .zip(&items)
            .map(|(id, (_, props))| (id.as_str(), props))
            .collect();
        let in_bulk: Vec<Option<String>> = super::upsert_users(&db, &bulk)
            .expect("bulk")
            .into_iter()
            .map(|outcome| match outcome {
                Ok(()) => None,
                Err(StoreError::Invalid { message, .. }) => Some(message),
                Err(other) => panic!("unexpected {other}"),
            })
            .collect();
        assert_eq!(in_bulk, one_by_one);
        assert_eq!(
            in_bulk.iter().filter(|refused| refused.is_some()).count(),
            1,
            "the second blob is refused: {in_bulk:?}"
        );
        for id in ["new", "old", "prefs"] {
            let props = |prefix: &str| {
                let mut user = get_user(&db, &format!("{prefix}{id}"))
                    .expect("get")
                    .expect("stored");
                let fields = user.as_object_mut().expect("object");
                fields.remove("id");
                fields.remove("updated_at");
                fields.remove("created_at");
                user
            };
            assert_eq!(props("b-"), props("a-"), "{id}");
            let set = |prefix: &str| {
                get_preference_set(
                    &db,
                    ChannelDataOwner::user(&format!("{prefix}{id}")),
                    "default",
                )
                .expect("set")
            };
            assert_eq!(set("b-"), set("a-"), "{id}");
        }
        let new = get_user(&db, "b-new").expect("get").expect("stored");
        assert_eq!(new["address"], json!({"city": "Oslo", "zip": "0151"}));
        assert_eq!(new["name"], Value::Null);
    }
}
