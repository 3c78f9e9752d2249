//! Demo mode (`tidings serve --demo`): a newcomer's live inbox in one command.
//!
//! At start it upserts a few demo workflows and, once per database, seeds demo users,
//! tenants, objects and their first notifications through the engine (the same accept
//! path as `POST /v1/workflows/{key}/trigger`, so nothing here writes SQL). The pages then
//! ask `api::demo` to mint tokens for the demo identities and to send test notifications.
//!
//! Invariants: demo mode only runs with keys Tidings generated itself (never with
//! configured production keys, see `startup`) and only on a database it created
//! ([`check_database`]); tokens are minted only for the fixed identities below, never for
//! an id a caller chooses, and signed with a demo-only key that a server outside demo
//! mode does not load, so they are worthless there.

use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::{Keys, dev_token};
use crate::engine::{Engine, UpsertError};
use crate::model::entities::ObjectKey;
use crate::model::subscription::SubscribeRequest;
use crate::store::Store;

/// How long a minted demo token lives.
pub const TOKEN_TTL_SECS: u64 = 12 * 3600;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tenant {
    pub id: &'static str,
    pub name: &'static str,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Object {
    pub collection: &'static str,
    pub id: &'static str,
    pub name: &'static str,
    pub tenant: &'static str,
}

/// A demo person: an inbox user, or an admin whose token carries grants.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Identity {
    pub id: &'static str,
    pub name: &'static str,
    /// `user` (reads their own inbox at `/`) or `admin` (reads object feeds at `/admin`).
    pub role: &'static str,
    /// What this identity is, in a few words (shown in the picker).
    pub title: &'static str,
    /// Tenants whose items reach (users) or are administered by (admins) this identity.
    pub tenants: &'static [&'static str],
    /// `dev_token::parse_grant` specs (admins only).
    #[serde(skip)]
    pub grants: &'static [&'static str],
    /// The objects the grants name (admins with object grants only).
    pub objects: &'static [&'static str],
}

pub const TENANTS: &[Tenant] = &[
    Tenant {
        id: "acme",
        name: "Acme Rockets",
    },
    Tenant {
        id: "globex",
        name: "Globex",
    },
];

pub const OBJECTS: &[Object] = &[
    Object {
        collection: "projects",
        id: "apollo",
        name: "Apollo",
        tenant: "acme",
    },
    Object {
        collection: "projects",
        id: "gemini",
        name: "Gemini",
        tenant: "acme",
    },
    Object {
        collection: "projects",
        id: "voyager",
        name: "Voyager",
        tenant: "globex",
    },
];

/// Who follows which object (subscriptions): a notification to the object also reaches them.
pub const FOLLOWERS: &[(&str, &[&str])] = &[
    ("projects/apollo", &["ada", "grace"]),
    ("projects/gemini", &["grace"]),
    ("projects/voyager", &["alan"]),
];

pub const IDENTITIES: &[Identity] = &[
    Identity {
        id: "ada",
        name: "Ada Lovelace",
        role: "user",
        title: "Member of Acme Rockets and Globex, follows Apollo",
        tenants: &["acme", "globex"],
        grants: &[],
        objects: &[],
    },
    Identity {
        id: "grace",
        name: "Grace Hopper",
        role: "user",
        title: "Member of Acme Rockets, follows Apollo and Gemini",
        tenants: &["acme"],
        grants: &[],
        objects: &[],
    },
    Identity {
        id: "alan",
        name: "Alan Turing",
        role: "user",
        title: "Member of Globex, follows Voyager",
        tenants: &["globex"],
        grants: &[],
        objects: &[],
    },
    Identity {
        id: "margaret",
        name: "Margaret Hamilton",
        role: "admin",
        title: "Tenant admin of Acme Rockets",
        tenants: &["acme"],
        grants: &["tenant:acme"],
        objects: &[],
    },
    Identity {
        id: "katherine",
        name: "Katherine Johnson",
        role: "admin",
        title: "Lead of project Apollo only",
        tenants: &["acme"],
        grants: &["object:projects/apollo"],
        objects: &["projects/apollo"],
    },
];

/// The people who appear as actors ("Linus commented …").
const ACTORS: &[(&str, &str)] = &[
    ("linus", "Linus Torvalds"),
    ("barbara", "Barbara Liskov"),
    ("edsger", "Edsger Dijkstra"),
    ("frances", "Frances Allen"),
    ("ken", "Ken Thompson"),
];

