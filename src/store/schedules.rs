//! Schedules: one row per (schedule, recipient), listed in creation order (keyset paged by
//! `rowid`), and the due-occurrence queries the firing path uses.
//!
//! A schedule's `data` lives in `schedule_payloads`, once per create or update however
//! many recipients it names (issue 17 item 8): rows refer to it by `payload_id`, and a
//! read decodes each payload once and shares it (`Arc`) between the rows that name it.
//!
//! Invariant: `next_occurrence_at` is the claim. [`claim`] advances it only from the value
//! the caller saw, and the caller does that in the same transaction that inserts the
//! occurrence's workflow run; so one occurrence makes exactly one run, whatever crashes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::sql::Value as SqlValue;
use crate::store::sql::{OptionalExtension, params, params_from_iter};
use serde_json::Value;

use super::feed_sql::Where;
use super::{Db, StoreResult};
use crate::model::{Page, PageQuery, RecipientRef};

/// A schedule to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    pub id: String,
    pub workflow_key: String,
    pub recipient: RecipientRef,
    pub actor: Option<RecipientRef>,
    pub tenant: Option<String>,
    /// Shared with every schedule of the same payload.
    pub data: Option<Arc<Value>>,
    /// The `schedule_payloads` row holding `data` ([`put_payload`]); `None` with no data.
    pub payload_id: Option<String>,
    /// The normalized rules (`RepeatRule::to_wire` each).
    pub repeats: Value,
    pub scheduled_at: Option<String>,
    pub ending_at: Option<String>,
    pub next_occurrence_at: Option<String>,
    pub inserted_at: String,
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    pub schedule: NewSchedule,
    pub last_occurrence_at: Option<String>,
    pub updated_at: String,
}

const COLUMNS: &str = "rowid, id, workflow_key, recipient_kind, recipient_collection, recipient_id, \
     actor, tenant, payload_id, repeats, scheduled_at, ending_at, next_occurrence_at, last_occurrence_at, \
     inserted_at, updated_at";

type RawRow = (i64, ScheduleRow, Option<String>, String);

fn row(r: &crate::store::sql::Row<'_>) -> crate::store::sql::Result<RawRow> {
    let schedule = NewSchedule {
        id: r.get(1)?,
        workflow_key: r.get(2)?,
        recipient: RecipientRef::from_stored(
            &r.get::<_, String>(3)?,
            &r.get::<_, String>(4)?,
            &r.get::<_, String>(5)?,
        ),
        actor: None,
        tenant: r.get(7)?,
        data: None,
        payload_id: r.get(8)?,
        repeats: Value::Null,
        scheduled_at: r.get(10)?,
        ending_at: r.get(11)?,
        next_occurrence_at: r.get(12)?,
        inserted_at: r.get(14)?,
    };
    let stored = ScheduleRow {
        schedule,
        last_occurrence_at: r.get(13)?,
        updated_at: r.get(15)?,
    };
    Ok((r.get(0)?, stored, r.get(6)?, r.get(9)?))
}

/// Payloads decoded during one read, each once: `(value, its JSON size)` by id.
#[derive(Default)]
struct Payloads(HashMap<String, (Arc<Value>, usize)>);

impl Payloads {
    fn get(&mut self, db: &Db<'_>, id: &str) -> StoreResult<(Arc<Value>, usize)> {
        if let Some(found) = self.0.get(id) {
            return Ok(found.clone());
        }
        let text: String =
            db.0.prepare_cached("SELECT data FROM schedule_payloads WHERE id = ?1")?
                .query_row([id], |r| r.get(0))?;
        let found = (Arc::new(serde_json::from_str(&text)?), text.len());
        self.0.insert(id.to_owned(), found.clone());
        Ok(found)
    }
}

/// A decoded row and the size of its data as JSON (0 without).
fn decode(
    db: &Db<'_>,
    payloads: &mut Payloads,
    (seq, mut stored, actor, repeats): RawRow,
) -> StoreResult<(i64, ScheduleRow, usize)> {
    let s = &mut stored.schedule;
    s.actor = match actor {
        None => None,
        Some(a) => RecipientRef::parse(&serde_json::from_str(&a)?).ok(),
    };
    let mut size = 0;
    if let Some(id) = &s.payload_id {
        let (data, bytes) = payloads.get(db, id)?;
        s.data = Some(data);
        size = bytes;
    }
    s.repeats = serde_json::from_str(&repeats)?;
    Ok((seq, stored, size))
}

fn json_text(v: &Option<Value>) -> StoreResult<Option<String>> {
    Ok(v.as_ref().map(serde_json::to_string).transpose()?)
}

