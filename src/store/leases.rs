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
    let ids = serde_json::to_string(runs)?;
    let held: Vec<String> =
        db.0.prepare_cached(
            "INSERT INTO run_leases(run_id, owner, until) \
             SELECT value, ?1, ?2 FROM json_each(?3) WHERE true \
             ON CONFLICT(run_id) DO UPDATE SET owner = excluded.owner, until = excluded.until \
             WHERE run_leases.owner = excluded.owner OR run_leases.until < ?4 RETURNING run_id",
        )?
        .query_map(params![owner, until, ids, now], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
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

/// The runner's rescan with several nodes: up to `limit` queued runs after position
/// `after` that `owner` may take — its own, or free (no lease and older than `stale`,
/// i.e. older than a lease: its accepting node would have leased it by then), or with an
/// expired lease — each leased to `owner` until `until` in this write. Returns the page's
/// runs that `owner` now holds, with their positions, and the position the page ended at
/// (0 when the page was not full: the rescan starts over).
pub fn claim_queued(
    db: &Db<'_>,
    owner: &str,
    after: i64,
    limit: usize,
    stale: &str,
    until: &str,
    now: &str,
) -> StoreResult<(Vec<(i64, QueuedRun)>, i64)> {
    let mut stmt = db.0.prepare_cached(
        "SELECT r.rowid, r.id, r.workflow_key, r.tenant, l.owner, l.until, r.inserted_at \
         FROM workflow_runs r \
         LEFT JOIN run_leases l ON l.run_id = r.id \
         WHERE r.status = 'queued' AND r.rowid > ?1 ORDER BY r.rowid LIMIT ?2",
    )?;
    type Row = (i64, QueuedRun, Option<String>, Option<String>, String);
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
                    row.get(6)?,
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
            |(_, _, lease_owner, lease_until, inserted_at)| match (lease_owner, lease_until) {
                (Some(o), _) if o == owner => true,
                (Some(_), Some(u)) => u.as_str() < now,
                _ => inserted_at.as_str() < stale,
            },
        )
        .map(|(pos, run, ..)| (pos, run))
        .collect();
    if candidates.is_empty() {
        return Ok((Vec::new(), end));
    }
    let ids: Vec<String> = candidates.iter().map(|(_, r)| r.id.clone()).collect();
    let taken: std::collections::HashSet<String> =
        db.0.prepare_cached(
            "INSERT INTO run_leases(run_id, owner, until) \
             SELECT value, ?1, ?2 FROM json_each(?3) WHERE true \
             ON CONFLICT(run_id) DO UPDATE SET owner = excluded.owner, until = excluded.until \
             WHERE run_leases.owner = excluded.owner OR run_leases.until < ?4 RETURNING run_id",
        )?
        .query_map(
            params![owner, until, serde_json::to_string(&ids)?, now],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?;
    Ok((
        candidates
            .into_iter()
            .filter(|(_, r)| taken.contains(&r.id))
            .collect(),
        end,
    ))
}
