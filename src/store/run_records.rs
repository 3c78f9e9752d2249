//! Reading run records: recipient runs with their run's trigger facts, listed newest first
//! and cursor-paged by the recipient run's `rowid` (insertion order; Tidings never
//! `VACUUM`s, so it is stable).
//!
//! Every filter is a column of `workflow_recipient_runs` with its own index (migration
//! 0004 copies the run's workflow key and tenant onto each recipient run), so a page is
//! one index range scan however large the table grows.

use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, params_from_iter};
use serde_json::Value;

use super::feed_sql::Where;
use super::{Db, StoreResult};
use crate::model::RecipientRef;
use crate::model::run_records::{RunListQuery, RunStatus};

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

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
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

fn decode((mut record, events, actor): RawRecord) -> StoreResult<RunRecord> {
    record.events = serde_json::from_str(&events)?;
    record.actor = match actor {
        None => None,
        Some(a) => Some(serde_json::from_str::<Value>(&a)?).filter(|v| !v.is_null()),
    };
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

/// One page of the records `q` selects. With `before`, the page right newer than the
/// cursor (still newest first).
pub fn list(db: &Db<'_>, q: &RunListQuery) -> StoreResult<RunRecordPage> {
    let scope = filters(q);
    let mut w = Where::default();
    w.push(format!("({})", scope.sql()), scope.params.iter().cloned());
    if let Some(after) = q.after {
        w.push("rr.rowid < ?", [SqlValue::Integer(after)]);
    }
    if let Some(before) = q.before {
        w.push("rr.rowid > ?", [SqlValue::Integer(before)]);
    }
    let newer_first = q.before.is_none();
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE {} ORDER BY rr.rowid {} LIMIT ?",
        w.sql(),
        if newer_first { "DESC" } else { "ASC" }
    );
    let limit = i64::from(q.page_size.max(1));
    let mut params = w.params;
    params.push(SqlValue::Integer(limit + 1));
    let raw: Vec<RawRecord> =
        db.0.prepare_cached(&sql)?
            .query_map(params_from_iter(params.iter()), row)?
            .collect::<Result<_, _>>()?;
    let overflow = raw.len() as i64 > limit;
    let mut records = raw
        .into_iter()
        .take(limit as usize)
        .map(decode)
        .collect::<StoreResult<Vec<_>>>()?;
    let exists = |op: &str, seq: i64| -> StoreResult<bool> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM workflow_recipient_runs rr WHERE {} AND rr.rowid {op} ?)",
            scope.sql()
        );
        let mut params = scope.params.clone();
        params.push(SqlValue::Integer(seq));
        Ok(db
            .0
            .prepare_cached(&sql)?
            .query_row(params_from_iter(params.iter()), |r| r.get(0))?)
    };
    let (has_older, has_newer) = if newer_first {
        let newer = match records.first() {
            Some(first) => exists(">", first.seq)?,
            None => false,
        };
        (overflow, newer)
    } else {
        records.reverse();
        let older = match records.last() {
            Some(last) => exists("<", last.seq)?,
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

/// The recipient run `id`, with its events.
pub fn get(db: &Db<'_>, id: &str) -> StoreResult<Option<RunRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE rr.id = ?1");
    db.0.prepare_cached(&sql)?
        .query_row([id], row)
        .optional()?
        .map(decode)
        .transpose()
}

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
        let conn = super::super::migrations::in_memory();
        let db = Db::on(&conn);
        seed(&db, "r1", "wf-a", Some("t1"), &["u1", "u2"]);
        seed(&db, "r2", "wf-b", None, &["u1", "bad"]);
        let all =
            |q: RunListQuery| ids(&list(&db, &RunListQuery { page_size: 50, ..q }).expect("list"));
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

    #[test]
    fn pages_walk_forward_and_back_without_gaps() {
        let conn = super::super::migrations::in_memory();
        let db = Db::on(&conn);
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
