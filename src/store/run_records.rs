//! Reading run records: recipient runs with their run's trigger facts, listed newest first
//! and cursor-paged by a list position.
//!
//! Two sources answer together (issue 18):
//! - STORED rows of `workflow_recipient_runs`: every recipient run that paused, batched,
//!   was throttled, skipped or failed (where the "why" lives), and every run written
//!   before this version;
//! - DERIVED records of plain deliveries, which store no row: a message whose
//!   `workflow_recipient_run_id` has no stored row is such a run's message. Its record is
//!   `completed`, its events one [`message_created`] per message (as the walk writes
//!   them), its times its first message's, its actor and trigger facts its run's.
//!
//! Both are ordered by ONE position in write order: a derived record's is its first
//! message's `seq` shifted left by [`POSITION_BITS`]; a stored row's is its rowid, which
//! the writer chooses (`next_stored_position`) as the messages' latest `seq` at that
//! moment, shifted the same way, plus a counter. Rows written before this scheme keep
//! their rowids, which lie below every new position, so cursors issued before an upgrade
//! still point where they did. The derived side only reads messages newer than the
//! upgrade (`meta` `run_records_derived_after_seq`, migration 0019): older messages all
//! have stored rows.
//!
//! A page reads each source through an index in position order: stored rows by rowid
//! within their filter's index (as before), messages by `seq` (their primary key, or the
//! feed index for a recipient filter, one range per channel), and the derived side stops
//! at the stored side's last candidate, so neither scans past the page.

use crate::store::sql::Value as SqlValue;
use crate::store::sql::{Dialect, OptionalExtension, params_from_iter};
use serde_json::{Value, json};

use super::feed_sql::{self, Where};
use super::{Db, StoreResult, meta};
use crate::model::RecipientRef;
use crate::model::run_records::{RunListQuery, RunStatus};

/// Positions per message `seq`: a stored row takes one of the `2^24 - 1` positions after
/// the latest message's (more rows than that between two messages share the next
/// message's range, still unique).
pub const POSITION_BITS: u32 = 24;

/// The `meta` key of the newest message `seq` written before derived records existed.
const DERIVED_AFTER: &str = "run_records_derived_after_seq";

/// The `message_created` event of a message, as the walk records it and a derived
/// record shows it: one definition, so "plain" (`engine::waits::is_plain`) means exactly
/// "its record can be derived".
pub fn message_created(message_id: &str, step_ref: &str, expires_at: Option<&str>) -> Value {
    let mut data = json!({"message_id": message_id});
    if let Some(at) = expires_at {
        data["expires_at"] = json!(at);
    }
    json!({"event": "message_created", "status": "ok", "step_ref": step_ref,
           "step_type": "channel", "data": data})
}

/// Whether `event` is exactly [`message_created`]`(message_id, step_ref, expires_at)`,
/// compared in place: the runner asks this of every item it delivers
/// (`engine::waits::is_plain`), and building the event only to compare it was ~5% of the
/// runner's CPU at fan-out rates (BENCHMARKS.md, session 25).
pub fn is_message_created(
    event: &Value,
    message_id: &str,
    step_ref: &str,
    expires_at: Option<&str>,
) -> bool {
    let (Some(event), Some(data)) = (
        event.as_object(),
        event.get("data").and_then(Value::as_object),
    ) else {
        return false;
    };
    let is = |map: &serde_json::Map<String, Value>, key: &str, want: &str| {
        map.get(key).and_then(Value::as_str) == Some(want)
    };
    event.len() == 5
        && is(event, "event", "message_created")
        && is(event, "status", "ok")
        && is(event, "step_ref", step_ref)
        && is(event, "step_type", "channel")
        && is(data, "message_id", message_id)
        && match expires_at {
            Some(at) => data.len() == 2 && is(data, "expires_at", at),
            None => data.len() == 1,
        }
}

/// The list position of a derived record whose first message has `seq`.
fn derived_position(seq: i64) -> i64 {
    seq.saturating_mul(1 << POSITION_BITS)
}

