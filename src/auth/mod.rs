//! Who may do what: API keys, RS256 user tokens and their grants, and the extractors
//! handlers use (`ServerKey`, `Caller`). The one place that decides access.

pub mod access;
pub mod dev_token;
pub mod extract;
pub mod keys;
pub mod token;

pub use extract::{Caller, ServerKey};
pub use keys::Keys;
