//! The integer key of a feed (one channel's items for one recipient), `feeds.id`.
//!
//! Invariants: a `feeds` row is created only on the write path, by the first message of
//! its feed, and never deleted, so a key means the same feed forever. Reads never create
//! one: they look the key up inside their own statement ([`KEY_SQL`]), and an unknown feed
//! is an empty one. A page of messages resolves its keys with one lookup (and one insert
//! for the feeds it creates), not one per message.

use std::collections::HashMap;

use crate::store::sql::{Dialect, OptionalExtension};
use serde_json::json;

use super::{Db, StoreResult};
use crate::model::RecipientRef;

/// The key of the feed named by four bound values (channel, kind, collection, id), as a
/// scalar subquery: `NULL`, matching nothing, when the feed does not exist.
pub(super) const KEY_SQL: &str = "(SELECT id FROM feeds WHERE channel_id = ? AND recipient_kind = ? \
     AND recipient_collection = ? AND recipient_id = ?)";

/// The keys of the feeds named in a JSON array of `[channel, kind, collection, id]`, by
/// array index (`NULL` for a feed that does not exist): one probe of the feeds' unique
/// index per element, as a correlated scalar subquery. Written so, and not as a join of
/// `json_each` with `feeds`, because PostgreSQL keeps a prepared statement's generic plan
/// until the tables are analyzed again: a join planned while `feeds` was empty stayed a
/// hash join over a sequential scan of every feed (50 ms a page at 100,000 feeds), where
/// the subquery is an index probe whatever the statistics said (BENCHMARKS.md, issue 19).
pub(super) const LOOKUP_SQL: &str = "SELECT CAST(j.key AS INTEGER), (SELECT f.id FROM feeds f \
     WHERE f.channel_id = j.value ->> 0 AND f.recipient_kind = j.value ->> 1 \
     AND f.recipient_collection = j.value ->> 2 AND f.recipient_id = j.value ->> 3) \
     FROM json_each(?1) j";

/// [`LOOKUP_SQL`] for PostgreSQL: the same probes, driven by PostgreSQL's own
/// `json_array_elements` rather than the `json_each` written in SQL for the shared
/// queries (which parses the list again for each of its calls and each `->>`). The names
/// are taken out of the JSON once, in a materialized step, so a probe compares plain
/// text: planned as a sequential scan (a table that just grew from empty, before its
/// statistics caught up, see `store::statistics`) it would otherwise parse the element
/// again for every row it looks at (4× slower, measured at 1,000 feeds).
const PG_LOOKUP_SQL: &str = "WITH k AS MATERIALIZED (SELECT a.ord - 1 AS n, \
     (a.e ->> 0) COLLATE \"C\" AS c, (a.e ->> 1) COLLATE \"C\" AS r, \
     (a.e ->> 2) COLLATE \"C\" AS o, (a.e ->> 3) COLLATE \"C\" AS i \
     FROM json_array_elements(CAST(?1 AS json)) WITH ORDINALITY AS a(e, ord)) \
     SELECT k.n, (SELECT f.id FROM feeds f WHERE f.channel_id = k.c AND f.recipient_kind = k.r \
     AND f.recipient_collection = k.o AND f.recipient_id = k.i) FROM k";

/// Creates the feeds named in a JSON array like [`LOOKUP_SQL`]'s, each row saying which
/// feed it is (RETURNING reports rows in no promised order).
const INSERT_SQL: &str = "INSERT INTO feeds(channel_id, recipient_kind, recipient_collection, recipient_id) \
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?1) WHERE true \
     RETURNING id, channel_id, recipient_kind, recipient_collection, recipient_id";

/// [`INSERT_SQL`] for PostgreSQL, on its own JSON functions (see [`PG_LOOKUP_SQL`]).
const PG_INSERT_SQL: &str = "INSERT INTO feeds(channel_id, recipient_kind, recipient_collection, recipient_id) \
     SELECT e ->> 0, e ->> 1, e ->> 2, e ->> 3 FROM json_array_elements(CAST(?1 AS json)) AS a(e) \
     RETURNING id, channel_id, recipient_kind, recipient_collection, recipient_id";

/// A feed by name, borrowed from the message that belongs to it.
pub(super) type FeedName<'a> = (&'a str, &'a RecipientRef);

