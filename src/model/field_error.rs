//! `FieldError`: one field that failed validation. It lives with the domain types that
//! validate (model/ parses into its own errors, DESIGN.md); the HTTP layer (`error.rs`)
//! only carries it into Knock's 422 body.

use serde::Serialize;

/// One field that failed validation, as old Knock SDKs read it from a 422.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            kind: "invalid".into(),
        }
    }
}
