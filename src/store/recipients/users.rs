//! Users (spec §4.1), returned as [`Entity`]s: `model::entities` shapes the `User`.

use std::collections::{BTreeSet, HashMap};

use crate::store::sql::{Dialect, OptionalExtension, params};
use serde_json::{Map, Value};

use super::attached::preference_map;
use super::attached::{self, ChannelDataOwner};
use super::listing::{self, Listing};
use super::merge::{merged, parse_props, parse_stored, split};
use crate::model::entities::{Entity, EntityKey};
use crate::model::{Page, PageQuery};
use crate::store::{Db, StoreError, StoreResult};

fn wire(id: &str, props: Map<String, Value>, updated_at: String) -> Entity {
    Entity::new(EntityKey::User(id.to_owned()), props, updated_at)
}

fn stored(db: &Db<'_>, id: &str) -> StoreResult<Option<(Map<String, Value>, String)>> {
    let row: Option<(String, String)> =
        db.0.prepare_cached("SELECT properties, updated_at FROM users WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
    row.map(parse_stored).transpose()
}

/// Identify: creates the user or deep-merges `props` into it; returns the stored user.
/// `props` should come from `RecipientProperties::parse_user`.
pub fn upsert_user(db: &Db<'_>, id: &str, props: &Map<String, Value>) -> StoreResult<Entity> {
    let (custom, preferences, channel_data) = split(props);
    let merged = merged(stored(db, id)?.map(|(p, _)| p), &custom)?;
    let now = db.now();
    db.0.prepare_cached(UPSERT_ONE_SQL)?.execute(params![
        id,
        serde_json::to_string(&merged)?,
        now
    ])?;
    attached::apply_inline(db, ChannelDataOwner::user(id), preferences, channel_data)?;
    Ok(wire(id, merged, now))
}

/// Identify for many users in one write (bulk identify, a trigger's inline recipients):
/// what [`upsert_user`] does for each item in order, with one read of the stored users and
/// one multi-row write of their merged properties on PostgreSQL, instead of two round
/// trips per user (1,000 users cost 2,000 before). An id given twice merges both bodies
/// in order, as two calls would. Each item's outcome is returned in order: `Err` only for
/// [`StoreError::Invalid`], as [`upsert_user`] would refuse it: merged properties too
/// large (that item's properties are not written; a later item for the id merges into
/// what was there before it) or attached rows over their caps (the properties stay
/// written, the attachments before the refused one too). Any other error fails the call,
/// and the caller's transaction with it.
pub fn upsert_users(
    db: &Db<'_>,
    items: &[(&str, &Map<String, Value>)],
) -> StoreResult<Vec<StoreResult<()>>> {
    let mut ids: Vec<&str> = items.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut current: HashMap<String, Map<String, Value>> = stored_many(db, &ids)?
        .into_iter()
        .map(|(id, (props, _))| (id, props))
        .collect();
    let mut outcomes: Vec<StoreResult<()>> = Vec::with_capacity(items.len());
    // The ids to write, in id order: concurrent writers of the same users (two bulk
    // identifies, a trigger's inline users) then lock the rows they share in one order
    // on PostgreSQL, so they cannot deadlock on them.
    let mut written: BTreeSet<&str> = BTreeSet::new();
    for (id, props) in items {
        let (custom, ..) = split(props);
        match merged(current.get(*id).cloned(), &custom) {
            Ok(props) => {
                written.insert(id);
                current.insert((*id).to_owned(), props);
                outcomes.push(Ok(()));
            }
            Err(invalid @ StoreError::Invalid { .. }) => outcomes.push(Err(invalid)),
            Err(other) => return Err(other),
        }
    }
    let now = db.now();
    let rows: Vec<(&str, String)> = written
        .iter()
        .filter_map(|id| Some((*id, current.get(*id)?)))
        .map(|(id, props)| Ok((id, serde_json::to_string(props)?)))
        .collect::<StoreResult<_>>()?;
    write_properties(db, &rows, &now)?;
    for ((id, props), outcome) in items.iter().zip(outcomes.iter_mut()) {
        if outcome.is_err() {
            continue;
        }
        let (_, preferences, channel_data) = split(props);
        match attached::apply_inline(db, ChannelDataOwner::user(id), preferences, channel_data) {
            Ok(()) => {}
            Err(invalid @ StoreError::Invalid { .. }) => *outcome = Err(invalid),
            Err(other) => return Err(other),
        }
    }
    Ok(outcomes)
}

/// Upserts `(id, properties JSON)` rows (ids distinct) stamped `now`: PostgreSQL takes up
/// to [`USERS_PER_STATEMENT`] rows per statement from one JSON parameter; SQLite, an
/// in-process call per row, one prepared statement.
fn write_properties(db: &Db<'_>, rows: &[(&str, String)], now: &str) -> StoreResult<()> {
    if db.0.dialect() == Dialect::Sqlite {
        let mut stmt = db.0.prepare_cached(UPSERT_ONE_SQL)?;
        for (id, props) in rows {
            stmt.execute(params![id, props, now])?;
        }
        return Ok(());
    }
    let mut stmt = db.0.prepare_cached(
        "INSERT INTO users(id, properties, inserted_at, updated_at) \
         SELECT e ->> 0, e ->> 1, ?2, ?2 FROM json_array_elements(CAST(?1 AS json)) AS e \
         ON CONFLICT(id) DO UPDATE SET properties = excluded.properties, updated_at = excluded.updated_at",
    )?;
    for chunk in rows.chunks(USERS_PER_STATEMENT) {
        stmt.execute(params![serde_json::to_string(chunk)?, now])?;
    }
    Ok(())
}

/// Rows per multi-row user upsert on PostgreSQL: bounds one statement's JSON parameter
/// (a user's properties may be up to 256 kB; the request body limit bounds the total).
const USERS_PER_STATEMENT: usize = 500;

/// Creates the user or replaces its properties: the write of [`upsert_user`].
const UPSERT_ONE_SQL: &str = "INSERT INTO users(id, properties, inserted_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
     ON CONFLICT(id) DO UPDATE SET properties = excluded.properties, updated_at = excluded.updated_at";

/// The user, or `None` if never identified (or deleted).
pub fn get_user(db: &Db<'_>, id: &str) -> StoreResult<Option<Entity>> {
    Ok(stored(db, id)?.map(|(props, updated_at)| wire(id, props, updated_at)))
}

/// Many users in one query: what [`get_user`] returns for each id that exists.
pub fn get_users(
    db: &Db<'_>,
    ids: &[&str],
) -> StoreResult<std::collections::HashMap<String, Entity>> {
    Ok(stored_many(db, ids)?
        .into_iter()
        .map(|(id, (props, updated_at))| {
            let user = wire(&id, props, updated_at);
            (id, user)
        })
        .collect())
}

/// A stored user's custom properties and `updated_at`.
type StoredUser = (Map<String, Value>, String);

/// The stored properties and `updated_at` of each of `ids` that exists, in one query.
fn stored_many(db: &Db<'_>, ids: &[&str]) -> StoreResult<HashMap<String, StoredUser>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    // The JSON list drives the loop; each id is a primary-key probe, as correlated
    // scalar subqueries (`NULL` for a missing user) rather than a join: PostgreSQL's
    // generic plan of a join made while `users` was small stays a scan of the whole
    // table until the next ANALYZE (see `feed_keys::LOOKUP_SQL`). PostgreSQL reads the
    // list with its own `json_array_elements_text` and probes once per id in a lateral
    // subquery (`OFFSET 0` keeps it one): half the time of two scalar subqueries over the
    // `json_each` written in SQL (1.45 against 3.3 ms for 500 ids).
    let mut stmt = db.0.prepare_cached(if db.0.dialect() == Dialect::Postgres {
        "SELECT r.value, u.properties, u.updated_at \
         FROM json_array_elements_text(CAST(?1 AS json)) AS r(value) \
         LEFT JOIN LATERAL (SELECT properties, updated_at FROM users WHERE id = r.value OFFSET 0) u \
         ON true"
    } else {
        "SELECT r.value, (SELECT u.properties FROM users u WHERE u.id = r.value), \
         (SELECT u.updated_at FROM users u WHERE u.id = r.value) FROM json_each(?1) AS r"
    })?;
    let rows = stmt.query_map([serde_json::to_string(ids)?], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    let mut out = HashMap::with_capacity(ids.len());
    for row in rows {
        let (id, Some(props), Some(updated_at)) = row? else {
            continue;
        };
        out.insert(id, parse_stored((props, updated_at))?);
    }
    Ok(out)
}

/// Whether a user exists (cheaper than loading it; used for `actor_missing`).
pub fn user_exists(db: &Db<'_>, id: &str) -> StoreResult<bool> {
    Ok(db
        .0
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM users WHERE id = ?1)")?
        .query_row([id], |r| r.get(0))?)
}

/// Deletes the user with its preference sets, channel data and subscriptions. Messages that name the
/// user stay (feeds show a minimal stand-in). Returns whether the user existed.
pub fn delete_user(db: &Db<'_>, id: &str) -> StoreResult<bool> {
    let n =
        db.0.prepare_cached("DELETE FROM users WHERE id = ?1")?
            .execute([id])?;
    attached::delete_all(db, ChannelDataOwner::user(id))?;
    Ok(n > 0)
}

/// Merges user `from` into `into` (spec §4.1): properties deep-merge with `into` winning
/// conflicts, preference sets and channel data are adopted where `into` has none, and
/// `from` is deleted. Returns the merged user, or `None` when either user is missing
/// (then nothing changes).
pub fn merge_users(db: &Db<'_>, into: &str, from: &str) -> StoreResult<Option<Entity>> {
    let (Some((primary, _)), Some((secondary, _))) = (stored(db, into)?, stored(db, from)?) else {
        return Ok(None);
    };
    let merged = merged(Some(secondary), &primary)?;
    let now = db.now();
    db.0.prepare_cached("UPDATE users SET properties = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![into, serde_json::to_string(&merged)?, now])?;
    attached::adopt_missing(
        db,
        ChannelDataOwner::user(into),
        ChannelDataOwner::user(from),
    )?;
    super::subscriptions::adopt_user_subscriptions(db, into, from)?;
    crate::store::schedules::adopt_user_schedules(db, into, from, &now)?;
    delete_user(db, from)?;
    Ok(Some(wire(into, merged, now)))
}

/// One page of users in identify order. With `include_preferences`, each user carries
/// `preferences: {set_id: PreferenceSet}`.
pub fn list_users(
    db: &Db<'_>,
    q: &PageQuery,
    include_preferences: bool,
) -> StoreResult<Page<Entity>> {
    let listing = Listing {
        table: "users",
        columns: "rowid, id, properties, updated_at",
        filter: "1=1",
        params: Vec::new(),
    };
    let page = listing::fetch(db, &listing, q, listing::recipient_row)?;
    let mut entries = Vec::with_capacity(page.entries.len());
    for (id, props, updated_at) in page.entries {
        let mut user = wire(&id, parse_props(&props)?, updated_at);
        if include_preferences {
            user.preferences = Some(preference_map(db, ChannelDataOwner::user(&id))?);
        }
        entries.push(user);
    }
    Ok(Page {
        entries,
        after: page.after,
        before: page.before,
    })
}
