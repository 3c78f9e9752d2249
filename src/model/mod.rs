//! Domain types parsed at the edge. Once a value is one of these types it is valid; the
//! layers behind the API trust it. No I/O here.

pub mod ids;
pub mod page;
pub mod properties;
pub mod recipient;

pub use ids::{CollectionName, EntityId};
pub use page::{Page, PageQuery};
pub use properties::{PropertyError, RecipientProperties};
pub use recipient::RecipientRef;