/// Stores `data` once for the schedules of one create or update; returns the id they
/// refer to it by (`NewSchedule::payload_id`). Unreferenced, it goes with the write's
/// last schedule change (the `schedules_release_*` triggers).
pub fn put_payload(db: &Db<'_>, data: &Value) -> StoreResult<String> {
    let id = crate::ids::uuid();
    db.0.prepare_cached("INSERT INTO schedule_payloads(id, data) VALUES (?1, ?2)")?
        .execute(params![id, serde_json::to_string(data)?])?;
    Ok(id)
}

/// Inserts or replaces (same id) a schedule, stamping `updated_at` with its `inserted_at`
/// on insert and `now` on replace.
pub fn put(db: &Db<'_>, s: &NewSchedule, now: &str) -> StoreResult<()> {
    db.0.prepare_cached(
        "INSERT INTO schedules(id, workflow_key, recipient_kind, recipient_collection, recipient_id, actor, \
         tenant, payload_id, repeats, scheduled_at, ending_at, next_occurrence_at, inserted_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
         ON CONFLICT(id) DO UPDATE SET actor = excluded.actor, tenant = excluded.tenant, \
         payload_id = excluded.payload_id, repeats = excluded.repeats, scheduled_at = excluded.scheduled_at, \
         ending_at = excluded.ending_at, next_occurrence_at = excluded.next_occurrence_at, \
         updated_at = excluded.updated_at",
    )?
    .execute(params![
        s.id,
        s.workflow_key,
        s.recipient.kind(),
        s.recipient.collection(),
        s.recipient.id(),
        json_text(&s.actor.as_ref().map(RecipientRef::to_wire))?,
        s.tenant,
        s.payload_id,
        serde_json::to_string(&s.repeats)?,
        s.scheduled_at,
        s.ending_at,
        s.next_occurrence_at,
        s.inserted_at,
        now,
    ])?;
    Ok(())
}

/// The schedule `id`.
pub fn get(db: &Db<'_>, id: &str) -> StoreResult<Option<ScheduleRow>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules WHERE id = ?1");
    db.0.prepare_cached(&sql)?
        .query_row([id], row)
        .optional()?
        .map(|raw| decode(db, &mut Payloads::default(), raw).map(|(_, s, _)| s))
        .transpose()
}

/// Deletes the schedule `id`; whether it existed.
pub fn delete(db: &Db<'_>, id: &str) -> StoreResult<bool> {
    Ok(db
        .0
        .prepare_cached("DELETE FROM schedules WHERE id = ?1")?
        .execute([id])?
        == 1)
}

/// Deletes every schedule addressed to a recipient: called when the user or object is
/// deleted, so a schedule never keeps firing runs at a recipient that no longer exists.
pub fn delete_for_recipient(
    db: &Db<'_>,
    kind: &str,
    collection: &str,
    id: &str,
) -> StoreResult<usize> {
    Ok(db
        .0
        .prepare_cached(
            "DELETE FROM schedules WHERE recipient_kind = ?1 AND recipient_collection = ?2 AND recipient_id = ?3",
        )?
        .execute(params![kind, collection, id])?)
}

/// Readdresses user `from`'s schedules to user `into` (user merge), so the merged user
/// keeps receiving them.
pub fn adopt_user_schedules(db: &Db<'_>, into: &str, from: &str, now: &str) -> StoreResult<usize> {
    Ok(db
        .0
        .prepare_cached(
            "UPDATE schedules SET recipient_id = ?1, updated_at = ?3 \
             WHERE recipient_kind = 'user' AND recipient_collection = '' AND recipient_id = ?2",
        )?
        .execute(params![into, from, now])?)
}

/// Which schedules a list shows (all ANDed; `recipients` is any-of).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleFilter {
    pub workflow: Option<String>,
    pub recipients: Vec<RecipientRef>,
    pub tenant: Option<String>,
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

fn filter_sql(f: &ScheduleFilter) -> Where {
    let mut w = Where::default();
    if let Some(key) = &f.workflow {
        w.push("workflow_key = ?", [text(key)]);
    }
    if let Some(t) = &f.tenant {
        w.push("tenant = ?", [text(t)]);
    }
    if !f.recipients.is_empty() {
        let one = "(recipient_kind = ? AND recipient_collection = ? AND recipient_id = ?)";
        w.push(
            format!("({})", vec![one; f.recipients.len()].join(" OR ")),
            f.recipients
                .iter()
                .flat_map(|r| [text(r.kind()), text(r.collection()), text(r.id())]),
        );
    }
    w
}