/// The rowid (= list position) of the next stored recipient run: after the messages'
/// latest `seq` (`sqlite_sequence`, which never goes back), never on a derived record's
/// position. One statement.
///
/// SQLite (one writer): after every stored row too (`max(rowid) + 1`). PostgreSQL
/// (several nodes' writers in concurrent transactions, which would read the same maximum
/// and collide): the counter within the messages' range is the `recipient_run_positions`
/// sequence's next value, unique across nodes; a collision with a row written before it
/// (a database upgraded mid-range) is retried by [`super::runs::ensure_recipient_run_as`].
pub(super) fn next_stored_position(db: &Db<'_>) -> StoreResult<i64> {
    const SEQ: &str = "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0)";
    let per_message: i64 = 1 << POSITION_BITS;
    let next = match db.0.dialect() {
        Dialect::Sqlite => {
            let (seq, top): (i64, Option<i64>) =
                db.0.prepare_cached(&format!(
                    "SELECT {SEQ}, (SELECT max(rowid) FROM workflow_recipient_runs)"
                ))?
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            derived_position(seq).max(top.unwrap_or(0)) + 1
        }
        Dialect::Postgres => {
            let (seq, counter): (i64, i64) =
                db.0.prepare_cached(&format!("SELECT {SEQ}, nextval('recipient_run_positions')"))?
                    .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            // 1 ..= 2^24 - 1: never a derived record's position (a multiple of 2^24).
            derived_position(seq) + 1 + counter.rem_euclid(per_message - 1)
        }
    };
    Ok(if next % per_message == 0 {
        next + 1
    } else {
        next
    })
}

/// A recipient run as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// List position (the cursor).
    pub seq: i64,
    pub id: String,
    pub workflow_run_id: String,
    pub workflow_key: String,
    pub recipient: RecipientRef,
    pub status: String,
    pub tenant: Option<String>,
    /// The ordered events, as the engine stored them.
    pub events: Value,
    pub inserted_at: String,
    pub updated_at: String,
    /// From the run: the trigger's actor reference, if any.
    pub actor: Option<Value>,
    pub cancellation_key: Option<String>,
    /// Set when a schedule fired the run.
    pub schedule_id: Option<String>,
}

/// One page, newest first, with whether older/newer records exist beyond it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunRecordPage {
    pub records: Vec<RunRecord>,
    pub has_older: bool,
    pub has_newer: bool,
}

const COLUMNS: &str = "rr.rowid, rr.id, rr.workflow_run_id, COALESCE(rr.workflow_key, r.workflow_key), \
     rr.recipient_kind, rr.recipient_collection, rr.recipient_id, rr.status, rr.tenant, rr.events, \
     rr.inserted_at, rr.updated_at, r.request -> '$.actor', r.cancellation_key, \
     r.request ->> '$.schedule_id'";

const FROM: &str = "workflow_recipient_runs rr JOIN workflow_runs r ON r.id = rr.workflow_run_id";

type RawRecord = (RunRecord, String, Option<String>);

fn row(r: &crate::store::sql::Row<'_>) -> crate::store::sql::Result<RawRecord> {
    let record = RunRecord {
        seq: r.get(0)?,
        id: r.get(1)?,
        workflow_run_id: r.get(2)?,
        workflow_key: r.get(3)?,
        recipient: RecipientRef::from_stored(
            &r.get::<_, String>(4)?,
            &r.get::<_, String>(5)?,
            &r.get::<_, String>(6)?,
        ),
        status: r.get(7)?,
        tenant: r.get(8)?,
        events: Value::Null,
        inserted_at: r.get(10)?,
        updated_at: r.get(11)?,
        actor: None,
        cancellation_key: r.get(13)?,
        schedule_id: r.get(14)?,
    };
    Ok((record, r.get(9)?, r.get(12)?))
}

fn actor(raw: Option<String>) -> StoreResult<Option<Value>> {
    Ok(match raw {
        None => None,
        Some(a) => Some(serde_json::from_str::<Value>(&a)?).filter(|v| !v.is_null()),
    })
}

