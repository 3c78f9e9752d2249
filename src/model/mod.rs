//! Domain types parsed at the edge. Once a value is one of these types it is valid; the
//! layers behind the API trust it. No I/O here.

pub mod bulk;
pub mod channel;
pub mod conditions;
pub mod engagement;
pub mod entities;
pub mod feed;
pub mod feed_counts;
pub mod feed_params;
pub mod field_error;
pub mod ids;
pub mod message;
pub mod message_params;
pub mod page;
pub mod preferences;
pub mod properties;
pub mod recipient;
pub mod recurrence;
pub mod retention;
pub mod run_records;
pub mod run_state;
pub mod schedules;
pub mod snooze;
pub mod stored_trigger;
pub mod subscription;
pub mod translations;
pub mod trigger;
pub mod views;
pub mod workflow;

pub use feed::{ArchivedFilter, FeedFilters, FeedMode, FeedQuery, StatusFilter, TimeRange};
pub use ids::{CollectionName, EntityId};
pub use page::{Page, PageQuery};
pub use properties::{PropertyError, RecipientProperties};
pub use recipient::RecipientRef;
