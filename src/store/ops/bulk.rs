//! Bulk recipient operations (spec §4.5): each applies every item in ONE write command
//! and records the finished `BulkOperation` in the same transaction.
//!
//! Invariant: an item that cannot be applied (refused at the edge, or refused by the
//! store as invalid, or naming a recipient that does not exist) becomes one error item
//! and the batch goes on; any other store error aborts the whole operation, so the
//! transaction rolls back and nothing is recorded.

use serde_json::{Map, Value};

use crate::model::bulk::{BulkOperation, BulkRun};
use crate::model::{EntityId, RecipientProperties};
use crate::store::recipients::{self, ChannelDataOwner};
use crate::store::{Db, Store, StoreError, StoreResult, bulk};

/// Which recipients a bulk upsert or delete applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkTarget {
    Users,
    /// The objects of this collection.
    Objects(String),
    Tenants,
}

/// One item of a bulk upsert, validated at the edge: the id and its properties, or the
/// id to report and why it was refused.
pub type BulkItem = Result<(EntityId, RecipientProperties), (String, String)>;

impl BulkTarget {
    /// Upserts `items` in order: one outcome per item, `Err` only for a refusal
    /// ([`StoreError::Invalid`]); any other error fails the call. Users go through
    /// [`recipients::upsert_users`] (one read and multi-row writes for the lot), objects
    /// and tenants one by one.
    fn upsert_all(
        &self,
        db: &Db<'_>,
        items: &[(&str, &Map<String, Value>)],
    ) -> StoreResult<Vec<StoreResult<()>>> {
        type UpsertOne<'a> = Box<dyn Fn(&str, &Map<String, Value>) -> StoreResult<()> + 'a>;
        let upsert_one: UpsertOne<'_> = match self {
            BulkTarget::Users => return recipients::upsert_users(db, items),
            BulkTarget::Objects(c) => {
                Box::new(move |id, props| recipients::upsert_object(db, c, id, props).map(|_| ()))
            }
            BulkTarget::Tenants => {
                Box::new(move |id, props| recipients::upsert_tenant(db, id, props).map(|_| ()))
            }
        };
        let mut outcomes = Vec::with_capacity(items.len());
        for (id, props) in items {
            match upsert_one(id, props) {
                Err(other) if !matches!(other, StoreError::Invalid { .. }) => return Err(other),
                outcome => outcomes.push(outcome),
            }
        }
        Ok(outcomes)
    }

    fn delete(&self, db: &Db<'_>, id: &str) -> StoreResult<bool> {
        match self {
            BulkTarget::Users => recipients::delete_user(db, id),
            BulkTarget::Objects(c) => recipients::delete_object(db, c, id),
            BulkTarget::Tenants => recipients::delete_tenant(db, id),
        }
    }

    fn noun(&self) -> &'static str {
        match self {
            BulkTarget::Users => "user",
            BulkTarget::Objects(_) => "object",
            BulkTarget::Tenants => "tenant",
        }
    }
}

/// Records the finished run.
fn record(db: &Db<'_>, run: BulkRun) -> StoreResult<BulkOperation> {
    bulk::record_completed(db, &run.name, run.applied, run.errors)
}

impl Store {
    /// The recorded bulk operation, or `None`.
    pub(crate) async fn bulk_operation(&self, id: String) -> StoreResult<Option<BulkOperation>> {
        self.read(move |db| bulk::get(db, &id)).await
    }

    /// Records a bulk operation applied elsewhere (`applied` items, no errors).
    pub(crate) async fn record_bulk(
        &self,
        name: String,
        applied: usize,
    ) -> StoreResult<BulkOperation> {
        self.write(move |db| bulk::record_completed(db, &name, applied, Vec::new()))
            .await
    }

    /// Upserts each valid item into `target`, in order; refused items (at the edge or
    /// by the store as invalid) are error items.
    pub(crate) async fn bulk_upsert(
        &self,
        mut run: BulkRun,
        target: BulkTarget,
        items: Vec<BulkItem>,
    ) -> StoreResult<BulkOperation> {
        self.write(move |db| {
            let valid: Vec<(&str, &Map<String, Value>)> = items
                .iter()
                .filter_map(|item| item.as_ref().ok())
                .map(|(id, props)| (id.as_str(), props.as_map()))
                .collect();
            let mut outcomes = target.upsert_all(db, &valid)?.into_iter();
            for item in &items {
                match item {
                    // One outcome per valid item, in order; an `Err` is always `Invalid`.
                    Ok((id, _)) => match outcomes.next() {
                        Some(Err(StoreError::Invalid { message, .. })) => {
                            run.fail(id.as_str(), message)
                        }
                        Some(Err(other)) => run.fail(id.as_str(), other.to_string()),
                        Some(Ok(())) | None => run.applied(),
                    },
                    Err((id, message)) => run.fail(id.clone(), message.clone()),
                }
            }
            record(db, run)
        })
        .await
    }

    /// Deletes each valid id of `target`; an invalid or missing one is an error item.
    pub(crate) async fn bulk_delete(
        &self,
        mut run: BulkRun,
        target: BulkTarget,
        ids: Vec<String>,
    ) -> StoreResult<BulkOperation> {
        self.write(move |db| {
            for id in ids {
                if !run.valid_id(&id) {
                    continue;
                }
                if target.delete(db, &id)? {
                    run.applied();
                } else {
                    let noun = target.noun();
                    run.fail(id, format!("the {noun} does not exist"));
                }
            }
            record(db, run)
        })
        .await
    }

    /// Replaces preference set `set_id` with `body` for every valid user id.
    pub(crate) async fn bulk_set_user_preferences(
        &self,
        mut run: BulkRun,
        user_ids: Vec<String>,
        set_id: EntityId,
        body: Map<String, Value>,
    ) -> StoreResult<BulkOperation> {
        self.write(move |db| {
            for id in user_ids {
                if run.valid_id(&id) {
                    let owner = ChannelDataOwner::user(&id);
                    recipients::put_preference_set(db, owner, set_id.as_str(), &body)?;
                    run.applied();
                }
            }
            record(db, run)
        })
        .await
    }
}
