//! The durable backlog: workflow runs accepted (acknowledged to the caller) whose fan-out
//! has not finished, i.e. rows still `queued`, and the recipients they listed. Read by
//! trigger backpressure and by `/metrics`; one statement over the partial index on queued
//! runs.

use std::collections::HashMap;

use super::{Db, StoreResult};

/// How much accepted work waits for the runner.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backlog {
    /// Runs still `queued`.
    pub queued_runs: u64,
    /// Recipients the queued runs' triggers listed (an object once, whatever its
    /// subscribers; a run part-way through its fan-out still counts them all).
    pub queued_items: u64,
    /// `inserted_at` of the oldest queued run (the runner's lag starts there).
    pub oldest_queued_at: Option<String>,
    /// The same counts per tenant (`None`: runs without a tenant), so that the backlog
    /// gate can tell who filled the backlog.
    pub by_tenant: HashMap<Option<String>, Queued>,
}

/// Queued runs and their listed recipients, of one tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Queued {
    pub runs: u64,
    pub items: u64,
}

/// Counts the queued runs per tenant and finds the oldest. Cost grows with the backlog,
/// which backpressure bounds (`--max-queued-runs`), so callers sample it rather than run
/// it per request.
pub fn backlog(db: &Db<'_>) -> StoreResult<Backlog> {
    let mut stmt = db.0.prepare_cached(
        "SELECT tenant, COUNT(*), COALESCE(SUM(recipient_count), 0), MIN(inserted_at) \
         FROM workflow_runs WHERE status = 'queued' GROUP BY tenant",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, Option<String>>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, Option<String>>(3)?,
        ))
    })?;
    let mut backlog = Backlog::default();
    for row in rows {
        let (tenant, runs, items, oldest) = row?;
        let queued = Queued {
            runs: u64::try_from(runs).unwrap_or(0),
            items: u64::try_from(items).unwrap_or(0),
        };
        backlog.queued_runs += queued.runs;
        backlog.queued_items += queued.items;
        backlog.oldest_queued_at = match (backlog.oldest_queued_at.take(), oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        backlog.by_tenant.insert(tenant, queued);
    }
    Ok(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::{self, NewRun};
    use serde_json::json;

    /// A queued run of `tenant` listing `recipients` users.
    fn run_of(db: &Db<'_>, id: &str, tenant: Option<&str>, recipients: usize) {
        let listed: Vec<_> = (0..recipients)
            .map(|i| json!({"ref": format!("u{i}")}))
            .collect();
        runs::insert_run(
            db,
            &NewRun {
                id: id.into(),
                workflow_key: "wf".into(),
                request: json!({ "recipients": listed }),
                cancellation_key: None,
                tenant: tenant.map(str::to_owned),
            },
        )
        .expect("run");
    }

    fn inserted_at(db: &Db<'_>, run: &str) -> String {
        db.0.query_row(
            "SELECT inserted_at FROM workflow_runs WHERE id = ?1",
            [run],
            |r| r.get(0),
        )
        .expect("the run's inserted_at")
    }

    fn run(db: &Db<'_>, id: &str) {
        run_of(db, id, None, 2);
    }

    #[test]
    fn counts_only_queued_runs_and_names_the_oldest() {
        for test_db in crate::store::test_engines::engines() {
            eprintln!("engine: {}", test_db.engine);
            let conn = &test_db.conn;
            let db = Db::on(conn);
            assert_eq!(backlog(&db).expect("empty"), Backlog::default());
            run(&db, "r1");
            run(&db, "r2");
            run(&db, "r3");
            runs::set_run_status(&db, "r1", "completed").expect("complete");
            let seen = backlog(&db).expect("backlog");
            assert_eq!(seen.queued_runs, 2);
            assert_eq!(seen.queued_items, 4, "two recipients per queued run");
            assert_eq!(seen.oldest_queued_at, Some(inserted_at(&db, "r2")));
            assert_eq!(
                seen.by_tenant.get(&None),
                Some(&Queued { runs: 2, items: 4 })
            );
        }
    }

    #[test]
    fn counts_each_tenant_apart_and_the_oldest_across_them() {
        for test_db in crate::store::test_engines::engines() {
            eprintln!("engine: {}", test_db.engine);
            let conn = &test_db.conn;
            let db = Db::on(conn);
            for (id, tenant) in [("r1", Some("a")), ("r2", None), ("r3", Some("a"))] {
                run_of(&db, id, tenant, 1);
            }
            let seen = backlog(&db).expect("backlog");
            assert_eq!((seen.queued_runs, seen.queued_items), (3, 3));
            assert_eq!(
                seen.by_tenant.get(&Some("a".to_owned())),
                Some(&Queued { runs: 2, items: 2 })
            );
            assert_eq!(
                seen.by_tenant.get(&None),
                Some(&Queued { runs: 1, items: 1 })
            );
            assert_eq!(seen.oldest_queued_at, Some(inserted_at(&db, "r1")));
        }
    }
}