fn decode((mut record, events, raw_actor): RawRecord) -> StoreResult<RunRecord> {
    record.events = serde_json::from_str(&events)?;
    record.actor = actor(raw_actor)?;
    Ok(record)
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

/// The filters of `q` over `workflow_recipient_runs rr`.
fn filters(q: &RunListQuery) -> Where {
    let mut w = Where::default();
    if let Some(key) = &q.workflow {
        w.push("rr.workflow_key = ?", [text(key)]);
    }
    if let Some(tenant) = &q.tenant {
        w.push("rr.tenant = ?", [text(tenant)]);
    }
    if let Some(r) = &q.recipient {
        w.push(
            "rr.recipient_kind = ? AND rr.recipient_collection = ? AND rr.recipient_id = ?",
            [text(r.kind()), text(r.collection()), text(r.id())],
        );
    }
    if !q.statuses.is_empty() {
        w.push(
            format!("rr.status IN ({})", vec!["?"; q.statuses.len()].join(", ")),
            q.statuses.iter().map(|s| text(s.as_str())),
        );
        // The status index leaves `completed` rows out (migration 0013); this term, implied
        // by the one above, is what lets SQLite use it.
        if !q.statuses.contains(&RunStatus::Completed) {
            w.push("rr.status <> 'completed'", []);
        }
    }
    if let Some(has) = q.has_errors {
        let exists =
            "EXISTS (SELECT 1 FROM json_each(rr.events) e WHERE e.value ->> '$.status' = 'error')";
        w.push(
            if has {
                exists.to_owned()
            } else {
                format!("NOT {exists}")
            },
            [],
        );
    }
    if let Some(t) = &q.started.gte {
        w.push("rr.inserted_at >= ?", [text(t)]);
    }
    if let Some(t) = &q.started.lte {
        w.push("rr.inserted_at <= ?", [text(t)]);
    }
    w
}

/// Exclusive position bounds of a read: `above < position < below`.
#[derive(Debug, Clone, Copy, Default)]
struct Bounds {
    above: Option<i64>,
    below: Option<i64>,
}

/// Up to `limit` stored records of `scope` within `b`, newest first or (`!newer_first`)
/// oldest first.
fn stored_page(
    db: &Db<'_>,
    scope: &Where,
    b: Bounds,
    newer_first: bool,
    limit: i64,
) -> StoreResult<Vec<RawRecord>> {
    let mut w = Where::default();
    w.push(format!("({})", scope.sql()), scope.params.iter().cloned());
    if let Some(below) = b.below {
        w.push("rr.rowid < ?", [SqlValue::Integer(below)]);
    }
    if let Some(above) = b.above {
        w.push("rr.rowid > ?", [SqlValue::Integer(above)]);
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE {} ORDER BY rr.rowid {} LIMIT ?",
        w.sql(),
        if newer_first { "DESC" } else { "ASC" }
    );
    let mut params = w.params;
    params.push(SqlValue::Integer(limit));
    Ok(db
        .0
        .prepare_cached(&sql)?
        .query_map(params_from_iter(params.iter()), row)?
        .collect::<Result<_, _>>()?)
}

/// Whether a stored record of `scope` lies beyond position `from` (`op` is `<` or `>`).
fn stored_beyond(db: &Db<'_>, scope: &Where, op: &str, from: i64) -> StoreResult<bool> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM workflow_recipient_runs rr WHERE {} AND rr.rowid {op} ?)",
        scope.sql()
    );
    let mut params = scope.params.clone();
    params.push(SqlValue::Integer(from));
    Ok(db
        .0
        .prepare_cached(&sql)?
        .query_row(params_from_iter(params.iter()), |r| r.get(0))?)
}

/// What the derived side of a list reads: its filters over `messages` (the first message
/// of each recipient run without a stored row), the recipient's feeds when filtered by
/// recipient, and the oldest `seq` it may read. `None`: the filters exclude every derived
/// record (they are `completed`, without errors).
struct Derived {
    scope: Where,
    /// With a recipient filter, one `messages_feed` range per channel.
    feeds: Option<Vec<Where>>,
    /// The workflow filter (see [`SCAN_BUDGET`]).
    workflow: Option<String>,
    after_seq: i64,
}

