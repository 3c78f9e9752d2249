//! Workflow runs, recipient runs and the trigger idempotency cache.
//!
//! Invariants:
//! - A run row is written in the same transaction as everything its trigger upserted,
//!   and stays `queued` until the transaction that stores its messages marks it
//!   `completed`; so a crash at any point leaves either nothing or a resumable run.
//! - One recipient run per (run, recipient), with a deterministic id
//!   ([`recipient_run_id`]): [`ensure_recipient_run`] returns the existing id on a
//!   repeat, and a plain delivery, which stores no row, puts the same id on its messages;
//!   with the messages' UNIQUE(recipient run, step) that makes re-running a run
//!   exactly-once, and [`without_recipient_runs`] sees both kinds.

use crate::store::sql::{Dialect, OptionalExtension, params};
use serde_json::Value;

use super::{Db, StoreResult};
use crate::ids;
use crate::model::RecipientRef;
use crate::model::run_state::WorkflowRunStatus;

/// A run as accepted.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub workflow_key: String,
    /// The normalized trigger (`model::stored_trigger::StoredTrigger`, as JSON).
    pub request: Value,
    pub cancellation_key: Option<String>,
    pub tenant: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: String,
    pub workflow_key: String,
    pub request: Value,
    pub cancellation_key: Option<String>,
    pub tenant: Option<String>,
    pub status: String,
    pub inserted_at: String,
    /// Where the run's fan-out stands (`engine::audience::AudienceCursor` as JSON); `None`
    /// until its first page committed.
    pub audience_cursor: Option<String>,
    /// Attempts started since the run last committed a page (see [`begin_attempt`]).
    pub attempts: u32,
    /// The last attempt's error, and why a `failed` run failed.
    pub failure_reason: Option<String>,
}

/// A remembered `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub workflow_run_id: String,
    pub request_id: String,
}

/// Stores an accepted run, `queued`, with the number of recipients its request lists
/// (what the backlog gate sums, `store::backlog`). Its first attempt is counted here, in
/// the accepting transaction, so the runner's first attempt needs no write of its own.
pub fn insert_run(db: &Db<'_>, run: &NewRun) -> StoreResult<()> {
    let now = db.now();
    let recipient_count = run.request["recipients"].as_array().map_or(0, Vec::len);
    // The data again on its own: what the messages sharing it read (`messages::DATA_SQL`).
    let data = match run.request.get("data") {
        None | Some(Value::Null) => None,
        Some(data) => Some(serde_json::to_string(data)?),
    };
    db.0.prepare_cached(
        "INSERT INTO workflow_runs(id, workflow_key, request, cancellation_key, tenant, status, inserted_at, updated_at, \
         recipient_count, attempts) VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6, ?7, 1)",
    )?
    .execute(params![
        run.id,
        run.workflow_key,
        serde_json::to_string(&run.request)?,
        run.cancellation_key,
        run.tenant,
        now,
        i64::try_from(recipient_count).unwrap_or(i64::MAX)
    ])?;
    if let Some(data) = data {
        db.0.prepare_cached("INSERT INTO workflow_run_data(run_id, data) VALUES (?1, ?2)")?
            .execute(params![run.id, data])?;
        // What `trigger_data` filters probe (migration 0018): once per run, not per item.
        db.0.prepare_cached(
            "INSERT INTO workflow_run_data_values(run_id, key, type, value) \
             SELECT ?1, key, type, CASE WHEN type = 'text' THEN substr(atom, 1, 256) ELSE atom END \
             FROM json_each(?2) WHERE type NOT IN ('object', 'array')",
        )?
        .execute(params![run.id, data])?;
    }
    Ok(())
}

pub fn get_run(db: &Db<'_>, id: &str) -> StoreResult<Option<RunRow>> {
    db.0.prepare_cached(
        "SELECT id, workflow_key, request, cancellation_key, tenant, status, inserted_at, audience_cursor, \
         attempts, failure_reason FROM workflow_runs WHERE id = ?1",
    )?
    .query_row([id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Option<String>>(3)?,
            row.get::<_, Option<String>>(4)?,
            row.get::<_, String>(5)?,
            row.get::<_, String>(6)?,
            row.get::<_, Option<String>>(7)?,
            row.get::<_, i64>(8)?,
            row.get::<_, Option<String>>(9)?,
        ))
    })
    .optional()?
    .map(
        |(
            id,
            workflow_key,
            request,
            cancellation_key,
            tenant,
            status,
            inserted_at,
            audience_cursor,
            attempts,
            failure_reason,
        )| {
            Ok(RunRow {
                id,
                workflow_key,
                request: serde_json::from_str(&request)?,
                cancellation_key,
                tenant,
                status,
                inserted_at,
                audience_cursor,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                failure_reason,
            })
        },
    )
    .transpose()
}