/// The demo workflows: key, then the definition `PUT /v1/workflows/{key}` would take.
fn workflows() -> Vec<(&'static str, Value)> {
    let feed_step = |body: &str, action_url: &str, buttons: Value| {
        json!({
            "ref": "in_app_feed_1",
            "type": "channel",
            "channel_key": "in-app-feed",
            "channel_type": "in_app_feed",
            "template": {"markdown_body": body, "action_url": action_url, "action_buttons": buttons}
        })
    };
    vec![
        (
            "demo-comment",
            json!({
                "name": "Demo: new comment",
                "categories": ["collaboration"],
                "steps": [feed_step(
                    "**{{ actor.name }}** commented on **{{ data.page }}**: {{ data.comment }}",
                    "#/pages/{{ data.slug }}",
                    json!([{"label": "Reply", "action": "#/pages/{{ data.slug }}/reply"}]),
                )]
            }),
        ),
        (
            "demo-invite",
            json!({
                "name": "Demo: project invite",
                "categories": ["access"],
                "steps": [feed_step(
                    "**{{ actor.name }}** invited you to join **{{ data.project }}** as {{ data.role }}.",
                    "#/projects/{{ data.slug }}",
                    json!([
                        {"label": "Accept", "action": "#/projects/{{ data.slug }}/accept"},
                        {"label": "Decline", "action": "#/projects/{{ data.slug }}/decline"}
                    ]),
                )]
            }),
        ),
        (
            "demo-deploy",
            json!({
                "name": "Demo: deploy finished",
                "categories": ["ops"],
                "steps": [feed_step(
                    "Deploy of **{{ data.service }}** to *{{ data.env }}* finished in {{ data.duration }}. `{{ data.sha }}`",
                    "#/deploys/{{ data.sha }}",
                    json!([]),
                )]
            }),
        ),
    ]
}

/// A sample notification: (workflow, actor index or none, data).
fn sample(n: usize) -> (&'static str, Option<(&'static str, &'static str)>, Value) {
    const PAGES: &[(&str, &str, &str)] = &[
        (
            "Launch checklist",
            "launch-checklist",
            "Added the fuel margin numbers, can you double-check?",
        ),
        (
            "Q3 roadmap",
            "q3-roadmap",
            "Looks great, ship it! Only nit: move telemetry up.",
        ),
        (
            "Incident review",
            "incident-review",
            "I think the root cause is the retry storm, not the cache.",
        ),
        (
            "Onboarding guide",
            "onboarding-guide",
            "Rewrote step 3 so it works on a fresh laptop.",
        ),
    ];
    const SERVICES: &[(&str, &str)] =
        &[("api", "4m 12s"), ("billing", "1m 48s"), ("web", "2m 31s")];
    let actor = ACTORS[n % ACTORS.len()];
    match n % 4 {
        1 => {
            let project = OBJECTS[n % OBJECTS.len()];
            (
                "demo-invite",
                Some(actor),
                json!({"project": project.name, "slug": project.id, "role": if n.is_multiple_of(2) { "an editor" } else { "a viewer" }}),
            )
        }
        3 => {
            let (service, duration) = SERVICES[n % SERVICES.len()];
            (
                "demo-deploy",
                None,
                json!({"service": service, "env": "production", "duration": duration, "sha": format!("{:07x}", 0x3fa9c1d_u64.wrapping_mul(n as u64 + 7) & 0xfff_ffff)}),
            )
        }
        _ => {
            let (page, slug, comment) = PAGES[n % PAGES.len()];
            (
                "demo-comment",
                Some(actor),
                json!({"page": page, "slug": slug, "comment": comment}),
            )
        }
    }
}

/// The trigger body for sample `n` to `recipient` (a user id or an inline object).
fn trigger_body(n: usize, recipient: Value, tenant: Option<&str>) -> (&'static str, Value) {
    let (workflow, actor, data) = sample(n);
    let mut body = json!({"recipients": [recipient], "data": data});
    if let Some((id, name)) = actor {
        body["actor"] = json!({"id": id, "name": name});
    }
    if let Some(tenant) = tenant.and_then(|t| TENANTS.iter().find(|x| x.id == t)) {
        body["tenant"] = json!({"id": tenant.id, "name": tenant.name});
    }
    (workflow, body)
}

pub fn identity(id: &str) -> Option<&'static Identity> {
    IDENTITIES.iter().find(|i| i.id == id)
}