impl Derived {
    fn of(db: &Db<'_>, q: &RunListQuery) -> StoreResult<Option<Derived>> {
        if (!q.statuses.is_empty() && !q.statuses.contains(&RunStatus::Completed))
            || q.has_errors == Some(true)
        {
            return Ok(None);
        }
        let mut scope = Where::default();
        if let Some(key) = &q.workflow {
            scope.push("workflow_key = ?", [text(key)]);
        }
        if let Some(tenant) = &q.tenant {
            scope.push("tenant = ?", [text(tenant)]);
        }
        if let Some(t) = &q.started.gte {
            scope.push("inserted_at >= ?", [text(t)]);
        }
        if let Some(t) = &q.started.lte {
            scope.push("inserted_at <= ?", [text(t)]);
        }
        scope.push(
            "NOT EXISTS (SELECT 1 FROM workflow_recipient_runs s \
             WHERE s.id = messages.workflow_recipient_run_id) \
             AND NOT EXISTS (SELECT 1 FROM messages f \
             WHERE f.workflow_recipient_run_id = messages.workflow_recipient_run_id \
             AND f.seq < messages.seq)",
            [],
        );
        let feeds = match &q.recipient {
            None => None,
            Some(r) => Some(
                db.0.prepare_cached("SELECT id FROM channels ORDER BY id")?
                    .query_map([], |row| row.get::<_, String>(0))?
                    .map(|channel| {
                        let mut w = Where::default();
                        feed_sql::feed(&mut w, &channel?, r);
                        Ok(w)
                    })
                    .collect::<StoreResult<_>>()?,
            ),
        };
        let after_seq = meta::get(db, DERIVED_AFTER)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Some(Derived {
            scope,
            feeds,
            workflow: q.workflow.clone(),
            after_seq,
        }))
    }

    /// Up to `limit` derived records within `b` as (position, recipient run id), newest
    /// first or oldest first.
    fn page(
        &self,
        db: &Db<'_>,
        b: Bounds,
        newer_first: bool,
        limit: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        // position < below <=> seq <= (below - 1) >> BITS; position > above <=> seq > above >> BITS.
        let min_exclusive = b
            .above
            .map_or(self.after_seq, |a| (a >> POSITION_BITS).max(self.after_seq));
        let max_inclusive = b.below.map(|below| (below - 1) >> POSITION_BITS);
        if max_inclusive.is_some_and(|max| max <= min_exclusive) {
            return Ok(Vec::new());
        }
        let (min, max) = (min_exclusive, max_inclusive);
        let Some(feeds) = &self.feeds else {
            let Some(workflow) = &self.workflow else {
                return self.read(db, &Where::default(), min, max, newer_first, limit);
            };
            // A workflow filter: messages newest first (or oldest first) for at most
            // SCAN_BUDGET positions, where a common workflow fills the page; the rest of
            // the window through the workflow's runs (`messages_run`), which a rare one
            // keeps small.
            let top = match max {
                Some(max) => max,
                None => latest_seq(db)?,
            };
            let (near, far) = if newer_first {
                let split = (top - SCAN_BUDGET).max(min);
                ((split, Some(top)), (min, Some(split)))
            } else {
                let split = (min + SCAN_BUDGET).min(top);
                ((min, Some(split)), (split, Some(top)))
            };
            let mut out = self.read(db, &Where::default(), near.0, near.1, newer_first, limit)?;
            let missing = limit - out.len() as i64;
            if missing > 0 && far.1.is_some_and(|hi| hi > far.0) {
                let mut runs = Where::default();
                runs.push(
                    "workflow_run_id IN (SELECT id FROM workflow_runs WHERE workflow_key = ?)",
                    [text(workflow)],
                );
                out.extend(self.read(db, &runs, far.0, far.1, newer_first, missing)?);
            }
            return Ok(out);
        };
        let mut out = Vec::new();
        for feed in feeds {
            out.extend(self.read(db, feed, min, max, newer_first, limit)?);
        }
        out.sort_by_key(|(position, _)| *position);
        if newer_first {
            out.reverse();
        }
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(out)
    }

    /// Up to `limit` derived records among the messages `range` selects with
    /// `min < seq <= max`, in position order.
    fn read(
        &self,
        db: &Db<'_>,
        range: &Where,
        min: i64,
        max: Option<i64>,
        newer_first: bool,
        limit: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        let mut w = Where::default();
        w.push(range.sql(), range.params.iter().cloned());
        w.push("seq > ?", [SqlValue::Integer(min)]);
        if let Some(max) = max {
            w.push("seq <= ?", [SqlValue::Integer(max)]);
        }
        w.push(self.scope.sql(), self.scope.params.iter().cloned());
        let sql = format!(
            "SELECT seq, workflow_recipient_run_id FROM messages WHERE {} ORDER BY seq {} LIMIT ?",
            w.sql(),
            if newer_first { "DESC" } else { "ASC" }
        );
        let mut params = w.params;
        params.push(SqlValue::Integer(limit));
        let mut stmt = db.0.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(params.iter()), |r| {
            Ok((derived_position(r.get(0)?), r.get::<_, String>(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Message positions a workflow-filtered page reads in `seq` order before it turns to
/// the workflow's runs (tests: a few, so both ways are exercised).
const SCAN_BUDGET: i64 = if cfg!(test) { 2 } else { 5_000 };

/// The newest message `seq` ever issued.
fn latest_seq(db: &Db<'_>) -> StoreResult<i64> {
    Ok(db
        .0
        .prepare_cached(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0)",
        )?
        .query_row([], |r| r.get(0))?)
}

/// One entry of a merged page: a stored record, or a derived one still to load.
enum Entry {
    Stored(Box<RawRecord>),
    Derived(String),
}

/// One page of the records `q` selects. With `before`, the page right newer than the
/// cursor (still newest first).
pub fn list(db: &Db<'_>, q: &RunListQuery) -> StoreResult<RunRecordPage> {
    let scope = filters(q);
    let derived = Derived::of(db, q)?;
    let bounds = Bounds {
        above: q.before,
        below: q.after,
    };
    let newer_first = q.before.is_none();
    let limit = i64::from(q.page_size.max(1));
    let stored = stored_page(db, &scope, bounds, newer_first, limit + 1)?;
    let mut entries: Vec<(i64, Entry)> = Vec::with_capacity(stored.len() * 2);
    // Derived records past the stored side's last candidate cannot make the page.
    let mut narrowed = bounds;
    if stored.len() as i64 > limit
        && let Some((last, _, _)) = stored.last()
    {
        if newer_first {
            narrowed.above = Some(last.seq);
        } else {
            narrowed.below = Some(last.seq);
        }
    }
    entries.extend(
        stored
            .into_iter()
            .map(|r| (r.0.seq, Entry::Stored(Box::new(r)))),
    );
    if let Some(derived) = &derived {
        entries.extend(
            derived
                .page(db, narrowed, newer_first, limit + 1)?
                .into_iter()
                .map(|(position, id)| (position, Entry::Derived(id))),
        );
    }
    entries.sort_by_key(|(position, _)| *position);
    if newer_first {
        entries.reverse();
    }
    let overflow = entries.len() as i64 > limit;
    entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut records = Vec::with_capacity(entries.len());
    for (position, entry) in entries {
        records.push(match entry {
            Entry::Stored(raw) => decode(*raw)?,
            Entry::Derived(id) => {
                let mut record =
                    derived_record(db, &id)?.ok_or_else(|| crate::store::sql::Error::NoRows)?;
                record.seq = position;
                record
            }
        });
    }
    let beyond = |op: &str, from: i64| -> StoreResult<bool> {
        if stored_beyond(db, &scope, op, from)? {
            return Ok(true);
        }
        let Some(derived) = &derived else {
            return Ok(false);
        };
        let (b, newer) = if op == ">" {
            (
                Bounds {
                    above: Some(from),
                    below: None,
                },
                false,
            )
        } else {
            (
                Bounds {
                    above: None,
                    below: Some(from),
                },
                true,
            )
        };
        Ok(!derived.page(db, b, newer, 1)?.is_empty())
    };
    let (has_older, has_newer) = if newer_first {
        let newer = match records.first() {
            Some(first) => beyond(">", first.seq)?,
            None => false,
        };
        (overflow, newer)
    } else {
        records.reverse();
        let older = match records.last() {
            Some(last) => beyond("<", last.seq)?,
            None => false,
        };
        (older, overflow)
    };
    Ok(RunRecordPage {
        records,
        has_older,
        has_newer,
    })
}

/// The derived record of recipient run `id` (one without a stored row), from its
/// messages and its run; `None` when no message carries the id.
fn derived_record(db: &Db<'_>, id: &str) -> StoreResult<Option<RunRecord>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT seq, id, workflow_run_id, workflow_key, recipient_kind, recipient_collection, \
         recipient_id, tenant, step_ref, expires_at, inserted_at \
         FROM messages WHERE workflow_recipient_run_id = ?1 ORDER BY seq",
    )?;
    let mut rows = stmt.query([id])?;
    let mut record: Option<RunRecord> = None;
    let mut events = Vec::new();
    while let Some(r) = rows.next()? {
        let message_id: String = r.get(1)?;
        let step_ref: String = r.get(8)?;
        let expires_at: Option<String> = r.get(9)?;
        events.push(message_created(
            &message_id,
            &step_ref,
            expires_at.as_deref(),
        ));
        if record.is_none() {
            let inserted_at: String = r.get(10)?;
            record = Some(RunRecord {
                seq: derived_position(r.get(0)?),
                id: id.to_owned(),
                workflow_run_id: r.get(2)?,
                workflow_key: r.get(3)?,
                recipient: RecipientRef::from_stored(
                    &r.get::<_, String>(4)?,
                    &r.get::<_, String>(5)?,
                    &r.get::<_, String>(6)?,
                ),
                status: RunStatus::Completed.as_str().to_owned(),
                tenant: r.get(7)?,
                events: Value::Null,
                updated_at: inserted_at.clone(),
                inserted_at,
                actor: None,
                cancellation_key: None,
                schedule_id: None,
            });
        }
    }
    let Some(mut record) = record else {
        return Ok(None);
    };
    record.events = Value::Array(events);
    let run: Option<(Option<String>, Option<String>, Option<String>)> =
        db.0.prepare_cached(
            "SELECT request -> '$.actor', cancellation_key, request ->> '$.schedule_id' \
             FROM workflow_runs WHERE id = ?1",
        )?
        .query_row([&record.workflow_run_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    if let Some((raw_actor, cancellation_key, schedule_id)) = run {
        record.actor = actor(raw_actor)?;
        record.cancellation_key = cancellation_key;
        record.schedule_id = schedule_id;
    }
    Ok(Some(record))
}

/// The recipient run `id`, with its events: its stored row, else its derived record.
pub fn get(db: &Db<'_>, id: &str) -> StoreResult<Option<RunRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE rr.id = ?1");
    let stored =
        db.0.prepare_cached(&sql)?
            .query_row([id], row)
            .optional()?
            .map(decode)
            .transpose()?;
    match stored {
        Some(record) => Ok(Some(record)),
        None => derived_record(db, id),
    }
}

#[cfg(test)]
#[path = "run_records_tests.rs"]
mod mixed_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::{self, NewRun};
    use serde_json::json;

    fn seed(db: &Db<'_>, run: &str, workflow: &str, tenant: Option<&str>, users: &[&str]) {
        runs::insert_run(
            db,
            &NewRun {
                id: run.into(),
                workflow_key: workflow.into(),
                request: json!({"actor": "boss", "recipients": []}),
                cancellation_key: Some("ck".into()),
                tenant: tenant.map(str::to_owned),
            },
        )
        .expect("run");
        for u in users {
            let events = if *u == "bad" {
                json!([{"event": "step_failed", "status": "error"}])
            } else {
                json!([{"event": "message_created", "status": "ok"}])
            };
            runs::ensure_recipient_run(
                db,
                run,
                &RecipientRef::User((*u).into()),
                "completed",
                &events,
            )
            .expect("recipient run");
        }
    }

    fn ids(page: &RunRecordPage) -> Vec<String> {
        page.records
            .iter()
            .map(|r| format!("{}/{}", r.workflow_run_id, r.recipient.id()))
            .collect()
    }

    #[test]
    fn each_filter_selects_exactly_its_records_newest_first() {
        for test_db in crate::store::test_engines::engines() {
            eprintln!("engine: {}", test_db.engine);
            let conn = &test_db.conn;
            let db = Db::on(conn);
            seed(&db, "r1", "wf-a", Some("t1"), &["u1", "u2"]);
            seed(&db, "r2", "wf-b", None, &["u1", "bad"]);
            let all = |q: RunListQuery| {
                ids(&list(&db, &RunListQuery { page_size: 50, ..q }).expect("list"))
            };
            assert_eq!(
                all(RunListQuery::default()),
                ["r2/bad", "r2/u1", "r1/u2", "r1/u1"]
            );
            assert_eq!(
                all(RunListQuery {
                    workflow: Some("wf-a".into()),
                    ..Default::default()
                }),
                ["r1/u2", "r1/u1"]
            );
            assert_eq!(
                all(RunListQuery {
                    tenant: Some("t1".into()),
                    ..Default::default()
                }),
                ["r1/u2", "r1/u1"]
            );
            assert_eq!(
                all(RunListQuery {
                    recipient: Some(RecipientRef::User("u1".into())),
                    ..Default::default()
                }),
                ["r2/u1", "r1/u1"]
            );
            assert_eq!(
                all(RunListQuery {
                    has_errors: Some(true),
                    ..Default::default()
                }),
                ["r2/bad"]
            );
            assert_eq!(
                all(RunListQuery {
                    statuses: vec![RunStatus::Paused],
                    ..Default::default()
                }),
                Vec::<String>::new()
            );
            let got = get(
                &db,
                &list(
                    &db,
                    &RunListQuery {
                        page_size: 1,
                        ..Default::default()
                    },
                )
                .expect("list")
                .records[0]
                    .id,
            )
            .expect("get")
            .expect("found");
            assert_eq!(got.workflow_key, "wf-b");
            assert_eq!(got.actor, Some(json!("boss")));
            assert_eq!(got.cancellation_key.as_deref(), Some("ck"));
            assert_eq!(got.events[0]["event"], "step_failed");
        }
    }

    #[test]
    fn pages_walk_forward_and_back_without_gaps() {
        for test_db in crate::store::test_engines::engines() {
            eprintln!("engine: {}", test_db.engine);
            let conn = &test_db.conn;
            let db = Db::on(conn);
            seed(&db, "r1", "wf", None, &["a", "b", "c", "d", "e"]);
            let q = RunListQuery {
                page_size: 2,
                ..Default::default()
            };
            let p1 = list(&db, &q).expect("p1");
            assert_eq!(ids(&p1), ["r1/e", "r1/d"]);
            assert!(p1.has_older && !p1.has_newer);
            let after = p1.records.last().map(|r| r.seq);
            let p2 = list(&db, &RunListQuery { after, ..q.clone() }).expect("p2");
            assert_eq!(ids(&p2), ["r1/c", "r1/b"]);
            assert!(p2.has_older && p2.has_newer);
            let before = p2.records.first().map(|r| r.seq);
            let back = list(
                &db,
                &RunListQuery {
                    before,
                    ..q.clone()
                },
            )
            .expect("back");
            assert_eq!(ids(&back), ["r1/e", "r1/d"]);
            assert!(back.has_older && !back.has_newer);
        }
    }
}
