//! Planner statistics for the hot tables on PostgreSQL, refreshed when a table has grown
//! well past what its statistics say.
//!
//! Why: PostgreSQL keeps a prepared statement's generic plan until the tables it reads are
//! analyzed again, and every Tidings connection keeps its statements prepared. A plan made
//! while `feeds` held a handful of rows probes it with a sequential scan; after a first
//! large fan-out creates 100,000 feeds, every feed lookup and badge count scans them all
//! until autovacuum's next ANALYZE (up to a minute later, or never where autovacuum is
//! off). `ANALYZE` invalidates those plans on every connection of every node.
//!
//! The rule: a table is analyzed when its live rows (the cumulative statistics, current
//! within a second) exceed twice what its statistics counted plus [`MIN_GROWTH`]: from
//! empty at 1,000 rows, then 3,000, 7,000, … — a logarithmic number of ANALYZEs while a
//! table grows, each sampling at most 30,000 rows (the default statistics target) — and
//! only while the statistics count fewer than [`MAX_TRACKED`] rows: by then every plan
//! probes the indexes, and autovacuum's own ANALYZEs keep the rest (an ANALYZE of a large
//! `messages` reads 30,000 of its pages, measurable on a 1,000,000-item fan-out).

use super::sql::Dialect;
use super::{Db, StoreResult};

/// Tables every hot statement reads (feeds, badges, fan-out pages, runs).
const HOT_TABLES: [&str; 7] = [
    "feeds",
    "messages",
    "feed_counters",
    "users",
    "subscriptions",
    "preference_sets",
    "workflow_runs",
];

/// Rows a table must have grown by (beyond doubling) before it is analyzed again.
pub const MIN_GROWTH: i64 = 1000;

/// Past this many rows in its statistics a table is left to autovacuum (see above).
pub const MAX_TRACKED: i64 = 100_000;

/// The hot tables of this schema whose statistics are out of date by the rule above.
pub fn grown_tables(db: &Db<'_>) -> StoreResult<Vec<String>> {
    if db.0.dialect() != Dialect::Postgres {
        return Ok(Vec::new());
    }
    let list = serde_json::to_string(&HOT_TABLES)?;
    let mut stmt = db.0.prepare_cached(
        "SELECT s.relname::text FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
         WHERE s.schemaname = current_schema() \
           AND s.relname IN (SELECT json_array_elements_text(CAST(?1 AS json))) \
           AND s.n_live_tup > 2 * greatest(c.reltuples, 0) + CAST(?2 AS bigint) \
           AND c.reltuples < CAST(?3 AS bigint)",
    )?;
    let names = stmt
        .query_map(
            crate::store::sql::params![list, MIN_GROWTH, MAX_TRACKED],
            |row| row.get(0),
        )?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(names)
}

/// Analyzes `table` (one of [`HOT_TABLES`]) in a read-write transaction of its own, so a
/// read-only reader connection can run it; rolled back on failure, leaving the
/// connection as it was.
pub fn analyze(db: &Db<'_>, table: &str) -> StoreResult<()> {
    if db.0.dialect() != Dialect::Postgres || !HOT_TABLES.contains(&table) {
        return Ok(());
    }
    let result =
        db.0.execute_batch(&format!("BEGIN READ WRITE; ANALYZE {table}; COMMIT"));
    if result.is_err() {
        let _ = db.0.execute_batch("ROLLBACK");
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes this session's table counts visible to the cumulative statistics now (they
    /// are otherwise flushed at most once a second).
    fn flush_counts(db: &Db<'_>) {
        db.0.execute_batch("SELECT pg_stat_force_next_flush()")
            .expect("flush");
        // The flush happens when the session goes idle after that statement.
        db.0.execute_batch("SELECT 1").expect("idle");
    }

    #[test]
    fn a_table_that_outgrew_its_statistics_is_flagged_until_analyzed() {
        for test_db in crate::store::test_engines::engines() {
            let db = Db::on(&test_db.conn);
            assert!(
                grown_tables(&db).expect("check").is_empty(),
                "{}",
                test_db.engine
            );
            if test_db.engine != "postgres" {
                continue;
            }
            db.0.execute_batch(
                "INSERT INTO feeds(channel_id, recipient_kind, recipient_collection, recipient_id) \
                 SELECT 'chan', 'user', '', 'u' || g FROM generate_series(1, 1500) g",
            )
            .expect("feeds");
            flush_counts(&db);
            assert_eq!(grown_tables(&db).expect("check"), vec!["feeds".to_owned()]);
            analyze(&db, "feeds").expect("analyze");
            let reltuples: f64 =
                db.0.query_row(
                    "SELECT reltuples::float8 FROM pg_class WHERE oid = 'feeds'::regclass",
                    [],
                    |r| r.get(0),
                )
                .expect("reltuples");
            assert_eq!(reltuples, 1500.0, "analyzed");
            assert!(grown_tables(&db).expect("check").is_empty(), "up to date");
            // The connection is as it was: a later statement runs outside any transaction.
            db.0.execute_batch("BEGIN; SELECT 1; COMMIT")
                .expect("no open transaction");
        }
    }

    #[test]
    fn a_table_whose_statistics_count_max_tracked_rows_is_left_to_autovacuum() {
        let Some(test_db) = crate::store::test_engines::engines()
            .into_iter()
            .find(|db| db.engine == "postgres")
        else {
            return;
        };
        let db = Db::on(&test_db.conn);
        let insert = |from: i64, to: i64| {
            db.0.execute_batch(&format!(
                "INSERT INTO feeds(channel_id, recipient_kind, recipient_collection, recipient_id) \
                 SELECT 'chan', 'user', '', 'u' || g FROM generate_series({from}, {to}) g"
            ))
            .expect("feeds");
        };
        insert(1, MAX_TRACKED);
        analyze(&db, "feeds").expect("analyze");
        // Twice the statistics plus MIN_GROWTH, and more: grown by the rule's first half.
        insert(MAX_TRACKED + 1, 2 * MAX_TRACKED + MIN_GROWTH + 500);
        flush_counts(&db);
        let live: i64 =
            db.0.query_row(
                "SELECT n_live_tup FROM pg_stat_user_tables \
                 WHERE relname = 'feeds' AND schemaname = current_schema()",
                [],
                |r| r.get(0),
            )
            .expect("live rows");
        assert!(live > 2 * MAX_TRACKED + MIN_GROWTH, "{live} rows counted");
        assert!(grown_tables(&db).expect("check").is_empty());
    }

    #[test]
    fn only_the_hot_tables_are_ever_analyzed() {
        for test_db in crate::store::test_engines::engines() {
            let db = Db::on(&test_db.conn);
            analyze(&db, "feeds; DROP TABLE users").expect("ignored");
            db.0.query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0))
                .expect("users still there");
        }
    }
}
