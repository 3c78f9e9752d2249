//! Workflow recipient runs as the run-records API reads them.

use crate::model::run_records::RunListQuery;
use crate::store::run_records::{self, RunRecord, RunRecordPage};
use crate::store::{Store, StoreResult};

impl Store {
    /// One page of recipient runs matching `query`.
    pub(crate) async fn run_records(&self, query: RunListQuery) -> StoreResult<RunRecordPage> {
        self.read(move |db| run_records::list(db, &query)).await
    }

    /// One recipient run with its events, or `None`.
    pub(crate) async fn run_record(&self, id: String) -> StoreResult<Option<RunRecord>> {
        self.read(move |db| run_records::get(db, &id)).await
    }
}
