//! Domain types parsed at the edge. Once a value is one of these types it is valid; the
//! layers behind the API trust it. No I/O here.

pub mod conditions;
pub mod ids;
pub mod preferences;
pub mod recipient;

pub use ids::{CollectionName, EntityId};
pub use recipient::RecipientRef;
