//! Which database engine the suite runs on: SQLite files (the default) or PostgreSQL
//! (`TIDINGS_TEST_ENGINE=postgres`, the server at `TIDINGS_TEST_DATABASE_URL`), so one
//! suite checks both. A test's database is named by its temp directory either way: the
//! SQLite file in it, or the PostgreSQL schema derived from its path, so a server, its
//! restarts and the test's own looks (`db`) all reach the same data.
#![allow(dead_code)]

use std::path::Path;

use tidings::store::sql::{Conn, PgConfig};

/// Whether this run of the suite is on PostgreSQL.
pub fn is_postgres() -> bool {
    std::env::var("TIDINGS_TEST_ENGINE").as_deref() == Ok("postgres")
}

/// The PostgreSQL server (a database of the suite's own, made by `scripts/test`).
pub fn base_url() -> String {
    std::env::var("TIDINGS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The schema holding the database of the test whose directory is `dir`.
pub fn schema_for(dir: &Path) -> String {
    // FNV-1a of the path: stable across the test's restarts, distinct across tests.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in dir.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("t_{hash:016x}")
}

/// Runs `sql` on the test PostgreSQL, on a thread of its own (its client blocks, and the
/// tests run on an async runtime where blocking clients refuse to run).
fn admin(sql: &str) -> Result<(), String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                Conn::connect_postgres(&PgConfig::at(base_url()))
                    .and_then(|admin| admin.execute_batch(sql))
                    .map_err(|e| e.to_string())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The URL of `dir`'s database (its schema is created on first use).
pub fn url_for(dir: &Path) -> String {
    let schema = schema_for(dir);
    admin(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).expect("a schema for the test");
    let base = base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// Drops `dir`'s schema (a test's database going with its temp directory).
pub fn drop_for(dir: &Path) {
    // A server still closing may hold a lock: give up after a moment and leave the schema
    // to the suite's database, which `scripts/test` drops at the end.
    let _ = admin(&format!(
        "SET lock_timeout = '2s'; DROP SCHEMA IF EXISTS {} CASCADE",
        schema_for(dir)
    ));
}

/// The environment that points a launched `tidings` at the test database `db_path`:
/// `TIDINGS_DB` always, and on PostgreSQL the URL of the schema of `db_path`'s directory
/// (what `db` reads for that path).
pub fn database_env(db_path: impl AsRef<Path>) -> Vec<(String, String)> {
    let db_path = db_path.as_ref();
    let mut env = vec![("TIDINGS_DB".to_owned(), db_path.display().to_string())];
    if is_postgres() {
        let dir = db_path.parent().unwrap_or(Path::new("."));
        env.push(("TIDINGS_DATABASE_URL".to_owned(), url_for(dir)));
        env.push(("TIDINGS_DATABASE_POOL_SIZE".to_owned(), "3".to_owned()));
        // Short leases and one node name per database: a restart takes its runs back
        // at once (see `process::Launch`).
        env.push(("TIDINGS_LEASE_SECS".to_owned(), "2".to_owned()));
        env.push(("TIDINGS_NODE_ID".to_owned(), schema_for(dir)));
    }
    env
}

/// Points a test server's settings at the test database `db_path` (a restart on another
/// test's data): the SQLite file, and on PostgreSQL the schema of its directory.
pub fn point_at(settings: &mut tidings::Settings, db_path: std::path::PathBuf) {
    if is_postgres() {
        let dir = db_path.parent().unwrap_or(Path::new("."));
        settings.database_url = Some(url_for(dir));
        settings.node_id = schema_for(dir);
        settings.lease_secs = 2;
    }
    settings.db = db_path;
}