pub fn object(collection: &str, id: &str) -> Option<&'static Object> {
    OBJECTS
        .iter()
        .find(|o| o.collection == collection && o.id == id)
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo mode needs the keys Tidings generates itself; unset {0} or drop --demo")]
    ProductionKeys(&'static str),
    #[error(
        "the database {0} was not created in demo mode; demo mode only runs on a database it \
         created, so it can never seed or mint tokens on a real one: start it on a new file \
         (e.g. `tidings serve --demo --db demo.db`) or drop --demo"
    )]
    NotDemoDatabase(String),
    #[error("a demo workflow is invalid: {0}")]
    Workflow(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("seeding the demo: {0}")]
    Seed(String),
}

/// Refuses demo mode when production credentials are configured.
pub fn check_keys(settings: &crate::Settings) -> Result<(), DemoError> {
    let configured = [
        (settings.secret_key.is_some(), "TIDINGS_SECRET_KEY"),
        (settings.public_key.is_some(), "TIDINGS_PUBLIC_KEY"),
        (
            settings.signing_public_key.is_some(),
            "TIDINGS_SIGNING_PUBLIC_KEY",
        ),
    ];
    match configured.iter().find(|(set, _)| *set) {
        Some((_, name)) => Err(DemoError::ProductionKeys(name)),
        None => Ok(()),
    }
}

/// `meta` key marking a database created by demo mode.
const DEMO_DATABASE: &str = "demo_database";

/// Demo mode runs only on a database it created: a new file is marked as a demo database
/// (in `meta`), a marked one is accepted, anything else — a production database with its
/// users, keys and workflows — is refused.
pub async fn check_database(store: &Store) -> Result<(), DemoError> {
    let marked = store.setting(DEMO_DATABASE).await?;
    if marked.is_some() {
        return Ok(());
    }
    if !store.created() {
        return Err(DemoError::NotDemoDatabase(
            store.path().display().to_string(),
        ));
    }
    store
        .keep_setting(DEMO_DATABASE, "created by tidings serve --demo".to_owned())
        .await?;
    Ok(())
}