/// At most `limit` queued runs after position `after` (a rowid; 0 for the first), in
/// insertion order, with their positions: the runner's periodic rescan reads the queued
/// set one bounded page at a time through the partial index on queued runs (whose
/// entries are ordered by rowid).
pub fn queued_page(db: &Db<'_>, after: i64, limit: usize) -> StoreResult<Vec<(i64, QueuedRun)>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT rowid, id, workflow_key, tenant FROM workflow_runs INDEXED BY workflow_runs_status \
         WHERE status = 'queued' AND rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
        |row| {
            Ok((
                row.get(0)?,
                QueuedRun {
                    id: row.get(1)?,
                    workflow_key: row.get(2)?,
                    tenant: row.get(3)?,
                },
            ))
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Counts an attempt at a still-`queued` run before it starts: its attempts so far (this
/// one included) and the last attempt's error, or `None` when the run no longer waits.
/// Stored first, so an attempt that kills the process still counts.
pub fn begin_attempt(db: &Db<'_>, id: &str) -> StoreResult<Option<(u32, Option<String>)>> {
    Ok(db
        .0
        .prepare_cached(
            "UPDATE workflow_runs SET attempts = attempts + 1 WHERE id = ?1 AND status = 'queued' \
             RETURNING attempts, failure_reason",
        )?
        .query_row([id], |row| {
            Ok((
                u32::try_from(row.get::<_, i64>(0)?).unwrap_or(u32::MAX),
                row.get(1)?,
            ))
        })
        .optional()?)
}

/// Remembers why the latest attempt at a run failed (shown if it is given up). Only on a
/// run still `queued`: one that another node completed meanwhile keeps no reason.
pub fn note_failure(db: &Db<'_>, id: &str, reason: &str) -> StoreResult<()> {
    db.0.prepare_cached(
        "UPDATE workflow_runs SET failure_reason = ?2 WHERE id = ?1 AND status = 'queued'",
    )?
    .execute(params![id, reason])?;
    Ok(())
}

/// Ends a still-`queued` run as `failed` with `reason`; false when it no longer waits.
pub fn fail_run(db: &Db<'_>, id: &str, reason: &str) -> StoreResult<bool> {
    Ok(db
        .0
        .prepare_cached(
            "UPDATE workflow_runs SET status = 'failed', failure_reason = ?2, updated_at = ?3 \
             WHERE id = ?1 AND status = 'queued'",
        )?
        .execute(params![id, reason, db.now()])?
        == 1)
}

/// Those of `ids` that are still `queued`, with what the runner schedules them by.
pub fn queued_among(db: &Db<'_>, ids: &[String]) -> StoreResult<Vec<QueuedRun>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT id, workflow_key, tenant FROM workflow_runs \
         WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'queued'",
    )?;
    let rows = stmt.query_map([serde_json::to_string(ids)?], queued_run)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A queued run and what the runner's fairness keys it by (its workflow and tenant).
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRun {
    pub id: String,
    pub workflow_key: String,
    pub tenant: Option<String>,
}

fn queued_run(row: &crate::store::sql::Row<'_>) -> crate::store::sql::Result<QueuedRun> {
    Ok(QueuedRun {
        id: row.get(0)?,
        workflow_key: row.get(1)?,
        tenant: row.get(2)?,
    })
}

/// Moves a run to `status` (`completed`, or `failed` when it cannot run at all).
pub fn set_run_status(db: &Db<'_>, id: &str, status: &str) -> StoreResult<()> {
    db.0.prepare_cached("UPDATE workflow_runs SET status = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, status, db.now()])?;
    Ok(())
}

/// Moves the run's fan-out from `from` (the stored cursor text the page was read at,
/// `None` before its first page) to `to`, in the transaction that writes the page; the run
/// made progress, so its attempts start over at this one. Whether it moved: `false` when
/// the run is no longer queued or its cursor is no longer `from`, i.e. another runner
/// wrote this page already (a node whose lease ran out, still running) or the run ended.
///
/// Why a compare-and-set: the page's writes must happen once whoever runs it, and the
/// cursor is the page's identity, so it is the fencing token. On PostgreSQL the UPDATE
/// waits for a concurrent writer of the same page and re-checks its row after that one
/// commits (READ COMMITTED), so exactly one of them moves it.
pub fn advance_audience_cursor(
    db: &Db<'_>,
    id: &str,
    from: Option<&str>,
    to: &str,
) -> StoreResult<bool> {
    let moved =
        db.0.prepare_cached(
            "UPDATE workflow_runs SET audience_cursor = ?2, updated_at = ?3, attempts = 1 \
             WHERE id = ?1 AND status = ?5 \
             AND (audience_cursor = ?4 OR (audience_cursor IS NULL AND ?4 IS NULL))",
        )?
        .execute(params![
            id,
            to,
            db.now(),
            from,
            WorkflowRunStatus::Queued.as_str()
        ])?;
    Ok(moved == 1)
}

/// Whether run `run_id` stored any recipient run (a delay, batch or other decided step);
/// one probe of the run's unique (run, recipient) index.
///
/// Ordered by that index's columns so that PostgreSQL cannot plan it otherwise: with a
/// plain `LIMIT 1`, statistics from a few large runs (500 recipient runs per run id) made
/// a sequential scan look cheaper ("the first match is a page away"), and every new run,
/// which has none, scanned the whole table: 3 ms a trigger at 50,000 rows, the largest
/// statement of the cluster bench (BENCHMARKS.md, session 23).
fn has_stored_recipient_runs(db: &Db<'_>, run_id: &str) -> StoreResult<bool> {
    Ok(db
        .0
        .prepare_cached(HAS_STORED_RECIPIENT_RUNS_SQL)?
        .query_row([run_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// [`has_stored_recipient_runs`]' statement (named for the test that checks its plan).
const HAS_STORED_RECIPIENT_RUNS_SQL: &str = "SELECT 1 FROM workflow_recipient_runs \
     WHERE workflow_run_id = ?1 \
     ORDER BY workflow_run_id, recipient_kind, recipient_collection, recipient_id LIMIT 1";

/// Keeps the items whose recipient (`key`) has no recipient run in `run_id` yet, and only
/// the first item per recipient: deduplication across a whole trigger, pages included.
/// One query per kind and collection among the items (one for a page of users): their
/// distinct ids go in as one JSON array, and the ones that already have a recipient run
/// come back (by position), each looked up in the run's unique (run, recipient) index.
/// A plain delivery stores no recipient run, only messages carrying its deterministic id
/// (`ids::recipient_run_id`): one more query looks those ids up in the messages' unique
/// (recipient run, step) index, so such a recipient counts as reached too.
///
/// Only the items `may_repeat` names are looked up (the caller knows which items cannot
/// have been reached before: a trigger's direct recipients, `engine::audience`); with none
/// of them, the page costs no query at all. The unique keys keep a write exactly-once
/// whatever this lets through.
pub fn without_recipient_runs<T>(
    db: &Db<'_>,
    run_id: &str,
    items: Vec<T>,
    key: impl Fn(&T) -> &RecipientRef,
    may_repeat: impl Fn(&T) -> bool,
) -> StoreResult<Vec<T>> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let firsts: Vec<T> = items
        .into_iter()
        .filter(|item| seen.insert(key(item).clone()))
        .collect();
    let probed: Vec<usize> = (0..firsts.len())
        .filter(|&i| may_repeat(&firsts[i]))
        .collect();
    if probed.is_empty() {
        return Ok(firsts);
    }
    // One query per (kind, collection) among the page's recipients (a page of users is
    // one): the group's ids as one JSON array, the positions already reached back.
    let mut groups: Vec<((&str, &str), Vec<usize>)> = Vec::new();
    for &i in &probed {
        let r = key(&firsts[i]);
        let group = (r.kind(), r.collection());
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, positions)) => positions.push(i),
            None => groups.push((group, vec![i])),
        }
    }
    let mut reached = vec![false; firsts.len()];
    // A run whose recipients were all plain deliveries has no stored recipient run: one
    // probe of the run's index instead of one per recipient.
    if has_stored_recipient_runs(db, run_id)? {
        // The probes are correlated scalar subqueries, not `WHERE EXISTS`: PostgreSQL
        // turns an EXISTS into a semi-join, whose generic plan made while the table was
        // small stays a scan of the whole table until the next ANALYZE (see
        // `feed_keys::LOOKUP_SQL`); a scalar subquery stays an index probe per element.
        let mut stmt = db.0.prepare_cached(
            "SELECT k FROM (SELECT CAST(j.key AS INTEGER) AS k, (\
             SELECT 1 FROM workflow_recipient_runs WHERE workflow_run_id = ?1 \
             AND recipient_kind = ?3 AND recipient_collection = ?4 AND recipient_id = j.value \
             LIMIT 1) AS hit FROM json_each(?2) j) AS probed WHERE hit IS NOT NULL",
        )?;
        for ((kind, collection), positions) in &groups {
            let ids: Vec<&str> = positions.iter().map(|&i| key(&firsts[i]).id()).collect();
            let ids = serde_json::to_string(&ids)?;
            for index in stmt.query_map(params![run_id, ids, kind, collection], |row| {
                row.get::<_, i64>(0)
            })? {
                if let Some(slot) = usize::try_from(index?)
                    .ok()
                    .and_then(|i| positions.get(i))
                    .and_then(|&at| reached.get_mut(at))
                {
                    *slot = true;
                }
            }
        }
    }
    // Derived runs: a message with the recipient's deterministic recipient-run id.
    let started: Option<String> =
        db.0.prepare_cached("SELECT inserted_at FROM workflow_runs WHERE id = ?1")?
            .query_row([run_id], |row| row.get(0))
            .optional()?;
    if let Some(started) = started {
        let started = started_ms(&started);
        let rr_ids: Vec<String> = probed
            .iter()
            .map(|&i| ids::recipient_run_id(run_id, started, key(&firsts[i])))
            .collect();
        // PostgreSQL reads the list with its own JSON function (not the `json_each`
        // written in SQL) and probes in a lateral subquery, which `LIMIT` keeps a probe.
        let mut stmt =
            db.0.prepare_cached(if db.0.dialect() == Dialect::Postgres {
                "SELECT CAST(j.ord - 1 AS bigint) \
             FROM json_array_elements_text(CAST(?1 AS json)) WITH ORDINALITY AS j(value, ord) \
             JOIN LATERAL (SELECT 1 FROM messages WHERE workflow_recipient_run_id = j.value \
             LIMIT 1) AS hit ON true"
            } else {
                "SELECT k FROM (SELECT CAST(j.key AS INTEGER) AS k, (\
             SELECT 1 FROM messages WHERE workflow_recipient_run_id = j.value LIMIT 1) AS hit \
             FROM json_each(?1) j) AS probed WHERE hit IS NOT NULL"
            })?;
        for index in stmt.query_map([serde_json::to_string(&rr_ids)?], |row| {
            row.get::<_, i64>(0)
        })? {
            if let Some(slot) = usize::try_from(index?)
                .ok()
                .and_then(|i| probed.get(i))
                .and_then(|&at| reached.get_mut(at))
            {
                *slot = true;
            }
        }
    }
    Ok(firsts
        .into_iter()
        .zip(reached)
        .filter_map(|(item, reached)| (!reached).then_some(item))
        .collect())
}

/// What each recipient run copies from its run (run-record filters read them there),
/// and the run's start, which its recipient runs' ids begin with.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub workflow_key: String,
    pub tenant: Option<String>,
    /// `workflow_runs.inserted_at` in Unix ms (see [`started_ms`]).
    pub started_ms: i64,
}

/// The run's [`RunFacts`]: read once per written page, not once per recipient.
pub fn run_facts(db: &Db<'_>, run_id: &str) -> StoreResult<RunFacts> {
    Ok(db
        .0
        .prepare_cached(
            "SELECT workflow_key, tenant, inserted_at FROM workflow_runs WHERE id = ?1",
        )?
        .query_row([run_id], |row| {
            Ok(RunFacts {
                workflow_key: row.get(0)?,
                tenant: row.get(1)?,
                started_ms: started_ms(&row.get::<_, String>(2)?),
            })
        })?)
}

/// A run's start (`workflow_runs.inserted_at`, our own format) in Unix ms: the time
/// prefix of its recipient runs' ids ([`ids::recipient_run_id`]). Were it unreadable, 0
/// stands in (the same for every reader, so the ids still agree).
pub fn started_ms(inserted_at: &str) -> i64 {
    crate::clock::parse(inserted_at).map_or(0, |t| t.timestamp_millis().max(0))
}

/// The id of `recipient`'s run within run `run_id` (see [`ids::recipient_run_id`]).
pub fn recipient_run_id(run_id: &str, facts: &RunFacts, recipient: &RecipientRef) -> String {
    ids::recipient_run_id(run_id, facts.started_ms, recipient)
}

/// Returns the recipient run of (`run_id`, `recipient`), creating it with `status` and
/// `events` when new.
///
/// The run's workflow key and tenant are read first (a primary-key lookup) and written
/// by the INSERT itself, so migration 0004's trigger does not fire: its UPDATE rewrote
/// the fresh row and two of its indexes.
pub fn ensure_recipient_run(
    db: &Db<'_>,
    run_id: &str,
    recipient: &RecipientRef,
    status: &str,
    events: &Value,
) -> StoreResult<String> {
    let facts = run_facts(db, run_id)?;
    ensure_recipient_run_as(
        db,
        NewRecipientRun {
            run_id,
            facts: &facts,
            id: recipient_run_id(run_id, &facts, recipient),
            recipient,
            status,
            events: &serde_json::to_string(events)?,
        },
    )
}

/// A recipient run to create: its run's facts (read by the caller, once per page), its
/// id (chosen, like its events' JSON, before the write) and its first state.
#[derive(Debug)]
pub struct NewRecipientRun<'a> {
    pub run_id: &'a str,
    pub facts: &'a RunFacts,
    /// Its [`recipient_run_id`]: deterministic, and time-ordered by its run's start, so
    /// new rows append to the b-trees.
    pub id: String,
    pub recipient: &'a RecipientRef,
    pub status: &'a str,
    /// The events array, serialized.
    pub events: &'a str,
}

/// [`ensure_recipient_run`] with everything but the SQL done beforehand. Returns the
/// new run's id, or the existing one's on a repeat. The INSERT stays a plain single-row
/// `VALUES` without `RETURNING`: `INSERT … SELECT` and `RETURNING` each make SQLite open
/// a statement journal (profiled: 12% of the writer's time in releasing it). Its rowid is
/// its run-record list position (`run_records::next_stored_position`).
pub fn ensure_recipient_run_as(db: &Db<'_>, new: NewRecipientRun<'_>) -> StoreResult<String> {
    let now = db.now();
    let recipient = new.recipient;
    // A conflict is either this recipient's run (a replay: answer its id) or, on
    // PostgreSQL, the position (a row that took it first): take another and insert again.
    for _ in 0..POSITION_ATTEMPTS {
        let position = super::run_records::next_stored_position(db)?;
        let inserted = db
            .0
            .prepare_cached(
                "INSERT INTO workflow_recipient_runs(rowid, id, workflow_run_id, recipient_kind, \
                 recipient_collection, recipient_id, status, events, inserted_at, updated_at, workflow_key, tenant) \
                 VALUES (?11, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                new.id,
                new.run_id,
                recipient.kind(),
                recipient.collection(),
                recipient.id(),
                new.status,
                new.events,
                now,
                new.facts.workflow_key,
                new.facts.tenant,
                position
            ])?;
        if inserted == 1 {
            return Ok(new.id);
        }
        let existing: Option<String> = db
            .0
            .prepare_cached(
                "SELECT id FROM workflow_recipient_runs WHERE workflow_run_id = ?1 AND recipient_kind = ?2 \
                 AND recipient_collection = ?3 AND recipient_id = ?4",
            )?
            .query_row(
                params![new.run_id, recipient.kind(), recipient.collection(), recipient.id()],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            return Ok(id);
        }
    }
    Err(super::StoreError::Conflict(format!(
        "no free run-record position for a recipient run of {} after {POSITION_ATTEMPTS} attempts",
        new.run_id
    )))
}

/// Positions tried for one recipient run before its write fails (each a fresh sequence
/// value on PostgreSQL; on SQLite the first always succeeds).
const POSITION_ATTEMPTS: usize = 8;

/// The recipient runs of a run: (recipient, id, status, events), for logs and tests.
pub fn recipient_runs(
    db: &Db<'_>,
    run_id: &str,
) -> StoreResult<Vec<(RecipientRef, String, String, Value)>> {
    let mut stmt = db.0.prepare_cached(
        "SELECT recipient_kind, recipient_collection, recipient_id, id, status, events \
         FROM workflow_recipient_runs WHERE workflow_run_id = ?1 ORDER BY inserted_at, id",
    )?;
    let rows = stmt.query_map([run_id], |row| {
        Ok((
            RecipientRef::from_stored(
                &row.get::<_, String>(0)?,
                &row.get::<_, String>(1)?,
                &row.get::<_, String>(2)?,
            ),
            row.get::<_, String>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, String>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (r, id, status, events) = row?;
        out.push((r, id, status, serde_json::from_str(&events)?));
    }
    Ok(out)
}

/// The remembered use of `key` at or after `since` (older entries have expired).
pub fn get_idempotency(db: &Db<'_>, key: &str, since: &str) -> StoreResult<Option<IdempotencyRow>> {
    Ok(db
        .0
        .prepare_cached(
            "SELECT request_hash, workflow_run_id, request_id FROM idempotency_keys WHERE key = ?1 AND inserted_at >= ?2",
        )?
        .query_row(params![key, since], |row| {
            Ok(IdempotencyRow {
                request_hash: row.get(0)?,
                workflow_run_id: row.get(1)?,
                request_id: row.get(2)?,
            })
        })
        .optional()?)
}

/// Remembers `key` for this run, replacing an expired entry.
pub fn put_idempotency(db: &Db<'_>, key: &str, row: &IdempotencyRow) -> StoreResult<()> {
    db.0.prepare_cached(
        "INSERT INTO idempotency_keys(key, request_hash, workflow_run_id, request_id, inserted_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(key) DO UPDATE SET request_hash = excluded.request_hash, \
         workflow_run_id = excluded.workflow_run_id, request_id = excluded.request_id, \
         inserted_at = excluded.inserted_at",
    )?
    .execute(params![
        key,
        row.request_hash,
        row.workflow_run_id,
        row.request_id,
        db.now()
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// PostgreSQL: the "any stored recipient run?" probe stays an index probe when large
    /// runs shaped the statistics and the probed run has none (the generic plan of a plain
    /// `LIMIT 1` was a scan of the whole table there: 3 ms a trigger at 50,000 rows).
    #[test]
    fn the_stored_recipient_run_probe_is_planned_on_the_index_whatever_the_statistics() {
        for test_db in crate::store::test_engines::engines() {
            if test_db.engine != "postgres" {
                continue;
            }
            let conn = &test_db.conn;
            conn.execute_batch(
                "INSERT INTO workflow_recipient_runs(id, workflow_run_id, recipient_kind, \
                 recipient_id, status, inserted_at, updated_at) \
                 SELECT 'rr' || i, 'run' || (i / 500), 'user', 'u' || i, 'completed', '', '' \
                 FROM generate_series(1, 20000) AS i; \
                 ANALYZE workflow_recipient_runs; \
                 SET plan_cache_mode = force_generic_plan",
            )
            .expect("seed");
            let prepare = format!(
                "PREPARE probe(text) AS {}",
                super::HAS_STORED_RECIPIENT_RUNS_SQL.replace("?1", "$1")
            );
            conn.execute_batch(&prepare).expect("prepare");
            let plan: Vec<String> = conn
                .prepare("EXPLAIN EXECUTE probe('a-new-run')")
                .expect("explain")
                .query_map([], |r| r.get(0))
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("rows");
            let plan = plan.join("\n");
            assert!(plan.contains("Index"), "{plan}");
            assert!(!plan.contains("Seq Scan"), "{plan}");
            conn.execute_batch("DEALLOCATE probe; RESET plan_cache_mode")
                .expect("reset");
        }
    }

    use serde_json::json;

    use super::*;

    fn run(db: &Db<'_>, id: &str) {
        insert_run(
            db,
            &NewRun {
                id: id.into(),
                workflow_key: "wf".into(),
                request: json!({"recipients": []}),
                cancellation_key: None,
                tenant: None,
            },
        )
        .expect("run");
    }

    /// Two nodes' writers store recipient runs in concurrent transactions: each gets a
    /// position of its own at once (they read the same `max(rowid)`, so a position taken
    /// from it collided: the second insert waited for the first commit, then stored
    /// nothing and its page failed).
    #[test]
    fn two_writers_in_concurrent_transactions_store_recipient_runs_at_distinct_positions() {
        for test_db in crate::store::test_engines::engines() {
            let Some(other) = test_db.connect_again() else {
                continue; // one SQLite writer at a time
            };
            let (a, b) = (Db::on(&test_db.conn), Db::on(&other));
            run(&a, "ra");
            run(&a, "rb");
            // Without the fix the second insert waits for the first transaction: fail
            // instead of hanging.
            other
                .execute_batch("SET statement_timeout = '5s'")
                .expect("statement timeout");
            let write = |db: &Db<'_>, run_id: &str, user: &str| {
                let facts = run_facts(db, run_id).expect("facts");
                let recipient = RecipientRef::User(user.into());
                ensure_recipient_run_as(
                    db,
                    NewRecipientRun {
                        run_id,
                        facts: &facts,
                        id: recipient_run_id(run_id, &facts, &recipient),
                        recipient: &recipient,
                        status: "paused",
                        events: "[]",
                    },
                )
            };
            test_db.conn.begin().expect("begin a");
            other.begin().expect("begin b");
            let first = write(&a, "ra", "u1");
            let second = write(&b, "rb", "u2");
            // End both transactions before asserting: a panic with one open would leave
            // the schema's drop waiting on it.
            for (conn, result) in [(&test_db.conn, first.is_ok()), (&other, second.is_ok())] {
                let end = if result { "COMMIT" } else { "ROLLBACK" };
                conn.execute_batch(end).expect("end the transaction");
            }
            let first = first.expect("a's run");
            let second = second.expect("b's run, written while a's was uncommitted");
            let positions: Vec<i64> = [&first, &second]
                .iter()
                .map(|id| {
                    test_db
                        .conn
                        .query_row(
                            "SELECT rowid FROM workflow_recipient_runs WHERE id = ?1",
                            [id.as_str()],
                            |r| r.get(0),
                        )
                        .expect("stored")
                })
                .collect();
            assert_ne!(positions[0], positions[1], "{positions:?}");
            // A replay still answers the stored run's id.
            assert_eq!(write(&b, "ra", "u1").expect("replay"), first);
        }
    }

    #[test]
    fn queued_runs_are_read_in_bounded_pages_in_insertion_order() {
        for test_db in crate::store::test_engines::engines() {
            eprintln!("engine: {}", test_db.engine);
            if test_db.engine != "sqlite" {
                continue; // a test of SQLite's query plan
            }
            let conn = &test_db.conn;
            let db = Db::on(conn);
            for id in ["a", "b", "c", "d", "e"] {
                run(&db, id);
            }
            set_run_status(&db, "b", "completed").expect("complete b");
            let ids = |page: &[(i64, QueuedRun)]| {
                page.iter().map(|(_, r)| r.id.clone()).collect::<Vec<_>>()
            };
            let first = queued_page(&db, 0, 2).expect("page 1");
            assert_eq!(ids(&first), ["a", "c"]);
            let second = queued_page(&db, first[1].0, 2).expect("page 2");
            assert_eq!(ids(&second), ["d", "e"]);
            assert!(queued_page(&db, second[1].0, 2).expect("page 3").is_empty());
            // The plan reads the queued index, not the table.
            let plan: String = conn
                .query_row(
                    "EXPLAIN QUERY PLAN SELECT rowid, id, workflow_key, tenant FROM workflow_runs \
                     INDEXED BY workflow_runs_status WHERE status = 'queued' AND rowid > 0 \
                     ORDER BY rowid LIMIT 2",
                    [],
                    |r| r.get(3),
                )
                .expect("plan");
            assert!(plan.contains("workflow_runs_status"), "{plan}");
        }
    }

    #[test]
    fn an_attempt_is_counted_before_it_starts_and_a_committed_page_starts_the_count_over() {
        for test_db in crate::store::test_engines::engines() {
            eprintln!("engine: {}", test_db.engine);
            let conn = &test_db.conn;
            let db = Db::on(conn);
            run(&db, "r");
            assert_eq!(get_run(&db, "r").expect("row").map(|r| r.attempts), Some(1));
            assert_eq!(begin_attempt(&db, "r").expect("begin"), Some((2, None)));
            note_failure(&db, "r", "disk full").expect("note");
            assert_eq!(
                begin_attempt(&db, "r").expect("begin"),
                Some((3, Some("disk full".into())))
            );
            assert!(advance_audience_cursor(&db, "r", None, "{}").expect("cursor"));
            assert_eq!(get_run(&db, "r").expect("row").map(|r| r.attempts), Some(1));
            assert!(fail_run(&db, "r", "gave up").expect("fail"));
            assert_eq!(begin_attempt(&db, "r").expect("not queued"), None);
            assert!(!fail_run(&db, "r", "again").expect("already failed"));
            // A late attempt's failure (a node that lost the run) changes an ended run
            // no more than its attempt count does.
            note_failure(&db, "r", "late").expect("note on an ended run");
            let row = get_run(&db, "r").expect("row").expect("exists");
            assert_eq!(
                (row.status.as_str(), row.failure_reason.as_deref()),
                ("failed", Some("gave up"))
            );
            run(&db, "done");
            set_run_status(&db, "done", "completed").expect("complete");
            note_failure(&db, "done", "late").expect("note on a completed run");
            let done = get_run(&db, "done").expect("row").expect("exists");
            assert_eq!(done.failure_reason, None, "completed elsewhere, not failed");
        }
    }

    /// A page moves its run's cursor once, whoever writes it: a replay of a written page,
    /// a page read at an older cursor and a page of a run that ended move nothing; on
    /// PostgreSQL, two runners writing the same page at once (a node whose lease ran out,
    /// still running) move it once, the second after waiting for the first's commit.
    #[test]
    fn a_page_moves_its_runs_cursor_once_whoever_writes_it() {
        for test_db in crate::store::test_engines::engines() {
            eprintln!("engine: {}", test_db.engine);
            let db = Db::on(&test_db.conn);
            run(&db, "r");
            let cursor = |db: &Db<'_>| get_run(db, "r").expect("row").expect("run").audience_cursor;
            assert!(advance_audience_cursor(&db, "r", None, "p1").expect("first page"));
            assert!(!advance_audience_cursor(&db, "r", None, "p1").expect("the first page again"));
            assert!(!advance_audience_cursor(&db, "r", Some("p0"), "p2").expect("read at p0"));
            assert_eq!(cursor(&db).as_deref(), Some("p1"));
            assert!(advance_audience_cursor(&db, "r", Some("p1"), "p2").expect("second page"));
            if let Some(other) = test_db.connect_again() {
                other
                    .execute_batch("SET statement_timeout = '20s'")
                    .expect("statement timeout");
                let watcher = test_db.connect_again().expect("a third connection");
                test_db.conn.begin().expect("begin");
                assert!(advance_audience_cursor(&db, "r", Some("p2"), "p3").expect("runner a"));
                let second = std::thread::scope(|scope| {
                    let runner_b = scope.spawn(move || {
                        other.begin().expect("begin b");
                        let moved =
                            advance_audience_cursor(&Db::on(&other), "r", Some("p2"), "p3b");
                        let end = if moved.is_ok() { "COMMIT" } else { "ROLLBACK" };
                        other.execute_batch(end).expect("end b");
                        moved
                    });
                    // Runner b is waiting on the run's row before a commits (polled, not
                    // slept for: the lock wait is what this case is about).
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
                    let waiting = loop {
                        let n: i64 = watcher
                            .query_row(
                                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                                 AND query LIKE 'UPDATE workflow_runs SET audience_cursor%'",
                                [],
                                |r| r.get(0),
                            )
                            .expect("activity");
                        if n > 0 || std::time::Instant::now() > deadline {
                            break n > 0;
                        }
                    };
                    let committed = test_db.conn.execute_batch("COMMIT");
                    let second = runner_b.join().expect("runner b");
                    committed.expect("commit a");
                    assert!(waiting, "runner b never waited on the row");
                    second
                });
                assert!(!second.expect("runner b's update"), "the page was a's");
                assert_eq!(cursor(&db).as_deref(), Some("p3"));
            }
            assert!(fail_run(&db, "r", "gave up").expect("fail"));
            let at = cursor(&db);
            assert!(!advance_audience_cursor(&db, "r", at.as_deref(), "p9").expect("ended run"));
            assert_eq!(cursor(&db), at);
        }
    }

    #[test]
    fn without_recipient_runs_keeps_the_first_of_each_recipient_not_reached_in_this_run() {
        for test_db in crate::store::test_engines::engines() {
            eprintln!("engine: {}", test_db.engine);
            let conn = &test_db.conn;
            let db = Db::on(conn);
            // The positions `without_recipient_runs` keeps of `items` in `run`.
            let kept_of = |run: &str,
                           items: Vec<(i32, RecipientRef)>,
                           may_repeat: fn(&(i32, RecipientRef)) -> bool|
             -> Vec<i32> {
                without_recipient_runs(&db, run, items, |(_, r)| r, may_repeat)
                    .expect("query")
                    .into_iter()
                    .map(|(i, _)| i)
                    .collect()
            };
            run(&db, "r1");
            run(&db, "r2");
            let user = |id: &str| RecipientRef::User(id.into());
            let object = |collection: &str, id: &str| RecipientRef::Object {
                id: id.into(),
                collection: collection.into(),
            };
            for (run_id, r) in [
                ("r1", user("a")),
                ("r1", object("projects", "p")),
                ("r2", user("b")),
            ] {
                ensure_recipient_run(&db, run_id, &r, "completed", &json!([])).expect("rr");
            }
            let items = vec![
                (0, user("a")),               // reached in r1
                (1, user("b")),               // reached only in r2
                (2, object("projects", "a")), // same id as user a, but an object
                (3, object("projects", "p")), // reached in r1
                (4, object("teams", "p")),    // same id, other collection
                (5, user("c")),               // new
                (6, user("c")),               // a repeat within the page
                (7, user("b")),               // a repeat of a kept one
                (8, user("it's \"quoted\"")), // needs escaping in the JSON
            ];
            let kept = kept_of("r1", items, |_| true);
            assert_eq!(kept, vec![1, 2, 4, 5, 8]);
            // A plain delivery stores no recipient run: its message, under the recipient's
            // deterministic id, is what says it was reached.
            let facts = run_facts(&db, "r1").expect("facts");
            let message = crate::store::messages::NewMessage {
                id: "m-c".into(),
                channel_id: "chan".into(),
                recipient: user("c"),
                tenant: None,
                workflow_key: "wf".into(),
                workflow_version_id: "v".into(),
                workflow_categories: vec![],
                workflow_run_id: "r1".into(),
                workflow_recipient_run_id: recipient_run_id("r1", &facts, &user("c")),
                step_ref: "in_app".into(),
                actors: vec![],
                data: json!({}).into(),
                blocks: json!([]).into(),
                inserted_at: db.now(),
                batch: None,
                expires_at: None,
                pinned_at: None,
            };
            crate::store::messages::insert(&db, &message).expect("message");
            let items = vec![(0, user("a")), (1, user("c")), (2, user("d"))];
            let kept = kept_of("r1", items.clone(), |_| true);
            assert_eq!(kept, vec![2], "c has a derived run in r1");
            let kept = kept_of("r2", items.clone(), |_| true);
            assert_eq!(kept, vec![0, 1, 2], "but not in r2");
            let none: Vec<(i32, RecipientRef)> = Vec::new();
            assert!(
                without_recipient_runs(&db, "r1", none, |(_, r)| r, |_| true)
                    .expect("empty")
                    .is_empty()
            );
            // Items the caller says cannot repeat an earlier page are not looked up (a
            // reached one passes: the unique keys are the write's guard), and repeats
            // within the page still go; the others are looked up as before.
            let mixed = vec![
                (0, user("a")),
                (1, user("c")),
                (2, user("c")),
                (3, user("d")),
            ];
            let kept = kept_of("r1", mixed, |(i, _)| *i != 1);
            assert_eq!(
                kept,
                vec![1, 3],
                "a reached and probed; c kept unprobed, once"
            );
            let kept = kept_of("r1", items, |_| false);
            assert_eq!(kept, vec![0, 1, 2], "nothing probed, nothing dropped");
        }
    }
}
