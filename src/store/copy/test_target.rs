//! The PostgreSQL side of `store::copy`'s tests: a fresh schema per test on the test server
//! (`test_engines`), and the copy run against it.
//!
//! The test server is shared with other suites running at once; when it is full (SQLSTATE
//! 53300, "too many clients") that is waited out, up to a minute, instead of failing a test
//! for connections another suite holds.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{CopyError, CopyReport, TableCount, migrate_store};
use crate::store::sql::{Conn, PgConfig};
use crate::store::test_engines::{postgres_url, with_search_path};

const FULL_SERVER: &str = "too many clients";
const FULL_SERVER_WAIT: Duration = Duration::from_secs(60);

/// Connects to `url`, waiting out a full server.
fn connect(url: &str) -> crate::store::sql::Result<Conn> {
    let deadline = Instant::now() + FULL_SERVER_WAIT;
    loop {
        match Conn::connect_postgres(&PgConfig::at(url)) {
            Err(e) if e.to_string().contains(FULL_SERVER) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

/// [`migrate_store`] into `url`, run again while the server is full (it failed to connect,
/// so it wrote nothing).
pub(super) fn copy(
    from: &Path,
    url: &str,
    mut on_table: impl FnMut(&TableCount),
) -> Result<CopyReport, CopyError> {
    let deadline = Instant::now() + FULL_SERVER_WAIT;
    loop {
        match migrate_store(from, url, &mut on_table) {
            Err(CopyError::Connect(m)) if m.contains(FULL_SERVER) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

/// A fresh, empty PostgreSQL schema, dropped afterwards.
pub(super) struct Target {
    pub url: String,
    schema: String,
    pub conn: Conn,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Ok(admin) = connect(&postgres_url()) {
            let _ = admin.execute_batch(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

/// A fresh schema on the test server; `None` (skip) without one, unless it is required.
pub(super) fn target() -> Option<Target> {
    let admin = match connect(&postgres_url()) {
        Ok(admin) => admin,
        Err(e) if std::env::var("TIDINGS_TEST_POSTGRES").as_deref() == Ok("require") => {
            panic!("PostgreSQL is required for the store tests: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no PostgreSQL ({e})");
            return None;
        }
    };
    let schema = format!("copy_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_batch(&format!("CREATE SCHEMA {schema}"))
        .expect("schema");
    let url = with_search_path(&postgres_url(), &schema);
    let conn = connect(&url).expect("connect");
    Some(Target { url, schema, conn })
}
