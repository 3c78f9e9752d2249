//! Schedule operations (`engine::schedules`): creating, updating, deleting and firing
//! schedules each happen in one write, where the engine computes the next occurrence
//! from the rules and the recipient's time zone read in that same transaction. The
//! engine gets [`ScheduleTx`], the handful of reads and writes that decision needs,
//! never a `Db`.

use serde_json::Value;

use super::super::runs::{self, NewRun};
use super::super::schedules::{self, NewSchedule, ScheduleFilter, ScheduleRow};
use super::super::{Db, Store, StoreResult, recipients};
use super::{upsert_inline, upsert_tenant};
use crate::model::trigger::{RecipientInput, TenantInput};
use crate::model::{Page, PageQuery, RecipientRef};

/// What a schedule write may read and write inside its transaction.
pub trait ScheduleTx {
    /// Schedule `id`, if it exists.
    fn schedule(&self, id: &str) -> StoreResult<Option<ScheduleRow>>;
    /// Inserts or replaces a schedule, stamped `now`.
    fn put_schedule(&self, row: &NewSchedule, now: &str) -> StoreResult<()>;
    /// Deletes schedule `id`; `false` when there was none.
    fn delete_schedule(&self, id: &str) -> StoreResult<bool>;
    /// Stores one data payload shared by schedules; its id.
    fn put_payload(&self, data: &Value) -> StoreResult<String>;
    /// Upserts an inline tenant (a reference only: nothing).
    fn upsert_tenant(&self, tenant: &TenantInput) -> StoreResult<()>;
    /// Upserts an inline recipient or actor (a reference only: nothing).
    fn upsert_recipient(&self, input: &RecipientInput) -> StoreResult<()>;
    /// The recipient's stored `timezone` property, if any.
    fn recipient_timezone(&self, recipient: &RecipientRef) -> StoreResult<Option<String>>;
    /// Up to `limit` schedules due at or before `now`, earliest first.
    fn due_schedules(&self, now: &str, limit: u32) -> StoreResult<Vec<ScheduleRow>>;
    /// Moves schedule `id` from occurrence `due` to `next`; `false` when another firing
    /// or a change got there first (the occurrence is not fired twice).
    fn claim_occurrence(
        &self,
        id: &str,
        due: &str,
        next: Option<&str>,
        now: &str,
    ) -> StoreResult<bool>;
    /// Queues the run an occurrence makes.
    fn insert_run(&self, run: &NewRun) -> StoreResult<()>;
}

impl ScheduleTx for Db<'_> {
    fn schedule(&self, id: &str) -> StoreResult<Option<ScheduleRow>> {
        schedules::get(self, id)
    }
    fn put_schedule(&self, row: &NewSchedule, now: &str) -> StoreResult<()> {
        schedules::put(self, row, now)
    }
    fn delete_schedule(&self, id: &str) -> StoreResult<bool> {
        schedules::delete(self, id)
    }
    fn put_payload(&self, data: &Value) -> StoreResult<String> {
        schedules::put_payload(self, data)
    }
    fn upsert_tenant(&self, tenant: &TenantInput) -> StoreResult<()> {
        upsert_tenant(self, tenant)
    }
    fn upsert_recipient(&self, input: &RecipientInput) -> StoreResult<()> {
        upsert_inline(self, input)
    }
    fn recipient_timezone(&self, recipient: &RecipientRef) -> StoreResult<Option<String>> {
        Ok(recipients::get_recipient(self, recipient)?
            .as_ref()
            .and_then(|r| r.get("timezone"))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }
    fn due_schedules(&self, now: &str, limit: u32) -> StoreResult<Vec<ScheduleRow>> {
        schedules::due(self, now, limit)
    }
    fn claim_occurrence(
        &self,
        id: &str,
        due: &str,
        next: Option<&str>,
        now: &str,
    ) -> StoreResult<bool> {
        schedules::claim(self, id, due, next, now)
    }
    fn insert_run(&self, run: &NewRun) -> StoreResult<()> {
        runs::insert_run(self, run)
    }
}

impl Store {
    /// Runs `change` as one write over [`ScheduleTx`]: an `Err` leaves nothing changed.
    pub(crate) async fn change_schedules<T, F>(&self, change: F) -> StoreResult<T>
    where
        F: FnOnce(&dyn ScheduleTx) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write(move |db| change(db)).await
    }

    /// The listed schedules, `None` for an unknown id, in order (one read snapshot).
    pub(crate) async fn schedules_by_id(
        &self,
        ids: Vec<String>,
    ) -> StoreResult<Vec<Option<ScheduleRow>>> {
        self.read(move |db| ids.iter().map(|id| schedules::get(db, id)).collect())
            .await
    }

    /// One page of schedules (see `store::schedules::list` for the data budget).
    pub(crate) async fn list_schedules(
        &self,
        filter: ScheduleFilter,
        page: PageQuery,
        data_budget: usize,
    ) -> StoreResult<Page<ScheduleRow>> {
        self.read(move |db| schedules::list(db, &filter, &page, data_budget))
            .await
    }

    /// When the earliest schedule is next due, as stored.
    pub(crate) async fn next_schedule_due(&self) -> StoreResult<Option<String>> {
        self.read(schedules::next_due_at).await
    }
}
