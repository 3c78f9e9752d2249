//! Keeping PostgreSQL's planner statistics current for the hot tables (see
//! `store::statistics` for why and the rule).

use crate::store::{Store, StoreResult, statistics};

impl Store {
    /// Analyzes the hot tables that grew well past their statistics; the tables analyzed.
    /// Nothing on SQLite. Runs on a reader connection, never on the writer, so commits do
    /// not wait for it.
    pub(crate) async fn refresh_planner_statistics(&self) -> StoreResult<Vec<String>> {
        self.read(|db| {
            let tables = statistics::grown_tables(db)?;
            for table in &tables {
                statistics::analyze(db, table)?;
            }
            Ok(tables)
        })
        .await
    }
}
