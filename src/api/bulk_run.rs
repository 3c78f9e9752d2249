//! One bulk recipient operation being applied item by item inside its write transaction
//! (users, objects, tenants: spec §4.5), ending in the recorded `BulkOperation`.
//!
//! Invariant: an item that cannot be applied (a bad id, invalid properties, a recipient that
//! does not exist) becomes one entry of `error_items` and the batch goes on; any other store
//! error aborts the whole operation, so the transaction rolls back and nothing is recorded.

use actix_web::HttpResponse;
use serde_json::{Map, Value, json};

use super::recipient_input::bulk_item;
use crate::error::ApiError;
use crate::model::EntityId;
use crate::model::properties::RecipientKind;
use crate::state::AppState;
use crate::store::{Db, StoreError, StoreResult, bulk};

/// The tallies of a bulk operation in progress.
pub struct BulkRun {
    name: &'static str,
    /// Objects' error items also name their collection, so a client can tell them apart.
    collection: Option<String>,
    applied: usize,
    errors: Vec<Value>,
}

impl BulkRun {
    /// A run recorded as `name` (e.g. `users.bulk_identify`).
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            collection: None,
            applied: 0,
            errors: Vec::new(),
        }
    }

    /// A run over the objects of `collection`.
    pub fn in_collection(name: &'static str, collection: &str) -> Self {
        Self {
            collection: Some(collection.to_owned()),
            ..Self::new(name)
        }
    }

    /// Records that `id` was not applied, and why.
    fn fail(&mut self, id: impl Into<Value>, message: impl Into<Value>) {
        let mut item = json!({"id": id.into(), "message": message.into()});
        if let Some(collection) = &self.collection {
            item["collection"] = json!(collection);
        }
        self.errors.push(item);
    }

    /// Whether `id` is a valid recipient id; records the error item when it is not.
    pub fn valid_id(&mut self, id: &str) -> bool {
        match EntityId::parse(id) {
            Ok(_) => true,
            Err(message) => {
                self.fail(id, format!("`id` {message}"));
                false
            }
        }
    }

    /// Counts one item applied.
    pub fn applied(&mut self) {
        self.applied += 1;
    }

    /// Validates each item as a recipient of `kind` and stores it with `upsert(id, props)`.
    /// Invalid items, and items the store refuses as invalid, are error items.
    pub fn upsert_each(
        &mut self,
        kind: RecipientKind,
        items: impl IntoIterator<Item = Map<String, Value>>,
        mut upsert: impl FnMut(&str, &Map<String, Value>) -> StoreResult<Value>,
    ) -> StoreResult<()> {
        for item in items {
            match bulk_item(kind, item) {
                Ok((id, props)) => match upsert(id.as_str(), props.as_map()) {
                    Ok(_) => self.applied(),
                    Err(StoreError::Invalid { message, .. }) => self.fail(id.as_str(), message),
                    Err(other) => return Err(other),
                },
                Err((id, message)) => self.fail(id, message),
            }
        }
        Ok(())
    }

    /// Deletes each valid id with `delete(id)`, which answers whether it existed; a missing
    /// `noun` (e.g. "user") is an error item.
    pub fn delete_each(
        &mut self,
        ids: Vec<String>,
        noun: &str,
        mut delete: impl FnMut(&str) -> StoreResult<bool>,
    ) -> StoreResult<()> {
        for id in ids {
            if !self.valid_id(&id) {
                continue;
            }
            if delete(&id)? {
                self.applied();
            } else {
                self.fail(id, format!("the {noun} does not exist"));
            }
        }
        Ok(())
    }

    /// Runs `apply` over this run inside one write transaction, records the finished
    /// operation and answers it (200, the `BulkOperation`).
    pub async fn respond(
        mut self,
        state: &AppState,
        apply: impl FnOnce(&Db<'_>, &mut BulkRun) -> StoreResult<()> + Send + 'static,
    ) -> Result<HttpResponse, ApiError> {
        let operation = state
            .store
            .write(move |db| {
                apply(db, &mut self)?;
                bulk::record_completed(db, self.name, self.applied, self.errors)
            })
            .await?;
        Ok(HttpResponse::Ok().json(operation))
    }
}
