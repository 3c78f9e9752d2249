//! Tenants (spec §4.4): `name`, `settings: {branding, preference_set}` and flattened custom
//! properties. The tenant's default preference set lives in `settings.preference_set` and
//! merges on update unless the patch says `"__persistence_strategy__": "replace"`.

use crate::store::sql::{OptionalExtension, params};
use serde_json::{Map, Value};

use super::attached::{self, ChannelDataOwner};
use super::listing::{self, Listing};
use super::merge::{merged, parse_props, parse_stored, split};
use crate::model::entities::{Entity, EntityKey};
use crate::model::{Page, PageQuery};
use crate::store::{Db, StoreResult};

pub use crate::model::entities::TenantFilter;

fn wire(id: &str, props: Map<String, Value>, updated_at: String) -> Entity {
    Entity::new(EntityKey::Tenant(id.to_owned()), props, updated_at)
}

fn stored(db: &Db<'_>, id: &str) -> StoreResult<Option<(Map<String, Value>, String)>> {
    let row: Option<(String, String)> =
        db.0.prepare_cached("SELECT properties, updated_at FROM tenants WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
    row.map(parse_stored).transpose()
}

/// Handles `settings.preference_set` before the generic merge: honours the replace
/// strategy and strips the strategy marker so it is never stored.
fn prepare_settings(existing: &mut Map<String, Value>, patch: &mut Map<String, Value>) {
    let Some(Value::Object(settings)) = patch.get_mut("settings") else {
        return;
    };
    let Some(Value::Object(set)) = settings.get_mut("preference_set") else {
        return;
    };
    let strategy = set.remove("__persistence_strategy__");
    set.remove("__typename");
    set.remove("id");
    if strategy.as_ref().and_then(Value::as_str) == Some("replace")
        && let Some(Value::Object(old)) = existing.get_mut("settings")
    {
        old.remove("preference_set");
    }
}

/// Set: creates the tenant or deep-merges `props` into it; returns the stored tenant.
/// `props` should come from `RecipientProperties::parse_tenant`.
pub fn upsert_tenant(db: &Db<'_>, id: &str, props: &Map<String, Value>) -> StoreResult<Entity> {
    let (mut custom, preferences, channel_data) = split(props);
    let mut existing = stored(db, id)?.map(|(p, _)| p).unwrap_or_default();
    prepare_settings(&mut existing, &mut custom);
    let merged = merged(Some(existing), &custom)?;
    let now = db.now();
    db.0.prepare_cached(
        "INSERT INTO tenants(id, properties, inserted_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
         ON CONFLICT(id) DO UPDATE SET properties = excluded.properties, updated_at = excluded.updated_at",
    )?
    .execute(params![id, serde_json::to_string(&merged)?, now])?;
    attached::apply_inline(db, ChannelDataOwner::tenant(id), preferences, channel_data)?;
    Ok(wire(id, merged, now))
}

/// Creates an empty tenant if `id` is unknown; a trigger naming a tenant uses this.
pub fn ensure_tenant(db: &Db<'_>, id: &str) -> StoreResult<()> {
    let now = db.now();
    db.0.prepare_cached(
        "INSERT INTO tenants(id, properties, inserted_at, updated_at) VALUES (?1, '{}', ?2, ?2) \
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![id, now])?;
    Ok(())
}

/// The tenant, or `None`.
pub fn find_tenant(db: &Db<'_>, id: &str) -> StoreResult<Option<Entity>> {
    Ok(stored(db, id)?.map(|(props, updated_at)| wire(id, props, updated_at)))
}

/// The tenant's default preference set (`settings.preference_set`) as stored, for
/// preference evaluation; `None` when the tenant or its set does not exist.
pub fn tenant_preference_set(db: &Db<'_>, id: &str) -> StoreResult<Option<Map<String, Value>>> {
    let Some((mut props, _)) = stored(db, id)? else {
        return Ok(None);
    };
    let mut settings = match props.remove("settings") {
        Some(Value::Object(s)) => s,
        _ => return Ok(None),
    };
    Ok(match settings.remove("preference_set") {
        Some(Value::Object(set)) => Some(set),
        _ => None,
    })
}

/// Deletes the tenant (and anything attached to it). Returns whether it existed.
pub fn delete_tenant(db: &Db<'_>, id: &str) -> StoreResult<bool> {
    let n =
        db.0.prepare_cached("DELETE FROM tenants WHERE id = ?1")?
            .execute([id])?;
    attached::delete_all(db, ChannelDataOwner::tenant(id))?;
    Ok(n > 0)
}

/// One page of tenants in creation order, optionally filtered by exact id and/or name.
pub fn list_tenants(
    db: &Db<'_>,
    filter: &TenantFilter,
    q: &PageQuery,
) -> StoreResult<Page<Entity>> {
    let listing = Listing {
        table: "tenants",
        columns: "rowid, id, properties, updated_at",
        filter: "(CAST(?1 AS TEXT) IS NULL OR id = ?1) \
                 AND (CAST(?2 AS TEXT) IS NULL OR json_extract(properties, '$.name') = ?2)",
        params: vec![&filter.tenant_id, &filter.name],
    };
    let page = listing::fetch(db, &listing, q, listing::recipient_row)?;
    let mut entries = Vec::with_capacity(page.entries.len());
    for (id, props, updated_at) in page.entries {
        entries.push(wire(&id, parse_props(&props)?, updated_at));
    }
    Ok(Page {
        entries,
        after: page.after,
        before: page.before,
    })
}