fn json_of(names: &[FeedName<'_>]) -> String {
    serde_json::Value::Array(
        names
            .iter()
            .map(|(channel, r)| json!([channel, r.kind(), r.collection(), r.id()]))
            .collect(),
    )
    .to_string()
}

/// The keys of `names` (which must be distinct), creating the feeds that do not exist
/// yet: the writer's committed keys first (`feed_key_cache`), then one lookup for the rest,
/// plus one insert when some are new. `keys[i]` is the key of `names[i]`. Every key read
/// or created here is staged in the cache, known once this transaction commits.
pub(super) fn resolve(db: &Db<'_>, names: &[FeedName<'_>]) -> StoreResult<Vec<i64>> {
    let cache = db.2;
    let hashes: Vec<_> = match cache {
        Some(cache) => names.iter().map(|(c, r)| cache.name(c, r)).collect(),
        None => Vec::new(),
    };
    let mut keys: Vec<Option<i64>> = match cache {
        Some(cache) => hashes.iter().map(|&h| cache.get(h)).collect(),
        None => vec![None; names.len()],
    };
    let unknown: Vec<usize> = (0..names.len()).filter(|&i| keys[i].is_none()).collect();
    if unknown.is_empty() {
        return Ok(keys.into_iter().flatten().collect());
    }
    let postgres = db.0.dialect() == Dialect::Postgres;
    let looked_up: Vec<FeedName<'_>> = unknown.iter().map(|&i| names[i]).collect();
    let mut lookup =
        db.0.prepare_cached(if postgres { PG_LOOKUP_SQL } else { LOOKUP_SQL })?;
    let found = lookup.query_map([json_of(&looked_up)], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
    })?;
    for row in found {
        let (at, Some(key)) = row? else {
            continue;
        };
        if let Some(&i) = usize::try_from(at).ok().and_then(|at| unknown.get(at)) {
            keys[i] = Some(key);
        }
    }
    let missing: Vec<usize> = unknown
        .iter()
        .copied()
        .filter(|&i| keys[i].is_none())
        .collect();
    if !missing.is_empty() {
        let new: Vec<FeedName<'_>> = missing.iter().map(|&i| names[i]).collect();
        let mut insert =
            db.0.prepare_cached(if postgres { PG_INSERT_SQL } else { INSERT_SQL })?;
        let created: HashMap<[String; 4], i64> = insert
            .query_map([json_of(&new)], |r| {
                Ok(([r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?], r.get(0)?))
            })?
            .collect::<Result<_, _>>()?;
        for &i in &missing {
            let (channel, r) = names[i];
            let name = [channel, r.kind(), r.collection(), r.id()].map(str::to_owned);
            keys[i] = created.get(&name).copied();
        }
    }
    if let Some(cache) = cache {
        for &i in &unknown {
            if let Some(key) = keys[i] {
                cache.stage(hashes[i], key);
            }
        }
    }
    keys.into_iter()
        .map(|k| k.ok_or_else(|| super::StoreError::Conflict("a feed key was not created".into())))
        .collect()
}

/// The key of one feed, creating the feed if needed (messages written one at a time).
pub(super) fn ensure(db: &Db<'_>, channel_id: &str, recipient: &RecipientRef) -> StoreResult<i64> {
    let name = db.2.map(|cache| (cache, cache.name(channel_id, recipient)));
    if let Some(key) = name.and_then(|(cache, name)| cache.get(name)) {
        return Ok(key);
    }
    let key = look_up_or_create(db, channel_id, recipient)?;
    if let Some((cache, name)) = name {
        cache.stage(name, key);
    }
    Ok(key)
}

fn look_up_or_create(db: &Db<'_>, channel_id: &str, recipient: &RecipientRef) -> StoreResult<i64> {
    let found: Option<i64> =
        db.0.prepare_cached(&format!("SELECT {KEY_SQL}"))?
            .query_row(
                [
                    channel_id,
                    recipient.kind(),
                    recipient.collection(),
                    recipient.id(),
                ],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten();
    if let Some(key) = found {
        return Ok(key);
    }
    Ok(db
        .0
        .prepare_cached(
            "INSERT INTO feeds(channel_id, recipient_kind, recipient_collection, recipient_id) \
             VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )?
        .query_row(
            [
                channel_id,
                recipient.kind(),
                recipient.collection(),
                recipient.id(),
            ],
            |r| r.get(0),
        )?)
}

/// Distinct feeds of a page, and for each item the index of its feed among them.
pub(super) fn distinct<'a>(
    items: impl Iterator<Item = FeedName<'a>>,
) -> (Vec<FeedName<'a>>, Vec<usize>) {
    let mut names: Vec<FeedName<'a>> = Vec::new();
    let mut at: HashMap<FeedName<'a>, usize> = HashMap::new();
    let positions = items
        .map(|name| {
            *at.entry(name).or_insert_with(|| {
                names.push(name);
                names.len() - 1
            })
        })
        .collect();
    (names, positions)
}
