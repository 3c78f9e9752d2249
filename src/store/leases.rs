//! Leases for several nodes on one PostgreSQL database (issue 20; tables in
//! `pg/0002_leases.sql`): which node completes which queued run, and which node does the
//! cluster-wide duties. A lease is a row with an owner and an `until`; a node takes a
//! row only when it is free, its own, or expired, in one conditional upsert, so two
//! nodes racing for it get it once (PostgreSQL serializes the upserts on the row).
//!
//! Times are the nodes' clocks (`Db::now`, text that sorts as time): nodes must keep
//! their clocks in step (NTP), well within a lease.
//!
//! SQLite has none of this: one process owns the file, so it holds every lease.

use crate::store::runs::QueuedRun;
use crate::store::sql::params;
use crate::store::{Db, StoreResult};

/// Takes or renews lease `name` for `owner` until `until` if it is free, `owner`'s, or
/// expired at `now`; whether `owner` holds it now.
pub fn hold(db: &Db<'_>, name: &str, owner: &str, until: &str, now: &str) -> StoreResult<bool> {
    let held =
        db.0.prepare_cached(
            "INSERT INTO leases(name, owner, until) VALUES (?1, ?2, ?3) \
             ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, until = excluded.until \
             WHERE leases.owner = excluded.owner OR leases.until < ?4 RETURNING owner",
        )?
        .query_map(params![name, owner, until, now], |row| {
            row.get::<_, String>(0)
        })?
        .count();
    Ok(held == 1)
}

/// Gives lease `name` back if `owner` holds it (a graceful shutdown: the next node need
/// not wait for it to expire).
pub fn release(db: &Db<'_>, name: &str, owner: &str) -> StoreResult<()> {
    db.0.prepare_cached("DELETE FROM leases WHERE name = ?1 AND owner = ?2")?
        .execute(params![name, owner])?;
    Ok(())
}

/// Renews `owner`'s leases on `runs` (the queued runs it holds) until `until`, taking
/// those that are free or expired at `now`; forgets its leases on runs it no longer
/// holds. Returns the runs another node holds a live lease on (the caller lets go of
/// them: that node completes them).
pub fn renew_runs(
    db: &Db<'_>,
    owner: &str,
    runs: &[String],
    until: &str,
    now: &str,
) -> StoreResult<Vec<String>> {
    let held = take(db, owner, runs, until, now)?;
    let ids = serde_json::to_string(runs)?;
    db.0.prepare_cached(
        "DELETE FROM run_leases WHERE owner = ?1 \
         AND run_id NOT IN (SELECT value FROM json_each(?2))",
    )?
    .execute(params![owner, ids])?;
    let held: std::collections::HashSet<String> = held.into_iter().collect();
    Ok(runs
        .iter()
        .filter(|r| !held.contains(*r))
        .cloned()
        .collect())
}

/// Gives back every run lease of `owner` (a graceful shutdown: its runs stay queued and
/// another node's rescan takes them at once).
pub fn release_runs(db: &Db<'_>, owner: &str) -> StoreResult<()> {
    db.0.prepare_cached("DELETE FROM run_leases WHERE owner = ?1")?
        .execute([owner])?;
    Ok(())
}

/// Leases a run just inserted to the node that accepted it (in the same transaction), so
/// no other node's rescan takes it while it waits in that node's queue.
pub fn lease_new_run(db: &Db<'_>, run_id: &str, owner: &str, until: &str) -> StoreResult<()> {
    db.0.prepare_cached(
        "INSERT INTO run_leases(run_id, owner, until) VALUES (?1, ?2, ?3) \
         ON CONFLICT(run_id) DO NOTHING",
    )?
    .execute(params![run_id, owner, until])?;
    Ok(())
}

