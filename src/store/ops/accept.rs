//! Accepting a trigger (`engine::accept`): the idempotency look-up, and the ONE write
//! that upserts the trigger's inline tenant/actor/recipients, inserts the queued run and
//! remembers its `Idempotency-Key` — so a 200 means all of it is durable, and a trigger
//! refused by the write changed nothing.

use chrono::Duration;

use super::super::runs::{self, IdempotencyRow, NewRun};
use super::super::{Db, Store, StoreResult, recipients};
use crate::clock;
use crate::model::RecipientRef;
use crate::model::trigger::{RecipientInput, TenantInput};

/// What the accept write stores (validated and parsed before it).
#[derive(Debug, Clone)]
pub struct AcceptTrigger {
    pub run: NewRun,
    /// The `Idempotency-Key` and what it maps to, when the request had one.
    pub idempotency: Option<(String, IdempotencyRow)>,
    /// The hash of the request, compared with a key's earlier request.
    pub request_hash: String,
    /// How long a key is remembered.
    pub window: Duration,
    pub tenant: Option<TenantInput>,
    pub actor: Option<RecipientInput>,
    pub recipients: Vec<RecipientInput>,
}

/// The outcome of the accept write.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepting {
    /// The run and everything it upserted committed.
    New,
    /// The key was used (inside its window) by the same request: that run answers.
    Replay(IdempotencyRow),
    /// The key was used by a different request: nothing was written.
    Mismatch,
}

/// The oldest `inserted_at` of a key still inside `window`, on the store's clock (the one
/// that stamped the keys).
fn since(db: &Db<'_>, window: Duration) -> String {
    clock::format(db.now_utc() - window)
}

/// Upserts a recipient's inline properties, if the request gave any (inside the
/// caller's write). Shared with schedules, whose actor may be inline too.
pub(crate) fn upsert_inline(db: &Db<'_>, input: &RecipientInput) -> StoreResult<()> {
    let Some(props) = &input.inline else {
        return Ok(());
    };
    match &input.reference {
        RecipientRef::User(id) => recipients::upsert_user(db, id, props).map(|_| ()),
        RecipientRef::Object { id, collection } => {
            recipients::upsert_object(db, collection, id, props).map(|_| ())
        }
    }
}

/// Upserts the inline properties of `inputs`, in order (inside the caller's write): the
/// users in one [`recipients::upsert_users`] (a trigger to 1,000 inline recipients reads
/// and writes them in a statement or two, not 2,000 round trips), objects one by one. A
/// refused item fails the whole call (and the trigger), as [`upsert_inline`] would.
fn upsert_inline_all<'a>(
    db: &Db<'_>,
    inputs: impl Iterator<Item = &'a RecipientInput>,
) -> StoreResult<()> {
    let mut users = Vec::new();
    for input in inputs {
        match (&input.reference, &input.inline) {
            (RecipientRef::User(id), Some(props)) => users.push((id.as_str(), props)),
            (RecipientRef::Object { .. }, Some(_)) => upsert_inline(db, input)?,
            (_, None) => {}
        }
    }
    if users.is_empty() {
        return Ok(());
    }
    match recipients::upsert_users(db, &users)?
        .into_iter()
        .find_map(Result::err)
    {
        Some(refused) => Err(refused),
        None => Ok(()),
    }
}

/// Upserts a tenant given inline, or makes sure a tenant named by id exists (inside the
/// caller's write).
pub(crate) fn upsert_tenant(db: &Db<'_>, tenant: &TenantInput) -> StoreResult<()> {
    match &tenant.inline {
        Some(props) => recipients::upsert_tenant(db, &tenant.id, props).map(|_| ()),
        None => recipients::ensure_tenant(db, &tenant.id),
    }
}

impl Store {
    /// The run an `Idempotency-Key` maps to, if it was used inside `window`.
    pub async fn remembered_trigger(
        &self,
        key: &str,
        window: Duration,
    ) -> StoreResult<Option<IdempotencyRow>> {
        let key = key.to_owned();
        self.read(move |db| runs::get_idempotency(db, &key, &since(db, window)))
            .await
    }

    /// Whether user `id` was ever identified (a trigger's actor must have been).
    pub async fn user_identified(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.read(move |db| recipients::user_exists(db, &id)).await
    }

    /// Accepts a trigger in ONE write: the key is checked again inside it (two concurrent
    /// requests with one key are serialized here, and the second replays the first),
    /// then the inline tenant, actor and recipients are upserted, the run is inserted
    /// `queued` and the key remembered.
    pub async fn accept_trigger(&self, accept: AcceptTrigger) -> StoreResult<Accepting> {
        // Several nodes: the run is leased to this node with its insert.
        let lease = self.new_run_lease();
        self.write(move |db| {
            if let Some((k, _)) = &accept.idempotency
                && let Some(row) = runs::get_idempotency(db, k, &since(db, accept.window))?
            {
                return Ok(if row.request_hash == accept.request_hash {
                    Accepting::Replay(row)
                } else {
                    Accepting::Mismatch
                });
            }
            if let Some(tenant) = &accept.tenant {
                upsert_tenant(db, tenant)?;
            }
            upsert_inline_all(db, accept.actor.iter().chain(&accept.recipients))?;
            runs::insert_run(db, &accept.run)?;
            if let Some((owner, until)) = &lease {
                crate::store::leases::lease_new_run(db, &accept.run.id, owner, until)?;
            }
            if let Some((k, row)) = &accept.idempotency {
                runs::put_idempotency(db, k, row)?;
            }
            Ok(Accepting::New)
        })
        .await
    }
}
