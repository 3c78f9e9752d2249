//! PostgreSQL-only pieces of the store: the schema's migrations and the connections' setup.
//! Everything else (every query, the writer, the readers) is shared with SQLite through
//! [`super::sql`].

use super::StoreResult;
use super::sql::{Conn, OptionalExtension, PgConfig};

/// The PostgreSQL migrations, in order, embedded in the binary. The schema starts at the
/// state SQLite's 20 migrations reach; later changes are added here and in
/// `store/migrations/` together.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_schema", include_str!("0001_schema.sql")),
    ("0002_leases", include_str!("0002_leases.sql")),
    ("0003_run_positions", include_str!("0003_run_positions.sql")),
    (
        "0004_counter_fillfactor",
        include_str!("0004_counter_fillfactor.sql"),
    ),
];

/// Nodes starting at once (issue 20) must not migrate at once: every migration runs under
/// this transaction-scoped advisory lock (an arbitrary constant: "tidings" in ASCII).
const MIGRATION_LOCK: i64 = 0x0074_6964_696e_6773;

/// Opens a connection for the writer: commits are durable before they are acknowledged.
pub(super) fn open_writer(config: &PgConfig) -> StoreResult<Conn> {
    Ok(Conn::connect_postgres(config)?)
}

/// Opens a connection for reads: read-only, so a query bug cannot write outside the writer.
pub(super) fn open_reader(config: &PgConfig) -> StoreResult<Conn> {
    let conn = Conn::connect_postgres(config)?;
    conn.execute_batch("SET default_transaction_read_only = on")?;
    Ok(conn)
}

/// Applies the migrations this database has not seen, each in its own transaction; the
/// applied versions are rows of `tidings_migrations`. Refuses a database a newer Tidings
/// migrated (its version is beyond this binary's list).
pub(super) fn apply(conn: &Conn) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS tidings_migrations (\
             version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    loop {
        conn.execute_batch("BEGIN")?;
        let applied = (|| -> StoreResult<bool> {
            conn.query_row("SELECT pg_advisory_xact_lock(?1)", [MIGRATION_LOCK], |_| {
                Ok(())
            })?;
            let current: i64 = conn
                .query_row("SELECT max(version) FROM tidings_migrations", [], |r| {
                    r.get::<_, Option<i64>>(0)
                })
                .optional()?
                .flatten()
                .unwrap_or(0);
            let known = MIGRATIONS.len() as i64;
            if current > known {
                return Err(super::StoreError::SchemaTooNew {
                    found: current,
                    known,
                });
            }
            let Some((name, sql)) = usize::try_from(current)
                .ok()
                .and_then(|i| MIGRATIONS.get(i))
            else {
                return Ok(false);
            };
            tracing::info!(
                migration = *name,
                version = current + 1,
                "applying migration"
            );
            conn.execute_batch(sql)?;
            conn.execute(
                "INSERT INTO tidings_migrations(version, name) VALUES (?1, ?2)",
                super::sql::params![current + 1, *name],
            )?;
            Ok(true)
        })();
        match applied {
            Ok(true) => conn.execute_batch("COMMIT")?,
            Ok(false) => {
                conn.execute_batch("COMMIT")?;
                return Ok(());
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
}
