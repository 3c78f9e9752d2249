//! Domain types parsed at the edge. Once a value is one of these types it is valid; the
//! layers behind the API trust it. No I/O here.

pub mod ids;
pub mod recipient;
pub mod trigger;
pub mod workflow;

pub use ids::{CollectionName, EntityId};
pub use recipient::RecipientRef;