/// Upserts the demo workflows and, the first time on this database, seeds the demo
/// identities, tenants, objects and a few notifications for each.
pub async fn prepare(store: &Store, engine: &Engine) -> Result<(), DemoError> {
    for (key, definition) in workflows() {
        engine
            .registry()
            .upsert(key, &definition, "workflow")
            .await
            .map_err(|e| match e {
                UpsertError::Invalid(errors) => DemoError::Workflow(format!(
                    "{key}: {}",
                    errors
                        .iter()
                        .map(|e| format!("`{}` {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
                UpsertError::Store(e) => DemoError::Store(e),
            })?;
    }
    let marker = crate::ids::uuid();
    let winner = store.keep_setting("demo_seeded", marker.clone()).await?;
    if winner != marker {
        return Ok(());
    }
    follow(store).await?;
    let mut n = 0;
    for person in IDENTITIES.iter().filter(|i| i.role == "user") {
        for tenant in person.tenants.iter().map(Some).chain([None]) {
            for _ in 0..3 {
                let recipient = json!({"id": person.id, "name": person.name});
                send(engine, n, recipient, tenant.copied()).await?;
                n += 1;
            }
        }
    }
    for object in OBJECTS {
        for _ in 0..3 {
            send(engine, n, object_recipient(object), Some(object.tenant)).await?;
            n += 1;
        }
    }
    tracing::info!(notifications = n, "demo data seeded");
    Ok(())
}

/// Creates the demo objects and subscribes their followers, before any notification, so
/// the seeded object notifications fan out to the same people on every fresh database.
async fn follow(store: &Store) -> Result<(), DemoError> {
    let mut groups = Vec::new();
    for (object, followers) in FOLLOWERS {
        let (collection, id) = object
            .split_once('/')
            .ok_or_else(|| DemoError::Seed(format!("`{object}` is not COLLECTION/ID")))?;
        let demo = self::object(collection, id)
            .ok_or_else(|| DemoError::Seed(format!("`{object}` is not a demo object")))?;
        let recipients: Vec<Value> = followers
            .iter()
            .filter_map(|f| identity(f))
            .map(|who| json!({"id": who.id, "name": who.name}))
            .collect();
        let request = SubscribeRequest::parse(&json!({ "recipients": recipients }), "")
            .map_err(|e| DemoError::Seed(format!("{e:?}")))?;
        let mut props = serde_json::Map::new();
        props.insert("name".into(), json!(demo.name));
        groups.push((ObjectKey::new(collection, id), props, request));
    }
    store.seed_demo_objects(groups).await?;
    Ok(())
}

fn object_recipient(object: &Object) -> Value {
    json!({"id": object.id, "collection": object.collection, "name": object.name})
}

async fn send(
    engine: &Engine,
    n: usize,
    recipient: Value,
    tenant: Option<&str>,
) -> Result<String, DemoError> {
    let (workflow, body) = trigger_body(n, recipient, tenant);
    engine
        .trigger(workflow, &body, None, &crate::ids::uuid())
        .await
        .map(|accepted| accepted.run_id().to_owned())
        .map_err(|e| DemoError::Seed(e.to_string()))
}

/// Sends the next sample notification to a demo user (optionally in one of their tenants)
/// or to a demo object (in its tenant); returns the workflow run id.
pub async fn notify(
    engine: &Engine,
    n: usize,
    target: Target<'_>,
) -> Result<String, crate::error::ApiError> {
    let (recipient, tenant) = match target {
        Target::User { id, tenant } => {
            let person = identity(id)
                .filter(|i| i.role == "user")
                .ok_or_else(|| crate::error::ApiError::invalid("user_id", "is not a demo user"))?;
            if let Some(t) = tenant
                && !person.tenants.contains(&t)
            {
                return Err(crate::error::ApiError::invalid(
                    "tenant",
                    format!("`{}` is not one of {}'s tenants", t, person.name),
                ));
            }
            (json!({"id": person.id, "name": person.name}), tenant)
        }
        Target::Object { collection, id } => {
            let object = object(collection, id)
                .ok_or_else(|| crate::error::ApiError::invalid("object", "is not a demo object"))?;
            (object_recipient(object), Some(object.tenant))
        }
    };
    let (workflow, body) = trigger_body(n, recipient, tenant);
    Ok(engine
        .trigger(workflow, &body, None, &crate::ids::uuid())
        .await?
        .run_id()
        .to_owned())
}

/// Who a test notification is for.
pub enum Target<'a> {
    User {
        id: &'a str,
        tenant: Option<&'a str>,
    },
    Object {
        collection: &'a str,
        id: &'a str,
    },
}

/// Mints a user token for a demo identity with the demo-only key (never the
/// installation's signing key: a demo token must not work outside demo mode).
pub fn mint(keys: &Keys, who: &Identity, now: u64) -> Result<String, String> {
    let private = keys
        .demo
        .as_ref()
        .map(|demo| demo.private_pem.as_str())
        .ok_or("demo mode holds no demo signing key")?;
    let grants = who
        .grants
        .iter()
        .map(|spec| dev_token::parse_grant(spec, who.id))
        .collect::<Result<Vec<_>, _>>()?;
    let request = dev_token::TokenRequest {
        user_id: who.id.to_owned(),
        grants,
        explicit_grants: false,
        ttl_secs: TOKEN_TTL_SECS,
    };
    dev_token::sign(private, &request, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_names_a_demo_workflow_and_a_known_tenant() {
        let keys: Vec<_> = workflows().into_iter().map(|(k, _)| k).collect();
        for n in 0..12 {
            let (workflow, body) = trigger_body(n, json!("ada"), Some("acme"));
            assert!(keys.contains(&workflow), "{workflow}");
            assert_eq!(body["tenant"]["id"], "acme");
        }
        assert!(
            trigger_body(0, json!("ada"), Some("nope"))
                .1
                .get("tenant")
                .is_none()
        );
    }

    #[test]
    fn followers_are_demo_users_of_the_objects_tenant() {
        for (object, followers) in FOLLOWERS {
            let (c, id) = object.split_once('/').unwrap();
            let tenant = self::object(c, id).expect(object).tenant;
            for f in *followers {
                let who = identity(f).expect(f);
                assert!(
                    who.role == "user" && who.tenants.contains(&tenant),
                    "{f} {object}"
                );
            }
        }
    }

    #[test]
    fn admin_grants_parse_and_objects_they_name_exist() {
        for who in IDENTITIES {
            for spec in who.grants {
                dev_token::parse_grant(spec, who.id).expect(spec);
            }
            for named in who.objects {
                let (c, id) = named.split_once('/').unwrap();
                assert!(object(c, id).is_some(), "{named}");
            }
            for t in who.tenants {
                assert!(TENANTS.iter().any(|x| x.id == *t), "{t}");
            }
        }
    }
}
