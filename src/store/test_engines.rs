//! Store tests on both engines: [`engines`] gives a fresh SQLite database and, where a
//! PostgreSQL server is reachable, a fresh PostgreSQL schema, each at the current schema,
//! so one test body checks the same query on both (the store's contract tests).
//!
//! PostgreSQL comes from `TIDINGS_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each database is a schema of its own,
//! dropped when the test's [`TestDb`] goes. With `TIDINGS_TEST_POSTGRES=require` an
//! unreachable server fails the test instead of skipping that engine (CI sets it).

use super::sql::{Conn, PgConfig};

/// The URL the tests' PostgreSQL databases live under.
pub(crate) fn postgres_url() -> String {
    std::env::var("TIDINGS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// One engine's fresh database for one test.
pub(crate) struct TestDb {
    /// Which engine, for assertion messages.
    pub engine: &'static str,
    pub conn: Conn,
    /// PostgreSQL: the schema to drop afterwards.
    schema: Option<String>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(schema) = &self.schema
            && let Ok(admin) = Conn::connect_postgres(&PgConfig::at(postgres_url()))
        {
            // A test that panicked inside a transaction left its locks held: without this
            // the schema's drop would wait for them forever instead of the test failing.
            let _ = self.conn.execute_batch("ROLLBACK");
            let _ = admin.execute_batch(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

impl TestDb {
    /// Another connection to the same PostgreSQL schema (what a second node's writer
    /// is); `None` on SQLite.
    pub(crate) fn connect_again(&self) -> Option<Conn> {
        let schema = self.schema.as_deref()?;
        Conn::connect_postgres(&PgConfig::at(with_search_path(&postgres_url(), schema))).ok()
    }
}

/// A fresh database on every engine this machine has, at the current schema.
pub(crate) fn engines() -> Vec<TestDb> {
    let mut all = vec![TestDb {
        engine: "sqlite",
        conn: super::migrations::in_memory(),
        schema: None,
    }];
    match postgres() {
        Ok(db) => all.push(db),
        Err(e) if std::env::var("TIDINGS_TEST_POSTGRES").as_deref() == Ok("require") => {
            panic!("PostgreSQL is required for the store tests: {e}")
        }
        Err(_) => {}
    }
    all
}

/// A fresh schema on the test PostgreSQL, migrated.
pub(crate) fn postgres() -> super::StoreResult<TestDb> {
    let base = postgres_url();
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = Conn::connect_postgres(&PgConfig::at(base.clone()))?;
    admin.execute_batch(&format!("CREATE SCHEMA {schema}"))?;
    let url = with_search_path(&base, &schema);
    let db = TestDb {
        engine: "postgres",
        conn: Conn::connect_postgres(&PgConfig::at(url))?,
        schema: Some(schema),
    };
    super::pg::apply(&db.conn)?;
    Ok(db)
}

/// `url` with every connection's `search_path` set to `schema`.
pub(crate) fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}