/// One page in creation order. `after` pages forward, `before` returns the page right
/// before that position. A page holds fewer than `page_size` schedules when their data
/// would pass `data_budget` bytes (at least one, nearest the cursor): every schedule on
/// a page answers with its data, so a page is bounded whatever each data weighs;
/// `page_info` continues from the last one shown.
pub fn list(
    db: &Db<'_>,
    f: &ScheduleFilter,
    q: &PageQuery,
    data_budget: usize,
) -> StoreResult<Page<ScheduleRow>> {
    let scope = filter_sql(f);
    let mut w = Where::default();
    w.push(format!("({})", scope.sql()), scope.params.iter().cloned());
    if let Some(after) = q.after {
        w.push("rowid > ?", [SqlValue::Integer(after)]);
    }
    if let Some(before) = q.before {
        w.push("rowid < ?", [SqlValue::Integer(before)]);
    }
    let backward = q.before.is_some() && q.after.is_none();
    let sql = format!(
        "SELECT {COLUMNS} FROM schedules WHERE {} ORDER BY rowid {} LIMIT ?",
        w.sql(),
        if backward { "DESC" } else { "ASC" }
    );
    let mut params = w.params;
    params.push(SqlValue::Integer(i64::from(q.page_size)));
    let raw: Vec<RawRow> =
        db.0.prepare_cached(&sql)?
            .query_map(params_from_iter(params.iter()), row)?
            .collect::<Result<_, _>>()?;
    let mut payloads = Payloads::default();
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    // Nearest the cursor first, so a page cut short keeps those.
    for r in raw {
        let (seq, row, size) = decode(db, &mut payloads, r)?;
        if !rows.is_empty() && bytes + size > data_budget {
            break;
        }
        bytes += size;
        rows.push((seq, row));
    }
    if backward {
        rows.reverse();
    }
    let (Some(first), Some(last)) = (rows.first().map(|r| r.0), rows.last().map(|r| r.0)) else {
        return Ok(Page {
            entries: Vec::new(),
            after: None,
            before: None,
        });
    };
    let exists = |op: &str, pos: i64| -> StoreResult<bool> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM schedules WHERE {} AND rowid {op} ?)",
            scope.sql()
        );
        let mut params = scope.params.clone();
        params.push(SqlValue::Integer(pos));
        Ok(db
            .0
            .prepare_cached(&sql)?
            .query_row(params_from_iter(params.iter()), |r| r.get(0))?)
    };
    let has_before = exists("<", first)?;
    let has_after = exists(">", last)?;
    Ok(Page {
        entries: rows.into_iter().map(|(_, s)| s).collect(),
        after: has_after.then_some(last),
        before: has_before.then_some(first),
    })
}

/// The earliest pending occurrence, if any (what the scheduler sleeps until).
pub fn next_due_at(db: &Db<'_>) -> StoreResult<Option<String>> {
    Ok(db
        .0
        .prepare_cached(
            "SELECT MIN(next_occurrence_at) FROM schedules WHERE next_occurrence_at IS NOT NULL",
        )?
        .query_row([], |r| r.get(0))?)
}

/// Schedules with an occurrence due at or before `now`, earliest first.
pub fn due(db: &Db<'_>, now: &str, limit: u32) -> StoreResult<Vec<ScheduleRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM schedules WHERE next_occurrence_at IS NOT NULL AND next_occurrence_at <= ?1 \
         ORDER BY next_occurrence_at LIMIT ?2"
    );
    let raw: Vec<RawRow> =
        db.0.prepare_cached(&sql)?
            .query_map(params![now, limit], row)?
            .collect::<Result<_, _>>()?;
    let mut payloads = Payloads::default();
    raw.into_iter()
        .map(|r| decode(db, &mut payloads, r).map(|(_, s, _)| s))
        .collect()
}

/// Claims the occurrence `due` of schedule `id`: moves `next_occurrence_at` to `next` and
/// `last_occurrence_at` to `due`, but only if it still is `due`. `false` = someone else claimed it
/// (or the schedule changed or went away): fire nothing.
pub fn claim(db: &Db<'_>, id: &str, due: &str, next: Option<&str>, now: &str) -> StoreResult<bool> {
    Ok(db
        .0
        .prepare_cached(
            "UPDATE schedules SET next_occurrence_at = ?3, last_occurrence_at = ?2, updated_at = ?4 \
             WHERE id = ?1 AND next_occurrence_at = ?2",
        )?
        .execute(params![id, due, next, now])?
        == 1)
}

#[cfg(test)]
#[path = "schedules_tests.rs"]
mod tests;