/// Of `ids`, the runs `owner` holds after this write: each is leased to `owner` until
/// `until` if it is its own, unleased, or its lease lapsed at `now` (a runner admitting
/// runs handed to it in memory).
pub fn claim_among(
    db: &Db<'_>,
    owner: &str,
    ids: &[String],
    until: &str,
    now: &str,
) -> StoreResult<Vec<String>> {
    take(db, owner, ids, until, now)
}

/// Leases each of `ids` to `owner` until `until` where it is `owner`'s, unleased, or
/// lapsed at `now`, in one conditional upsert (PostgreSQL serializes racing upserts on
/// the row, so one node gets each); the ids `owner` holds afterwards.
fn take(
    db: &Db<'_>,
    owner: &str,
    ids: &[String],
    until: &str,
    now: &str,
) -> StoreResult<Vec<String>> {
    Ok(db
        .0
        .prepare_cached(
            "INSERT INTO run_leases(run_id, owner, until) \
             SELECT value, ?1, ?2 FROM json_each(?3) WHERE true \
             ON CONFLICT(run_id) DO UPDATE SET owner = excluded.owner, until = excluded.until \
             WHERE run_leases.owner = excluded.owner OR run_leases.until < ?4 RETURNING run_id",
        )?
        .query_map(
            params![owner, until, serde_json::to_string(ids)?, now],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?)
}

/// The runner's rescan with several nodes: up to `limit` queued runs after position
/// `after` that `owner` may take — its own, unleased (accepted before leases existed, or
/// copied by `migrate-store`), or with a lapsed lease — each leased to `owner` until
/// `until` in this write. Returns the page's runs that `owner` now holds, with their
/// positions, and the position the page ended at (0 when the page was not full: the
/// rescan starts over).
pub fn claim_queued(
    db: &Db<'_>,
    owner: &str,
    after: i64,
    limit: usize,
    until: &str,
    now: &str,
) -> StoreResult<(Vec<(i64, QueuedRun)>, i64)> {
    let mut stmt = db.0.prepare_cached(
        "SELECT r.rowid, r.id, r.workflow_key, r.tenant, l.owner, l.until \
         FROM workflow_runs r \
         LEFT JOIN run_leases l ON l.run_id = r.id \
         WHERE r.status = 'queued' AND r.rowid > ?1 ORDER BY r.rowid LIMIT ?2",
    )?;
    type Row = (i64, QueuedRun, Option<String>, Option<String>);
    let page: Vec<Row> = stmt
        .query_map(
            params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| {
                Ok((
                    row.get(0)?,
                    QueuedRun {
                        id: row.get(1)?,
                        workflow_key: row.get(2)?,
                        tenant: row.get(3)?,
                    },
                    row.get(4)?,
                    row.get(5)?,
                ))
            },
        )?
        .collect::<Result<_, _>>()?;
    let end = if page.len() == limit {
        page.last().map_or(0, |r| r.0)
    } else {
        0
    };
    let candidates: Vec<(i64, QueuedRun)> = page
        .into_iter()
        .filter(
            |(_, _, lease_owner, lease_until)| match (lease_owner, lease_until) {
                (Some(o), _) if o == owner => true,
                (Some(_), Some(u)) => u.as_str() < now,
                _ => true,
            },
        )
        .map(|(pos, run, ..)| (pos, run))
        .collect();
    if candidates.is_empty() {
        return Ok((Vec::new(), end));
    }
    let ids: Vec<String> = candidates.iter().map(|(_, r)| r.id.clone()).collect();
    let taken: std::collections::HashSet<String> =
        take(db, owner, &ids, until, now)?.into_iter().collect();
    Ok((
        candidates
            .into_iter()
            .filter(|(_, r)| taken.contains(&r.id))
            .collect(),
        end,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::{NewRun, insert_run};

    /// The test PostgreSQL's fresh schema (leases exist on PostgreSQL only); `None` when
    /// no server is reachable and none is required.
    fn postgres() -> Option<crate::store::test_engines::TestDb> {
        match crate::store::test_engines::postgres() {
            Ok(db) => Some(db),
            Err(e) if std::env::var("TIDINGS_TEST_POSTGRES").as_deref() == Ok("require") => {
                panic!("PostgreSQL is required for the store tests: {e}")
            }
            Err(_) => None,
        }
    }

    #[test]
    fn a_lease_is_held_by_one_owner_until_it_lapses_or_is_released() {
        let Some(test) = postgres() else { return };
        let db = Db::on(&test.conn);
        let t = |s: u32| format!("2026-03-01T10:00:{s:02}.000000Z");
        assert!(hold(&db, "duties", "a", &t(10), &t(0)).expect("a takes it"));
        assert!(!hold(&db, "duties", "b", &t(12), &t(5)).expect("b refused"));
        assert!(hold(&db, "duties", "a", &t(15), &t(6)).expect("a renews"));
        assert!(!hold(&db, "duties", "b", &t(20), &t(14)).expect("still a's"));
        assert!(hold(&db, "duties", "b", &t(30), &t(16)).expect("lapsed: b takes it"));
        assert!(!hold(&db, "duties", "a", &t(25), &t(17)).expect("a lost it"));
        release(&db, "duties", "a").expect("a's release is a no-op");
        assert!(!hold(&db, "duties", "a", &t(25), &t(18)).expect("still b's"));
        release(&db, "duties", "b").expect("b hands it back");
        assert!(hold(&db, "duties", "a", &t(30), &t(19)).expect("free again"));
    }

    #[test]
    fn queued_runs_are_claimed_by_one_node_when_free_lapsed_or_its_own() {
        let Some(test) = postgres() else { return };
        let db = Db::on(&test.conn);
        for id in ["r1", "r2", "r3"] {
            insert_run(
                &db,
                &NewRun {
                    id: id.into(),
                    workflow_key: "w".into(),
                    request: serde_json::json!({"recipients": ["u"]}),
                    cancellation_key: None,
                    tenant: None,
                },
            )
            .expect("run");
        }
        let ids = |page: &[(i64, QueuedRun)]| -> Vec<String> {
            page.iter().map(|(_, r)| r.id.clone()).collect()
        };
        let far = "2999-01-01T00:00:00.000000Z";
        let past = "2000-01-01T00:00:00.000000Z";
        // Node a accepted r1 (leased with its insert); r2 and r3 have no lease: free.
        lease_new_run(&db, "r1", "a", far).expect("lease");
        let (page, end) = claim_queued(&db, "b", 0, 10, far, past).expect("claim");
        assert_eq!(ids(&page), ["r2", "r3"]);
        assert_eq!(end, 0, "a short page starts over");
        let (page, _) = claim_queued(&db, "c", 0, 10, far, past).expect("claim");
        assert!(page.is_empty(), "b holds r2 and r3, a holds r1: {page:?}");
        assert!(
            claim_among(&db, "c", &["r1".into(), "r2".into()], far, past)
                .expect("claim among")
                .is_empty()
        );
        // a's own runs come back to it; a lapsed lease is anybody's.
        let (page, _) = claim_queued(&db, "a", 0, 10, far, past).expect("claim");
        assert_eq!(ids(&page), ["r1"]);
        let later = "3000-01-01T00:00:00.000000Z";
        let (page, _) = claim_queued(&db, "c", 0, 10, later, later).expect("claim");
        assert_eq!(ids(&page), ["r1", "r2", "r3"], "every lease lapsed");
        // b renews what it thinks it holds: c has them now.
        let lost = renew_runs(&db, "b", &["r2".into(), "r3".into()], far, far).expect("renew");
        assert_eq!(lost, ["r2", "r3"]);
        release_runs(&db, "c").expect("release");
        let (page, _) = claim_queued(&db, "b", 0, 10, far, past).expect("claim");
        assert_eq!(ids(&page), ["r1", "r2", "r3"], "handed back: free again");
    }
}
