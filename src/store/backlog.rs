//! The durable backlog: workflow runs accepted (acknowledged to the caller) whose fan-out
//! has not finished, i.e. rows still `queued`, and the recipients they listed. Read by
//! trigger backpressure and by `/metrics`; one statement over the partial index on queued
//! runs.

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
}

/// Counts the queued runs and finds the oldest. Cost grows with the backlog, which
/// backpressure bounds (`--max-queued-runs`), so callers sample it rather than run it per
/// request.
pub fn backlog(db: &Db<'_>) -> StoreResult<Backlog> {
    let (count, items, oldest): (i64, i64, Option<String>) =
        db.0.prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(recipient_count), 0), MIN(inserted_at) \
             FROM workflow_runs WHERE status = 'queued'",
        )?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    Ok(Backlog {
        queued_runs: u64::try_from(count).unwrap_or(0),
        queued_items: u64::try_from(items).unwrap_or(0),
        oldest_queued_at: oldest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::{self, NewRun};
    use serde_json::json;

    fn run(db: &Db<'_>, id: &str) {
        runs::insert_run(
            db,
            &NewRun {
                id: id.into(),
                workflow_key: "wf".into(),
                request: json!({"recipients": [{"ref": "u1"}, {"ref": "u2"}]}),
                cancellation_key: None,
                tenant: None,
            },
        )
        .expect("run");
    }

    #[test]
    fn counts_only_queued_runs_and_names_the_oldest() {
        let mut conn = rusqlite::Connection::open_in_memory().expect("db");
        super::super::migrations::apply(&mut conn).expect("migrations");
        let db = Db(&conn);
        assert_eq!(backlog(&db).expect("empty"), Backlog::default());
        run(&db, "r1");
        run(&db, "r2");
        run(&db, "r3");
        runs::set_run_status(&db, "r1", "completed").expect("complete");
        let seen = backlog(&db).expect("backlog");
        assert_eq!(seen.queued_runs, 2);
        assert_eq!(seen.queued_items, 4, "two recipients per queued run");
        let r2_at: String = conn
            .query_row(
                "SELECT inserted_at FROM workflow_runs WHERE id = 'r2'",
                [],
                |r| r.get(0),
            )
            .expect("r2");
        assert_eq!(seen.oldest_queued_at, Some(r2_at));
    }
}
