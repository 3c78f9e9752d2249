//! `Refusal`: why the engine turned a request down (an unknown workflow, invalid fields,
//! a reused idempotency key, …). The engine speaks no HTTP; `error.rs` maps each variant
//! to Knock's error body in the one place that knows statuses.

use crate::error::FieldError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("The workflow `{0}` does not exist.")]
    WorkflowMissing(String),
    /// Fields that failed validation, each named by its path in the request.
    #[error("{} field(s) are invalid", .0.len())]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    IdempotencyMismatch(String),
    #[error("The actor `{0}` has never been identified.")]
    ActorMissing(String),
    /// What was not found, as a phrase ("The schedule `s1`").
    #[error("{0} was not found.")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Refusal {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Refusal::Invalid(vec![FieldError::new(field, message)])
    }
}
